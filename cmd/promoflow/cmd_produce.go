package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/promoflow/promoflow/producers"
)

func init() {
	register(&command{
		name:    "produce",
		summary: "publish JSON-lines events from a file or stdin (validated, keyed, routed by type)",
		usage:   "--app APP [--file FILE|-] [--topic TOPIC] [--config FILE]",
		help: `Reads one event envelope per line (see docs/events.md), validates it against
the embedded schemas, and publishes it keyed by its partition key to the topic
that topics.yaml names for its type. Invalid lines are reported with their
line number and reason and do not stop the run. Blank lines and lines starting
with # are skipped. Progress is printed every second on stderr.

Example:
  promoflow produce --app shop --file claims.jsonl`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			app := fs.String("app", "", "app_id the events are published under (required)")
			file := fs.String("file", "-", "JSON-lines file, - for stdin")
			topic := fs.String("topic", "", "publish to this topic instead of the one topics.yaml names for the type")
			anyApp := fs.Bool("any-app", false, "accept envelopes of any app_id (admin tooling); default: only --app")
			stopOnErr := fs.Bool("stop-on-error", false, "stop at the first invalid line")
			quiet := fs.Bool("quiet", false, "no progress lines")
			return func(ctx context.Context, args []string) error {
				if *app == "" {
					return usagef("--app is required")
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				var in io.Reader = os.Stdin
				if *file != "-" {
					f, err := os.Open(*file)
					if err != nil {
						return err
					}
					defer f.Close()
					in = f
				}
				p, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: *app}, producers.WithClientOpts(cfg.kafkaOpts()...))
				if err != nil {
					return err
				}
				defer p.Close()
				opts := producers.LinesOptions{Topic: *topic, AllowAnyApp: *anyApp, StopOnError: *stopOnErr}
				if !*quiet {
					opts.Progress = func(pr producers.LinesProgress) {
						fmt.Fprintf(os.Stderr, "read %d  sent %d  acked %d  rejected %d  %.0f lines/s\n", pr.Read, pr.Sent, pr.Acked, pr.Rejected, pr.Rate)
					}
				}
				rep, err := producers.ProduceLines(ctx, p, in, opts)
				for _, le := range rep.Rejections {
					fmt.Fprintf(os.Stderr, "%v\n", &le)
				}
				fmt.Printf("read %d, sent %d, rejected %d in %s\n", rep.Read, rep.Sent, rep.Rejected, rep.Elapsed.Round(time.Millisecond))
				if err != nil {
					return err
				}
				if rep.Rejected > 0 {
					return fmt.Errorf("%d lines rejected", rep.Rejected)
				}
				return nil
			}
		},
	})
}
