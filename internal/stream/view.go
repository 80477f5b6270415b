package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/schemas"
)

// View mirrors a compacted topic into the process (goka's View): it reads
// every partition from the start without joining a group, so every instance
// sees every record, and hands each valid event to Apply in offset order.
// Records that do not validate are logged and counted, not applied.
type View struct {
	topic   string
	apply   func(*schemas.Envelope) error
	cl      *kgo.Client
	adm     *kadm.Client
	dec     schemas.Decoder
	log     *slog.Logger
	invalid atomic.Int64

	mu       sync.Mutex
	ends     map[int32]int64 // end offsets seen at start
	pos      map[int32]int64 // next offset to read
	caughtUp chan struct{}
	once     sync.Once
}

// NewView connects a reader of topic. apply must be safe to call from the
// view's goroutine while other goroutines read what it builds.
func NewView(cfg Config, topic string, apply func(*schemas.Envelope) error) (*View, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ClientID("promoflow-view-" + topic),
	}, cfg.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating view client for %s: %w", topic, err)
	}
	return &View{
		topic: topic, apply: apply, cl: cl, adm: kadm.NewClient(cl), dec: cfg.Decoder,
		log: cfg.Logger.With("view", topic), pos: map[int32]int64{}, caughtUp: make(chan struct{}),
	}, nil
}

// Invalid returns how many records failed validation.
func (v *View) Invalid() int64 { return v.invalid.Load() }

// WaitCaughtUp blocks until the view has applied every record that existed
// when Run started, or ctx ends.
func (v *View) WaitCaughtUp(ctx context.Context) error {
	select {
	case <-v.caughtUp:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for view %s to catch up: %w", v.topic, ctx.Err())
	}
}

// Run reads until ctx ends.
func (v *View) Run(ctx context.Context) error {
	defer v.cl.Close()
	ends, err := v.adm.ListEndOffsets(ctx, v.topic)
	if err != nil {
		return fmt.Errorf("listing end offsets of %s: %w", v.topic, err)
	}
	v.mu.Lock()
	v.ends = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil && o.Offset > 0 {
			v.ends[o.Partition] = o.Offset
		}
	})
	v.mu.Unlock()
	v.checkCaughtUp()
	for {
		fetches := v.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			v.log.Warn("fetch error", "partition", p, "err", err)
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			env, err := v.dec.Decode(rec.Value)
			if err == nil {
				err = v.apply(env)
			}
			if err != nil {
				v.invalid.Add(1)
				v.log.Warn("record not applied", "partition", rec.Partition, "offset", rec.Offset, "err", err)
			}
			v.mu.Lock()
			v.pos[rec.Partition] = rec.Offset + 1
			v.mu.Unlock()
		})
		v.checkCaughtUp()
	}
}

func (v *View) checkCaughtUp() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ends == nil {
		return
	}
	for p, end := range v.ends {
		if v.pos[p] < end {
			return
		}
	}
	v.once.Do(func() { close(v.caughtUp) })
}
