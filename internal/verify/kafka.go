package verify

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/schemas"
)

// span is a partition's planned offsets [from, to).
type span struct{ from, to int64 }

// tp names one partition.
type tp struct {
	topic string
	part  int32
}

// plan is the offsets to read of every partition of some topics.
type plan map[tp]span

// records returns an upper bound of the records the plan reads.
func (p plan) records() int64 {
	var n int64
	for _, sp := range p {
		n += max(0, sp.to-sp.from)
	}
	return n
}

// source is where checks 1 and 4 read records from: Kafka, or a fake in
// tests.
type source interface {
	// planTopics plans the offsets of every partition of topics whose
	// records lie in [since, until) (zero bounds are open); missing lists
	// the topics that do not exist.
	planTopics(ctx context.Context, topics []string, since, until time.Time) (p plan, missing []string, err error)
	// scan calls fn with every record of p, in offset order within each
	// partition, skipping control records; it stops at fn's first error.
	scan(ctx context.Context, p plan, fn func(*kgo.Record) error) error
	// committed returns group's committed offsets of topic by partition.
	committed(ctx context.Context, group, topic string) (map[int32]int64, error)
}

// kafkaReader plans and reads offset ranges.
type kafkaReader struct {
	base []kgo.Opt
	cl   *kgo.Client
	adm  *kadm.Client
	// idle is how long a scan waits without any record before it checks
	// whether the records it still expects can come at all.
	idle time.Duration
	// maxIdle idle waits in a row end a partition whose remaining offsets
	// never come (records of aborted transactions, invisible to committed
	// reads, and the processors alike).
	maxIdle int
	// prog hears when a scan gives up on partitions.
	prog *progress
}

func newKafkaReader(brokers []string, opts []kgo.Opt) (*kafkaReader, error) {
	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.ClientID("promoflow-verify")}, opts...)
	cl, err := kgo.NewClient(base...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client: %w", err)
	}
	return &kafkaReader{base: base, cl: cl, adm: kadm.NewClient(cl), idle: time.Second, maxIdle: 10}, nil
}

func (k *kafkaReader) close() { k.cl.Close() }

// planTopics plans every partition of topics from the first record at or
// after since (the log start when since is zero) to the first record at or
// after until (the last stable offset when until is zero, or when that
// comes first). A topic that does not exist plans nothing and is returned
// in missing.
func (k *kafkaReader) planTopics(ctx context.Context, topics []string, since, until time.Time) (p plan, missing []string, err error) {
	p = plan{}
	for _, topic := range topics {
		ends, err := k.adm.ListCommittedOffsets(ctx, topic)
		if err == nil {
			err = ends.Error()
		}
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			missing = append(missing, topic)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("listing end offsets of %s: %w", topic, err)
		}
		starts, err := k.offsetsAt(ctx, topic, since)
		if err != nil {
			return nil, nil, fmt.Errorf("listing start offsets of %s: %w", topic, err)
		}
		var stops kadm.ListedOffsets
		if !until.IsZero() {
			if stops, err = k.offsetsAt(ctx, topic, until); err != nil {
				return nil, nil, fmt.Errorf("listing offsets of %s at %s: %w", topic, until.Format(time.RFC3339), err)
			}
		}
		ends.Each(func(e kadm.ListedOffset) {
			sp := span{0, e.Offset}
			if s, ok := starts.Lookup(topic, e.Partition); ok && s.Offset >= 0 {
				sp.from = s.Offset
			} else if !since.IsZero() {
				sp.from = sp.to // nothing at or after since
			}
			if s, ok := stops.Lookup(topic, e.Partition); ok && s.Offset >= 0 {
				sp.to = min(sp.to, s.Offset)
			}
			p[tp{topic, e.Partition}] = sp
		})
	}
	return p, missing, nil
}

// offsetsAt lists the first offsets at or after t, or the start offsets
// when t is zero.
func (k *kafkaReader) offsetsAt(ctx context.Context, topic string, t time.Time) (kadm.ListedOffsets, error) {
	var l kadm.ListedOffsets
	var err error
	if t.IsZero() {
		l, err = k.adm.ListStartOffsets(ctx, topic)
	} else {
		l, err = k.adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), topic)
	}
	if err == nil {
		err = l.Error()
	}
	return l, err
}

// scan implements recordSource over Kafka, reading committed records as
// the processors do.
func (k *kafkaReader) scan(ctx context.Context, p plan, fn func(*kgo.Record) error) error {
	left := map[tp]span{}
	at := map[string]map[int32]kgo.Offset{}
	for key, sp := range p {
		if sp.from >= sp.to {
			continue
		}
		left[key] = sp
		if at[key.topic] == nil {
			at[key.topic] = map[int32]kgo.Offset{}
		}
		at[key.topic][key.part] = kgo.NewOffset().At(sp.from)
	}
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), k.base...),
		kgo.ConsumePartitions(at),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Transaction markers take offsets too: keeping them lets the scan
		// see that it reached the end of a partition.
		kgo.KeepControlRecords(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("creating Kafka consumer: %w", err)
	}
	defer cl.Close()
	done := func(key tp) {
		delete(left, key)
		cl.PauseFetchPartitions(map[string][]int32{key.topic: {key.part}})
	}
	idle := 0
	for len(left) > 0 {
		pctx, cancel := context.WithTimeout(ctx, k.idle)
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			var loss *kgo.ErrDataLoss
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.As(err, &loss) {
				ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		progressed := false
		fetches.EachRecord(func(r *kgo.Record) {
			key := tp{r.Topic, r.Partition}
			sp, ok := left[key]
			if ferr != nil || !ok || r.Offset < sp.from {
				return
			}
			progressed = true
			if r.Offset >= sp.to {
				done(key)
				return
			}
			if r.Offset == sp.to-1 {
				done(key)
			}
			if r.Attrs.IsControl() {
				return
			}
			ferr = fn(r)
		})
		if ferr != nil {
			return ferr
		}
		if progressed {
			idle = 0
			continue
		}
		idle++
		// Records expected may have been deleted by retention since the
		// plan was made, or be invisible (aborted transactions).
		topics := map[string]bool{}
		for key := range left {
			topics[key.topic] = true
		}
		for topic := range topics {
			starts, err := k.adm.ListStartOffsets(ctx, topic)
			if err != nil {
				return fmt.Errorf("listing start offsets of %s: %w", topic, err)
			}
			for key, sp := range left {
				if s, ok := starts.Lookup(key.topic, key.part); ok && key.topic == topic && s.Err == nil && s.Offset >= sp.to {
					done(key)
				}
			}
		}
		if idle >= k.maxIdle && len(left) > 0 {
			var names []string
			for key, sp := range left {
				names = append(names, fmt.Sprintf("%s/%d (below offset %d)", key.topic, key.part, sp.to))
				done(key)
			}
			sort.Strings(names)
			k.prog.line("no more committed records came for %s in %s: their last offsets hold none (aborted transactions)",
				strings.Join(names, ", "), time.Duration(k.maxIdle)*k.idle)
		}
	}
	return nil
}

// committed returns group's committed offsets of topic by partition; a
// group that never committed has none.
func (k *kafkaReader) committed(ctx context.Context, group, topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	if group == "" {
		return out, nil
	}
	resp, err := k.adm.FetchOffsets(ctx, group)
	if err == nil {
		err = resp.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetching the offsets of group %s: %w", group, err)
	}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// sinkLag reports, as information on check 2, the records the sinks have
// not written yet: differences between the stores may be in flight.
func sinkLag(ctx context.Context, k *kafkaReader, t Topics, c *Check) {
	if len(t.SinkGroups) == 0 {
		return
	}
	lags, err := k.adm.Lag(ctx, t.SinkGroups...)
	if err != nil {
		c.info("the sinks' lag could not be read: %v", err)
		return
	}
	var parts []string
	for _, g := range t.SinkGroups {
		l, ok := lags[g]
		if !ok || l.Error() != nil {
			continue
		}
		if n := l.Lag.Total(); n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", g, n))
		}
	}
	if len(parts) > 0 {
		sort.Strings(parts)
		c.info("the sinks have records left to write (%s): differences may be in flight; verify again when they caught up", strings.Join(parts, ", "))
	}
}

// definitions are the latest revision of every batch and activity on the
// admin topics, as the processors use them.
type definitions struct {
	batches    map[string]*schemas.BatchDefined
	activities map[string]*schemas.ActivityDefined
	// refused counts definitions the processors would refuse (never used).
	refused int64
}

// readDefinitions reads both compacted admin topics whole.
func readDefinitions(ctx context.Context, src source, cfg Config) (*definitions, error) {
	d := &definitions{batches: map[string]*schemas.BatchDefined{}, activities: map[string]*schemas.ActivityDefined{}}
	p, _, err := src.planTopics(ctx, []string{cfg.Topics.CouponAdmin, cfg.Topics.LotteryAdmin}, time.Time{}, time.Time{})
	if err != nil {
		return nil, err
	}
	dec := schemas.Decoder{MaxSkew: -1}
	err = src.scan(ctx, p, func(r *kgo.Record) error {
		env, err := dec.Decode(r.Value)
		if err != nil {
			d.refused++
			return nil
		}
		switch r.Topic {
		case cfg.Topics.CouponAdmin:
			def, err := cfg.DecodeBatch(env)
			if err != nil {
				d.refused++
				return nil
			}
			if cur, ok := d.batches[def.BatchID]; !ok || def.Revision > cur.Revision {
				d.batches[def.BatchID] = def
			}
		case cfg.Topics.LotteryAdmin:
			def, err := cfg.DecodeActivity(env)
			if err != nil {
				d.refused++
				return nil
			}
			if cur, ok := d.activities[def.ActivityID]; !ok || def.Revision > cur.Revision {
				d.activities[def.ActivityID] = def
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading definitions: %w", err)
	}
	return d, nil
}
