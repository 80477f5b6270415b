package stream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/schemas"
)

const (
	claims = "coupon.claims"
	grants = "coupon.grants"
	dlq    = "promoflow.dlq"
)

var (
	claimV1 = schemas.TypeVersion{Type: schemas.TypeCouponClaimRequested, Version: 1}.String()
	issueV1 = schemas.TypeVersion{Type: schemas.TypeCouponIssueRequested, Version: 1}.String()
)

// memFencer hands out epochs from memory.
type memFencer struct {
	mu sync.Mutex
	m  map[string]int64
}

func (f *memFencer) Acquire(_ context.Context, group, topic string, p int32) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]int64{}
	}
	k := group + "|" + fenceField(topic, p)
	f.m[k]++
	return f.m[k], nil
}

func cluster(t *testing.T) (brokers []string, adm *kadm.Client) {
	t.Helper()
	return testenv.KafkaWithTopics(t)
}

func claimRecord(t testing.TB, i int, user string) *kgo.Record {
	env, err := schemas.New(fmt.Sprintf("e%d", i), "shop", time.Now(), schemas.ClaimRequested{BatchID: "B", UserID: user})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := env.Encode()
	return &kgo.Record{Topic: claims, Key: []byte(user), Value: b}
}

func produce(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(testenv.Context(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consumeAll reads topic from the start until it has n records or the deadline.
func consumeAll(t *testing.T, brokers []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(t, 30*time.Second)
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

// echo produces one output per event: the event's value, keyed alike.
func echo(_ context.Context, b *Batch) (Result, error) {
	var res Result
	for _, e := range b.Events {
		res.Out = append(res.Out, &kgo.Record{Topic: grants, Key: e.Record.Key, Value: e.Record.Value})
	}
	return res, nil
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testStage(h Handler) Stage {
	return Stage{Name: "test", Group: "g-test", Reads: []string{claims}, Writes: []string{grants}, Handles: []string{claimV1, issueV1}, Handler: h}
}

func startRunner(t *testing.T, cfg Config, st Stage) (*Runner, context.CancelFunc, <-chan struct{}) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet()
	}
	r, err := New(cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r, cancel, done
}

func committed(t *testing.T, adm *kadm.Client, group, topic string) int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(testenv.Context(t, 10*time.Second), group)
	if err != nil {
		return 0 // the group has not committed yet
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic {
			n += o.At
		}
	})
	return n
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunnerDeliversAndDeadLetters(t *testing.T) {
	brokers, adm := cluster(t)
	var recs []*kgo.Record
	for i := 0; i < 200; i++ {
		recs = append(recs, claimRecord(t, i, fmt.Sprintf("u%d", i%37)))
	}
	bad := []*kgo.Record{
		{Topic: claims, Key: []byte("u1"), Value: []byte("{not json")},
		{Topic: claims, Key: []byte("u2"), Value: []byte{0xff, 0xfe}},
		{Topic: claims, Key: []byte("wrong-key"), Value: claimRecord(t, 999, "u3").Value},
	}
	produce(t, brokers, append(recs, bad...)...)

	r, _, _ := startRunner(t, Config{Brokers: brokers}, testStage(HandlerFunc(echo)))
	out := consumeAll(t, brokers, grants, 200)
	if len(out) != 200 {
		t.Fatalf("got %d outputs, want 200", len(out))
	}
	dead := consumeAll(t, brokers, dlq, 3)
	if len(dead) != 3 {
		t.Fatalf("got %d dead letters, want 3", len(dead))
	}
	reasons := map[string]bool{}
	for _, d := range dead {
		h := map[string]string{}
		for _, x := range d.Headers {
			h[x.Key] = string(x.Value)
		}
		reasons[h[HeaderDLQReason]] = true
		if h[HeaderDLQSourceTopic] != claims || h[HeaderDLQSourcePartition] == "" || h[HeaderDLQSourceOffset] == "" || h[HeaderDLQStage] != "test" || h[HeaderDLQDetail] == "" {
			t.Errorf("dead letter headers incomplete: %v", h)
		}
	}
	for _, want := range []string{"malformed_json", "invalid_utf8", "key_mismatch"} {
		if !reasons[want] {
			t.Errorf("no dead letter with reason %s (got %v)", want, reasons)
		}
	}
	waitFor(t, 10*time.Second, "all offsets committed", func() bool { return committed(t, adm, "g-test", claims) == 203 })
	if s := r.Stats(); s.In != 203 || s.Out != 200 || s.Dead != 3 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestRunnerRetriesFailedBatchesInOrder(t *testing.T) {
	brokers, adm := cluster(t)
	var recs []*kgo.Record
	for i := 0; i < 300; i++ {
		recs = append(recs, claimRecord(t, i, "same-user")) // one partition, strict order
	}
	produce(t, brokers, recs...)

	var calls atomic.Int32
	var mu sync.Mutex
	var seen []string
	h := HandlerFunc(func(ctx context.Context, b *Batch) (Result, error) {
		if calls.Add(1) <= 3 {
			return Result{}, errors.New("store unavailable")
		}
		if calls.Load() == 4 {
			panic("handler bug")
		}
		mu.Lock()
		for _, e := range b.Events {
			seen = append(seen, e.Env.EventID)
		}
		mu.Unlock()
		return echo(ctx, b)
	})
	r, _, _ := startRunner(t, Config{Brokers: brokers, MinBackoff: 10 * time.Millisecond}, testStage(h))
	waitFor(t, 20*time.Second, "all offsets committed", func() bool { return committed(t, adm, "g-test", claims) == 300 })
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 300 {
		t.Fatalf("handled %d events after retries, want exactly 300", len(seen))
	}
	for i, id := range seen {
		if id != fmt.Sprintf("e%d", i) {
			t.Fatalf("event %d is %s: order broken", i, id)
		}
	}
	if s := r.Stats(); s.FailedBatches < 4 {
		t.Fatalf("FailedBatches = %d, want >= 4", s.FailedBatches)
	}
}

// TestRunnerCommitsOnlyAfterOutputsAcked makes every output fail to produce
// (its topic does not exist and cannot be created) and checks that nothing
// is committed; once the topic exists, everything is.
func TestRunnerCommitsOnlyAfterOutputsAcked(t *testing.T) {
	brokers, adm := cluster(t)
	produce(t, brokers, claimRecord(t, 1, "a"), claimRecord(t, 2, "b"))
	missing := "coupon.grants.missing"
	h := HandlerFunc(func(_ context.Context, b *Batch) (Result, error) {
		var res Result
		for _, e := range b.Events {
			res.Out = append(res.Out, &kgo.Record{Topic: missing, Value: e.Record.Value})
		}
		return res, nil
	})
	topo, _ := topology.Load()
	topo.Topics = append(topo.Topics, topology.Topic{Name: missing, Partitions: 1, ReplicationFactor: 1, CleanupPolicy: "delete", Retention: "1h", Key: "k"})
	st := testStage(h)
	st.Writes = []string{missing}
	cfg := Config{Brokers: brokers, Topology: topo, MinBackoff: 20 * time.Millisecond,
		ClientOpts: []kgo.Opt{kgo.RecordDeliveryTimeout(time.Second), kgo.UnknownTopicRetries(1)}}
	r, _, _ := startRunner(t, cfg, st)
	waitFor(t, 20*time.Second, "failed batches", func() bool { return r.Stats().FailedBatches >= 2 })
	if n := committed(t, adm, "g-test", claims); n != 0 {
		t.Fatalf("committed %d offsets while outputs were not acknowledged", n)
	}
	if _, err := adm.CreateTopic(testenv.Context(t, 10*time.Second), 1, 1, nil, missing); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "commit after the outputs land", func() bool { return committed(t, adm, "g-test", claims) == 2 })
	if out := consumeAll(t, brokers, missing, 2); len(out) < 2 {
		t.Fatalf("outputs = %d", len(out))
	}
}

// TestRunnerFencingEpochsGrowWithOwnership checks that every new owner of a
// partition holds a larger epoch than every earlier owner.
func TestRunnerFencingEpochsGrowWithOwnership(t *testing.T) {
	brokers, _ := cluster(t)
	f := &memFencer{}
	st := testStage(HandlerFunc(echo))
	st.Fenced = true
	cfg := Config{Brokers: brokers, Fencer: f, SessionTimeout: 6 * time.Second}
	a, cancelA, doneA := startRunner(t, cfg, st)
	<-a.Assigned()
	first := a.Owned()[claims]
	if len(first) != 12 {
		t.Fatalf("first member owns %d partitions, want 12", len(first))
	}
	b, _, _ := startRunner(t, cfg, st)
	<-b.Assigned()
	waitFor(t, 30*time.Second, "rebalance to two members", func() bool {
		return len(a.Owned()[claims]) > 0 && len(b.Owned()[claims]) > 0 && len(a.Owned()[claims])+len(b.Owned()[claims]) == 12
	})
	for p, e := range b.Owned()[claims] {
		if e <= first[p] {
			t.Fatalf("partition %d: new owner's epoch %d not above old owner's %d", p, e, first[p])
		}
	}
	second := b.Owned()[claims]
	cancelA()
	<-doneA
	waitFor(t, 30*time.Second, "b owns everything", func() bool { return len(b.Owned()[claims]) == 12 })
	for p, e := range b.Owned()[claims] {
		if prev, ok := second[p]; ok && e != prev {
			t.Fatalf("partition %d kept by b changed epoch %d -> %d", p, prev, e)
		}
		if e <= first[p] {
			t.Fatalf("partition %d: epoch %d not above %d", p, e, first[p])
		}
	}
}

func TestNewRejectsUndeclaredTopics(t *testing.T) {
	st := testStage(HandlerFunc(echo))
	st.Writes = []string{"no.such.topic"}
	if _, err := New(Config{Brokers: []string{"127.0.0.1:1"}}, st); err == nil {
		t.Fatal("stage writing an undeclared topic was accepted")
	}
	st = testStage(HandlerFunc(echo))
	st.Handles = nil
	if _, err := New(Config{Brokers: []string{"127.0.0.1:1"}}, st); err == nil {
		t.Fatal("stage not handling its topic's schema was accepted")
	}
	st = testStage(HandlerFunc(echo))
	st.Fenced = true
	if _, err := New(Config{Brokers: []string{"127.0.0.1:1"}}, st); err == nil {
		t.Fatal("fenced stage without a Fencer was accepted")
	}
}

// TestRunnerDrainsBatchInFlightOnShutdown cancels Run while a batch is in
// the handler: the batch finishes, its outputs are produced and its offsets
// committed before Run returns, so a restart redelivers nothing.
func TestRunnerDrainsBatchInFlightOnShutdown(t *testing.T) {
	brokers, adm := cluster(t)
	var recs []*kgo.Record
	for i := 0; i < 50; i++ {
		recs = append(recs, claimRecord(t, i, "one-user"))
	}
	produce(t, brokers, recs...)
	inHandler := make(chan struct{})
	var handled atomic.Int64
	var once sync.Once
	h := HandlerFunc(func(ctx context.Context, b *Batch) (Result, error) {
		once.Do(func() { close(inHandler) })
		time.Sleep(300 * time.Millisecond) // still working when shutdown starts
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		handled.Add(int64(len(b.Events)))
		return echo(ctx, b)
	})
	_, cancel, done := startRunner(t, Config{Brokers: brokers}, testStage(HandlerFunc(h)))
	<-inHandler
	cancel()
	<-done
	n := handled.Load()
	if n == 0 {
		t.Fatal("the batch in flight was abandoned at shutdown")
	}
	if c := committed(t, adm, "g-test", claims); c != n {
		t.Fatalf("handled %d records but committed %d", n, c)
	}
	if out := consumeAll(t, brokers, grants, int(n)); int64(len(out)) != n {
		t.Fatalf("%d outputs for %d handled records", len(out), n)
	}
}

func TestDeadRecordMarksWhatItCuts(t *testing.T) {
	r := &Runner{stage: Stage{Name: "s"}, cfg: Config{DLQTopic: dlq}}
	src := &kgo.Record{Topic: claims, Partition: 2, Offset: 7, Key: make([]byte, 2000), Value: make([]byte, maxDeadValue+10)}
	d := r.deadRecord(DeadLetter{Record: src, Reason: "too_large", Detail: "x"})
	h := map[string]string{}
	for _, x := range d.Headers {
		h[x.Key] = string(x.Value)
	}
	if len(d.Key) != maxDeadKey || h[HeaderDLQKeyTruncated] != "2000" {
		t.Fatalf("key %d bytes, header %q", len(d.Key), h[HeaderDLQKeyTruncated])
	}
	if len(d.Value) != maxDeadValue || h[HeaderDLQTruncated] != fmt.Sprint(maxDeadValue+10) {
		t.Fatalf("value %d bytes, header %q", len(d.Value), h[HeaderDLQTruncated])
	}
	if h[HeaderDLQSourcePartition] != "2" || h[HeaderDLQSourceOffset] != "7" || h[HeaderDLQReason] != "too_large" || d.Topic != dlq {
		t.Fatalf("headers %v topic %s", h, d.Topic)
	}
	for k := range h {
		if !strings.HasPrefix(k, HeaderDLQPrefix) {
			t.Fatalf("header %s lacks the prefix %s", k, HeaderDLQPrefix)
		}
	}
}
