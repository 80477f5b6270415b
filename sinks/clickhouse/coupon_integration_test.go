package clickhouse_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// couponStory makes grant decisions and coupon operations, each a second
// after the one before.
type couponStory struct {
	t      *testing.T
	n      int
	events []*schemas.Envelope
}

func (cs *couponStory) at() time.Time {
	cs.n++
	return sinktest.Epoch.Add(time.Duration(cs.n)*time.Second + 250*time.Millisecond)
}

// decide records the decision on claim of user in batch: granted as coupon,
// or rejected for reason when coupon is empty.
func (cs *couponStory) decide(claim, batch, user, coupon, reason string) {
	at := cs.at()
	g := schemas.GrantDecided{ClaimEventID: claim, BatchID: batch, UserID: user, Status: schemas.StatusGranted,
		CouponID: coupon, GrantSeq: int64(cs.n), ClaimedAt: at.Add(-time.Millisecond), DecidedAt: at}
	if coupon == "" {
		g.Status, g.Reason, g.GrantSeq = schemas.StatusRejected, reason, 0
	}
	cs.events = append(cs.events, sinktest.Grant(cs.t, "app", g))
}

// op records an operation on coupon of user in batch, applied when reason
// is empty, leaving the coupon in state at seq.
func (cs *couponStory) op(coupon, user, batch, op, reason, state string, seq int64) *schemas.Envelope {
	at := cs.at()
	c := schemas.StateChanged{
		ResultID: schemas.ResultID(schemas.TypeCouponStateChanged, "app", fmt.Sprint(cs.n)), CouponID: coupon,
		UserID: user, BatchID: batch, Op: op, Status: schemas.OpApplied, Reason: reason, State: state, Seq: seq,
		ValidFrom: sinktest.Epoch, ExpiresAt: sinktest.Epoch.Add(30 * 24 * time.Hour), ChangedAt: at,
	}
	if reason != "" {
		c.Status = schemas.OpRejected
	}
	if op == schemas.OpLock && reason == "" {
		deadline := at.Add(15 * time.Minute)
		c.OrderID, c.LockDeadline = "order-"+coupon, &deadline
	}
	env := sinktest.Result(cs.t, "app", at, c)
	cs.events = append(cs.events, env)
	return env
}

// queryRows returns what scan makes of every row of q, whose %s is the
// quoted database.
func queryRows(t *testing.T, r *reader, q string, scan func(driver.Rows) (string, error)) []string {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	res, err := r.conn.Query(ctx, fmt.Sprintf(q, "`"+r.db+"`"))
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer res.Close()
	var out []string
	for res.Next() {
		line, err := scan(res)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out = append(out, line)
	}
	if err := res.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

func expectLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s =\n%s\nwant\n%s", what, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestIntegrationClickHouseCouponStates(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	cs := &couponStory{t: t}
	grant := cs.op("k-1", "u-1", "b-1", schemas.OpGrant, "", schemas.CouponAvailable, 1)
	lock := cs.op("k-1", "u-1", "b-1", schemas.OpLock, "", schemas.CouponLocked, 2)
	used := cs.op("k-1", "u-1", "b-1", schemas.OpConfirm, "", schemas.CouponUsed, 3)
	refused := cs.op("k-1", "u-1", "b-1", schemas.OpCancel, schemas.RejectAlreadyUsed, schemas.CouponAvailable, 9)
	// The newest first, then the older ones, each batch twice, and the
	// rejection (which claims a higher seq) last.
	for _, batch := range [][]*schemas.Envelope{{used}, {lock, grant}, {grant, lock, used}, {refused}} {
		for range 2 {
			if err := s.WriteBatch(ctx, batch); err != nil {
				t.Fatal(err)
			}
		}
	}
	scan := func(rows driver.Rows) (string, error) {
		var coupon, state string
		var seq uint64
		err := rows.Scan(&coupon, &state, &seq)
		return fmt.Sprintf("%s %s %d", coupon, state, seq), err
	}
	const q = "SELECT coupon_id, state, seq FROM %s.coupon_states_final"
	expectLines(t, "coupon_states_final", queryRows(t, r, q, scan), []string{"k-1 used 3"})
	if n := r.count(t, ctx, "SELECT count() FROM %s.coupon_operations FINAL"); n != 4 {
		t.Errorf("coupon_operations FINAL holds %d rows, want 4", n)
	}
	// OPTIMIZE returns without merging when a background merge holds the
	// parts, so ask until the merge has happened.
	var merged []string
	for range 50 {
		if err := r.conn.Exec(ctx, "OPTIMIZE TABLE `"+r.db+"`.coupon_states FINAL"); err != nil {
			t.Fatal(err)
		}
		if merged = queryRows(t, r, "SELECT coupon_id, state, seq FROM %s.coupon_states", scan); len(merged) == 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	expectLines(t, "coupon_states after OPTIMIZE", merged, []string{"k-1 used 3"})
}

// writeCouponFunnel writes, twice, the claims and operations the view
// tests count:
//
//	b-1  u-1..u-3 granted k-1..k-3, u-4 refused; k-1 and k-2 used (k-2
//	     after a refused confirm), k-3 expired, k-1 refused once more
//	b-2  u-6 and u-7 refused
//	b-3  u-1 granted k-4, used
//	b-4  no decision in ClickHouse (retention): k-5 of u-5 granted and used
func writeCouponFunnel(t *testing.T) *reader {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	cs := &couponStory{t: t}
	cs.decide("c-1", "b-1", "u-1", "k-1", "")
	cs.decide("c-2", "b-1", "u-2", "k-2", "")
	cs.decide("c-3", "b-1", "u-3", "k-3", "")
	cs.decide("c-4", "b-1", "u-4", "", schemas.RejectOutOfStock)
	cs.decide("c-5", "b-2", "u-6", "", schemas.RejectUserLimit)
	cs.decide("c-6", "b-2", "u-7", "", schemas.RejectUserLimit)
	cs.decide("c-7", "b-3", "u-1", "k-4", "")
	for _, k := range []struct{ coupon, user, batch string }{
		{"k-1", "u-1", "b-1"}, {"k-2", "u-2", "b-1"}, {"k-3", "u-3", "b-1"}, {"k-4", "u-1", "b-3"}, {"k-5", "u-5", "b-4"},
	} {
		cs.op(k.coupon, k.user, k.batch, schemas.OpGrant, "", schemas.CouponAvailable, 1)
	}
	cs.op("k-1", "u-1", "b-1", schemas.OpLock, "", schemas.CouponLocked, 2)
	cs.op("k-1", "u-1", "b-1", schemas.OpConfirm, "", schemas.CouponUsed, 3)
	cs.op("k-1", "u-1", "b-1", schemas.OpConfirm, schemas.RejectAlreadyUsed, schemas.CouponUsed, 3)
	cs.op("k-2", "u-2", "b-1", schemas.OpLock, "", schemas.CouponLocked, 2)
	cs.op("k-2", "u-2", "b-1", schemas.OpConfirm, schemas.RejectLockedByOtherOrder, schemas.CouponLocked, 2)
	cs.op("k-2", "u-2", "b-1", schemas.OpConfirm, "", schemas.CouponUsed, 3)
	cs.op("k-3", "u-3", "b-1", schemas.OpExpire, "", schemas.CouponExpired, 2)
	cs.op("k-4", "u-1", "b-3", schemas.OpConfirm, "", schemas.CouponUsed, 2)
	cs.op("k-5", "u-5", "b-4", schemas.OpConfirm, "", schemas.CouponUsed, 2)
	for range 2 {
		if err := s.WriteBatch(ctx, cs.events); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

func TestIntegrationClickHouseCouponBatchStats(t *testing.T) {
	r := writeCouponFunnel(t)
	scan := func(rows driver.Rows) (string, error) {
		var batch string
		var claims, grants, rejections, redemptions, expirations uint64
		var conversion float64
		err := rows.Scan(&batch, &claims, &grants, &rejections, &redemptions, &expirations, &conversion)
		return fmt.Sprintf("%s claims=%d grants=%d rejections=%d redemptions=%d expirations=%d conversion=%.4f",
			batch, claims, grants, rejections, redemptions, expirations, conversion), err
	}
	got := queryRows(t, r, "SELECT batch_id, claims, grants, rejections, redemptions, expirations, conversion "+
		"FROM %s.coupon_batch_stats ORDER BY batch_id", scan)
	expectLines(t, "coupon_batch_stats", got, []string{
		"b-1 claims=4 grants=3 rejections=1 redemptions=2 expirations=1 conversion=0.6667",
		"b-2 claims=2 grants=0 rejections=2 redemptions=0 expirations=0 conversion=0.0000",
		"b-3 claims=1 grants=1 rejections=0 redemptions=1 expirations=0 conversion=1.0000",
		"b-4 claims=0 grants=0 rejections=0 redemptions=1 expirations=0 conversion=0.0000",
	})

	// The queries documented with the view.
	scan3 := func(rows driver.Rows) (string, error) {
		var batch string
		var a, b, c uint64
		err := rows.Scan(&batch, &a, &b, &c)
		return fmt.Sprintf("%s %d %d %d", batch, a, b, c), err
	}
	expectLines(t, "most claimed batches", queryRows(t, r, "SELECT batch_id, claims, grants, redemptions FROM %s.coupon_batch_stats\n"+
		"ORDER BY claims DESC, batch_id LIMIT 10", scan3), []string{"b-1 4 3 2", "b-2 2 0 0", "b-3 1 1 1", "b-4 0 0 1"})
	redeemed := func(rows driver.Rows) (string, error) {
		var batch string
		var redemptions, grants uint64
		var conversion float64
		err := rows.Scan(&batch, &redemptions, &grants, &conversion)
		return fmt.Sprintf("%s %d %d %.2f", batch, redemptions, grants, conversion), err
	}
	expectLines(t, "most redeemed batches", queryRows(t, r, "SELECT batch_id, redemptions, grants, conversion FROM %s.coupon_batch_stats\n"+
		"ORDER BY redemptions DESC, batch_id LIMIT 10", redeemed), []string{"b-1 2 3 0.67", "b-3 1 1 1.00", "b-4 1 0 0.00", "b-2 0 0 0.00"})
}

func TestIntegrationClickHouseCouponTopUsers(t *testing.T) {
	r := writeCouponFunnel(t)
	scan := func(rows driver.Rows) (string, error) {
		var user string
		var operations, grants, redemptions uint64
		err := rows.Scan(&user, &operations, &grants, &redemptions)
		return fmt.Sprintf("%s operations=%d grants=%d redemptions=%d", user, operations, grants, redemptions), err
	}
	// The query documented with the view.
	expectLines(t, "most active users", queryRows(t, r, "SELECT user_id, operations, grants, redemptions FROM %s.coupon_top_users\n"+
		"ORDER BY operations DESC, user_id LIMIT 10", scan), []string{
		"u-1 operations=6 grants=2 redemptions=2",
		"u-2 operations=4 grants=1 redemptions=1",
		"u-3 operations=2 grants=1 redemptions=0",
		"u-5 operations=2 grants=0 redemptions=1",
		"u-4 operations=0 grants=0 redemptions=0",
		"u-6 operations=0 grants=0 redemptions=0",
		"u-7 operations=0 grants=0 redemptions=0",
	})
}
