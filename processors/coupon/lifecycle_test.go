package coupon

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/schemas"
)

var lcT0 = time.Date(2026, 11, 11, 10, 0, 0, 0, time.UTC)

// lcCoupon is a coupon usable for a day around lcT0, in state st.
func lcCoupon(st string, mut ...func(*Coupon)) Coupon {
	c := Coupon{Known: true, BatchID: "B1", State: st, Seq: 1, From: lcT0.Add(-12 * time.Hour), Until: lcT0.Add(12 * time.Hour)}
	if st == schemas.CouponLocked {
		c.OrderID, c.Deadline, c.Seq = "o1", lcT0.Add(15*time.Minute), 2
	}
	if st == schemas.CouponUsed {
		c.OrderID, c.Seq = "o1", 3
	}
	for _, m := range mut {
		m(&c)
	}
	return c
}

func TestStep(t *testing.T) {
	deadline := lcT0.Add(15 * time.Minute)
	lock := func(order string) Op {
		return Op{Kind: schemas.OpLock, OrderID: order, At: lcT0, Deadline: lcT0.Add(20 * time.Minute)}
	}
	op := func(kind, order string) Op { return Op{Kind: kind, OrderID: order, At: lcT0} }
	cases := []struct {
		name string
		c    Coupon
		op   Op
		// want: "applied", "skip", "wait" or a reason
		want  string
		state string
	}{
		{"lock available", lcCoupon(schemas.CouponAvailable), lock("o2"), "applied", schemas.CouponLocked},
		{"lock unknown", Coupon{}, lock("o2"), schemas.RejectUnknownCoupon, ""},
		{"lock another user's coupon", Coupon{}, Op{Kind: schemas.OpLock, OrderID: "o2", At: lcT0, OtherOwner: true}, schemas.RejectNotOwner, ""},
		{"lock locked by the same order", lcCoupon(schemas.CouponLocked), lock("o1"), schemas.RejectAlreadyLocked, schemas.CouponLocked},
		{"lock locked by another order", lcCoupon(schemas.CouponLocked), lock("o2"), schemas.RejectLockedByOtherOrder, schemas.CouponLocked},
		{"lock locked past its deadline (not yet released)", lcCoupon(schemas.CouponLocked, func(c *Coupon) { c.Deadline = lcT0.Add(-time.Second) }), lock("o2"), schemas.RejectLockedByOtherOrder, schemas.CouponLocked},
		{"lock used", lcCoupon(schemas.CouponUsed), lock("o2"), schemas.RejectAlreadyUsed, schemas.CouponUsed},
		{"lock expired", lcCoupon(schemas.CouponExpired), lock("o2"), schemas.RejectCouponExpired, schemas.CouponExpired},
		{"lock exactly at the end", lcCoupon(schemas.CouponAvailable, func(c *Coupon) { c.Until = lcT0 }), lock("o2"), schemas.RejectCouponExpired, schemas.CouponAvailable},
		{"lock one ms before the end", lcCoupon(schemas.CouponAvailable, func(c *Coupon) { c.Until = lcT0.Add(time.Millisecond) }), lock("o2"), "applied", schemas.CouponLocked},
		{"lock before the start", lcCoupon(schemas.CouponAvailable, func(c *Coupon) { c.From = lcT0.Add(time.Millisecond) }), lock("o2"), schemas.RejectCouponExpired, schemas.CouponAvailable},
		{"lock exactly at the start", lcCoupon(schemas.CouponAvailable, func(c *Coupon) { c.From = lcT0 }), lock("o2"), "applied", schemas.CouponLocked},
		{"lock in a disabled batch", lcCoupon(schemas.CouponAvailable), Op{Kind: schemas.OpLock, OrderID: "o2", At: lcT0, BatchDisabled: true}, schemas.RejectBatchDisabled, schemas.CouponAvailable},
		{"used wins over disabled", lcCoupon(schemas.CouponUsed), Op{Kind: schemas.OpLock, OrderID: "o2", At: lcT0, BatchDisabled: true}, schemas.RejectAlreadyUsed, schemas.CouponUsed},

		{"confirm by the holder", lcCoupon(schemas.CouponLocked), op(schemas.OpConfirm, "o1"), "applied", schemas.CouponUsed},
		{"confirm by the holder after the deadline, before the release", lcCoupon(schemas.CouponLocked, func(c *Coupon) { c.Deadline = lcT0.Add(-time.Second) }), op(schemas.OpConfirm, "o1"), "applied", schemas.CouponUsed},
		{"confirm after the coupon's end (locked in time)", lcCoupon(schemas.CouponLocked, func(c *Coupon) { c.Until = lcT0.Add(-time.Hour) }), op(schemas.OpConfirm, "o1"), "applied", schemas.CouponUsed},
		{"confirm by another order", lcCoupon(schemas.CouponLocked), op(schemas.OpConfirm, "o2"), schemas.RejectLockedByOtherOrder, schemas.CouponLocked},
		{"confirm available", lcCoupon(schemas.CouponAvailable), op(schemas.OpConfirm, "o1"), schemas.RejectNotLocked, schemas.CouponAvailable},
		{"confirm used", lcCoupon(schemas.CouponUsed), op(schemas.OpConfirm, "o1"), schemas.RejectAlreadyUsed, schemas.CouponUsed},
		{"confirm expired", lcCoupon(schemas.CouponExpired), op(schemas.OpConfirm, "o1"), schemas.RejectCouponExpired, schemas.CouponExpired},
		{"confirm unknown", Coupon{}, op(schemas.OpConfirm, "o1"), schemas.RejectUnknownCoupon, ""},
		{"confirm another user's", Coupon{}, Op{Kind: schemas.OpConfirm, OrderID: "o1", OtherOwner: true}, schemas.RejectNotOwner, ""},

		{"cancel by the holder", lcCoupon(schemas.CouponLocked), op(schemas.OpCancel, "o1"), "applied", schemas.CouponAvailable},
		{"cancel by another order", lcCoupon(schemas.CouponLocked), op(schemas.OpCancel, "o2"), schemas.RejectLockedByOtherOrder, schemas.CouponLocked},
		{"cancel available", lcCoupon(schemas.CouponAvailable), op(schemas.OpCancel, "o1"), schemas.RejectNotLocked, schemas.CouponAvailable},
		{"cancel used", lcCoupon(schemas.CouponUsed), op(schemas.OpCancel, "o1"), schemas.RejectAlreadyUsed, schemas.CouponUsed},
		{"cancel expired", lcCoupon(schemas.CouponExpired), op(schemas.OpCancel, "o1"), schemas.RejectCouponExpired, schemas.CouponExpired},

		{"release the same lock", lcCoupon(schemas.CouponLocked), Op{Kind: schemas.OpRelease, OrderID: "o1", At: lcT0, Deadline: deadline}, "applied", schemas.CouponAvailable},
		{"release a lock taken again (other deadline)", lcCoupon(schemas.CouponLocked), Op{Kind: schemas.OpRelease, OrderID: "o1", At: lcT0, Deadline: deadline.Add(-time.Minute)}, "skip", schemas.CouponLocked},
		{"release another order's lock", lcCoupon(schemas.CouponLocked), Op{Kind: schemas.OpRelease, OrderID: "o2", At: lcT0, Deadline: deadline}, "skip", schemas.CouponLocked},
		{"release a confirmed lock", lcCoupon(schemas.CouponUsed), Op{Kind: schemas.OpRelease, OrderID: "o1", At: lcT0, Deadline: deadline}, "skip", schemas.CouponUsed},
		{"release a cancelled lock", lcCoupon(schemas.CouponAvailable), Op{Kind: schemas.OpRelease, OrderID: "o1", At: lcT0, Deadline: deadline}, "skip", schemas.CouponAvailable},
		{"release unknown", Coupon{}, Op{Kind: schemas.OpRelease, OrderID: "o1", At: lcT0, Deadline: deadline}, "skip", ""},

		{"expire available at its end", lcCoupon(schemas.CouponAvailable, func(c *Coupon) { c.Until = lcT0 }), op(schemas.OpExpire, ""), "applied", schemas.CouponExpired},
		{"expire available before its end", lcCoupon(schemas.CouponAvailable), op(schemas.OpExpire, ""), "wait", schemas.CouponAvailable},
		{"expire locked", lcCoupon(schemas.CouponLocked, func(c *Coupon) { c.Until = lcT0 }), op(schemas.OpExpire, ""), "wait", schemas.CouponLocked},
		{"expire used", lcCoupon(schemas.CouponUsed, func(c *Coupon) { c.Until = lcT0 }), op(schemas.OpExpire, ""), "skip", schemas.CouponUsed},
		{"expire expired", lcCoupon(schemas.CouponExpired, func(c *Coupon) { c.Until = lcT0 }), op(schemas.OpExpire, ""), "skip", schemas.CouponExpired},
		{"expire unknown", Coupon{}, op(schemas.OpExpire, ""), "skip", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr := Step(tc.c, tc.op)
			got := tr.Reason
			switch {
			case tr.Applied:
				got = "applied"
			case tr.Skip:
				got = "skip"
			case tr.Wait:
				got = "wait"
			}
			if got != tc.want || tr.Next.State != tc.state {
				t.Fatalf("Step = %s, state %q; want %s, state %q", got, tr.Next.State, tc.want, tc.state)
			}
			if tr.Applied != (tr.Next.Seq == tc.c.Seq+1) || (!tr.Applied && tr.Next != tc.c) {
				t.Fatalf("seq %d -> %d (applied %v); a rejection must leave the coupon as it was", tc.c.Seq, tr.Next.Seq, tr.Applied)
			}
			if tr.Applied && tc.op.Kind == schemas.OpLock && (tr.Next.OrderID != tc.op.OrderID || !tr.Next.Deadline.Equal(tc.op.Deadline)) {
				t.Fatalf("lock applied as %+v", tr.Next)
			}
			if tr.Applied && tr.Next.State != schemas.CouponLocked && !tr.Next.Deadline.IsZero() {
				t.Fatalf("deadline kept after leaving the lock: %+v", tr.Next)
			}
		})
	}
	if tr := Step(lcCoupon(schemas.CouponLocked, func(c *Coupon) { c.Until = lcT0 }), op(schemas.OpExpire, "")); !tr.RetryAt.Equal(deadline) {
		t.Errorf("expiry of a locked coupon retries at %v, want its lock deadline %v", tr.RetryAt, deadline)
	}
}

func TestShouldRemind(t *testing.T) {
	cases := []struct {
		name    string
		c       Coupon
		now     time.Time
		sentFor string
		want    bool
	}{
		{"first coupon of the day", lcCoupon(schemas.CouponAvailable), lcT0, "", true},
		{"the same coupon again (a repeated Tick)", lcCoupon(schemas.CouponAvailable), lcT0, "c1", true},
		{"another coupon took the day", lcCoupon(schemas.CouponAvailable), lcT0, "c2", false},
		{"used", lcCoupon(schemas.CouponUsed), lcT0, "", false},
		{"locked", lcCoupon(schemas.CouponLocked), lcT0, "", false},
		{"expired", lcCoupon(schemas.CouponExpired), lcT0, "", false},
		{"past its end, not yet expired", lcCoupon(schemas.CouponAvailable), lcT0.Add(12 * time.Hour), "", false},
		{"unknown", Coupon{}, lcT0, "", false},
	}
	for _, tc := range cases {
		if got := ShouldRemind(tc.c, tc.now, "c1", tc.sentFor); got != tc.want {
			t.Errorf("%s: ShouldRemind = %v, want %v", tc.name, got, tc.want)
		}
	}
	if _, ok := ReminderDue(lcT0, 0); ok {
		t.Error("a batch without remind_days_before has a reminder")
	}
	due, ok := ReminderDue(time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC), 3)
	if !ok || !due.Equal(time.Date(2026, 11, 17, 1, 0, 0, 0, time.UTC)) || ReminderDay(due) != "2026-11-17" {
		t.Errorf("ReminderDue = %v %v (day %s)", due, ok, ReminderDay(due))
	}
	if d := ReminderDay(time.Date(2026, 11, 17, 1, 0, 0, 0, time.FixedZone("CST", 8*3600))); d != "2026-11-16" {
		t.Errorf("ReminderDay is the UTC day: got %s", d)
	}
}

func TestTake(t *testing.T) {
	l := RateLimit{Rate: 2, Burst: 3}
	b := Bucket{}
	steps := []struct {
		after time.Duration
		want  int64
		got   int64
	}{
		{0, 5, 3},                      // a new bucket starts full
		{0, 1, 0},                      // empty
		{400 * time.Millisecond, 1, 0}, // 0.8 token
		{100 * time.Millisecond, 2, 1}, // 1.0 token
		{10 * time.Second, 10, 3},      // refills up to the burst only
		{-time.Second, 1, 0},           // a clock going back refills nothing
		{1500 * time.Millisecond, 1, 1},
	}
	now := lcT0
	for i, s := range steps {
		now = now.Add(s.after)
		var got int64
		got, b = Take(b, l, now, s.want)
		if got != s.got {
			t.Fatalf("step %d: took %d of %d, want %d (bucket %+v)", i, got, s.want, s.got, b)
		}
	}
	if (RateLimit{}).On() || (RateLimit{Rate: 1}).On() || !(RateLimit{Rate: 1, Burst: 1}).On() {
		t.Error("RateLimit.On: a zero rate or burst must be off")
	}
}

func TestStateRecordIsValidAndDeterministic(t *testing.T) {
	locked := Decision{Kind: kindNew, Applied: true, At: lcT0, Coupon: lcCoupon(schemas.CouponLocked)}
	rejected := Decision{Kind: kindNew, Reason: schemas.RejectUnknownCoupon, At: lcT0}
	for _, d := range []Decision{locked, rejected} {
		id := schemas.ResultID(KindOp, "shop", "lock-1")
		r1, err := StateRecord(id, "shop", "u-1", "0123456789abcdef0123456789abcdef", schemas.OpLock, "o1", 1999, "lock-1", d)
		if err != nil {
			t.Fatal(err)
		}
		d.Kind = kindDup
		r2, _ := StateRecord(id, "shop", "u-1", "0123456789abcdef0123456789abcdef", schemas.OpLock, "o1", 1999, "lock-1", d)
		if !bytes.Equal(r1.Value, r2.Value) || r1.Topic != TopicStates || string(r1.Key) != "u-1" {
			t.Fatalf("replayed record differs or is misrouted:\n%s\n%s", r1.Value, r2.Value)
		}
		env, err := schemas.Decode(r1.Value)
		if err != nil {
			t.Fatalf("record invalid: %v\n%s", err, r1.Value)
		}
		var sc schemas.StateChanged
		if err := env.DecodePayload(&sc); err != nil {
			t.Fatal(err)
		}
		if sc.ResultID != id || env.EventID != id || sc.Seq != d.Coupon.Seq || sc.State != d.Coupon.State || sc.OrderAmount != 1999 || sc.SourceEventID != "lock-1" {
			t.Fatalf("record %+v from %+v", sc, d)
		}
		if d.Applied != (sc.Status == schemas.OpApplied) || sc.Reason != d.Reason || (sc.LockDeadline != nil) != (d.Coupon.State == schemas.CouponLocked) {
			t.Fatalf("record %+v from %+v", sc, d)
		}
	}

	tm := Timer{Kind: schemas.OpRelease, UserID: "u-1", CouponID: "0123456789abcdef0123456789abcdef", OrderID: "o1", Due: lcT0}
	rel := Decision{Kind: kindNew, Applied: true, At: lcT0.Add(time.Second), Coupon: lcCoupon(schemas.CouponAvailable, func(c *Coupon) { c.Seq = 3 })}
	r, err := TimerRecord(tm, rel)
	if err != nil {
		t.Fatal(err)
	}
	env, err := schemas.Decode(r.Value)
	if err != nil {
		t.Fatalf("timer record invalid: %v\n%s", err, r.Value)
	}
	if want := schemas.ResultID(KindTimer, schemas.OpRelease, tm.CouponID+"/3"); env.EventID != want || env.AppID != AppID {
		t.Fatalf("timer record id %s app %s, want %s", env.EventID, env.AppID, want)
	}

	tm = Timer{Kind: opRemind, UserID: "u-1", CouponID: "0123456789abcdef0123456789abcdef", BatchID: "B1", Due: lcT0}
	n, err := ReminderRecord(tm, lcT0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	env, err = schemas.Decode(n.Value)
	if err != nil {
		t.Fatalf("reminder invalid: %v\n%s", err, n.Value)
	}
	var nr schemas.NotificationRequested
	if err := env.DecodePayload(&nr); err != nil {
		t.Fatal(err)
	}
	if nr.NotificationID != schemas.ResultID(KindReminder, "u-1", "B1/2026-11-11") || nr.Template != TemplateExpiry || nr.SubjectID != "B1" || n.Topic != TopicNotifications {
		t.Fatalf("reminder %+v on %s", nr, n.Topic)
	}
}

func TestParseStateDecision(t *testing.T) {
	for _, bad := range [][2]string{{"new", ""}, {"new", "a||available|x|1|B|1|2|0"}, {"dup", "z||available|1|1|B|1|2|0"}, {"what", ""}} {
		if _, err := parseStateDecision(bad[0], bad[1]); err == nil {
			t.Errorf("parseStateDecision(%q, %q) accepted a malformed decision", bad[0], bad[1])
		}
	}
	d, err := parseStateDecision("dup", "a||locked|2|1700000000123|B1|1700000000000|1800000000000|1700000900123")
	if err != nil || !d.Applied || !d.Replayed() || d.Coupon.State != schemas.CouponLocked || d.Coupon.Seq != 2 ||
		d.Coupon.Deadline.UnixMilli() != 1700000900123 || d.At.UnixMilli() != 1700000000123 || !d.Coupon.Known {
		t.Fatalf("parseStateDecision = %+v, %v", d, err)
	}
	d, err = parseStateDecision("new", "r|unknown_coupon||0|1700000000123||||0")
	if err != nil || d.Applied || d.Reason != schemas.RejectUnknownCoupon || d.Coupon.Known || !d.Coupon.From.IsZero() {
		t.Fatalf("parseStateDecision unknown = %+v, %v", d, err)
	}
}

// TestScriptsOnMiniredis runs the script-versus-rule checks against
// miniredis, the stand-in `promoflow run` embeds when no Redis is reachable
// (its Lua is gopher-lua, not Redis's).
func TestScriptsOnMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	s := NewStore(rdb, WithDecisionTTL(time.Hour))
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Run("state", func(t *testing.T) { checkStateScript(t, s) })
	t.Run("ratelimit", func(t *testing.T) { checkLimitScript(t, s) })
}
