package sinks

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// ReminderTemplate is the notification.requested template of coupon expiry
// reminders, whose subject_id is the coupon batch. The system of record
// keeps these notifications, one per user, batch and day (in UTC); it has
// no table for other templates.
const ReminderTemplate = "coupon_expiry"

// CouponReader reads a user's coupons from the system of record, for the
// order-time validation service. Every read goes to the one shard table the
// user id routes to. Times come back in UTC at the precision the store
// keeps (milliseconds). An unknown user or coupon reads as an empty result,
// not an error.
type CouponReader interface {
	// UserCoupons returns the user's coupons (from coupon_<j>, one shard
	// table: the user's), sorted by CouponID. states, when given, filters by
	// state.
	UserCoupons(ctx context.Context, userID string, states ...string) ([]CouponRow, error)
	// CouponOps returns a coupon's operation record sorted by seq then
	// changed_at (see SortOps).
	CouponOps(ctx context.Context, userID, couponID string) ([]schemas.StateChanged, error)
}

// CouponRow is a coupon's current state: what its applied operation with
// the highest seq left it in. A rejected operation never changes it, and
// an applied one with a lower seq arriving late (a replay, a redelivery out
// of order) is ignored.
type CouponRow struct {
	CouponID string `json:"coupon_id"`
	UserID   string `json:"user_id"`
	BatchID  string `json:"batch_id"`
	// State is schemas.CouponAvailable, CouponLocked, CouponUsed or
	// CouponExpired.
	State string `json:"state"`
	// OrderID is the order the latest operation was for, if any.
	OrderID string `json:"order_id"`
	Seq     int64  `json:"seq"`
	// ValidFrom and ExpiresAt bound when the coupon is usable:
	// [ValidFrom, ExpiresAt).
	ValidFrom time.Time `json:"valid_from"`
	ExpiresAt time.Time `json:"expires_at"`
	// LockDeadline is when a lock times out; nil unless locked.
	LockDeadline *time.Time `json:"lock_deadline,omitempty"`
	// UpdatedAt is the changed_at of the latest operation.
	UpdatedAt time.Time `json:"updated_at"`
}

// CouponRowOf returns the state the applied operation c leaves its coupon
// in. The caller checks that c is applied.
func CouponRowOf(c schemas.StateChanged) CouponRow {
	return CouponRow{
		CouponID: c.CouponID, UserID: c.UserID, BatchID: c.BatchID, State: c.State, OrderID: c.OrderID, Seq: c.Seq,
		ValidFrom: c.ValidFrom, ExpiresAt: c.ExpiresAt, LockDeadline: c.LockDeadline, UpdatedAt: c.ChangedAt,
	}
}

// HasState reports whether state is one of states, or states is empty (any
// state), as UserCoupons filters.
func HasState(state string, states []string) bool {
	return len(states) == 0 || slices.Contains(states, state)
}

// SortCoupons sorts coupons by coupon id, bytewise.
func SortCoupons(coupons []CouponRow) {
	slices.SortFunc(coupons, func(a, b CouponRow) int { return strings.Compare(a.CouponID, b.CouponID) })
}

// SortOps sorts operations by seq, the applied operation of a seq before
// the rejected ones, then changed_at, then result id: a rejected operation
// carries the seq of the state it was refused in, so it follows the
// operation that made that state even when both have the same time.
func SortOps(ops []schemas.StateChanged) {
	applied := func(o schemas.StateChanged) int {
		if o.Status == schemas.OpApplied {
			return 0
		}
		return 1
	}
	slices.SortFunc(ops, func(a, b schemas.StateChanged) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), cmp.Compare(applied(a), applied(b)), a.ChangedAt.Compare(b.ChangedAt), strings.Compare(a.ResultID, b.ResultID))
	})
}
