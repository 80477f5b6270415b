package stream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/schemas"
)

// snap gathers m, failing the test on error.
func snap(t *testing.T, m *metrics.Metrics) metrics.Snapshot {
	t.Helper()
	s, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// refusing echoes every claim but dead-letters the claims of user u0, and
// counts each echoed claim as a decision: granted for even event numbers,
// rejected (reason odd) for the others.
func refusing(ctx context.Context, b *Batch) (Result, error) {
	var res Result
	for _, e := range b.Events {
		if string(e.Record.Key) == "u0" {
			res.Dead = append(res.Dead, DeadLetter{Record: e.Record, Reason: "test_refused", Detail: "user u0 is refused"})
			continue
		}
		res.Out = append(res.Out, &kgo.Record{Topic: grants, Key: e.Record.Key, Value: e.Record.Value})
		n, _ := strconv.Atoi(strings.TrimPrefix(e.Env.EventID, "e"))
		if n%2 == 0 {
			res.Decide("test.claim", "granted", "")
		} else {
			res.Decide("test.claim", "rejected", "odd")
		}
	}
	return res, nil
}

// TestRunnerMetrics runs a stage over valid, invalid and refused records
// and checks that every metric moved by what flowed: events in per topic,
// outputs per topic, dead letters per reason, decisions per outcome and
// reason, one end-to-end latency sample per record, the phases, the
// partitions assigned and a lag of zero once everything is handled.
func TestRunnerMetrics(t *testing.T) {
	brokers, _ := cluster(t)
	var recs []*kgo.Record
	wantGranted, wantRejected, wantRefused := 0, 0, 0
	for i := 0; i < 200; i++ {
		u := fmt.Sprintf("u%d", i%37)
		recs = append(recs, claimRecord(t, i, u))
		switch {
		case u == "u0":
			wantRefused++
		case i%2 == 0:
			wantGranted++
		default:
			wantRejected++
		}
	}
	recs = append(recs,
		&kgo.Record{Topic: claims, Key: []byte("u1"), Value: []byte("{not json")},
		&kgo.Record{Topic: claims, Key: []byte("u2"), Value: []byte{0xff, 0xfe}},
		&kgo.Record{Topic: claims, Key: []byte("wrong-key"), Value: claimRecord(t, 999, "u3").Value})
	produce(t, brokers, recs...)

	m := metrics.New()
	r, _, _ := startRunner(t, Config{Brokers: brokers, Metrics: m}, testStage(HandlerFunc(refusing)))
	waitFor(t, 20*time.Second, "203 events in", func() bool {
		return snap(t, m).Value("promoflow_events_in_total", "stage", "test", "topic", claims) == 203
	})
	s := snap(t, m)
	checks := []struct {
		what string
		got  float64
		want int
	}{
		{"records out to grants", s.Value("promoflow_records_out_total", "stage", "test", "topic", grants), 200 - wantRefused},
		{"records out to the DLQ (counted as dead letters instead)", s.Value("promoflow_records_out_total", "stage", "test", "topic", dlq), 0},
		{"dead letters malformed_json", s.Value("promoflow_dead_letters_total", "stage", "test", "topic", claims, "reason", "malformed_json"), 1},
		{"dead letters invalid_utf8", s.Value("promoflow_dead_letters_total", "reason", "invalid_utf8"), 1},
		{"dead letters key_mismatch", s.Value("promoflow_dead_letters_total", "reason", "key_mismatch"), 1},
		{"dead letters test_refused", s.Value("promoflow_dead_letters_total", "stage", "test", "reason", "test_refused"), wantRefused},
		{"decisions granted", s.Value("promoflow_decisions_total", "stage", "test", "decision", "test.claim", "outcome", "granted", "reason", ""), wantGranted},
		{"decisions rejected odd", s.Value("promoflow_decisions_total", "decision", "test.claim", "outcome", "rejected", "reason", "odd"), wantRejected},
		{"end-to-end samples", s.Value("promoflow_end_to_end_latency_seconds", "stage", "test"), 203},
		{"partitions assigned", s.Value("promoflow_partitions_assigned", "stage", "test"), 12},
		{"lag after everything is handled", s.Value("promoflow_consumer_lag_records", "stage", "test"), 0},
		{"failed batches", s.Value("promoflow_batch_failures_total", "stage", "test"), 0},
	}
	for _, c := range checks {
		if c.got != float64(c.want) {
			t.Errorf("%s = %v, want %d", c.what, c.got, c.want)
		}
	}
	if s.Value("promoflow_rebalances_total", "stage", "test", "event", "assigned") < 1 {
		t.Error("no assignment counted")
	}
	if s.Sum("promoflow_end_to_end_latency_seconds", "stage", "test") <= 0 {
		t.Error("end-to-end latencies sum to nothing")
	}
	polls := s.Value("promoflow_batch_duration_seconds", "stage", "test", "phase", "handle")
	if polls < 1 || s.Value("promoflow_batch_duration_seconds", "phase", "commit") != polls {
		t.Errorf("handle samples %v, commit samples %v: want one of each per poll", polls, s.Value("promoflow_batch_duration_seconds", "phase", "commit"))
	}
	// The lag series name the partitions that had records, never more than
	// the topic has.
	if ls := s.Series("promoflow_consumer_lag_records", "stage", "test"); len(ls) == 0 || len(ls) > 12 {
		t.Errorf("lag series: %v", ls)
	}
	if st := r.Stats(); float64(st.In) != s.Value("promoflow_events_in_total", "stage", "test") ||
		float64(st.Dead) != s.Value("promoflow_dead_letters_total", "stage", "test") {
		t.Errorf("stats %+v disagree with the metrics", st)
	}
}

// TestRunnerMetricsCountFailuresByCause fails a partition's batches twice
// in the handler and then succeeds: two handler failures, a lag reported
// while behind, and every record counted in once.
func TestRunnerMetricsCountFailuresByCause(t *testing.T) {
	brokers, _ := cluster(t)
	var recs []*kgo.Record
	for i := 0; i < 50; i++ {
		recs = append(recs, claimRecord(t, i, "one-user"))
	}
	produce(t, brokers, recs...)
	var calls atomic.Int32
	h := HandlerFunc(func(ctx context.Context, b *Batch) (Result, error) {
		if calls.Add(1) <= 2 {
			return Result{}, errors.New("store unavailable")
		}
		return echo(ctx, b)
	})
	m := metrics.New()
	startRunner(t, Config{Brokers: brokers, Metrics: m, MinBackoff: 10 * time.Millisecond}, testStage(h))
	waitFor(t, 20*time.Second, "50 events in", func() bool {
		return snap(t, m).Value("promoflow_events_in_total", "stage", "test") == 50
	})
	s := snap(t, m)
	if got := s.Value("promoflow_batch_failures_total", "stage", "test", "cause", "handler"); got != 2 {
		t.Errorf("handler failures = %v, want 2", got)
	}
	if got := s.Value("promoflow_records_out_total", "stage", "test", "topic", grants); got != 50 {
		t.Errorf("records out = %v, want 50 (failed batches count nothing)", got)
	}
	if got := s.Value("promoflow_consumer_lag_records", "stage", "test"); got != 0 {
		t.Errorf("lag = %v after catching up", got)
	}
}

// failingWriter fails its first n writes, then counts the events written.
type failingWriter struct {
	fail    atomic.Int32
	written atomic.Int64
}

func (w *failingWriter) WriteBatch(_ context.Context, events []*schemas.Envelope) error {
	if w.fail.Add(-1) >= 0 {
		return errors.New("table is away")
	}
	w.written.Add(int64(len(events)))
	return nil
}

func (w *failingWriter) Name() string { return "teststore" }

// TestSinkStageMetrics checks a sink's batch sizes, write latencies and
// failed writes (also counted as store errors of its store).
func TestSinkStageMetrics(t *testing.T) {
	brokers, _ := cluster(t)
	var recs []*kgo.Record
	for i := 0; i < 120; i++ {
		recs = append(recs, claimRecord(t, i, fmt.Sprintf("u%d", i)))
	}
	produce(t, brokers, recs...)
	w := &failingWriter{}
	w.fail.Store(2)
	m := metrics.New()
	st := SinkStage("test-sink", "g-test-sink", []string{claims}, []string{claimV1, issueV1}, w)
	startRunner(t, Config{Brokers: brokers, Metrics: m, MinBackoff: 10 * time.Millisecond}, st)
	waitFor(t, 20*time.Second, "120 events in", func() bool {
		return snap(t, m).Value("promoflow_events_in_total", "stage", "test-sink", "topic", claims) == 120
	})
	s := snap(t, m)
	writes := s.Value("promoflow_sink_batch_events", "stage", "test-sink")
	if got := s.Value("promoflow_sink_flush_errors_total", "stage", "test-sink"); got != 2 {
		t.Errorf("flush errors = %v, want 2", got)
	}
	if got := s.Value("promoflow_store_errors_total", "store", "teststore", "op", "write"); got != 2 {
		t.Errorf("store errors = %v, want 2", got)
	}
	if writes < 3 || s.Value("promoflow_sink_flush_duration_seconds", "stage", "test-sink") != writes {
		t.Errorf("%v batch sizes and %v write latencies observed; want the same, at least 3", writes, s.Value("promoflow_sink_flush_duration_seconds", "stage", "test-sink"))
	}
	// The sizes of the successful writes add up to the events written; the
	// failed ones were retried in full.
	if s.Sum("promoflow_sink_batch_events", "stage", "test-sink") < 120 || w.written.Load() != 120 {
		t.Errorf("batch sizes sum to %v, written %d", s.Sum("promoflow_sink_batch_events", "stage", "test-sink"), w.written.Load())
	}
}

// TestRunnerLogsDeadLettersWithTheirOrigin captures the JSON logs of a
// stage dead-lettering records and checks each line carries the stage, the
// source topic, partition and offset, the reason, and the event id, type
// and campaign when the record is an envelope.
func TestRunnerLogsDeadLettersWithTheirOrigin(t *testing.T) {
	brokers, _ := cluster(t)
	env, err := schemas.New("refused-1", "shop", time.Now(), schemas.ClaimRequested{BatchID: "SPRING-SALE", UserID: "u0"})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := env.Encode()
	produce(t, brokers, &kgo.Record{Topic: claims, Key: []byte("u0"), Value: v},
		&kgo.Record{Topic: claims, Key: []byte("u9"), Value: []byte("{not json")})
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	startRunner(t, Config{Brokers: brokers, Logger: log}, testStage(HandlerFunc(refusing)))
	var lines []map[string]any
	waitFor(t, 20*time.Second, "two dead letters logged", func() bool {
		lines = nil
		for _, l := range strings.Split(buf.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "record dead-lettered" {
				lines = append(lines, m)
			}
		}
		return len(lines) == 2
	})
	byReason := map[string]map[string]any{}
	for _, l := range lines {
		for _, k := range []string{"stage", "group", "topic", "partition", "offset", "reason", "detail"} {
			if _, ok := l[k]; !ok {
				t.Errorf("dead-letter line without %s: %v", k, l)
			}
		}
		if l["stage"] != "test" || l["topic"] != claims {
			t.Errorf("line %v: wrong stage or topic", l)
		}
		byReason[fmt.Sprint(l["reason"])] = l
	}
	refused := byReason["test_refused"]
	if refused["event_id"] != "refused-1" || refused["batch_id"] != "SPRING-SALE" || refused["type"] != schemas.TypeCouponClaimRequested {
		t.Errorf("refused envelope's line lacks its event id, type or campaign: %v", refused)
	}
	if bad := byReason["malformed_json"]; bad == nil || bad["event_id"] != nil {
		t.Errorf("malformed record's line: %v", bad)
	}
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDeadLogLimiter(t *testing.T) {
	var l deadLogLimiter
	at := time.Unix(1000, 0)
	for i := 0; i < deadLogBurst; i++ {
		if n, ok := l.allow(at); !ok || n != 0 {
			t.Fatalf("line %d held back", i)
		}
	}
	for i := 0; i < 5; i++ {
		if _, ok := l.allow(at.Add(500 * time.Millisecond)); ok {
			t.Fatal("more than the burst logged within a second")
		}
	}
	if n, ok := l.allow(at.Add(time.Second)); !ok || n != 5 {
		t.Fatalf("next second: allowed %v, %d held back, want true and 5", ok, n)
	}
	if n, _ := l.allow(at.Add(time.Second)); n != 0 {
		t.Fatalf("held-back count reported twice: %d", n)
	}
}

func TestRecordAttrs(t *testing.T) {
	tests := []struct {
		value string
		want  []any
	}{
		{`{"event_id":"e1","type":"lottery.participation.requested","payload":{"activity_id":"A1","user_id":"u"}}`,
			[]any{"event_id", "e1", "type", "lottery.participation.requested", "activity_id", "A1"}},
		{`{"event_id":"e2","type":"t","payload":{"batch_id":7}}`, []any{"event_id", "e2", "type", "t"}},
		{`{"event_id":"e3","payload":"not an object"}`, []any{"event_id", "e3"}},
		{`not json`, nil},
		{``, nil},
	}
	for _, tc := range tests {
		got := recordAttrs(&kgo.Record{Value: []byte(tc.value)})
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.value, got, tc.want)
		}
	}
}

// singleTopicCluster starts a kfake cluster with the test's topics and a
// one-partition topic "test.single", and returns the cluster, its brokers
// and a topology declaring test.single.
func singleTopicCluster(t *testing.T) (*kfake.Cluster, []string, *topology.File) {
	t.Helper()
	c, brokers := testenv.Kafka(t, 1)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx := testenv.Context(t, 10*time.Second)
	for topic, parts := range map[string]int32{claims: 12, grants: 12, dlq: 1, "test.single": 1} {
		if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
			t.Fatal(err)
		}
	}
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	topo.Topics = append(topo.Topics, topology.Topic{Name: "test.single", Partitions: 1, ReplicationFactor: 1, CleanupPolicy: "delete", Retention: "1h", Key: "k"})
	return c, brokers, topo
}

// TestRunnerReadiness holds the group's SyncGroup answer: the member is
// not ready while it waits for its assignment, and ready once assigned. A
// second member of a group reading one partition is ready and idle; a
// member whose broker is gone is not ready.
func TestRunnerReadiness(t *testing.T) {
	c, brokers, topo := singleTopicCluster(t)
	release := make(chan struct{})
	c.ControlKey(kmsg.SyncGroup.Int16(), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.SleepControl(func() { <-release })
		return nil, nil, false
	})
	ready := func(r *Runner) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		return r.Ready(ctx)
	}
	st := Stage{Name: "single", Group: "g-single", Reads: []string{"test.single"}, Handles: []string{claimV1}, Handler: HandlerFunc(echo)}
	r, err := New(Config{Brokers: brokers, Topology: topo, Logger: quiet()}, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ready(r); err == nil || !strings.Contains(err.Error(), "not consuming") {
		t.Fatalf("before Run: ready err = %v, want not consuming", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for i := 0; i < 10; i++ {
		time.Sleep(100 * time.Millisecond)
		if _, err := ready(r); err == nil || (r.running.Load() && !strings.Contains(err.Error(), "waiting for group")) {
			t.Fatalf("while the assignment is held: ready err = %v", err)
		}
	}
	close(release)
	waitFor(t, 20*time.Second, "ready once assigned", func() bool {
		note, err := ready(r)
		return err == nil && note == "owns 1 partition(s)"
	})

	// A second member: one of the two has no partition and says so, and
	// its gauge says 0.
	m2 := metrics.New()
	r2, _, _ := startRunner(t, Config{Brokers: brokers, Topology: topo, Metrics: m2}, st)
	<-r2.Assigned()
	waitFor(t, 20*time.Second, "both members ready, one idle", func() bool {
		n1, e1 := ready(r)
		n2, e2 := ready(r2)
		return e1 == nil && e2 == nil && (strings.HasPrefix(n1, "idle") != strings.HasPrefix(n2, "idle"))
	})
	n2, _ := ready(r2)
	if got, series := snap(t, m2).Value("promoflow_partitions_assigned", "stage", "single"), len(snap(t, m2).Series("promoflow_partitions_assigned")); series != 1 ||
		(strings.HasPrefix(n2, "idle") && got != 0) || (!strings.HasPrefix(n2, "idle") && got != 1) {
		t.Errorf("second member (%s): partitions_assigned %v in %d series", n2, got, series)
	}

	c.Close()
	waitFor(t, 20*time.Second, "not ready without Kafka", func() bool {
		_, err := ready(r)
		return err != nil && strings.Contains(err.Error(), "kafka unreachable")
	})
}

func TestDecideN(t *testing.T) {
	var r Result
	r.DecideN("k", "none", "", 0)
	if r.Decisions != nil {
		t.Fatalf("n=0 counted: %v", r.Decisions)
	}
	r.Decide("k", "ok", "")
	r.DecideN("k", "ok", "", 41)
	if got := r.Decisions[Decision{"k", "ok", ""}]; got != 42 || len(r.Decisions) != 1 {
		t.Fatalf("decisions %v, want k/ok 42", r.Decisions)
	}
}
