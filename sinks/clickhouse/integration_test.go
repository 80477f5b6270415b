package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// integration skips t when PROMOFLOW_SKIP_INTEGRATION=1. Otherwise an
// unreachable server fails the test: CI installs and starts it.
func integration(t testing.TB) {
	t.Helper()
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
}

// newSink returns a sink over a fresh database named after the test, and a
// reader of it; the database is dropped when the test ends.
func newSink(t testing.TB) (*clickhouse.Sink, *reader) {
	t.Helper()
	integration(t)
	cfg := clickhouse.Config{Addr: testenv.ClickHouseAddr(), Database: testenv.Name("pf")}
	ctx := testenv.Context(t, 30*time.Second)
	s, err := clickhouse.New(ctx, cfg)
	if err != nil {
		t.Fatalf("starting clickhouse sink on %s: %v", cfg.Addr, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	conn, err := ch.Open(&ch.Options{Protocol: ch.Native, Addr: []string{cfg.Addr}, MaxOpenConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+cfg.Database+"`"); err != nil {
			t.Errorf("dropping test database: %v", err)
		}
		_ = conn.Close()
	})
	return s, &reader{conn: conn, db: cfg.Database}
}

// reader queries the tables with FINAL, as analysts do.
type reader struct {
	conn driver.Conn
	db   string
}

func (r *reader) GrantRows(ctx context.Context) (map[string]sinktest.GrantRow, int, error) {
	res, err := r.conn.Query(ctx, "SELECT result_id, claim_event_id, app_id, batch_id, user_id, status, reason, coupon_id, grant_seq, "+
		"claimed_at, claimed_at_ms, decided_at, decided_at_ms FROM `"+r.db+"`.coupon_grants_final")
	if err != nil {
		return nil, 0, fmt.Errorf("reading coupon_grants_final: %w", err)
	}
	defer res.Close()
	rows := map[string]sinktest.GrantRow{}
	total := 0
	for res.Next() {
		var (
			g                    sinktest.GrantRow
			claimed, decided     time.Time
			claimedMs, decidedMs uint64
		)
		if err := res.Scan(&g.ResultID, &g.ClaimEventID, &g.AppID, &g.BatchID, &g.UserID, &g.Status, &g.Reason,
			&g.CouponID, &g.GrantSeq, &claimed, &claimedMs, &decided, &decidedMs); err != nil {
			return nil, 0, err
		}
		g.ClaimedAt = time.UnixMilli(int64(claimedMs)).UTC()
		g.DecidedAt = time.UnixMilli(int64(decidedMs)).UTC()
		if !claimed.Equal(g.ClaimedAt.Truncate(time.Second)) || !decided.Equal(g.DecidedAt.Truncate(time.Second)) {
			return nil, 0, fmt.Errorf("result %s: DateTime columns %s, %s disagree with milliseconds %d, %d",
				g.ResultID, claimed, decided, claimedMs, decidedMs)
		}
		rows[g.ResultID] = g
		total++
	}
	return rows, total, res.Err()
}

// count returns the number of rows of query's single count() column.
func (r *reader) count(t *testing.T, ctx context.Context, query string) uint64 {
	t.Helper()
	var n uint64
	if err := r.conn.QueryRow(ctx, fmt.Sprintf(query, "`"+r.db+"`")).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestIntegrationClickHouseConformance(t *testing.T) {
	integration(t)
	sinktest.Run(t, func(t *testing.T) (sinktest.Sink, sinktest.Reader) {
		return newSink(t)
	})
}

func TestIntegrationClickHouseFinalCollapsesReplays(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	events := sinktest.Grants(t, "final", 100)
	for range 3 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.count(t, ctx, "SELECT count() FROM %s.coupon_grants FINAL"); n != 100 {
		t.Errorf("coupon_grants FINAL holds %d rows, want 100", n)
	}
	if n := r.count(t, ctx, "SELECT count() FROM %s.events_raw FINAL"); n != 100 {
		t.Errorf("events_raw FINAL holds %d rows, want 100", n)
	}
	if n := r.count(t, ctx, "SELECT count() FROM %s.coupon_grants"); n < 100 || n > 300 {
		t.Errorf("coupon_grants without FINAL holds %d rows, want 100 to 300", n)
	}
	// A merge makes the collapse physical.
	if err := r.conn.Exec(ctx, "OPTIMIZE TABLE `"+r.db+"`.coupon_grants FINAL"); err != nil {
		t.Fatal(err)
	}
	if n := r.count(t, ctx, "SELECT count() FROM %s.coupon_grants"); n != 100 {
		t.Errorf("coupon_grants after OPTIMIZE holds %d rows, want 100", n)
	}
}

func TestIntegrationClickHouseEventsRaw(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	grants := sinktest.Grants(t, "raw", 3)
	claim, err := schemas.New("claim-1", "app-0", sinktest.Epoch.Add(1500*time.Microsecond),
		schemas.ClaimRequested{BatchID: "b-1", UserID: "u-1", Channel: `x'); DROP TABLE t; -- 🎉`})
	if err != nil {
		t.Fatal(err)
	}
	events := append(append([]*schemas.Envelope{}, grants...), claim)
	for range 2 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.conn.Query(ctx, "SELECT event_id, app_id, type, version, key, occurred_at_ms, payload FROM `"+r.db+"`.events_raw_final")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	got := map[string]*schemas.Envelope{}
	for res.Next() {
		var (
			e       schemas.Envelope
			version uint32
			ms      uint64
			payload string
		)
		if err := res.Scan(&e.EventID, &e.AppID, &e.Type, &version, &e.Key, &ms, &payload); err != nil {
			t.Fatal(err)
		}
		e.Version = int(version)
		e.OccurredAt = time.UnixMilli(int64(ms)).UTC()
		e.Payload = []byte(payload)
		if _, dup := got[e.EventID]; dup {
			t.Errorf("event %s stored twice", e.EventID)
		}
		got[e.EventID] = &e
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(events) {
		t.Errorf("events_raw_final holds %d events, want %d", len(got), len(events))
	}
	for _, want := range events {
		g, ok := got[want.EventID]
		if !ok {
			t.Errorf("event %s missing from events_raw", want.EventID)
			continue
		}
		w := *want
		w.OccurredAt = w.OccurredAt.Truncate(time.Millisecond)
		wb, _ := w.Encode()
		gb, _ := g.Encode()
		if string(wb) != string(gb) {
			t.Errorf("events_raw row\n%s\nwant\n%s", gb, wb)
		}
	}
	if n := r.count(t, ctx, "SELECT count() FROM %s.coupon_grants FINAL"); n != uint64(len(grants)) {
		t.Errorf("coupon_grants holds %d rows, want %d: only grant decisions belong there", n, len(grants))
	}
}

func TestIntegrationClickHouseClampsTimes(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	g := schemas.GrantDecided{
		ClaimEventID: "old-claim", BatchID: "b", UserID: "u", Status: schemas.StatusRejected, Reason: schemas.RejectExpired,
		ClaimedAt: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
		DecidedAt: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if err := s.WriteBatch(ctx, []*schemas.Envelope{sinktest.Grant(t, "app", g)}); err != nil {
		t.Fatalf("writing times outside DateTime's range: %v", err)
	}
	rows, _, err := r.GrantRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range rows {
		if !row.ClaimedAt.Equal(time.Unix(0, 0)) || row.DecidedAt.Year() != 2105 {
			t.Errorf("stored claimed_at %s, decided_at %s; want them clamped to 1970 and 2105", row.ClaimedAt, row.DecidedAt)
		}
	}
	if len(rows) != 1 {
		t.Errorf("stored %d rows, want 1", len(rows))
	}
}

func TestIntegrationClickHouseNewIsIdempotent(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	again, err := clickhouse.New(ctx, clickhouse.Config{Addr: testenv.ClickHouseAddr(), Database: r.db})
	if err != nil {
		t.Fatalf("restarting over existing tables: %v", err)
	}
	defer again.Close()
	events := sinktest.Grants(t, "restart", 10)
	if err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	if err := again.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	if n := r.count(t, ctx, "SELECT count() FROM %s.coupon_grants_final"); n != 10 {
		t.Errorf("coupon_grants_final holds %d rows, want 10", n)
	}
}
