package sinks

import (
	"context"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// ReferralReader reads referral (share with gift) results back from the
// system of record, for `promoflow referral status` and services that show
// an inviter's progress. Times come back in UTC at millisecond precision.
type ReferralReader interface {
	// Binding returns invitee's binding in the activity (its bound
	// decision), or an error wrapping ErrNotFound when it is not bound.
	Binding(ctx context.Context, activityID, invitee string) (*schemas.ReferralBoundResult, error)
	// Invitees returns the invitees bound to inviter, sorted by invitee id.
	Invitees(ctx context.Context, activityID, inviter string) ([]Invitee, error)
	// Rewards returns inviter's rewards, by threshold.
	Rewards(ctx context.Context, activityID, inviter string) ([]schemas.RewardGranted, error)
	// ReferralCounts counts the activity's decisions.
	ReferralCounts(ctx context.Context, activityID string) (ReferralCounts, error)
}

// Invitee is one invitee bound to an inviter.
type Invitee struct {
	InviteeID string    `json:"invitee_id"`
	BoundAt   time.Time `json:"bound_at"`
	// Counted says the invitee counts toward the inviter's rewards (bound
	// in an activity without a qualifying action, or qualified).
	Counted bool `json:"counted"`
}

// ReferralCounts counts one activity's referral decisions.
type ReferralCounts struct {
	// Clicks and Registrations count the binding decisions by the kind of
	// event, whatever their outcome.
	Clicks        int64 `json:"clicks"`
	Registrations int64 `json:"registrations"`
	// Bound counts the invitees bound; Counted those that count toward
	// their inviter; Rewards the rewards granted.
	Bound   int64 `json:"bound"`
	Counted int64 `json:"counted"`
	Rewards int64 `json:"rewards"`
	// RefusedBy counts refused clicks, registrations and qualifications by
	// reason; it is never nil.
	RefusedBy map[string]int64 `json:"refused_by"`
}
