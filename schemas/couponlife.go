package schemas

import "time"

// Coupon lifecycle event types.
const (
	TypeCouponIssueRequested   = "coupon.issue.requested"
	TypeCouponLockRequested    = "coupon.lock.requested"
	TypeCouponConfirmRequested = "coupon.confirm.requested"
	TypeCouponCancelRequested  = "coupon.cancel.requested"
	TypeCouponStateChanged     = "coupon.state.changed"
	TypeNotificationRequested  = "notification.requested"
)

// Coupon states.
const (
	CouponAvailable = "available"
	CouponLocked    = "locked"
	CouponUsed      = "used"
	CouponExpired   = "expired"
)

// Coupon operations and their outcomes.
const (
	OpGrant    = "grant"
	OpLock     = "lock"
	OpConfirm  = "confirm"
	OpCancel   = "cancel"
	OpRelease  = "release"
	OpExpire   = "expire"
	OpApplied  = "applied"
	OpRejected = "rejected"
)

// Reasons a coupon operation is rejected, and a claim's rate-limit reason.
const (
	RejectUnknownCoupon      = "unknown_coupon"
	RejectNotLocked          = "not_locked"
	RejectLockedByOtherOrder = "locked_by_other_order"
	RejectAlreadyLocked      = "already_locked"
	RejectAlreadyUsed        = "already_used"
	RejectCouponExpired      = "expired"
	RejectNotOwner           = "not_owner"
	RejectRateLimited        = "rate_limited"
)

// IssueRequested is an operator's issue of a coupon to a user
// (coupon.issue.requested v1).
type IssueRequested struct {
	BatchID string `json:"batch_id"`
	UserID  string `json:"user_id"`
	IssueID string `json:"issue_id"`
}

func (IssueRequested) EventType() string      { return TypeCouponIssueRequested }
func (IssueRequested) EventVersion() int      { return 1 }
func (i IssueRequested) PartitionKey() string { return i.UserID }

// OrderCoupon is the body of the lock, confirm and cancel requests.
type OrderCoupon struct {
	OrderID     string `json:"order_id"`
	UserID      string `json:"user_id"`
	CouponID    string `json:"coupon_id"`
	OrderAmount int64  `json:"order_amount,omitempty"`
}

// LockRequested locks a coupon for an order (coupon.lock.requested v1).
type LockRequested OrderCoupon

func (LockRequested) EventType() string      { return TypeCouponLockRequested }
func (LockRequested) EventVersion() int      { return 1 }
func (l LockRequested) PartitionKey() string { return l.UserID }

// ConfirmRequested uses an order's locked coupon (coupon.confirm.requested v1).
type ConfirmRequested OrderCoupon

func (ConfirmRequested) EventType() string      { return TypeCouponConfirmRequested }
func (ConfirmRequested) EventVersion() int      { return 1 }
func (c ConfirmRequested) PartitionKey() string { return c.UserID }

// CancelRequested releases an order's locked coupon (coupon.cancel.requested v1).
type CancelRequested OrderCoupon

func (CancelRequested) EventType() string      { return TypeCouponCancelRequested }
func (CancelRequested) EventVersion() int      { return 1 }
func (c CancelRequested) PartitionKey() string { return c.UserID }

// StateChanged is one operation on one coupon (coupon.state.changed v1).
type StateChanged struct {
	ResultID      string     `json:"result_id"`
	CouponID      string     `json:"coupon_id"`
	UserID        string     `json:"user_id"`
	BatchID       string     `json:"batch_id"`
	Op            string     `json:"op"`
	Status        string     `json:"status"`
	Reason        string     `json:"reason"`
	State         string     `json:"state"`
	Seq           int64      `json:"seq"`
	OrderID       string     `json:"order_id,omitempty"`
	OrderAmount   int64      `json:"order_amount,omitempty"`
	SourceEventID string     `json:"source_event_id,omitempty"`
	ValidFrom     time.Time  `json:"valid_from"`
	ExpiresAt     time.Time  `json:"expires_at"`
	LockDeadline  *time.Time `json:"lock_deadline,omitempty"`
	ChangedAt     time.Time  `json:"changed_at"`
}

func (StateChanged) EventType() string      { return TypeCouponStateChanged }
func (StateChanged) EventVersion() int      { return 1 }
func (s StateChanged) PartitionKey() string { return s.UserID }

// NotificationRequested is a notification due to a user
// (notification.requested v1).
type NotificationRequested struct {
	NotificationID string     `json:"notification_id"`
	UserID         string     `json:"user_id"`
	Template       string     `json:"template"`
	SubjectID      string     `json:"subject_id"`
	CouponID       string     `json:"coupon_id,omitempty"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
	DueAt          time.Time  `json:"due_at"`
}

func (NotificationRequested) EventType() string      { return TypeNotificationRequested }
func (NotificationRequested) EventVersion() int      { return 1 }
func (n NotificationRequested) PartitionKey() string { return n.UserID }
