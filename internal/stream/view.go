package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/schemas"
)

// DefaultViewRefresh is how often a View re-reads its topic from the start
// unless ViewRefresh says otherwise.
const DefaultViewRefresh = 5 * time.Minute

// viewRefreshTimeout bounds one re-read; one that takes longer is abandoned
// (and logged) and the next starts an interval later.
const viewRefreshTimeout = time.Minute

// View mirrors a compacted topic into the process (goka's View): it reads
// every partition from the start without joining a group, so every instance
// sees every record, and hands each valid event to Apply in offset order.
// Records that do not validate are logged and counted, not applied.
//
// As a safety net against a cache that drifted (a record missed or applied
// wrongly), the view periodically re-reads the topic from the start with a
// second client and applies every record again (ViewRefresh). apply must
// therefore be idempotent and ignore what is older than what it holds, like
// a cache keyed by revision. The re-read runs beside the live reader, so
// updates are never delayed by it; apply is never called concurrently, and
// the re-read only applies records the live reader has already applied, in
// offset order, up to the live reader's position, so each partition ends
// with its latest record applied last.
type View struct {
	topic   string
	apply   func(*schemas.Envelope) error
	opts    []kgo.Opt
	cl      *kgo.Client
	adm     *kadm.Client
	dec     schemas.Decoder
	log     *slog.Logger
	invalid atomic.Int64

	refresh   time.Duration
	refreshes atomic.Int64

	applyMu sync.Mutex // serializes apply between the live reader and a re-read

	mu       sync.Mutex
	ends     map[int32]int64 // end offsets seen at start
	pos      map[int32]int64 // next offset to read
	caughtUp chan struct{}
	once     sync.Once
}

// ViewOpt configures a View.
type ViewOpt func(*View)

// ViewRefresh sets how often the view re-reads its whole topic and applies
// every record again, overriding the default of DefaultViewRefresh (5m).
// 0 (or a negative value) disables the re-read.
func ViewRefresh(d time.Duration) ViewOpt {
	return func(v *View) { v.refresh = max(d, 0) }
}

// NewView connects a reader of topic. apply must be safe to call from the
// view's goroutines (one at a time) while other goroutines read what it
// builds.
func NewView(cfg Config, topic string, apply func(*schemas.Envelope) error, opts ...ViewOpt) (*View, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	kopts := append([]kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ClientID("promoflow-view-" + topic),
	}, cfg.ClientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("creating view client for %s: %w", topic, err)
	}
	v := &View{
		topic: topic, apply: apply, opts: kopts, cl: cl, adm: kadm.NewClient(cl), dec: cfg.Decoder,
		log: cfg.Logger.With("view", topic, "topic", topic), refresh: DefaultViewRefresh, pos: map[int32]int64{}, caughtUp: make(chan struct{}),
	}
	for _, o := range opts {
		o(v)
	}
	return v, nil
}

// Invalid returns how many records failed validation. Records that fail
// again during a re-read are not counted again.
func (v *View) Invalid() int64 { return v.invalid.Load() }

// Refreshes returns how many re-reads of the topic have completed.
func (v *View) Refreshes() int64 { return v.refreshes.Load() }

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
	if v.refresh > 0 {
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			v.runRefreshes(rctx)
		}()
		defer func() { stop(); <-done }()
	}
	for {
		fetches := v.cl.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			v.log.Warn("fetch error", "partition", p, "err", err)
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			v.applyMu.Lock()
			defer v.applyMu.Unlock()
			if err := v.decodeApply(rec); err != nil {
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

func (v *View) decodeApply(rec *kgo.Record) error {
	env, err := v.dec.Decode(rec.Value)
	if err != nil {
		return err
	}
	return v.apply(env)
}

// runRefreshes re-reads the topic every v.refresh, counted from the end of
// the previous re-read, until ctx ends.
func (v *View) runRefreshes(ctx context.Context) {
	t := time.NewTimer(v.refresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		n, err := v.reread(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			v.log.Warn("re-reading the topic failed; retrying at the next refresh", "err", err, "reapplied", n)
		default:
			v.refreshes.Add(1)
			v.log.Debug("topic re-read", "reapplied", n, "took", time.Since(start))
		}
		t.Reset(v.refresh)
	}
}

// reread reads the topic from the start with a client of its own and
// applies every record the live reader has already passed, until it has
// reached the live reader's position on every partition. It returns how
// many records it applied.
func (v *View) reread(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, viewRefreshTimeout)
	defer cancel()
	cl, err := kgo.NewClient(v.opts...)
	if err != nil {
		return 0, fmt.Errorf("creating re-read client for %s: %w", v.topic, err)
	}
	defer cl.Close()
	read := map[int32]int64{} // next offset the re-read will see
	// done reports whether the re-read has reached the live position of every
	// partition the live reader has read from.
	done := func() bool {
		v.mu.Lock()
		defer v.mu.Unlock()
		for p, live := range v.pos {
			if read[p] < live {
				return false
			}
		}
		return true
	}
	n := 0
	for !done() {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return n, fmt.Errorf("re-reading %s: %w", v.topic, ctx.Err())
		}
		if fetches.IsClientClosed() {
			return n, fmt.Errorf("re-reading %s: client closed", v.topic)
		}
		fetches.EachError(func(t string, p int32, err error) {
			v.log.Warn("fetch error while re-reading", "partition", p, "err", err)
		})
		fetches.EachRecord(func(rec *kgo.Record) {
			read[rec.Partition] = rec.Offset + 1
			v.applyMu.Lock()
			defer v.applyMu.Unlock()
			v.mu.Lock()
			live := v.pos[rec.Partition]
			v.mu.Unlock()
			if rec.Offset >= live {
				return // not yet applied live: the live reader will apply it
			}
			n++
			if err := v.decodeApply(rec); err != nil {
				v.log.Debug("record not applied on re-read", "partition", rec.Partition, "offset", rec.Offset, "err", err)
			}
		})
	}
	return n, nil
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
