package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupPrefix starts the name of every consumer group Promoflow runs.
const groupPrefix = "promoflow-"

// timeLagWait bounds how long lag waits for the oldest unprocessed records.
const timeLagWait = 2 * time.Second

// stringsFlag is a repeatable string flag ("--group a --group b"); commas
// also separate values.
type stringsFlag []string

func (s *stringsFlag) String() string { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error {
	*s = append(*s, splitList(v)...)
	return nil
}

func init() {
	register(&command{
		name:    "groups",
		summary: "list consumer groups with their state and members' assignments",
		usage:   "[--config FILE] [--brokers ADDRS]",
		help: `Lists every consumer group of the cluster (not only Promoflow's) with its
state (Stable, Empty, PreparingRebalance, ...), its assignment protocol,
and one line per member: member id, client id, host and the partitions
assigned to it. A group without members (Empty) shows "-".
Groups are sorted by name, members by member id.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usagef("groups takes no arguments")
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				cl, err := kgo.NewClient(cfg.kafkaOpts()...)
				if err != nil {
					return err
				}
				defer cl.Close()
				return cfg.Kafka.wrap(listGroups(ctx, kadm.NewClient(cl), os.Stdout))
			}
		},
	})
	register(&command{
		name:    "lag",
		summary: "show per-partition consumer lag in records and in time, with owners",
		usage:   "[--config FILE] [--brokers ADDRS] [--group GROUP ...]",
		help: `For each consumer group (default: every group named "promoflow-*") and each
partition it consumes, prints the committed offset, the end offset, the
lag in records, the lag in time and the member that owns the partition.

The time lag is the age of the oldest unprocessed record: the record at
the committed offset is read (waiting at most 2s) and its timestamp is
subtracted from now. "-" means no lag; "?" means the record could not be
read in time. A line per group gives the total lag and the largest time
lag. An unknown group is reported as such and is not an error.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			var groups stringsFlag
			fs.Var(&groups, "group", "consumer group to report (repeatable; default: all promoflow-* groups)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usagef("lag takes no arguments (use --group)")
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				return cfg.Kafka.wrap(reportLag(ctx, cfg.Kafka.Brokers, groups, os.Stdout, cfg.kafkaOpts()...))
			}
		},
	})
}

// fmtAssigned formats a member's assignment as "topic[0,1,2] other[3]".
func fmtAssigned(m kadm.DescribedGroupMember) string {
	c, ok := m.Assigned.AsConsumer()
	if !ok || len(c.Topics) == 0 {
		return "-"
	}
	topics := append(c.Topics[:0:0], c.Topics...)
	sort.Slice(topics, func(i, j int) bool { return topics[i].Topic < topics[j].Topic })
	var parts []string
	for _, t := range topics {
		ps := append([]int32(nil), t.Partitions...)
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		nums := make([]string, len(ps))
		for i, p := range ps {
			nums[i] = fmt.Sprint(p)
		}
		parts = append(parts, t.Topic+"["+strings.Join(nums, ",")+"]")
	}
	return strings.Join(parts, " ")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// listGroups prints every consumer group with its members as a table.
func listGroups(ctx context.Context, adm *kadm.Client, w io.Writer) error {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return fmt.Errorf("listing groups: %w", err)
	}
	names := listed.Groups()
	if len(names) == 0 {
		fmt.Fprintln(w, "no consumer groups")
		return nil
	}
	described, err := adm.DescribeGroups(ctx, names...)
	if err != nil && len(described) == 0 {
		return fmt.Errorf("describing groups: %w", err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL\tMEMBER\tCLIENT\tHOST\tASSIGNED")
	sort.Strings(names)
	for _, name := range names {
		d, ok := described[name]
		if !ok || d.Err != nil {
			reason := "not described"
			if ok {
				reason = d.Err.Error()
			}
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t(%s)\n", name, dash(listed[name].State), reason)
			continue
		}
		proto := dash(d.ProtocolType)
		if d.Protocol != "" {
			proto += "/" + d.Protocol
		}
		if len(d.Members) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\n", name, dash(d.State), proto)
			continue
		}
		members := append([]kadm.DescribedGroupMember(nil), d.Members...)
		sort.Slice(members, func(i, j int) bool { return members[i].MemberID < members[j].MemberID })
		for _, m := range members {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, dash(d.State), proto,
				m.MemberID, dash(m.ClientID), dash(m.ClientHost), fmtAssigned(m))
		}
	}
	return tw.Flush()
}

// partKey names one partition.
type partKey struct {
	topic string
	part  int32
}

// reportLag prints, per group and partition, the committed and end offsets,
// the lag in records and in time, and the owning member. opts are extra
// client options (TLS, SASL).
func reportLag(ctx context.Context, brokers []string, groups []string, w io.Writer, opts ...kgo.Opt) error {
	kopts := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, opts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	if len(groups) == 0 {
		listed, err := adm.ListGroups(ctx)
		if err != nil {
			return fmt.Errorf("listing groups: %w", err)
		}
		for _, g := range listed.Groups() {
			if strings.HasPrefix(g, groupPrefix) {
				groups = append(groups, g)
			}
		}
		if len(groups) == 0 {
			fmt.Fprintf(w, "no consumer groups named %s* found\n", groupPrefix)
			return nil
		}
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return fmt.Errorf("computing lag: %w", err)
	}
	names := append([]string(nil), groups...)
	sort.Strings(names)
	first := true
	for i, name := range names {
		if i > 0 && names[i-1] == name {
			continue
		}
		if !first {
			fmt.Fprintln(w)
		}
		first = false
		l, ok := lags[name]
		switch {
		case !ok, errors.Is(l.Error(), kerr.GroupIDNotFound),
			l.Error() == nil && (l.State == "Dead" || (len(l.Members) == 0 && l.Lag.IsEmpty())):
			fmt.Fprintf(w, "group %s: not found (no members and no committed offsets)\n", name)
			continue
		case l.Error() != nil:
			fmt.Fprintf(w, "group %s: cannot compute lag: %v\n", name, l.Error())
			continue
		}
		printGroupLag(ctx, kopts, w, l)
	}
	return nil
}

// printGroupLag prints one group's table and total line.
func printGroupLag(ctx context.Context, kopts []kgo.Opt, w io.Writer, l kadm.DescribedGroupLag) {
	rows := l.Lag.Sorted()
	// The oldest unprocessed record of each lagging partition is the first
	// one at or after the committed offset (or the start, if none).
	want := map[partKey]int64{}
	for _, r := range rows {
		if r.Err == nil && r.Lag > 0 {
			want[partKey{r.Topic, r.Partition}] = fromOffset(r)
		}
	}
	ts := oldestTimestamps(ctx, kopts, want)
	now := time.Now()

	fmt.Fprintf(w, "group %s (%s, %d members)\n", l.Group, dash(l.State), len(l.Members))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tTIME-LAG\tOWNER")
	var total int64
	var maxAge time.Duration
	unknownAge := false
	for _, r := range rows {
		committed := "-"
		if r.Commit.At >= 0 {
			committed = fmt.Sprint(r.Commit.At)
		}
		end, lag, age := "?", "?", "?"
		if r.End.Err == nil {
			end = fmt.Sprint(r.End.Offset)
		}
		switch {
		case r.Err != nil:
			age = "error: " + r.Err.Error()
		case r.Lag == 0:
			lag, age = "0", "-"
		default:
			lag = fmt.Sprint(r.Lag)
			total += r.Lag
			if t, ok := ts[partKey{r.Topic, r.Partition}]; ok {
				d := now.Sub(t)
				if d < 0 {
					d = 0
				}
				age = fmtAge(d)
				maxAge = max(maxAge, d)
			} else {
				unknownAge = true
			}
		}
		owner := "-"
		if r.Member != nil {
			owner = r.Member.ClientID + " (" + r.Member.MemberID + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", r.Topic, r.Partition, committed, end, lag, age, owner)
	}
	_ = tw.Flush()
	maxStr := "-"
	if total > 0 {
		maxStr = fmtAge(maxAge)
		if unknownAge {
			maxStr += " (some unknown)"
		}
	}
	fmt.Fprintf(w, "total %s: lag %d records, max time lag %s\n", l.Group, total, maxStr)
}

// fromOffset is the offset of the oldest unprocessed record: the commit, or
// the log start when the group has not committed.
func fromOffset(r kadm.GroupMemberLag) int64 {
	if r.Commit.At >= 0 {
		return r.Commit.At
	}
	if r.Start.Err == nil {
		return r.Start.Offset
	}
	return 0
}

// fmtAge formats a time lag readably at millisecond resolution.
func fmtAge(d time.Duration) string {
	if d < time.Millisecond {
		return "<1ms"
	}
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}

// oldestTimestamps reads the first record at or after each wanted offset
// with a short-lived direct consumer and returns their timestamps;
// partitions not read within timeLagWait are missing.
func oldestTimestamps(ctx context.Context, kopts []kgo.Opt, want map[partKey]int64) map[partKey]time.Time {
	out := map[partKey]time.Time{}
	if len(want) == 0 {
		return out
	}
	parts := map[string]map[int32]kgo.Offset{}
	for k, off := range want {
		if parts[k.topic] == nil {
			parts[k.topic] = map[int32]kgo.Offset{}
		}
		parts[k.topic][k.part] = kgo.NewOffset().At(off)
	}
	cl, err := kgo.NewClient(append(slices.Clip(kopts),
		kgo.ConsumePartitions(parts),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return out
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, timeLagWait)
	defer cancel()
	for len(out) < len(want) && pctx.Err() == nil {
		fetches := cl.PollFetches(pctx)
		if fetches.IsClientClosed() {
			break
		}
		fetches.EachRecord(func(r *kgo.Record) {
			k := partKey{r.Topic, r.Partition}
			if _, done := out[k]; done {
				return
			}
			if off, ok := want[k]; ok && r.Offset >= off {
				out[k] = r.Timestamp
			}
		})
	}
	return out
}
