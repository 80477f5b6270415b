package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/topology"
)

func init() {
	register(&command{
		name:    "topics",
		summary: "create/update topics from topics.yaml, list them, or print the stage graph",
		usage:   "apply|list|graph [--config FILE] [--brokers ADDRS]   (flags may come before or after the action)",
		help: `  apply  creates missing topics, adds partitions and sets configs so the
         cluster matches topics.yaml; never deletes or shrinks. Idempotent: a
         second run prints "no changes". The replication factor is capped at
         the number of brokers (and says so).
  list   prints the topics of topics.yaml with their state in the cluster.
  graph  prints which stage reads and writes which topic (no cluster needed).`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usagef("want one of apply, list, graph")
				}
				topo, err := topology.Load()
				if err != nil {
					return err
				}
				if args[0] == "graph" {
					fmt.Print(topo.Graph(stageDecls()...))
					return nil
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				if args[0] != "apply" && args[0] != "list" {
					return usagef("unknown topics action %q", args[0])
				}
				cl, err := kgo.NewClient(cfg.kafkaOpts()...)
				if err != nil {
					return err
				}
				defer cl.Close()
				adm := kadm.NewClient(cl)
				if args[0] == "apply" {
					_, err = applyTopics(ctx, adm, topo, cmdStdout)
				} else {
					err = listTopics(ctx, adm, topo, cmdStdout)
				}
				return cfg.Kafka.wrap(err)
			}
		},
	})
}

// applyTopics makes the cluster match the file and reports every change.
// It returns the number of changes.
func applyTopics(ctx context.Context, adm *kadm.Client, topo *topology.File, w io.Writer) (int, error) {
	brokers, err := adm.ListBrokers(ctx)
	if err != nil {
		return 0, fmt.Errorf("listing brokers: %w", err)
	}
	nb := int16(len(brokers))
	names := make([]string, len(topo.Topics))
	for i, t := range topo.Topics {
		names[i] = t.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return 0, fmt.Errorf("listing topics: %w", err)
	}
	changes := 0
	for _, t := range topo.Topics {
		rf := t.ReplicationFactor
		if rf > nb {
			fmt.Fprintf(w, "note     %s: replication_factor %d capped at %d (brokers in the cluster)\n", t.Name, rf, nb)
			rf = nb
		}
		configs := t.KafkaConfigs()
		if v, ok := configs["min.insync.replicas"]; ok {
			// With every replica required, one broker down stops writes:
			// keep min.insync.replicas below the replication factor.
			if n, err := strconv.Atoi(v); err == nil && n >= int(rf) {
				if rf < 2 {
					delete(configs, "min.insync.replicas")
				} else {
					configs["min.insync.replicas"] = strconv.Itoa(int(rf) - 1)
				}
			}
		}
		d, exists := details[t.Name]
		if !exists || d.Err != nil {
			cfgs := map[string]*string{}
			for k, v := range configs {
				cfgs[k] = kadm.StringPtr(v)
			}
			resp, err := adm.CreateTopic(ctx, t.Partitions, rf, cfgs, t.Name)
			err = firstErr(err, resp.Err)
			switch {
			case err == nil:
				fmt.Fprintf(w, "created  %s (partitions %d, replication %d, %s)\n", t.Name, t.Partitions, rf, fmtConfigs(configs))
				changes++
				continue
			case errors.Is(err, kerr.TopicAlreadyExists):
				// Created meanwhile (another apply, or stale metadata):
				// check it like any existing topic.
				fresh, lerr := adm.ListTopics(ctx, t.Name)
				if lerr != nil {
					return changes, fmt.Errorf("listing topic %s: %w", t.Name, lerr)
				}
				d = fresh[t.Name]
			default:
				return changes, fmt.Errorf("creating topic %s: %w", t.Name, err)
			}
		}
		if have := int32(len(d.Partitions)); have > 0 && have < t.Partitions {
			resp, err := adm.UpdatePartitions(ctx, int(t.Partitions), t.Name)
			if err != nil {
				return changes, fmt.Errorf("adding partitions to %s: %w", t.Name, err)
			}
			if r, ok := resp[t.Name]; ok && r.Err != nil {
				return changes, fmt.Errorf("adding partitions to %s: %w", t.Name, r.Err)
			}
			fmt.Fprintf(w, "altered  %s: partitions %d -> %d\n", t.Name, have, t.Partitions)
			changes++
		} else if have > t.Partitions {
			fmt.Fprintf(w, "note     %s has %d partitions, more than the %d declared; Kafka cannot shrink a topic, left as is\n", t.Name, have, t.Partitions)
		}
		rc, err := adm.DescribeTopicConfigs(ctx, t.Name)
		if err != nil {
			return changes, fmt.Errorf("describing configs of %s: %w", t.Name, err)
		}
		current := map[string]string{}
		if len(rc) == 1 {
			for _, c := range rc[0].Configs {
				if c.Value != nil {
					current[c.Key] = *c.Value
				}
			}
		}
		var alter []kadm.AlterConfig
		var diffs []string
		for k, v := range configs {
			if current[k] != v {
				alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(v)})
				diffs = append(diffs, fmt.Sprintf("%s %q -> %q", k, current[k], v))
			}
		}
		if len(alter) > 0 {
			sort.Strings(diffs)
			resp, err := adm.AlterTopicConfigs(ctx, alter, t.Name)
			if err != nil {
				return changes, fmt.Errorf("altering configs of %s: %w", t.Name, err)
			}
			for _, r := range resp {
				if r.Err != nil {
					return changes, fmt.Errorf("altering configs of %s: %w", t.Name, r.Err)
				}
			}
			fmt.Fprintf(w, "altered  %s: %s\n", t.Name, strings.Join(diffs, ", "))
			changes++
		}
	}
	if changes == 0 {
		fmt.Fprintln(w, "no changes: the cluster matches topics.yaml")
	}
	return changes, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func fmtConfigs(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, " ")
}

func listTopics(ctx context.Context, adm *kadm.Client, topo *topology.File, w io.Writer) error {
	names := make([]string, len(topo.Topics))
	for i, t := range topo.Topics {
		names[i] = t.Name
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("listing topics: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err != nil {
		return fmt.Errorf("listing end offsets: %w", err)
	}
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err != nil {
		return fmt.Errorf("listing start offsets: %w", err)
	}
	fmt.Fprintf(w, "%-16s %-10s %-8s %-9s %-10s %s\n", "TOPIC", "PARTITIONS", "POLICY", "RECORDS", "KEY", "SCHEMAS")
	for _, t := range topo.Topics {
		parts := "missing"
		if d, ok := details[t.Name]; ok && d.Err == nil {
			parts = fmt.Sprint(len(d.Partitions))
		}
		var n int64
		// Records held = end - start (retention and compaction delete from the start).
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == t.Name && o.Err == nil {
				n += o.Offset
			}
		})
		starts.Each(func(o kadm.ListedOffset) {
			if o.Topic == t.Name && o.Err == nil {
				n -= o.Offset
			}
		})
		fmt.Fprintf(w, "%-16s %-10s %-8s %-9d %-10s %s\n", t.Name, parts, t.CleanupPolicy, n, t.Key, strings.Join(t.Schemas, ","))
	}
	return nil
}
