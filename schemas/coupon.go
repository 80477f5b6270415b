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
}

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
