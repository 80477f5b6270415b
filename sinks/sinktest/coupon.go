package sinktest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// CouponSink is a sink that reads coupons back, as the system of record
// does.
type CouponSink interface {
	Sink
	sinks.CouponReader
}

// RunCouponReader runs the read suite of [sinks.CouponReader] and of the
// rules the system of record keeps coupons by: the state of the highest
// seq, whatever the order operations arrive in; rejected operations in the
// record but not in the state; one reminder per user, batch and day.
// newSink returns a new sink over an empty store and a Reader of that
// store, arranging with t.Cleanup for the store to be removed; the suite
// closes the sink. Each case starts from an empty store.
func RunCouponReader(t *testing.T, newSink func(t *testing.T) (CouponSink, Reader)) {
	runCases(t, newSink, []suiteCase[CouponSink]{
		{"OutOfOrderSeq", testOutOfOrderSeq},
		{"Replay", testCouponReplay},
		{"RejectedOps", testRejectedOps},
		{"StatesFilter", testStatesFilter},
		{"ManyUsers", testCouponUsers},
		{"OpsOrder", testOpsOrder},
		{"HostileValues", testHostileCoupons},
		{"MixedBatch", testMixedCouponBatch},
		{"ReminderPerUserBatchDay", testReminderPerDay},
	})
}

// couponStates returns the coupon states events should leave: for each
// coupon, its applied operation with the highest seq (the first of
// equals), as stored.
func couponStates(tb testing.TB, events []*schemas.Envelope) map[string]CouponState {
	tb.Helper()
	out := map[string]CouponState{}
	for _, env := range events {
		if env.Type != schemas.TypeCouponStateChanged {
			continue
		}
		op := decodeResult(tb, env).Result.(schemas.StateChanged)
		if old, ok := out[op.CouponID]; op.Status != schemas.OpApplied || ok && op.Seq <= old.Seq {
			continue
		}
		out[op.CouponID] = CouponState{AppID: env.AppID, CouponRow: sinks.CouponRowOf(op)}
	}
	return out
}

// diffState describes how got differs from want, or returns "".
func diffState(want, got CouponState) string {
	var out string
	if w, g := jsonOf(want), jsonOf(got); w != g {
		out += fmt.Sprintf(" stored %s, want %s;", g, w)
	}
	if bad := notUTC(got.CouponRow); len(bad) > 0 {
		out += fmt.Sprintf(" times not in UTC: %v;", bad)
	}
	return out
}

// couponStart is when the read suite's coupons become valid; its
// microseconds are truncated by the store.
var couponStart = Epoch.Add(-20*24*time.Hour + 777*time.Microsecond)

// couponHistory makes the read suite's coupon operations, each a minute and
// a microsecond after the one before.
type couponHistory struct {
	tb testing.TB
	n  int
}

// op returns the event of an operation on a coupon of user: applied when
// reason is empty, otherwise rejected for reason. state and seq are the
// coupon's after it; an applied lock has a deadline. order, if any, is the
// order the operation is for.
func (h *couponHistory) op(user, coupon, op, reason, state string, seq int64, order string) *schemas.Envelope {
	h.tb.Helper()
	h.n++
	at := couponStart.Add(time.Duration(h.n)*time.Minute + time.Duration(h.n)*time.Microsecond)
	c := schemas.StateChanged{
		ResultID: schemas.ResultID(schemas.TypeCouponStateChanged, "coupon-suite", fmt.Sprint(h.n)),
		CouponID: coupon, UserID: user, BatchID: "batch-1", Op: op,
		Status: schemas.OpApplied, Reason: reason, State: state, Seq: seq, OrderID: order,
		SourceEventID: fmt.Sprintf("request-%d", h.n),
		ValidFrom:     couponStart, ExpiresAt: couponStart.Add(30 * 24 * time.Hour), ChangedAt: at,
	}
	if reason != "" {
		c.Status = schemas.OpRejected
	}
	if order != "" {
		c.OrderAmount = 12_345
	}
	if op == schemas.OpLock && reason == "" {
		deadline := at.Add(15*time.Minute + time.Microsecond)
		c.LockDeadline = &deadline
	}
	return Result(h.tb, "app-coupons", at, c)
}

// lifecycle returns the first n (up to 5) operations of a coupon's life:
// granted (seq 1), locked by order o-1 (2), cancelled (3), locked by o-2
// (4), used by it (5).
func (h *couponHistory) lifecycle(user, coupon string, n int) []*schemas.Envelope {
	ops := []func() *schemas.Envelope{
		func() *schemas.Envelope {
			return h.op(user, coupon, schemas.OpGrant, "", schemas.CouponAvailable, 1, "")
		},
		func() *schemas.Envelope {
			return h.op(user, coupon, schemas.OpLock, "", schemas.CouponLocked, 2, "o-1")
		},
		func() *schemas.Envelope {
			return h.op(user, coupon, schemas.OpCancel, "", schemas.CouponAvailable, 3, "o-1")
		},
		func() *schemas.Envelope {
			return h.op(user, coupon, schemas.OpLock, "", schemas.CouponLocked, 4, "o-2")
		},
		func() *schemas.Envelope {
			return h.op(user, coupon, schemas.OpConfirm, "", schemas.CouponUsed, 5, "o-2")
		},
	}
	out := make([]*schemas.Envelope, n)
	for i := range n {
		out[i] = ops[i]()
	}
	return out
}

// couponRows returns the coupon rows the operations ops make, the state of each
// coupon's applied operation with the highest seq, sorted by coupon id.
func couponRows(tb testing.TB, ops []*schemas.Envelope) []sinks.CouponRow {
	tb.Helper()
	var out []sinks.CouponRow
	for _, st := range couponStates(tb, ops) {
		out = append(out, st.CouponRow)
	}
	sinks.SortCoupons(out)
	return out
}

// opsOf returns the operations of events as stored, sorted by sinks.SortOps.
func opsOf(tb testing.TB, events []*schemas.Envelope) []schemas.StateChanged {
	tb.Helper()
	var out []schemas.StateChanged
	for _, env := range events {
		out = append(out, decodeResult(tb, env).Result.(schemas.StateChanged))
	}
	sinks.SortOps(out)
	return out
}

// expectCoupons checks UserCoupons(user, states...) against want.
func expectCoupons(t *testing.T, ctx context.Context, s CouponSink, user string, states []string, want []sinks.CouponRow) {
	t.Helper()
	got, err := s.UserCoupons(ctx, user, states...)
	expectList(t, fmt.Sprintf("UserCoupons(%q, %q)", user, states), got, err, want)
}

// expectOps checks CouponOps(user, coupon) against the operations want.
func expectOps(t *testing.T, ctx context.Context, s CouponSink, user, coupon string, want []*schemas.Envelope) {
	t.Helper()
	got, err := s.CouponOps(ctx, user, coupon)
	expectList(t, fmt.Sprintf("CouponOps(%q, %q)", user, coupon), got, err, opsOf(t, want))
}

// expectState checks that UserCoupons shows coupon, among user's, in state
// with seq, whatever else the full comparisons check.
func expectState(t *testing.T, ctx context.Context, s CouponSink, user, coupon, state string, seq int64) {
	t.Helper()
	got, err := s.UserCoupons(ctx, user)
	if err != nil {
		t.Fatalf("UserCoupons(%q): %v", user, err)
	}
	i := slices.IndexFunc(got, func(c sinks.CouponRow) bool { return c.CouponID == coupon })
	if i < 0 || got[i].State != state || got[i].Seq != seq {
		t.Errorf("UserCoupons(%q) = %s; want coupon %s %s at seq %d", user, jsonOf(got), coupon, state, seq)
	}
}

func testOutOfOrderSeq(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	h := &couponHistory{tb: t}
	// c-1: seq 3, then 2, then 1, each in its own batch.
	c1 := h.lifecycle("u-1", "c-1", 3)
	for i := 2; i >= 0; i-- {
		write(t, ctx, s, c1[i:i+1])
		expectState(t, ctx, s, "u-1", "c-1", schemas.CouponAvailable, 3)
	}
	// c-2: all in one batch, out of order.
	c2 := h.lifecycle("u-1", "c-2", 5)
	write(t, ctx, s, []*schemas.Envelope{c2[3], c2[4], c2[1], c2[0], c2[2]})
	expectState(t, ctx, s, "u-1", "c-2", schemas.CouponUsed, 5)
	// c-3: the grant, then the rest with the newest first.
	c3 := h.lifecycle("u-1", "c-3", 4)
	write(t, ctx, s, c3[:1])
	write(t, ctx, s, []*schemas.Envelope{c3[3], c3[2], c3[1]})
	expectState(t, ctx, s, "u-1", "c-3", schemas.CouponLocked, 4)
	all := slices.Concat(c1, c2, c3)
	expectCoupons(t, ctx, s, "u-1", nil, couponRows(t, all))
	expectRows(t, ctx, r, all)
}

func testCouponReplay(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	h := &couponHistory{tb: t}
	var all []*schemas.Envelope
	for u := range 3 {
		for c := range 4 {
			all = append(all, h.lifecycle(fmt.Sprintf("u-%d", u), fmt.Sprintf("c-%d-%d", u, c), 2+c)...)
		}
	}
	reversed := slices.Clone(all)
	slices.Reverse(reversed)
	write(t, ctx, s, all)
	write(t, ctx, s, all)
	write(t, ctx, s, redecode(t, all))
	write(t, ctx, s, reversed)
	for u := range 3 {
		user := fmt.Sprintf("u-%d", u)
		var mine []*schemas.Envelope
		for _, env := range all {
			if env.Key == user {
				mine = append(mine, env)
			}
		}
		expectCoupons(t, ctx, s, user, nil, couponRows(t, mine))
		for c := range 4 {
			coupon := fmt.Sprintf("c-%d-%d", u, c)
			expectOps(t, ctx, s, user, coupon, slices.DeleteFunc(slices.Clone(mine), func(env *schemas.Envelope) bool {
				return decodeResult(t, env).Result.(schemas.StateChanged).CouponID != coupon
			}))
		}
	}
	expectState(t, ctx, s, "u-2", "c-2-3", schemas.CouponUsed, 5)
	expectRows(t, ctx, r, all)
}

func testRejectedOps(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	h := &couponHistory{tb: t}
	ops := h.lifecycle("u-1", "c-1", 2) // locked by o-1 at seq 2
	ops = append(ops,
		h.op("u-1", "c-1", schemas.OpLock, schemas.RejectAlreadyLocked, schemas.CouponLocked, 2, "o-2"),
		h.op("u-1", "c-1", schemas.OpConfirm, schemas.RejectLockedByOtherOrder, schemas.CouponLocked, 2, "o-2"),
		// A rejection never moves the state, even one claiming a higher
		// seq and another state.
		h.op("u-1", "c-1", schemas.OpCancel, schemas.RejectNotOwner, schemas.CouponAvailable, 9, "o-3"),
	)
	// c-2 was never granted: its record holds the rejection, and it has
	// no state.
	unknown := h.op("u-1", "c-2", schemas.OpLock, schemas.RejectUnknownCoupon, "", 0, "o-4")
	write(t, ctx, s, ops[:2])
	write(t, ctx, s, append(ops[2:], unknown))
	expectState(t, ctx, s, "u-1", "c-1", schemas.CouponLocked, 2)
	expectCoupons(t, ctx, s, "u-1", nil, couponRows(t, ops[1:2]))
	expectOps(t, ctx, s, "u-1", "c-1", ops)
	expectOps(t, ctx, s, "u-1", "c-2", []*schemas.Envelope{unknown})
	expectRows(t, ctx, r, append(ops, unknown))
}

func testStatesFilter(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	h := &couponHistory{tb: t}
	// Ids whose bytewise order is not their natural order, in every state.
	lifecycles := map[string]int{"c-10": 1, "c-9": 2, "C-1": 5, "c-1 ": 3, "c.2": 4, "c-2": 1}
	var all []*schemas.Envelope
	for _, coupon := range slices.Sorted(maps.Keys(lifecycles)) {
		all = append(all, h.lifecycle("u-1", coupon, lifecycles[coupon])...)
	}
	all = append(all, h.op("u-1", "c-0", schemas.OpExpire, "", schemas.CouponExpired, 2, ""))
	write(t, ctx, s, all)
	want := couponRows(t, all)
	if ids := couponIDs(want); !slices.Equal(ids, []string{"C-1", "c-0", "c-1 ", "c-10", "c-2", "c-9", "c.2"}) {
		t.Fatalf("the suite's coupons are %q", ids)
	}
	in := func(states ...string) []sinks.CouponRow {
		return slices.DeleteFunc(slices.Clone(want), func(c sinks.CouponRow) bool { return !slices.Contains(states, c.State) })
	}
	for _, states := range [][]string{
		nil,
		{schemas.CouponAvailable},
		{schemas.CouponLocked},
		{schemas.CouponUsed, schemas.CouponExpired},
		{schemas.CouponAvailable, schemas.CouponLocked, schemas.CouponUsed, schemas.CouponExpired},
		{schemas.CouponAvailable, schemas.CouponAvailable},
		{"no-such-state"},
		{"' OR '1'='1"},
	} {
		want := want
		if states != nil {
			want = in(states...)
		}
		expectCoupons(t, ctx, s, "u-1", states, want)
	}
	expectCoupons(t, ctx, s, "u-2", nil, nil)
	expectCoupons(t, ctx, s, "", nil, nil)
	expectRows(t, ctx, r, all)
}

func couponIDs(rows []sinks.CouponRow) []string {
	out := make([]string, len(rows))
	for i, c := range rows {
		out[i] = c.CouponID
	}
	return out
}

// testCouponUsers spreads coupons over enough users that some share a shard
// table, and checks that each user reads only their own.
func testCouponUsers(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	h := &couponHistory{tb: t}
	byUser := map[string][]*schemas.Envelope{}
	var all []*schemas.Envelope
	for u := range 60 {
		user := fmt.Sprintf("user-%d", u)
		for c := range u % 4 {
			ops := h.lifecycle(user, fmt.Sprintf("coupon-%d-%d", u, c), 1+(u+c)%5)
			byUser[user] = append(byUser[user], ops...)
			all = append(all, ops...)
		}
	}
	write(t, ctx, s, all)
	for u := range 60 {
		user := fmt.Sprintf("user-%d", u)
		expectCoupons(t, ctx, s, user, nil, couponRows(t, byUser[user]))
		expectCoupons(t, ctx, s, user, []string{schemas.CouponLocked}, slices.DeleteFunc(couponRows(t, byUser[user]),
			func(c sinks.CouponRow) bool { return c.State != schemas.CouponLocked }))
	}
	// Another user's coupon has no operations for this one.
	expectOps(t, ctx, s, "user-1", "coupon-2-0", nil)
	expectRows(t, ctx, r, all)
}

func testOpsOrder(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	h := &couponHistory{tb: t}
	grant := h.op("u-1", "c-1", schemas.OpGrant, "", schemas.CouponAvailable, 1, "")
	// Rejections carry the seq of the state they met, so they sort
	// after the operation that made it, by time.
	early := h.op("u-1", "c-1", schemas.OpConfirm, schemas.RejectNotLocked, schemas.CouponAvailable, 1, "o-1")
	late := h.op("u-1", "c-1", schemas.OpCancel, schemas.RejectNotLocked, schemas.CouponAvailable, 1, "o-1")
	lock := h.op("u-1", "c-1", schemas.OpLock, "", schemas.CouponLocked, 2, "o-1")
	used := h.op("u-1", "c-1", schemas.OpConfirm, "", schemas.CouponUsed, 3, "o-1")
	again := h.op("u-1", "c-1", schemas.OpConfirm, schemas.RejectAlreadyUsed, schemas.CouponUsed, 3, "o-1")
	other := h.lifecycle("u-1", "c-2", 2)
	ops := []*schemas.Envelope{grant, early, late, lock, used, again}
	batch := slices.Concat(other, ops)
	slices.Reverse(batch)
	write(t, ctx, s, batch)
	got, err := s.CouponOps(ctx, "u-1", "c-1")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, op := range got {
		order = append(order, fmt.Sprintf("%s/%s/%d", op.Op, op.Status, op.Seq))
	}
	want := []string{"grant/applied/1", "confirm/rejected/1", "cancel/rejected/1", "lock/applied/2", "confirm/applied/3", "confirm/rejected/3"}
	if !slices.Equal(order, want) {
		t.Errorf("CouponOps(u-1, c-1) in order %q, want %q", order, want)
	}
	expectOps(t, ctx, s, "u-1", "c-1", ops)
	expectOps(t, ctx, s, "u-2", "c-1", nil)
	expectOps(t, ctx, s, "u-1", "c-3", nil)
	expectState(t, ctx, s, "u-1", "c-1", schemas.CouponUsed, 3)
	expectRows(t, ctx, r, batch)
}

func testHostileCoupons(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	h := &couponHistory{tb: t}
	var all []*schemas.Envelope
	// Users, coupons and orders carry the hostile values (all of at most
	// 32 characters), and so does a states filter.
	for i, v := range hostile {
		all = append(all, h.lifecycle(v, v, 1+i%5)...)
		all = append(all, h.op(v, v, schemas.OpLock, schemas.RejectAlreadyUsed, schemas.CouponUsed, 7, v))
	}
	write(t, ctx, s, all)
	write(t, ctx, s, all)
	for _, v := range hostile {
		var mine []*schemas.Envelope
		for _, env := range all {
			if env.Key == v {
				mine = append(mine, env)
			}
		}
		expectCoupons(t, ctx, s, v, nil, couponRows(t, mine))
		expectCoupons(t, ctx, s, v, []string{v}, nil)
		expectOps(t, ctx, s, v, v, mine)
	}
	expectRows(t, ctx, r, all)
}

// testMixedCouponBatch writes the grant decisions of a batch of claims,
// the grants' operations and the reminders of the granted coupons in one
// batch, as a sink reading several topics gets them.
func testMixedCouponBatch(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	var batch, kept []*schemas.Envelope
	for _, env := range Grants(t, "mixed", 12) {
		batch = append(batch, env)
		var g schemas.GrantDecided
		if err := env.DecodePayload(&g); err != nil {
			t.Fatal(err)
		}
		if g.Status != schemas.StatusGranted {
			continue
		}
		expires := g.DecidedAt.Add(7 * 24 * time.Hour)
		batch = append(batch, Result(t, env.AppID, g.DecidedAt, schemas.StateChanged{
			ResultID: schemas.ResultID(schemas.TypeCouponStateChanged, env.AppID, g.ResultID), CouponID: g.CouponID,
			UserID: g.UserID, BatchID: g.BatchID, Op: schemas.OpGrant, Status: schemas.OpApplied,
			State: schemas.CouponAvailable, Seq: 1, SourceEventID: g.ClaimEventID, ValidFrom: g.DecidedAt,
			ExpiresAt: expires, ChangedAt: g.DecidedAt,
		}), reminder(t, "due-"+g.CouponID, g.UserID, g.BatchID, expires.Add(-24*time.Hour), g.CouponID, sinks.ReminderTemplate))
	}
	kept = batch
	// Another template is a notification but not a reminder: the system
	// of record keeps none of it.
	batch = append(slices.Clone(batch), reminder(t, "other", "mixed-user-0", "b", Epoch, "", "order_shipped"))
	write(t, ctx, s, batch)
	write(t, ctx, s, redecode(t, batch))
	expectRows(t, ctx, r, kept)
	for _, env := range kept {
		if env.Type != schemas.TypeCouponStateChanged {
			continue
		}
		expectCoupons(t, ctx, s, env.Key, nil, couponRows(t, []*schemas.Envelope{env}))
	}
}

// reminder returns a notification.requested event of template for user
// about batch and coupon, due at due, whose id derives from name.
func reminder(tb testing.TB, name, user, batch string, due time.Time, coupon, template string) *schemas.Envelope {
	tb.Helper()
	n := schemas.NotificationRequested{
		NotificationID: schemas.ResultID(schemas.TypeNotificationRequested, "coupon-suite", name), UserID: user,
		Template: template, SubjectID: batch, CouponID: coupon, DueAt: due,
	}
	if coupon != "" {
		expires := due.Add(24 * time.Hour)
		n.ExpiresAt = &expires
	}
	return Result(tb, "app-reminders", due, n)
}

func testReminderPerDay(t *testing.T, ctx context.Context, s CouponSink, r Reader) {
	day := time.Date(2024, 2, 10, 0, 0, 0, 0, time.UTC)
	rem := func(name, user, batch string, due time.Time) *schemas.Envelope {
		return reminder(t, name, user, batch, due, "c-"+name, sinks.ReminderTemplate)
	}
	x := rem("x", "u-1", "b-1", day.Add(9*time.Hour))
	y := rem("y", "u-1", "b-1", day.Add(18*time.Hour)) // u-1's b-1 reminder of the day is x
	z := rem("z", "u-1", "b-1", day.Add(33*time.Hour)) // the next day
	w := rem("w", "u-1", "b-2", day.Add(9*time.Hour))  // another batch
	v := rem("v", "u-2", "b-1", day.Add(9*time.Hour))  // another user
	// The last millisecond of a day (UTC) and the first of the next.
	eve := rem("eve", "u-3", "b-1", day.Add(24*time.Hour-time.Microsecond))
	dawn := rem("dawn", "u-3", "b-1", day.Add(24*time.Hour))
	// Two new ids for one day in one batch: the first in the batch wins.
	p := rem("p", "u-4", "b-1", day.Add(10*time.Hour))
	q := rem("q", "u-4", "b-1", day.Add(11*time.Hour))
	other := reminder(t, "other", "u-1", "b-3", day, "", "order_shipped")

	write(t, ctx, s, []*schemas.Envelope{x})
	write(t, ctx, s, []*schemas.Envelope{y, z})
	write(t, ctx, s, []*schemas.Envelope{w, v, eve, dawn, other})
	write(t, ctx, s, []*schemas.Envelope{q, p, q})
	kept := []*schemas.Envelope{x, z, w, v, eve, dawn, q}
	expectRows(t, ctx, r, kept)
	// Replays in any order, and the losers again, change nothing.
	all := []*schemas.Envelope{p, y, x, z, w, v, eve, dawn, other, q}
	write(t, ctx, s, all)
	slices.Reverse(all)
	write(t, ctx, s, redecode(t, all))
	write(t, ctx, s, []*schemas.Envelope{y})
	expectRows(t, ctx, r, kept)
}

// Coupons returns one applied operation for each of perUser coupons of each
// of users users, for benchmarks: their states cycle through available
// (seq 1), locked (2), used (3) and expired (2). Ids start with prefix.
func Coupons(tb testing.TB, prefix string, users, perUser int) []*schemas.Envelope {
	tb.Helper()
	states := []struct {
		op, state string
		seq       int64
	}{
		{schemas.OpGrant, schemas.CouponAvailable, 1},
		{schemas.OpLock, schemas.CouponLocked, 2},
		{schemas.OpConfirm, schemas.CouponUsed, 3},
		{schemas.OpExpire, schemas.CouponExpired, 2},
	}
	out := make([]*schemas.Envelope, 0, users*perUser)
	for u := range users {
		for c := range perUser {
			st := states[c%len(states)]
			at := Epoch.Add(-time.Duration(u*perUser+c) * time.Second)
			key := fmt.Sprintf("%s-%d-%d", prefix, u, c)
			op := schemas.StateChanged{
				ResultID: schemas.ResultID(schemas.TypeCouponStateChanged, "app-0", key), CouponID: fmt.Sprintf("c-%d-%d", u, c),
				UserID: fmt.Sprintf("%s-user-%d", prefix, u), BatchID: fmt.Sprintf("%s-batch-%d", prefix, c%7), Op: st.op,
				Status: schemas.OpApplied, State: st.state, Seq: st.seq, ValidFrom: at, ExpiresAt: at.Add(30 * 24 * time.Hour), ChangedAt: at,
			}
			if st.state == schemas.CouponLocked {
				deadline := at.Add(15 * time.Minute)
				op.OrderID, op.LockDeadline = "order-"+key, &deadline
			}
			out = append(out, Result(tb, "app-0", at, op))
		}
	}
	return out
}
