package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/promoflow/promoflow/internal/topology"
)

func init() {
	register(&command{
		name:    "run",
		summary: "run processors and sinks (all, or a chosen subset) as consumer-group members",
		usage:   "[--config FILE] [--only STAGES] [--metrics-addr HOST:PORT|off]",
		help: `Runs the chosen stages until SIGINT/SIGTERM. Each stage is its own consumer
group, so ops scale a stage by starting more processes with the same --only.
Stages: ` + strings.Join(allStages, ", ") + `.

On start it checks every stage's declared topics against topics.yaml, connects
to Redis/MySQL/ClickHouse as the stages need, loads the coupon batch cache
from the compacted admin topic, then consumes. On shutdown each stage stops
polling, finishes and commits its batch in flight, leaves its group, and the
connections close. Run 'promoflow topics apply' once before the first run.

Operations (docs/operations.md), on --metrics-addr (metrics.listen, default
:9464; off disables it):
  GET /metrics   Prometheus metrics (promoflow_*: events in and out, decisions
                 by outcome and reason, dead letters, latencies, consumer lag,
                 rebalances, sink batches, store errors)
  GET /healthz   the process is up
  GET /readyz    200 when every stage consumes with its partitions assigned
                 (or is idle because its group has more members than
                 partitions), Kafka and Redis answer and each sink's store
                 takes writes; else 503. The JSON body names each check.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file (default: built-in defaults + PROMOFLOW_* env)")
			only := fs.String("only", "all", "comma-separated stages to run: "+strings.Join(allStages, ", "))
			statsEvery := fs.Duration("stats-every", 30*time.Second, "log each stage's counters this often (0 = never)")
			metricsAddr := fs.String("metrics-addr", "", "address of /metrics, /healthz and /readyz, or off (overrides metrics.listen; default :9464)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				stages, err := parseOnly(*only)
				if err != nil {
					return err
				}
				cfg, err := loadConfig(*cfgPath)
				if err != nil {
					return err
				}
				if *metricsAddr != "" {
					cfg.Metrics.Listen = *metricsAddr
					if err := cfg.Metrics.validate(); err != nil {
						return usagef("--metrics-addr: %v", err)
					}
				}
				topo, err := topology.Load()
				if err != nil {
					return err
				}
				if err := topo.Check(stageDeclsWithDLQ(cfg.Runtime.DLQTopic)...); err != nil {
					return fmt.Errorf("checking stages against topics.yaml: %w", err)
				}
				return runStages(ctx, cfg, stages, *statsEvery, func(a net.Addr) {
					fmt.Fprintf(cmdStdout, "metrics and health on http://%s\n", a)
				})
			}
		},
	})
}
