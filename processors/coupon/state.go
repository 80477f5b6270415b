package coupon

import (
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// Coupon is one granted coupon as the lifecycle rules see it. Times are
// kept to the millisecond, as Redis keeps them.
type Coupon struct {
	// Known is false when the user holds no coupon of that id.
	Known   bool
	BatchID string
	// State is schemas.CouponAvailable, CouponLocked, CouponUsed or
	// CouponExpired ("" when unknown).
	State string
	// Seq counts the coupon's applied operations: 1 after the grant.
	Seq int64
	// OrderID is the order holding the lock (locked) or that used the
	// coupon (used); "" otherwise.
	OrderID string
	// Deadline is when a lock may be released by the timer (locked only).
	Deadline time.Time
	// From and Until bound when the coupon can be locked: [From, Until).
	From, Until time.Time
}

// Op is one operation on a coupon: a request of an order (lock, confirm,
// cancel) or a timer's (release, expire).
type Op struct {
	// Kind is schemas.OpLock, OpConfirm, OpCancel, OpRelease or OpExpire.
	Kind    string
	OrderID string
	// At is when the operation is decided.
	At time.Time
	// OtherOwner says that the coupon id belongs to another user (looked up
	// when the requesting user does not hold it).
	OtherOwner bool
	// BatchDisabled says that the coupon's batch is disabled (lock only).
	BatchDisabled bool
	// Deadline is the lock deadline to set (lock), or the deadline the lock
	// must still have for the timer to release it (release).
	Deadline time.Time
}

// Transition is the outcome of Step.
type Transition struct {
	// Applied is true when the operation changed the coupon; Next is then
	// its new state, with Seq one higher.
	Applied bool
	// Reason is the rejection reason of a request that was not applied.
	Reason string
	// Skip is true when a timer has nothing to do (no record at all): the
	// lock was confirmed, cancelled or taken again, the coupon was used, or
	// it is already expired or unknown.
	Skip bool
	// Wait is true when an expiry timer must look again later (the coupon
	// is locked, or not yet past Until); RetryAt says when.
	Wait    bool
	RetryAt time.Time
	// Next is the coupon after the operation (the current one when
	// rejected); the operation record shows it.
	Next Coupon
}

// Step is the coupon lifecycle rule that state.lua implements atomically,
// stated in Go so that it is table-tested and documented in one place.
//
//	lock     available, inside [From, Until), batch enabled → locked by the order until Deadline
//	confirm  locked by this order → used
//	cancel   locked by this order → available
//	release  (timer) still locked by that order with that deadline → available
//	expire   (timer) available at or after Until → expired
//
// Requests are checked in this order and rejected with the first reason
// that applies: unknown_coupon (not_owner when the id is another user's
// coupon); for lock already_used, expired (state), already_locked (by this
// same order: a lock is never extended), locked_by_other_order, expired
// (outside the window, before From as well as after Until), batch_disabled;
// for confirm and cancel locked_by_other_order, already_used, expired,
// not_locked. A lock holds until it is confirmed, cancelled or released:
// the deadline is the earliest moment the timer may release it, so a
// confirm that arrives after the deadline but before the release wins.
func Step(c Coupon, op Op) Transition {
	t := Transition{Next: c}
	switch op.Kind {
	case schemas.OpRelease:
		if !c.Known || c.State != schemas.CouponLocked || c.OrderID != op.OrderID || !c.Deadline.Equal(op.Deadline) {
			t.Skip = true
			return t
		}
		t.Applied = true
		t.Next.State, t.Next.OrderID, t.Next.Deadline = schemas.CouponAvailable, "", time.Time{}
		t.Next.Seq++
		return t
	case schemas.OpExpire:
		switch {
		case !c.Known || c.State == schemas.CouponUsed || c.State == schemas.CouponExpired:
			t.Skip = true
		case c.State == schemas.CouponLocked:
			// Expires only if the lock is cancelled or released.
			t.Wait, t.RetryAt = true, c.Deadline
		case op.At.Before(c.Until):
			t.Wait, t.RetryAt = true, c.Until
		default:
			t.Applied = true
			t.Next.State = schemas.CouponExpired
			t.Next.Seq++
		}
		return t
	}
	if t.Reason = reject(c, op); t.Reason != "" {
		return t
	}
	t.Applied = true
	t.Next.Seq++
	switch op.Kind {
	case schemas.OpLock:
		t.Next.State, t.Next.OrderID, t.Next.Deadline = schemas.CouponLocked, op.OrderID, op.Deadline
	case schemas.OpConfirm:
		t.Next.State, t.Next.Deadline = schemas.CouponUsed, time.Time{}
	case schemas.OpCancel:
		t.Next.State, t.Next.OrderID, t.Next.Deadline = schemas.CouponAvailable, "", time.Time{}
	}
	return t
}

// reject returns why a request (lock, confirm, cancel) cannot apply, or "".
func reject(c Coupon, op Op) string {
	if !c.Known {
		if op.OtherOwner {
			return schemas.RejectNotOwner
		}
		return schemas.RejectUnknownCoupon
	}
	if op.Kind == schemas.OpLock {
		switch {
		case c.State == schemas.CouponUsed:
			return schemas.RejectAlreadyUsed
		case c.State == schemas.CouponExpired:
			return schemas.RejectCouponExpired
		case c.State == schemas.CouponLocked && c.OrderID == op.OrderID:
			return schemas.RejectAlreadyLocked
		case c.State == schemas.CouponLocked:
			return schemas.RejectLockedByOtherOrder
		case op.At.Before(c.From) || !op.At.Before(c.Until):
			return schemas.RejectCouponExpired
		case op.BatchDisabled:
			return schemas.RejectBatchDisabled
		}
		return ""
	}
	switch {
	case c.State == schemas.CouponLocked && c.OrderID == op.OrderID:
		return ""
	case c.State == schemas.CouponLocked:
		return schemas.RejectLockedByOtherOrder
	case c.State == schemas.CouponUsed:
		return schemas.RejectAlreadyUsed
	case c.State == schemas.CouponExpired:
		return schemas.RejectCouponExpired
	}
	return schemas.RejectNotLocked
}

// ShouldRemind is the reminder rule: a reminder goes out for a coupon that
// is still available and unexpired at the time it is due, unless another
// coupon already took the reminder of the (user, batch, day): sentFor is
// the coupon recorded for that day ("" when none).
func ShouldRemind(c Coupon, now time.Time, coupon, sentFor string) bool {
	if !c.Known || c.State != schemas.CouponAvailable || !now.Before(c.Until) {
		return false
	}
	return sentFor == "" || sentFor == coupon
}

// ReminderDue returns when the expiry reminder of a coupon usable until
// until is due, for a batch reminding daysBefore days ahead; ok is false
// when the batch sends no reminders.
func ReminderDue(until time.Time, daysBefore int64) (due time.Time, ok bool) {
	if daysBefore <= 0 {
		return time.Time{}, false
	}
	return until.Add(-time.Duration(daysBefore) * 24 * time.Hour), true
}

// ReminderDay is the UTC day of a reminder's due time: at most one
// reminder per (user, batch, day).
func ReminderDay(due time.Time) string { return due.UTC().Format("2006-01-02") }
