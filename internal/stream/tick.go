package stream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Ticker is an optional ability of a Handler whose state fires on time
// rather than on a new event: scheduled draws, lock timeouts, reminders.
// The runner calls Tick every Stage.TickInterval with the partitions this
// member owns, so timers move with partition ownership: whoever owns a
// partition fires what is due on it. Tick is never called while a poll is
// being handled, nor during a rebalance; its outputs are produced and
// acknowledged before the next call. Like Handle it must be idempotent (a
// crash between its state change and the acknowledgement repeats it) and
// it returns ErrFenced when the store refused an epoch.
type Ticker interface {
	Tick(ctx context.Context, now time.Time, owned []Owned) (Result, error)
}

// Owned is one partition a member owns, as Tick sees it.
type Owned struct {
	Topic     string
	Partition int32
	// Partitions is the topic's partition count (to map keys to partitions).
	Partitions int32
	// Epoch is the fencing token of the ownership; 0 when the stage has no
	// Fencer.
	Epoch int64
}

// DefaultTickInterval is how often Tick runs when Stage.TickInterval is 0.
const DefaultTickInterval = time.Second

// ticker runs the stage's Ticker until ctx ends.
func (r *Runner) runTicks(ctx context.Context, t Ticker) {
	every := r.stage.TickInterval
	if every <= 0 {
		every = DefaultTickInterval
	}
	counts := map[string]int32{}
	var countsAt time.Time
	adm := kadm.NewClient(r.cl)
	timer := time.NewTicker(every)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		if time.Since(countsAt) > time.Minute {
			// Partitions can be added while running; refresh the counts.
			if c, err := partitionCounts(ctx, adm, r.stage.Reads); err == nil {
				counts, countsAt = c, time.Now()
			} else if ctx.Err() == nil {
				r.log.Warn("reading partition counts for timers", "err", err)
				continue
			}
		}
		if err := r.tickOnce(ctx, t, counts); err != nil && ctx.Err() == nil {
			r.log.Warn("timers failed; retrying at the next tick", "err", err)
		}
	}
}

func partitionCounts(ctx context.Context, adm *kadm.Client, topics []string) (map[string]int32, error) {
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	td, err := adm.ListTopics(tctx, topics...)
	if err != nil {
		return nil, err
	}
	out := map[string]int32{}
	for _, t := range td.Sorted() {
		if t.Err != nil {
			return nil, fmt.Errorf("topic %s: %w", t.Topic, t.Err)
		}
		out[t.Topic] = int32(len(t.Partitions))
	}
	return out, nil
}

// tickOnce calls Tick once under the work lock and produces its outputs.
func (r *Runner) tickOnce(ctx context.Context, t Ticker, counts map[string]int32) (err error) {
	r.workMu.Lock()
	defer r.workMu.Unlock()
	tctx, cancel := drainContext(ctx, r.cfg.DrainTimeout)
	defer cancel()
	var owned []Owned
	r.mu.Lock()
	keys := make([]tp, 0, len(r.owned))
	for k := range r.owned {
		keys = append(keys, k)
	}
	r.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].topic != keys[j].topic {
			return keys[i].topic < keys[j].topic
		}
		return keys[i].part < keys[j].part
	})
	for _, k := range keys {
		o := Owned{Topic: k.topic, Partition: k.part, Partitions: counts[k.topic]}
		if o.Partitions == 0 {
			continue
		}
		if r.stage.Fenced {
			e, err := r.epoch(tctx, k.topic, k.part)
			if err != nil {
				return err
			}
			o.Epoch = e
		}
		owned = append(owned, o)
	}
	if len(owned) == 0 {
		return nil
	}
	res, err := r.safeTick(tctx, t, owned)
	defer func() { r.m.Tick(err == nil) }()
	if err != nil {
		if errors.Is(err, ErrFenced) {
			r.fenced.Add(1)
		}
		return err
	}
	recs := append([]*kgo.Record(nil), res.Out...)
	for _, d := range res.Dead {
		recs = append(recs, r.deadRecord(d))
	}
	if len(recs) == 0 {
		r.observeResult(res)
		return nil
	}
	var (
		wg   sync.WaitGroup
		once sync.Once
		perr error
	)
	for _, rec := range recs {
		wg.Add(1)
		r.cl.Produce(tctx, rec, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				once.Do(func() { perr = fmt.Errorf("producing timer results: %w", err) })
			}
		})
	}
	wg.Wait()
	if perr != nil {
		return perr
	}
	r.out.Add(int64(len(res.Out)))
	r.ticked.Add(1)
	for _, rec := range res.Out {
		r.m.Out(rec.Topic)
	}
	r.observeResult(res)
	if d, ok := t.(TickDoner); ok {
		d.TickDone(tctx, owned, res)
	}
	return nil
}

// TickDoner is an optional ability of a Ticker: TickDone is called after
// the outputs of a Tick were acknowledged (e.g. to mark them published).
type TickDoner interface {
	TickDone(ctx context.Context, owned []Owned, res Result)
}

func (r *Runner) safeTick(ctx context.Context, t Ticker, owned []Owned) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("timer panicked: %v", p)
		}
	}()
	return t.Tick(ctx, time.Now(), owned)
}

// FenceField names the partition in a store's fence record, as
// Batch.FenceField does.
func (o Owned) FenceField() string { return fenceField(o.Topic, o.Partition) }
