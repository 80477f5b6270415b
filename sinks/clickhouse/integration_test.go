package clickhouse_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
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

// resultTables names the table of each result type.
var resultTables = map[string]string{
	schemas.TypeLotteryActivityCommitted: "lottery_activities",
	schemas.TypeLotteryEntryRecorded:     "lottery_entries",
	schemas.TypeLotteryDrawCompleted:     "lottery_draws",
	schemas.TypeLotteryPrizeAwarded:      "lottery_awards",
	schemas.TypeGiftMatchDecided:         "gift_matches",
	schemas.TypeGiftMemberRecorded:       "gift_members",
	schemas.TypeCouponStateChanged:       "coupon_operations",
	schemas.TypeNotificationRequested:    "notifications",

	schemas.TypeReferralBound:                "referral_bindings",
	schemas.TypeReferralQualificationDecided: "referral_qualifications",
	schemas.TypeReferralRewardGranted:        "referral_rewards",
	schemas.TypeRecommendationMade:           "recommendations",
}

// ResultRows reads every column of eventType's _final view by name,
// independently of how the sink maps them.
func (r *reader) ResultRows(ctx context.Context, eventType string) (map[string]sinktest.ResultRow, int, error) {
	view := resultTables[eventType] + "_final"
	res, err := r.conn.Query(ctx, "SELECT * FROM `"+r.db+"`."+view)
	if err != nil {
		return nil, 0, fmt.Errorf("reading %s: %w", view, err)
	}
	defer res.Close()
	types := res.ColumnTypes()
	rows := map[string]sinktest.ResultRow{}
	total := 0
	for res.Next() {
		ptrs := make([]any, len(types))
		for i, ct := range types {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := res.Scan(ptrs...); err != nil {
			return nil, 0, err
		}
		cols := make(map[string]any, len(types))
		for i, ct := range types {
			cols[ct.Name()] = reflect.ValueOf(ptrs[i]).Elem().Interface()
		}
		row, err := sinktest.ColumnsRow(eventType, cols)
		if err != nil {
			return nil, 0, fmt.Errorf("reading %s: %w", view, err)
		}
		rows[row.ResultID] = row
		total++
	}
	return rows, total, res.Err()
}

// CouponStates reads coupon_states_final, times from their milliseconds.
func (r *reader) CouponStates(ctx context.Context) (map[string]sinktest.CouponState, int, error) {
	res, err := r.conn.Query(ctx, "SELECT coupon_id, app_id, user_id, batch_id, state, order_id, seq, valid_from_ms, "+
		"expires_at_ms, lock_deadline_ms, has_lock_deadline, updated_at_ms FROM `"+r.db+"`.coupon_states_final")
	if err != nil {
		return nil, 0, fmt.Errorf("reading coupon_states_final: %w", err)
	}
	defer res.Close()
	rows := map[string]sinktest.CouponState{}
	total := 0
	for res.Next() {
		var (
			c                                        sinktest.CouponState
			seq, validFrom, expiresAt, lock, updated uint64
			hasLock                                  uint8
		)
		if err := res.Scan(&c.CouponID, &c.AppID, &c.UserID, &c.BatchID, &c.State, &c.OrderID, &seq,
			&validFrom, &expiresAt, &lock, &hasLock, &updated); err != nil {
			return nil, 0, err
		}
		ms := func(v uint64) time.Time { return time.UnixMilli(int64(v)).UTC() }
		c.Seq, c.ValidFrom, c.ExpiresAt, c.UpdatedAt = int64(seq), ms(validFrom), ms(expiresAt), ms(updated)
		if hasLock == 1 {
			at := ms(lock)
			c.LockDeadline = &at
		}
		rows[c.CouponID] = c
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
	// A merge makes the collapse physical. OPTIMIZE returns without
	// merging when a background merge holds the parts, so ask until done.
	var n uint64
	for range 50 {
		if err := r.conn.Exec(ctx, "OPTIMIZE TABLE `"+r.db+"`.coupon_grants FINAL"); err != nil {
			t.Fatal(err)
		}
		if n = r.count(t, ctx, "SELECT count() FROM %s.coupon_grants"); n == 100 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n != 100 {
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

func TestIntegrationClickHouseResultTablesCollapseReplays(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	events := sinktest.Results(t, "final", 20*len(sinktest.ResultTypes)) // 20 of each type
	for range 3 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	for _, table := range resultTables {
		if n := r.count(t, ctx, "SELECT count() FROM %s."+table+" FINAL"); n != 20 {
			t.Errorf("%s FINAL holds %d rows, want 20", table, n)
		}
		if n := r.count(t, ctx, "SELECT count() FROM %s."+table); n < 20 || n > 60 {
			t.Errorf("%s without FINAL holds %d rows, want 20 to 60", table, n)
		}
	}
	// A later revision of an activity replaces the earlier one, whatever
	// the order in which they arrive.
	var a schemas.ActivityCommitted
	if err := events[0].DecodePayload(&a); err != nil {
		t.Fatal(err)
	}
	older := a
	a.Revision, older.Revision = 7, 6
	for _, rev := range []schemas.ActivityCommitted{a, older} {
		if err := s.WriteBatch(ctx, []*schemas.Envelope{sinktest.Result(t, "app-0", a.CommittedAt, rev)}); err != nil {
			t.Fatal(err)
		}
	}
	var revision uint64
	q := "SELECT revision FROM `" + r.db + "`.lottery_activities_final WHERE result_id = '" + a.ResultID + "'" // hex
	if err := r.conn.QueryRow(ctx, q).Scan(&revision); err != nil {
		t.Fatal(err)
	}
	if revision != 7 {
		t.Errorf("lottery_activities_final holds revision %d of %s, want 7", revision, a.ActivityID)
	}
}

func TestIntegrationClickHouseLotteryDrawStats(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	at := sinktest.Epoch
	id := func(key string) string { return schemas.ResultID("stats", "app", key) }
	entry := func(key, activity, user, status, reason, outcome string) *schemas.Envelope {
		return sinktest.Result(t, "app", at, schemas.EntryRecorded{
			ResultID: id(key), EntryEventID: key, ActivityID: activity, UserID: user, Status: status,
			Reason: reason, Outcome: outcome, Roll: -1, OccurredAt: at, RecordedAt: at,
		})
	}
	award := func(activity, user string, rank int64, source string) *schemas.Envelope {
		return sinktest.Result(t, "app", at, schemas.PrizeAwarded{
			ResultID: id(activity + "/" + user), ActivityID: activity, UserID: user, TierID: "gold",
			PrizeKind: schemas.PrizeGoods, Source: source, SourceID: id("draw"), Rank: rank, AwardedAt: at,
		})
	}
	events := []*schemas.Envelope{
		// act-1: u1 joined twice (won once), u2 once; u3 and u4 refused.
		entry("e1", "act-1", "u1", schemas.EntryAccepted, "", schemas.OutcomeWon),
		entry("e2", "act-1", "u1", schemas.EntryAccepted, "", schemas.OutcomeLost),
		entry("e3", "act-1", "u2", schemas.EntryAccepted, "", schemas.OutcomeLost),
		entry("e4", "act-1", "u3", schemas.EntryRejected, schemas.RejectLimitReached, ""),
		entry("e5", "act-1", "u4", schemas.EntryRejected, schemas.RejectEnded, ""),
		award("act-1", "u1", 0, "instant"),
		// act-2: a draw, whose entries are not in this batch.
		award("act-2", "u1", 1, "draw"),
		award("act-2", "u7", 2, "draw"),
	}
	for range 2 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	res, err := r.conn.Query(ctx, "SELECT activity_id, participants, entries, rejected_entries, awards, instant_wins FROM `"+
		r.db+"`.lottery_draw_stats ORDER BY activity_id")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	var got []string
	for res.Next() {
		var activity string
		var participants, entries, rejected, awards, instant uint64
		if err := res.Scan(&activity, &participants, &entries, &rejected, &awards, &instant); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s participants=%d entries=%d rejected=%d awards=%d instant_wins=%d",
			activity, participants, entries, rejected, awards, instant))
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"act-1 participants=2 entries=5 rejected=2 awards=1 instant_wins=1",
		"act-2 participants=0 entries=0 rejected=0 awards=2 instant_wins=0",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lottery_draw_stats =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestIntegrationClickHouseThroughputReader(t *testing.T) {
	integration(t)
	sinktest.RunThroughputReader(t, func(t *testing.T) sinktest.ThroughputSink {
		s, _ := newSink(t)
		return s
	})
}
