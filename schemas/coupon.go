package schemas

import (
	"strconv"
	"time"
)

// Coupon event types.
const (
	TypeCouponBatchDefined   = "coupon.batch.defined"
	TypeCouponClaimRequested = "coupon.claim.requested"
	TypeCouponGrantDecided   = "coupon.grant.decided"
)

// Batch statuses.
const (
	BatchActive   = "active"
	BatchDisabled = "disabled"
)

// Grant statuses.
const (
	StatusGranted  = "granted"
	StatusRejected = "rejected"
)

// Rejection reason codes carried by GrantDecided.Reason.
const (
	RejectOutOfStock    = "out_of_stock"
	RejectUserLimit     = "user_limit_reached"
	RejectNotStarted    = "not_started"
	RejectExpired       = "expired"
	RejectUnknownBatch  = "unknown_batch"
	RejectBatchDisabled = "batch_disabled"
)

// BatchDefined creates or updates a coupon batch (coupon.batch.defined v1).
type BatchDefined struct {
	BatchID      string    `json:"batch_id"`
	Name         string    `json:"name,omitempty"`
	Revision     int64     `json:"revision"`
	TotalStock   int64     `json:"total_stock"`
	PerUserLimit int64     `json:"per_user_limit"`
	ValidFrom    time.Time `json:"valid_from"`
	ValidUntil   time.Time `json:"valid_until"`
	Status       string    `json:"status"`

	// The usage rules below exist in v2 only (BatchDefinedV2); a v1
	// definition leaves them zero: no relative validity, any scope, no
	// threshold, no discount information, no exclusion group, no reminder.

	// ValidityDays, when positive, makes a coupon usable from its grant
	// until grant + ValidityDays days instead of [ValidFrom, ValidUntil).
	ValidityDays     int64    `json:"validity_days,omitempty"`
	Categories       []string `json:"categories,omitempty"`
	Brands           []string `json:"brands,omitempty"`
	Models           []string `json:"models,omitempty"`
	Threshold        int64    `json:"threshold,omitempty"`
	DiscountType     string   `json:"discount_type,omitempty"`
	Amount           int64    `json:"amount,omitempty"`
	Percent          int64    `json:"percent,omitempty"`
	Cap              int64    `json:"cap,omitempty"`
	ExclusionGroup   string   `json:"exclusion_group,omitempty"`
	RemindDaysBefore int64    `json:"remind_days_before,omitempty"`
}

// Discount types of a v2 batch.
const (
	DiscountFixed         = "fixed"
	DiscountPercent       = "percent"
	DiscountPriceIncrease = "price_increase"
)

// CouponWindow returns when a coupon of the batch granted at grantedAt is
// usable: [from, until).
func (b *BatchDefined) CouponWindow(grantedAt time.Time) (from, until time.Time) {
	if b.ValidityDays > 0 {
		return grantedAt, grantedAt.Add(time.Duration(b.ValidityDays) * 24 * time.Hour)
	}
	return b.ValidFrom, b.ValidUntil
}

// BatchDefinedV2 is a batch definition with usage rules
// (coupon.batch.defined v2). Convert with BatchDefined(v2); the fields are
// the same.
type BatchDefinedV2 BatchDefined

func (BatchDefinedV2) EventType() string      { return TypeCouponBatchDefined }
func (BatchDefinedV2) EventVersion() int      { return 2 }
func (b BatchDefinedV2) PartitionKey() string { return b.BatchID }

func (BatchDefined) EventType() string      { return TypeCouponBatchDefined }
func (BatchDefined) EventVersion() int      { return 1 }
func (b BatchDefined) PartitionKey() string { return b.BatchID }

// ClaimRequested is a user's self-claim of a coupon (coupon.claim.requested v1).
type ClaimRequested struct {
	BatchID string `json:"batch_id"`
	UserID  string `json:"user_id"`
	Channel string `json:"channel,omitempty"`
}

func (ClaimRequested) EventType() string      { return TypeCouponClaimRequested }
func (ClaimRequested) EventVersion() int      { return 1 }
func (c ClaimRequested) PartitionKey() string { return c.UserID }

// GrantDecided is the coupon processor's decision on one claim
// (coupon.grant.decided v1). ResultID is every sink's idempotency key.
type GrantDecided struct {
	ResultID     string    `json:"result_id"`
	ClaimEventID string    `json:"claim_event_id"`
	BatchID      string    `json:"batch_id"`
	UserID       string    `json:"user_id"`
	Status       string    `json:"status"`
	Reason       string    `json:"reason"`
	CouponID     string    `json:"coupon_id,omitempty"`
	GrantSeq     int64     `json:"grant_seq,omitempty"`
	ClaimedAt    time.Time `json:"claimed_at"`
	DecidedAt    time.Time `json:"decided_at"`
}

func (GrantDecided) EventType() string      { return TypeCouponGrantDecided }
func (GrantDecided) EventVersion() int      { return 1 }
func (g GrantDecided) PartitionKey() string { return g.UserID }

func (g GrantDecided) appendJSON(b []byte) []byte {
	b = append(b, `{"result_id":`...)
	b = appendString(b, g.ResultID)
	b = append(b, `,"claim_event_id":`...)
	b = appendString(b, g.ClaimEventID)
	b = append(b, `,"batch_id":`...)
	b = appendString(b, g.BatchID)
	b = append(b, `,"user_id":`...)
	b = appendString(b, g.UserID)
	b = append(b, `,"status":`...)
	b = appendString(b, g.Status)
	b = append(b, `,"reason":`...)
	b = appendString(b, g.Reason)
	if g.CouponID != "" {
		b = append(b, `,"coupon_id":`...)
		b = appendString(b, g.CouponID)
	}
	if g.GrantSeq != 0 {
		b = append(b, `,"grant_seq":`...)
		b = strconv.AppendInt(b, g.GrantSeq, 10)
	}
	b = append(b, `,"claimed_at":`...)
	b = appendTime(b, g.ClaimedAt)
	b = append(b, `,"decided_at":`...)
	b = appendTime(b, g.DecidedAt)
	return append(b, '}')
}
