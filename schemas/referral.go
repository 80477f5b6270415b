package schemas

import "time"

// Referral (share with gift) event types.
const (
	TypeReferralActivityDefined = "referral.activity.defined"
	TypeReferralClickRecorded   = "referral.click.recorded"
	TypeReferralRegistered      = "referral.registered"
	TypeReferralQualified       = "referral.qualified"

	TypeReferralBound                = "referral.bound"
	TypeReferralQualificationDecided = "referral.qualification.decided"
	TypeReferralRewardGranted        = "referral.reward.granted"
)

// QualifyNone is the qualifying_action of an activity whose invitees count
// once bound.
const QualifyNone = "none"

// Statuses of referral decisions.
const (
	ReferralBound   = "bound"
	ReferralRefused = "refused"
	ReferralCounted = "counted"
)

// Kinds of the events that bind (referral.bound's event_kind).
const (
	BindClick        = "click"
	BindRegistration = "registration"
)

// Reasons a click, registration or qualification is refused, besides
// RejectUnknownActivity, RejectActivityDisabled, RejectNotStarted and
// RejectEnded.
const (
	RefuseBadToken         = "bad_token"
	RefuseExpiredToken     = "expired_token"
	RefuseSelfInvite       = "self_invite"
	RefuseAlreadyBound     = "already_bound"
	RefuseCycle            = "cycle"
	RefuseChainTooDeep     = "chain_too_deep"
	RefuseNotRequired      = "not_required"
	RefuseWrongAction      = "wrong_action"
	RefuseNotBound         = "not_bound"
	RefuseAlreadyQualified = "already_qualified"
)

// ReferralReward is one reward threshold of a referral activity.
type ReferralReward struct {
	Threshold int64  `json:"threshold"`
	BatchID   string `json:"batch_id"`
}

// ReferralActivityDefined creates or updates a referral activity
// (referral.activity.defined v1).
type ReferralActivityDefined struct {
	ActivityID       string           `json:"activity_id"`
	Name             string           `json:"name,omitempty"`
	Revision         int64            `json:"revision"`
	Status           string           `json:"status"`
	StartsAt         time.Time        `json:"starts_at"`
	EndsAt           time.Time        `json:"ends_at"`
	QualifyUntil     *time.Time       `json:"qualify_until,omitempty"`
	QualifyingAction string           `json:"qualifying_action"`
	LinkTTLSeconds   int64            `json:"link_ttl_seconds"`
	Rewards          []ReferralReward `json:"rewards"`
}

func (ReferralActivityDefined) EventType() string      { return TypeReferralActivityDefined }
func (ReferralActivityDefined) EventVersion() int      { return 1 }
func (a ReferralActivityDefined) PartitionKey() string { return a.ActivityID }

// QualifyEnd returns the first instant qualifications are refused:
// qualify_until, or ends_at without it.
func (a *ReferralActivityDefined) QualifyEnd() time.Time {
	if a.QualifyUntil != nil {
		return *a.QualifyUntil
	}
	return a.EndsAt
}

// LinkTTL returns link_ttl_seconds as a duration.
func (a *ReferralActivityDefined) LinkTTL() time.Duration {
	return time.Duration(a.LinkTTLSeconds) * time.Second
}

// ClickRecorded is a user opening a share link (referral.click.recorded v1).
type ClickRecorded struct {
	ActivityID string `json:"activity_id"`
	InviteeID  string `json:"invitee_id"`
	Token      string `json:"token"`
	Channel    string `json:"channel,omitempty"`
}

func (ClickRecorded) EventType() string      { return TypeReferralClickRecorded }
func (ClickRecorded) EventVersion() int      { return 1 }
func (c ClickRecorded) PartitionKey() string { return c.ActivityID }

// Registered is a user who came through a share link registering or
// joining the activity (referral.registered v1).
type Registered struct {
	ActivityID string `json:"activity_id"`
	InviteeID  string `json:"invitee_id"`
	Token      string `json:"token"`
	Action     string `json:"action,omitempty"`
}

func (Registered) EventType() string      { return TypeReferralRegistered }
func (Registered) EventVersion() int      { return 1 }
func (r Registered) PartitionKey() string { return r.ActivityID }

// Qualified is an invitee's qualifying action (referral.qualified v1).
type Qualified struct {
	ActivityID string `json:"activity_id"`
	InviteeID  string `json:"invitee_id"`
	Action     string `json:"action"`
	Reference  string `json:"reference,omitempty"`
}

func (Qualified) EventType() string      { return TypeReferralQualified }
func (Qualified) EventVersion() int      { return 1 }
func (q Qualified) PartitionKey() string { return q.ActivityID }

// ReferralBoundResult is the decision on a click or registration
// (referral.bound v1).
type ReferralBoundResult struct {
	ResultID       string    `json:"result_id"`
	SourceEventID  string    `json:"source_event_id"`
	EventKind      string    `json:"event_kind"`
	ActivityID     string    `json:"activity_id"`
	InviteeID      string    `json:"invitee_id"`
	InviterID      string    `json:"inviter_id"`
	Status         string    `json:"status"`
	Reason         string    `json:"reason"`
	BoundInviterID string    `json:"bound_inviter_id"`
	Counted        int64     `json:"counted"`
	OccurredAt     time.Time `json:"occurred_at"`
	DecidedAt      time.Time `json:"decided_at"`
}

func (ReferralBoundResult) EventType() string      { return TypeReferralBound }
func (ReferralBoundResult) EventVersion() int      { return 1 }
func (r ReferralBoundResult) PartitionKey() string { return r.InviteeID }

// QualificationDecided is the decision on a qualifying action
// (referral.qualification.decided v1).
type QualificationDecided struct {
	ResultID      string    `json:"result_id"`
	SourceEventID string    `json:"source_event_id"`
	ActivityID    string    `json:"activity_id"`
	InviteeID     string    `json:"invitee_id"`
	InviterID     string    `json:"inviter_id"`
	Action        string    `json:"action"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason"`
	OccurredAt    time.Time `json:"occurred_at"`
	DecidedAt     time.Time `json:"decided_at"`
}

func (QualificationDecided) EventType() string      { return TypeReferralQualificationDecided }
func (QualificationDecided) EventVersion() int      { return 1 }
func (q QualificationDecided) PartitionKey() string { return q.InviteeID }

// RewardGranted is an inviter's reward for reaching a threshold
// (referral.reward.granted v1).
type RewardGranted struct {
	ResultID      string    `json:"result_id"`
	ActivityID    string    `json:"activity_id"`
	InviterID     string    `json:"inviter_id"`
	Threshold     int64     `json:"threshold"`
	BatchID       string    `json:"batch_id"`
	Successful    int64     `json:"successful"`
	InviteeID     string    `json:"invitee_id"`
	SourceEventID string    `json:"source_event_id"`
	ClaimEventID  string    `json:"claim_event_id"`
	GrantedAt     time.Time `json:"granted_at"`
}

func (RewardGranted) EventType() string      { return TypeReferralRewardGranted }
func (RewardGranted) EventVersion() int      { return 1 }
func (r RewardGranted) PartitionKey() string { return r.InviterID }
