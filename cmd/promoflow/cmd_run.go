package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/promoflow/promoflow/internal/topology"
)

func init() {
	register(&command{
		name:    "run",
		summary: "run processors and sinks (all, or a chosen subset) as consumer-group members",
		usage:   "[--config FILE] [--only STAGES]",
		help: `Runs the chosen stages until SIGINT/SIGTERM. Each stage is its own consumer
group, so ops scale a stage by starting more processes with the same --only.
Stages: ` + strings.Join(allStages, ", ") + `.

On start it checks every stage's declared topics against topics.yaml, connects
to Redis/MySQL/ClickHouse as the stages need, loads the coupon batch cache
from the compacted admin topic, then consumes. On shutdown each stage stops
polling, finishes and commits its batch in flight, leaves its group, and the
connections close. Run 'promoflow topics apply' once before the first run.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file (default: built-in defaults + PROMOFLOW_* env)")
			only := fs.String("only", "all", "comma-separated stages to run: "+strings.Join(allStages, ", "))
			statsEvery := fs.Duration("stats-every", 30*time.Second, "log each stage's counters this often (0 = never)")
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
				topo, err := topology.Load()
				if err != nil {
					return err
				}
				if err := topo.Check(stageDeclsWithDLQ(cfg.Runtime.DLQTopic)...); err != nil {
					return fmt.Errorf("checking stages against topics.yaml: %w", err)
				}
				p, err := buildPipeline(ctx, cfg, stages, parts{})
				if err != nil {
					return err
				}
				p.log.Info("promoflow run starting", "stages", strings.Join(stages, ","), "brokers", strings.Join(cfg.Kafka.Brokers, ","))
				if *statsEvery > 0 {
					go func() {
						t := time.NewTicker(*statsEvery)
						defer t.Stop()
						for {
							select {
							case <-ctx.Done():
								return
							case <-t.C:
								for name, s := range p.Stats() {
									p.log.Info("stage stats", "stage", name, "in", s.In, "out", s.Out, "dead", s.Dead, "failed_batches", s.FailedBatches, "fenced", s.Fenced)
								}
							}
						}
					}()
				}
				err = p.Run(ctx)
				p.log.Info("promoflow run stopped")
				return err
			}
		},
	})
}
