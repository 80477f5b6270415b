package sinktest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// Sink is the sink under test.
type Sink interface {
	// WriteBatch writes events idempotently; see package sinks.
	WriteBatch(ctx context.Context, events []*schemas.Envelope) error
	// Close releases the sink; calling it again returns nil.
	Close() error
}

// GrantRow is one stored coupon grant as a [Reader] sees it: the decision
// and the app that claimed. Times are in UTC at millisecond precision.
type GrantRow struct {
	AppID string
	schemas.GrantDecided
}

// Reader inspects what a sink stored, through the store rather than through
// the sink, the way other services read it.
type Reader interface {
	// GrantRows returns the stored coupon grants by result id, and the number
	// of rows a reader of the store sees (for ClickHouse after FINAL). total
	// exceeds len(rows) when a result is stored more than once.
	GrantRows(ctx context.Context) (rows map[string]GrantRow, total int, err error)
	// ResultRows returns the stored results of eventType (one of
	// [ResultTypes]) by result id, and the number of rows a reader of the
	// store sees, like GrantRows. [ColumnsRow] makes a ResultRow of a row's
	// columns.
	ResultRows(ctx context.Context, eventType string) (rows map[string]ResultRow, total int, err error)
	// CouponStates returns the stored coupon states by coupon id, and the
	// number of rows a reader of the store sees, like GrantRows.
	CouponStates(ctx context.Context) (rows map[string]CouponState, total int, err error)
}

// CouponState is one stored coupon state as a [Reader] sees it: the state
// and the app that published the operation that made it. Times are in UTC
// at millisecond precision.
type CouponState struct {
	AppID string
	sinks.CouponRow
}

// ShardReader is implemented by the Reader of a sharded sink, so the suite
// can check that rows spread over every shard.
type ShardReader interface {
	// ShardRows returns the number of rows in every shard, empty ones included.
	ShardRows(ctx context.Context) ([]int, error)
}

// GrantCounter is implemented by sinks that count their results; the suite
// checks the count against what the Reader sees.
type GrantCounter interface {
	// CountGrants returns the number of results stored, one per result.
	CountGrants(ctx context.Context) (int64, error)
}

// caseTimeout bounds each case, so a hung store fails the test instead of
// stalling it.
const caseTimeout = 60 * time.Second

// Run runs the conformance suite. newSink returns a new sink over an empty
// store, and a Reader of that store; it arranges with t.Cleanup for the
// store to be removed. The sink is closed by the suite.
func Run(t *testing.T, newSink func(t *testing.T) (Sink, Reader)) {
	runCases(t, newSink, []suiteCase[Sink]{
		{"RoundTrip", testRoundTrip},
		{"HostileValues", testHostileValues},
		{"ReplayedBatch", testReplayedBatch},
		{"DuplicateInBatch", testDuplicateInBatch},
		{"OverlappingBatches", testOverlappingBatches},
		{"EmptyBatch", testEmptyBatch},
		{"ManyUsers", testManyUsers},
		{"ConcurrentReplays", testConcurrentReplays},
		{"UnsupportedType", testUnsupportedType},
		{"CancelledContext", testCancelledContext},
		{"Close", testClose},
	})
}

// suiteCase is one case of a suite over sinks of type S.
type suiteCase[S Sink] struct {
	name string
	run  func(t *testing.T, ctx context.Context, s S, r Reader)
}

// runCases runs each case as a subtest, on a new sink over an empty store,
// closed when the case ends.
func runCases[S Sink](t *testing.T, newSink func(t *testing.T) (S, Reader), cases []suiteCase[S]) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
			defer cancel()
			s, r := newSink(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("closing sink: %v", err)
				}
			})
			c.run(t, ctx, s, r)
		})
	}
}

func write(t *testing.T, ctx context.Context, s Sink, events []*schemas.Envelope) {
	t.Helper()
	if err := s.WriteBatch(ctx, events); err != nil {
		t.Fatalf("writing batch of %d events: %v", len(events), err)
	}
}

// mixed returns n grants and n results of every type (see [Results])
// interleaved, their ids starting with prefix.
func mixed(tb testing.TB, prefix string, n int) []*schemas.Envelope {
	grants, results := Grants(tb, prefix, n), Results(tb, prefix, n)
	out := make([]*schemas.Envelope, 0, 2*n)
	for i := range n {
		out = append(out, grants[i], results[i])
	}
	return out
}

// expectRows checks that the store holds exactly one row for each of
// events, grants and results, with the values they carry, and one coupon
// state for each coupon with an applied operation among events.
func expectRows(t *testing.T, ctx context.Context, r Reader, events []*schemas.Envelope) {
	t.Helper()
	grants := map[string]GrantRow{}
	results := map[string]map[string]ResultRow{}
	for _, typ := range ResultTypes {
		results[typ] = map[string]ResultRow{}
	}
	for _, env := range events {
		if env.Type == schemas.TypeCouponGrantDecided {
			g := decodeGrant(t, env)
			grants[g.ResultID] = g
			continue
		}
		row := decodeResult(t, env)
		results[env.Type][row.ResultID] = row
	}
	got, total, err := r.GrantRows(ctx)
	if err != nil {
		t.Fatalf("reading grant rows: %v", err)
	}
	diffs := compareRows(t, schemas.TypeCouponGrantDecided, grants, got, total, diffRow)
	for _, typ := range ResultTypes {
		got, total, err := r.ResultRows(ctx, typ)
		if err != nil {
			t.Fatalf("reading %s rows: %v", typ, err)
		}
		diffs = append(diffs, compareRows(t, typ, results[typ], got, total, diffResult)...)
	}
	gotStates, total, err := r.CouponStates(ctx)
	if err != nil {
		t.Fatalf("reading coupon states: %v", err)
	}
	diffs = append(diffs, compareRows(t, "coupon state", couponStates(t, events), gotStates, total, diffState)...)
	sort.Strings(diffs)
	for i, d := range diffs {
		if i == 10 {
			t.Errorf("... and %d more differences", len(diffs)-i)
			break
		}
		t.Error(d)
	}
}

// compareRows reports a wrong row count of type typ and returns how the rows
// got, of which a reader sees total, differ from want.
func compareRows[R any](t *testing.T, typ string, want, got map[string]R, total int, diff func(want, got R) string) []string {
	t.Helper()
	if total != len(want) || len(got) != len(want) {
		t.Errorf("store holds %d %s rows for %d results, want %d rows", total, typ, len(got), len(want))
	}
	var diffs []string
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s: missing", typ, id))
			continue
		}
		if d := diff(w, g); d != "" {
			diffs = append(diffs, fmt.Sprintf("%s %s: %s", typ, id, d))
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s %s: unexpected row", typ, id))
		}
	}
	return diffs
}

func diffRow(want, got GrantRow) string {
	var out string
	add := func(field string, w, g any) {
		out += fmt.Sprintf(" %s=%q, want %q;", field, fmt.Sprint(g), fmt.Sprint(w))
	}
	if want.AppID != got.AppID {
		add("app_id", want.AppID, got.AppID)
	}
	w, g := want.GrantDecided, got.GrantDecided
	if w.ResultID != g.ResultID {
		add("result_id", w.ResultID, g.ResultID)
	}
	if w.ClaimEventID != g.ClaimEventID {
		add("claim_event_id", w.ClaimEventID, g.ClaimEventID)
	}
	if w.BatchID != g.BatchID {
		add("batch_id", w.BatchID, g.BatchID)
	}
	if w.UserID != g.UserID {
		add("user_id", w.UserID, g.UserID)
	}
	if w.Status != g.Status {
		add("status", w.Status, g.Status)
	}
	if w.Reason != g.Reason {
		add("reason", w.Reason, g.Reason)
	}
	if w.CouponID != g.CouponID {
		add("coupon_id", w.CouponID, g.CouponID)
	}
	if w.GrantSeq != g.GrantSeq {
		add("grant_seq", w.GrantSeq, g.GrantSeq)
	}
	if !w.ClaimedAt.Equal(g.ClaimedAt) {
		add("claimed_at", w.ClaimedAt.Format(time.RFC3339Nano), g.ClaimedAt.Format(time.RFC3339Nano))
	}
	if !w.DecidedAt.Equal(g.DecidedAt) {
		add("decided_at", w.DecidedAt.Format(time.RFC3339Nano), g.DecidedAt.Format(time.RFC3339Nano))
	}
	return out
}

// expectCount checks a GrantCounter's count against the grants among
// events, if s is one.
func expectCount(t *testing.T, ctx context.Context, s Sink, events []*schemas.Envelope) {
	t.Helper()
	c, ok := s.(GrantCounter)
	if !ok {
		return
	}
	want := 0
	for _, env := range events {
		if env.Type == schemas.TypeCouponGrantDecided {
			want++
		}
	}
	n, err := c.CountGrants(ctx)
	if err != nil {
		t.Fatalf("counting grants: %v", err)
	}
	if n != int64(want) {
		t.Errorf("CountGrants() = %d, want %d", n, want)
	}
}

func testRoundTrip(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := mixed(t, "rt", 120)
	for _, env := range events {
		if _, err := schemas.Validate(env); err != nil {
			t.Fatalf("generated event %s is not schema-valid: %v", env.EventID, err)
		}
	}
	write(t, ctx, s, events)
	expectRows(t, ctx, r, events)
}

func testHostileValues(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := append(hostileGrants(t), hostileResults(t)...)
	write(t, ctx, s, events)
	expectRows(t, ctx, r, events)
	// Still there, and still writable: nothing was executed.
	more := mixed(t, "after", 3)
	write(t, ctx, s, more)
	expectRows(t, ctx, r, append(events, more...))
}

func testReplayedBatch(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := mixed(t, "replay", 200)
	write(t, ctx, s, events)
	write(t, ctx, s, events)
	// A redelivery decodes into new envelopes with the same content.
	write(t, ctx, s, redecode(t, events))
	expectRows(t, ctx, r, events)
	expectCount(t, ctx, s, events)
}

func testDuplicateInBatch(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := mixed(t, "dup", 10)
	batch := append(append([]*schemas.Envelope{}, events...), events[3], events[3], events[0])
	batch = append(batch, redecode(t, events[5:7])...)
	write(t, ctx, s, batch)
	expectRows(t, ctx, r, events)
}

func testOverlappingBatches(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := mixed(t, "overlap", 100)
	write(t, ctx, s, events[:60])
	write(t, ctx, s, events[40:])
	write(t, ctx, s, events[20:80])
	expectRows(t, ctx, r, events)
}

func testEmptyBatch(t *testing.T, ctx context.Context, s Sink, r Reader) {
	write(t, ctx, s, nil)
	write(t, ctx, s, []*schemas.Envelope{})
	expectRows(t, ctx, r, nil)
	expectCount(t, ctx, s, nil)
}

func testManyUsers(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := Grants(t, "many", 3000)
	for i := 0; i < len(events); i += 1000 {
		write(t, ctx, s, events[i:i+1000])
	}
	expectRows(t, ctx, r, events)
	sr, ok := r.(ShardReader)
	if !ok {
		return
	}
	counts, err := sr.ShardRows(ctx)
	if err != nil {
		t.Fatalf("reading shard row counts: %v", err)
	}
	sum := 0
	for i, n := range counts {
		sum += n
		if n == 0 {
			t.Errorf("shard %d of %d holds no rows of %d users", i, len(counts), len(events))
		}
	}
	if sum != len(events) {
		t.Errorf("shards hold %d rows, want %d", sum, len(events))
	}
}

func testConcurrentReplays(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := mixed(t, "conc", 300)
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			// Windows of 200 starting 50 apart: every event is written by
			// up to four writers at once, in different batch orders.
			lo := w * 50
			batch := append([]*schemas.Envelope{}, events[lo:lo+200]...)
			if w%2 == 1 {
				for i, j := 0, len(batch)-1; i < j; i, j = i+1, j-1 {
					batch[i], batch[j] = batch[j], batch[i]
				}
			}
			for range 2 {
				if err := s.WriteBatch(ctx, batch); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	expectRows(t, ctx, r, events[:(writers-1)*50+200])
	expectCount(t, ctx, s, events[:(writers-1)*50+200])
}

func testUnsupportedType(t *testing.T, ctx context.Context, s Sink, r Reader) {
	grants := Grants(t, "unsup", 5)
	// No sink stores a type without a schema.
	unknown := *grants[0]
	unknown.Type, unknown.EventID = "promoflow.unknown", "unknown-1"
	err := s.WriteBatch(ctx, append(append([]*schemas.Envelope{}, grants...), &unknown))
	if !errors.Is(err, sinks.ErrUnsupportedType) {
		t.Fatalf("writing a batch with a %s event: got %v, want an error wrapping sinks.ErrUnsupportedType", unknown.Type, err)
	}
	expectRows(t, ctx, r, nil)

	// A known type without a table is refused or stored, never as a grant.
	claim, err := schemas.New("claim-1", "app-0", Epoch, schemas.ClaimRequested{BatchID: "b-1", UserID: "u-1"})
	if err != nil {
		t.Fatal(err)
	}
	err = s.WriteBatch(ctx, append(append([]*schemas.Envelope{}, grants...), claim))
	switch {
	case err == nil:
		// The sink stores every event type (ClickHouse keeps raw events);
		// the claim must not turn into a grant.
		expectRows(t, ctx, r, grants)
	case errors.Is(err, sinks.ErrUnsupportedType):
		// Refused before anything was written, so the caller can divert
		// the event and retry the rest.
		expectRows(t, ctx, r, nil)
		write(t, ctx, s, grants)
		expectRows(t, ctx, r, grants)
	default:
		t.Fatalf("writing a batch with a %s event: got %v, want nil or an error wrapping sinks.ErrUnsupportedType", claim.Type, err)
	}
}

func testCancelledContext(t *testing.T, ctx context.Context, s Sink, r Reader) {
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.WriteBatch(cctx, Grants(t, "cancel", 10)); err == nil {
		t.Error("writing with a cancelled context: got nil error")
	}
	// The sink is still usable.
	events := mixed(t, "after", 10)
	write(t, ctx, s, events)
	expectRows(t, ctx, r, events)
}

func testClose(t *testing.T, ctx context.Context, s Sink, r Reader) {
	events := mixed(t, "close", 10)
	write(t, ctx, s, events)
	if err := s.Close(); err != nil {
		t.Fatalf("closing: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("closing twice: %v", err)
	}
	if err := s.WriteBatch(ctx, events); !errors.Is(err, sinks.ErrClosed) {
		t.Errorf("writing after Close: got %v, want an error wrapping sinks.ErrClosed", err)
	}
	expectRows(t, ctx, r, events)
}

// redecode returns copies of events as a consumer would decode them after a
// redelivery.
func redecode(t *testing.T, events []*schemas.Envelope) []*schemas.Envelope {
	t.Helper()
	out := make([]*schemas.Envelope, len(events))
	for i, env := range events {
		b, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = schemas.Decode(b); err != nil {
			t.Fatalf("decoding %s: %v", env.EventID, err)
		}
	}
	return out
}
