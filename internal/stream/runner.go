package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/schemas"
)

// HeaderDLQPrefix starts every header the runtime adds to a dead letter;
// a replay strips the headers with this prefix.
const HeaderDLQPrefix = "promoflow.dlq."

// Header names on dead-letter records.
const (
	HeaderDLQReason          = "promoflow.dlq.reason"
	HeaderDLQDetail          = "promoflow.dlq.detail"
	HeaderDLQStage           = "promoflow.dlq.stage"
	HeaderDLQSourceTopic     = "promoflow.dlq.source.topic"
	HeaderDLQSourcePartition = "promoflow.dlq.source.partition"
	HeaderDLQSourceOffset    = "promoflow.dlq.source.offset"
	HeaderDLQAt              = "promoflow.dlq.at"
	HeaderDLQTruncated       = "promoflow.dlq.truncated"
	// HeaderDLQKeyTruncated holds the original key size when the key was cut.
	HeaderDLQKeyTruncated = "promoflow.dlq.key_truncated"
)

// maxDeadValue bounds a dead letter's value so that a record near the
// broker's size limit can still be dead-lettered with headers added.
const maxDeadValue = 256 << 10

// maxDeadKey bounds a dead letter's key likewise.
const maxDeadKey = 1024

// Stats counts what a Runner did. Read it with Runner.Stats.
type Stats struct {
	In, Out, Dead, Committed int64
	// Skipped counts invalid records a SkipInvalid stage passed over.
	Skipped               int64
	FailedBatches, Fenced int64
	// Ticks counts Ticks whose outputs were acknowledged.
	Ticks        int64
	DeadByReason map[string]int64
	// Time spent, summed over polls: waiting in poll, decoding and
	// handling, waiting for outputs to be acknowledged, and committing.
	PollTime, HandleTime, ProduceTime, CommitTime time.Duration
	Polls                                         int64
}

type tp struct {
	topic string
	part  int32
}

type partState struct {
	epoch  int64 // 0 = not yet acquired
	fenced bool
}

// Runner runs one Stage as a member of its consumer group.
type Runner struct {
	cfg   Config
	stage Stage
	cl    *kgo.Client
	log   *slog.Logger

	mu    sync.Mutex
	owned map[tp]*partState

	m *metrics.Stage
	// sinkStore names the store of a SinkStage's writer ("" otherwise),
	// whose writes the metrics observe.
	sinkStore string
	// joined is set once the group has completed an assignment for this
	// member (even an empty one) and cleared when the member loses its
	// partitions; running while Run consumes. Both feed Ready.
	joined, running atomic.Bool
	deadLog         deadLogLimiter

	in, out, dead, committed, failed, fenced, skipped atomic.Int64
	pollNs, handleNs, produceNs, commitNs, polls      atomic.Int64
	deadMu                                            sync.Mutex
	deadBy                                            map[string]int64

	assigned  chan struct{} // closed on the first assignment
	firstOnce sync.Once
	closeOnce sync.Once
	// workMu serialises handling a poll, a Tick and a revocation, so that a
	// timer never fires on a partition that is moving or being handled.
	workMu sync.Mutex
	ticked atomic.Int64
}

// New checks the stage against the topology and connects a group member.
func New(cfg Config, stage Stage) (*Runner, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if len(stage.Reads) == 0 {
		return nil, fmt.Errorf("stage %s: %w", stage.Name, ErrNoTopics)
	}
	if stage.Handler == nil {
		return nil, fmt.Errorf("stage %s: no handler", stage.Name)
	}
	if stage.Fenced && cfg.Fencer == nil {
		return nil, fmt.Errorf("stage %s is fenced but no Fencer is configured", stage.Name)
	}
	node := stage.Node()
	node.Writes = append(append([]string(nil), node.Writes...), cfg.DLQTopic)
	if err := cfg.Topology.Check(node); err != nil {
		return nil, fmt.Errorf("checking stage %s against topics.yaml: %w", stage.Name, err)
	}
	r := &Runner{
		cfg:      cfg,
		stage:    stage,
		log:      cfg.Logger.With("stage", stage.Name, "group", stage.Group),
		owned:    map[tp]*partState{},
		deadBy:   map[string]int64{},
		assigned: make(chan struct{}),
		m:        cfg.Metrics.Stage(stage.Name, append(append(append([]string(nil), stage.Reads...), stage.Writes...), cfg.DLQTopic)...),
	}
	if sh, ok := stage.Handler.(*sinkHandler); ok {
		r.sinkStore = sh.store
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(stage.Group),
		kgo.ConsumeTopics(stage.Reads...),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.BlockRebalanceOnPoll(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
		kgo.ProducerLinger(0),
		kgo.ClientID("promoflow-" + stage.Name),
	}
	if cfg.CommitInterval > 0 {
		opts = append(opts, kgo.AutoCommitMarks(), kgo.AutoCommitInterval(cfg.CommitInterval))
	} else {
		opts = append(opts, kgo.DisableAutoCommit())
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout), kgo.HeartbeatInterval(cfg.SessionTimeout/10))
	}
	opts = append(opts, cfg.ClientOpts...)
	opts = append(opts, stage.ClientOpts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating Kafka client for stage %s: %w", stage.Name, err)
	}
	r.cl = cl
	return r, nil
}

func (r *Runner) maxPoll() int {
	if r.stage.MaxPollRecords > 0 {
		return r.stage.MaxPollRecords
	}
	return r.cfg.MaxPollRecords
}

// Stage returns the stage the runner runs.
func (r *Runner) Stage() Stage { return r.stage }

// Assigned is closed once the member has been assigned partitions for the
// first time (readiness).
func (r *Runner) Assigned() <-chan struct{} { return r.assigned }

// Stats returns a snapshot of the counters.
func (r *Runner) Stats() Stats {
	r.deadMu.Lock()
	by := make(map[string]int64, len(r.deadBy))
	for k, v := range r.deadBy {
		by[k] = v
	}
	r.deadMu.Unlock()
	return Stats{
		In: r.in.Load(), Out: r.out.Load(), Dead: r.dead.Load(), Committed: r.committed.Load(),
		Skipped: r.skipped.Load(), FailedBatches: r.failed.Load(), Fenced: r.fenced.Load(), Ticks: r.ticked.Load(), DeadByReason: by,
		PollTime: time.Duration(r.pollNs.Load()), HandleTime: time.Duration(r.handleNs.Load()),
		ProduceTime: time.Duration(r.produceNs.Load()), CommitTime: time.Duration(r.commitNs.Load()), Polls: r.polls.Load(),
	}
}

// Owned returns the partitions this member currently owns with their epochs.
func (r *Runner) Owned() map[string]map[int32]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[int32]int64{}
	for k, s := range r.owned {
		if out[k.topic] == nil {
			out[k.topic] = map[int32]int64{}
		}
		out[k.topic][k.part] = s.epoch
	}
	return out
}

func (r *Runner) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	for topic, parts := range assigned {
		for _, p := range parts {
			st := &partState{}
			if r.stage.Fenced {
				// A fresh epoch per ownership period; if Redis is down now the
				// first batch acquires it instead.
				actx, cancel := context.WithTimeout(ctx, 2*time.Second)
				if e, err := r.cfg.Fencer.Acquire(actx, r.stage.Group, topic, p); err == nil {
					st.epoch = e
				} else {
					r.log.Warn("fencing epoch not acquired at assignment; will retry before the first batch", "topic", topic, "partition", p, "err", err)
				}
				cancel()
			}
			r.mu.Lock()
			r.owned[tp{topic, p}] = st
			r.mu.Unlock()
		}
		// A partition paused after being fenced is ours again. (The callback
		// may run before New has stored r.cl, so use the client passed in.)
		cl.ResumeFetchPartitions(map[string][]int32{topic: parts})
	}
	r.joined.Store(true)
	r.m.Rebalance("assigned", assigned, r.ownedCount())
	r.log.Info("partitions assigned", "partitions", fmtParts(assigned))
	r.firstOnce.Do(func() { close(r.assigned) })
}

func (r *Runner) onRevoked(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
	r.workMu.Lock() // wait for a Tick in flight
	defer r.workMu.Unlock()
	// Without CommitInterval everything handled was committed before the
	// rebalance was allowed; with it, commit what is marked now, before the
	// partitions move.
	if r.cfg.CommitInterval > 0 {
		if err := cl.CommitMarkedOffsets(ctx); err != nil {
			r.log.Warn("committing marked offsets on revoke", "err", err)
		}
	}
	r.forget(revoked)
	if len(revoked) > 0 {
		r.m.Rebalance("revoked", revoked, r.ownedCount())
		r.log.Info("partitions revoked", "partitions", fmtParts(revoked))
	}
}

func (r *Runner) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	r.workMu.Lock()
	defer r.workMu.Unlock()
	r.forget(lost)
	// Until the group assigns partitions again the member takes no part.
	r.joined.Store(false)
	if len(lost) > 0 {
		r.m.Rebalance("lost", lost, r.ownedCount())
		r.log.Warn("partitions lost (session expired or fenced by the group)", "partitions", fmtParts(lost))
	}
}

func (r *Runner) forget(parts map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(r.owned, tp{topic, p})
		}
	}
}

// Run consumes until ctx is cancelled, then finishes the batch in flight,
// commits it and leaves the group. It returns nil on a clean shutdown.
func (r *Runner) Run(ctx context.Context) error {
	defer r.Close()
	r.running.Store(true)
	defer r.running.Store(false)
	if t, ok := r.stage.Handler.(Ticker); ok {
		tctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); r.runTicks(tctx, t) }()
		defer func() { stop(); <-done }()
	}
	backoff := time.Duration(0)
	for {
		if ctx.Err() != nil {
			return nil
		}
		t0 := time.Now()
		fetches := r.cl.PollRecords(ctx, r.maxPoll())
		r.pollNs.Add(int64(time.Since(t0)))
		r.polls.Add(1)
		if fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				r.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		// The batch in flight finishes even if ctx is cancelled meanwhile
		// (drain), bounded by DrainTimeout.
		pctx, cancel := drainContext(ctx, r.cfg.DrainTimeout)
		r.workMu.Lock()
		ok := r.processPoll(pctx, fetches)
		r.workMu.Unlock()
		cancel()
		r.cl.AllowRebalance()
		if ok {
			backoff = 0
			continue
		}
		backoff = nextBackoff(backoff, r.cfg.MinBackoff, r.cfg.MaxBackoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

func drainContext(parent context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		t := time.AfterFunc(timeout, cancel)
		context.AfterFunc(ctx, func() { t.Stop() })
	})
	return ctx, func() { stop(); cancel() }
}

func nextBackoff(cur, lo, hi time.Duration) time.Duration {
	if cur == 0 {
		return lo
	}
	cur *= 2
	if cur > hi {
		return hi
	}
	return cur
}

// partWork is one partition's share of a poll.
type partWork struct {
	topic   string
	part    int32
	records []*kgo.Record
	batch   *Batch
	dead    []DeadLetter // refused while decoding
	result  Result
	err     error
	// cause labels a failure in the metrics: epoch, handler, produce,
	// commit or fenced.
	cause string
	// hw is the partition's high watermark as of the fetch (lag).
	hw int64
	// skipped counts the invalid records a SkipInvalid stage passed over.
	skipped int
}

// processPoll handles every partition of a poll concurrently, produces the
// results, and commits the partitions whose results were acknowledged. It
// rewinds the rest and reports false if any failed.
func (r *Runner) processPoll(ctx context.Context, fetches kgo.Fetches) bool {
	var work []*partWork
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			work = append(work, &partWork{topic: p.Topic, part: p.Partition, records: p.Records, hw: p.HighWatermark})
		}
	})
	if len(work) == 0 {
		return true
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, w := range work {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.decodePart(ctx, w)
			if !r.stage.WholePoll {
				r.handlePart(ctx, w)
			}
		}()
	}
	wg.Wait()
	if r.stage.WholePoll {
		r.handleWhole(ctx, work)
	}
	handleTook := time.Since(start)
	r.handleNs.Add(int64(handleTook))
	tProduce := time.Now()

	// Produce the outputs and dead letters of every handled partition and
	// wait for all acknowledgements.
	var pending sync.WaitGroup
	for _, w := range work {
		if w.err != nil {
			continue
		}
		recs := make([]*kgo.Record, 0, len(w.result.Out)+len(w.result.Dead))
		recs = append(recs, w.result.Out...)
		for _, d := range w.result.Dead {
			recs = append(recs, r.deadRecord(d))
		}
		var once sync.Once
		for _, rec := range recs {
			pending.Add(1)
			r.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
				defer pending.Done()
				if err != nil {
					once.Do(func() { w.err, w.cause = fmt.Errorf("producing results: %w", err), causeProduce })
				}
			})
		}
	}
	pending.Wait()
	produceTook := time.Since(tProduce)
	r.produceNs.Add(int64(produceTook))
	tCommit := time.Now()

	var commit []*kgo.Record
	allOK := true
	for _, w := range work {
		if w.err != nil {
			allOK = false
			continue
		}
		commit = append(commit, w.records[len(w.records)-1])
	}
	if len(commit) > 0 && r.cfg.CommitInterval > 0 {
		r.cl.MarkCommitRecords(commit...)
	} else if len(commit) > 0 {
		if err := r.cl.CommitRecords(ctx, commit...); err != nil {
			// The outputs are out; a failed commit only means they will be
			// produced again after a rewind, which the sinks collapse.
			r.log.Warn("committing offsets", "err", err)
			for _, w := range work {
				if w.err == nil {
					w.err, w.cause = fmt.Errorf("committing offsets: %w", err), causeCommit
				}
			}
			allOK = false
		}
	}
	commitTook := time.Since(tCommit)
	r.commitNs.Add(int64(commitTook))
	r.m.Phases(handleTook, produceTook, commitTook)
	now := time.Now()
	rewind := map[string]map[int32]kgo.EpochOffset{}
	for _, w := range work {
		if w.err != nil {
			r.failed.Add(1)
			first := w.records[0]
			if rewind[w.topic] == nil {
				rewind[w.topic] = map[int32]kgo.EpochOffset{}
			}
			rewind[w.topic][w.part] = kgo.EpochOffset{Epoch: first.LeaderEpoch, Offset: first.Offset}
			r.m.Lag(w.topic, w.part, w.hw-first.Offset)
			last := w.records[len(w.records)-1].Offset
			if errors.Is(w.err, ErrFenced) {
				r.fenced.Add(1)
				r.m.Failed(causeFenced)
				r.log.Error("partition fenced: a newer owner has written; pausing it until the group reassigns it",
					"topic", w.topic, "partition", w.part, "offset", first.Offset, "last_offset", last, "epoch", w.batch.Epoch, "err", w.err)
				r.cl.PauseFetchPartitions(map[string][]int32{w.topic: {w.part}})
			} else {
				r.m.Failed(w.cause)
				r.log.Warn("batch failed; rewinding and retrying after backoff", "topic", w.topic, "partition", w.part,
					"offset", first.Offset, "last_offset", last, "records", len(w.records), "cause", w.cause, "err", w.err)
			}
			continue
		}
		r.observeDone(w, now)
		r.in.Add(int64(len(w.records)))
		r.out.Add(int64(len(w.result.Out)))
		r.dead.Add(int64(len(w.result.Dead)))
		r.committed.Add(int64(len(w.records)))
		if len(w.result.Dead) > 0 {
			r.deadMu.Lock()
			for _, d := range w.result.Dead {
				r.deadBy[d.Reason]++
			}
			r.deadMu.Unlock()
		}
		if r.cfg.Observer != nil {
			r.cfg.Observer.BatchDone(r.stage.Name, w.topic, w.part, len(w.records), len(w.result.Out), len(w.result.Dead), time.Since(start))
		}
	}
	if len(rewind) > 0 {
		r.cl.SetOffsets(rewind)
	}
	return allOK
}

// decodePart decodes a partition's records into w.batch, putting the
// invalid ones on the dead-letter list, and acquires the fencing epoch.
func (r *Runner) decodePart(ctx context.Context, w *partWork) {
	w.batch = &Batch{Topic: w.topic, Partition: w.part, Events: make([]Event, 0, len(w.records))}
	if r.stage.Fenced {
		e, err := r.epoch(ctx, w.topic, w.part)
		if err != nil {
			w.err, w.cause = err, causeEpoch
			return
		}
		w.batch.Epoch = e
	}
	topic, _ := r.cfg.Topology.Topic(w.topic)
	for _, rec := range w.records {
		env, err := r.cfg.Decoder.Decode(rec.Value)
		if err == nil && len(topic.Schemas) > 0 && !topic.Carries(env.TypeVersion()) {
			err = &schemas.InvalidError{Reason: schemas.ReasonWrongTopic, Detail: fmt.Sprintf("%s does not carry %s", w.topic, env.TypeVersion())}
		}
		if err == nil && string(rec.Key) != env.Key {
			err = &schemas.InvalidError{Reason: schemas.ReasonKeyMismatch, Detail: fmt.Sprintf("record key %q is not envelope key %q", truncate(string(rec.Key), 64), env.Key)}
		}
		if err != nil {
			if r.stage.SkipInvalid {
				r.skipped.Add(1)
				w.skipped++
				r.log.Debug("skipping invalid record (its owner stage dead-letters it)", "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset,
					"reason", schemas.ReasonOf(err), "err", err)
				continue
			}
			reason := string(schemas.ReasonOf(err))
			if reason == "" {
				reason = "decode_error"
			}
			w.dead = append(w.dead, DeadLetter{Record: rec, Reason: reason, Detail: err.Error()})
			continue
		}
		w.batch.Events = append(w.batch.Events, Event{Env: env, Record: rec})
	}
}

// handlePart hands one partition's decoded events to the handler.
func (r *Runner) handlePart(ctx context.Context, w *partWork) {
	if w.err == nil && len(w.batch.Events) > 0 {
		res, err := r.safeHandle(ctx, w.batch)
		if err != nil {
			w.err, w.cause = fmt.Errorf("handling %s/%d: %w", w.topic, w.part, err), causeHandler
		}
		w.result = res
	}
	w.result.Dead = append(w.dead, w.result.Dead...)
}

// handleWhole hands every partition's decoded events to the handler as one
// batch; a failure fails every partition of the poll. The outputs ride with
// the first partition that is committed with them.
func (r *Runner) handleWhole(ctx context.Context, work []*partWork) {
	all := &Batch{Partition: -1}
	var ok []*partWork
	for _, w := range work {
		if w.err == nil {
			all.Events = append(all.Events, w.batch.Events...)
			ok = append(ok, w)
		}
	}
	if len(ok) == 0 {
		return
	}
	var res Result
	var err error
	if len(all.Events) > 0 {
		res, err = r.safeHandle(ctx, all)
	}
	for _, w := range ok {
		if err != nil {
			w.err, w.cause = fmt.Errorf("handling %d events of a poll: %w", len(all.Events), err), causeHandler
		}
		w.result.Dead = w.dead
	}
	ok[0].result.Out = res.Out
	ok[0].result.Dead = append(ok[0].result.Dead, res.Dead...)
}

// safeHandle calls the handler, turning a panic into an error: a handler
// bug must not take the process down with a batch half-handled; the batch
// is retried and the panic logged.
func (r *Runner) safeHandle(ctx context.Context, b *Batch) (res Result, err error) {
	if r.sinkStore != "" {
		// Registered first, so it runs after the recovery below and sees
		// a panic's error.
		start := time.Now()
		defer func() { r.m.Flush(r.sinkStore, len(b.Events), time.Since(start), err) }()
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return r.stage.Handler.Handle(ctx, b)
}

func (r *Runner) epoch(ctx context.Context, topic string, part int32) (int64, error) {
	r.mu.Lock()
	st, ok := r.owned[tp{topic, part}]
	r.mu.Unlock()
	if !ok {
		// Records of a partition we no longer own cannot reach us under
		// BlockRebalanceOnPoll; be safe anyway.
		return 0, fmt.Errorf("%s/%d: %w", topic, part, ErrFenced)
	}
	r.mu.Lock()
	e := st.epoch
	r.mu.Unlock()
	if e > 0 {
		return e, nil
	}
	e, err := r.cfg.Fencer.Acquire(ctx, r.stage.Group, topic, part)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	st.epoch = e
	r.mu.Unlock()
	return e, nil
}

func (r *Runner) deadRecord(d DeadLetter) *kgo.Record {
	src := d.Record
	value := src.Value
	headers := append([]kgo.RecordHeader(nil), src.Headers...)
	if len(value) > maxDeadValue {
		headers = append(headers, kgo.RecordHeader{Key: HeaderDLQTruncated, Value: []byte(strconv.Itoa(len(value)))})
		value = value[:maxDeadValue]
	}
	headers = append(headers,
		kgo.RecordHeader{Key: HeaderDLQReason, Value: []byte(d.Reason)},
		kgo.RecordHeader{Key: HeaderDLQDetail, Value: []byte(truncate(d.Detail, 1000))},
		kgo.RecordHeader{Key: HeaderDLQStage, Value: []byte(r.stage.Name)},
		kgo.RecordHeader{Key: HeaderDLQSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(int(src.Partition)))},
		kgo.RecordHeader{Key: HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
		kgo.RecordHeader{Key: HeaderDLQAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	key := src.Key
	if len(key) > maxDeadKey {
		headers = append(headers, kgo.RecordHeader{Key: HeaderDLQKeyTruncated, Value: []byte(strconv.Itoa(len(key)))})
		key = key[:maxDeadKey]
	}
	return &kgo.Record{Topic: r.cfg.DLQTopic, Key: key, Value: value, Headers: headers}
}

// Close leaves the group and closes the client. It is idempotent.
func (r *Runner) Close() {
	r.closeOnce.Do(func() { r.cl.CloseAllowingRebalance() })
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func fmtParts(m map[string][]int32) string {
	s := ""
	for t, ps := range m {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("%s%v", t, ps)
	}
	return s
}
