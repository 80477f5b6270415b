package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/topology"
)

func init() {
	register(&command{
		name:    "broker",
		summary: "run an embedded Kafka-protocol broker cluster (franz-go kfake) for development",
		usage:   "[--brokers N] [--port P] [--data-dir DIR] [--apply-topics]",
		help: `Starts kfake, franz-go's in-process implementation of the Kafka wire protocol
(consumer groups, transactions, compaction), as its own process, so that
'promoflow run', kcat or any Kafka client can talk to it. For development and
tests only: use Apache Kafka in production (docker-compose.yml).

Records persist in --data-dir (kept across restarts); without a data dir every
record stays in memory.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			n := fs.Int("brokers", 1, "number of brokers in the cluster")
			port := fs.Int("port", 9092, "port of the first broker; broker i listens on port+i (0 = random)")
			dir := fs.String("data-dir", ".data/kafka", "directory for records and offsets (\"\" = in memory)")
			apply := fs.Bool("apply-topics", true, "create the topics of topics.yaml once the cluster is up")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *n < 1 {
					return usagef("--brokers must be at least 1")
				}
				opts := []kfake.Opt{kfake.NumBrokers(*n), kfake.AllowAutoTopicCreation()}
				if *port != 0 {
					ports := make([]int, *n)
					for i := range ports {
						ports[i] = *port + i
					}
					opts = append(opts, kfake.Ports(ports...))
				}
				if *dir != "" {
					if err := os.MkdirAll(*dir, 0o755); err != nil {
						return err
					}
					opts = append(opts, kfake.DataDir(*dir))
				}
				c, err := kfake.NewCluster(opts...)
				if err != nil {
					return fmt.Errorf("starting kfake: %w", err)
				}
				defer c.Close()
				addrs := c.ListenAddrs()
				fmt.Printf("kfake cluster up: %d broker(s) at %s (data dir %q)\n", *n, strings.Join(addrs, ","), *dir)
				if *apply {
					cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
					if err != nil {
						return err
					}
					topo, err := topology.Load()
					if err == nil {
						_, err = applyTopics(ctx, kadm.NewClient(cl), topo, os.Stdout)
					}
					cl.Close()
					if err != nil {
						return err
					}
				}
				fmt.Println("serving until interrupted")
				<-ctx.Done()
				return nil
			}
		},
	})
}
