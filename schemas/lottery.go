package schemas

import "time"

// Lottery and gift-exchange event types.
const (
	TypeLotteryActivityDefined        = "lottery.activity.defined"
	TypeLotteryParticipationRequested = "lottery.participation.requested"
	TypeLotteryDrawRequested          = "lottery.draw.requested"
	TypeGiftMemberUpdated             = "gift.member.updated"
	TypeGiftSendRequested             = "gift.send.requested"

	TypeLotteryActivityCommitted = "lottery.activity.committed"
	TypeLotteryEntryRecorded     = "lottery.entry.recorded"
	TypeLotteryDrawCompleted     = "lottery.draw.completed"
	TypeLotteryPrizeAwarded      = "lottery.prize.awarded"
	TypeGiftMatchDecided         = "gift.match.decided"
	TypeGiftMemberRecorded       = "gift.member.recorded"
)

// Activity kinds.
const (
	KindDraw         = "draw"
	KindInstantWin   = "instant_win"
	KindGiftExchange = "gift_exchange"
)

// Prize kinds.
const (
	PrizeCoupon = "coupon"
	PrizeGoods  = "goods"
	PrizePoints = "points"
)

// Entry, match and member statuses and outcomes.
const (
	EntryAccepted = "accepted"
	EntryRejected = "rejected"
	OutcomeWon    = "won"
	OutcomeLost   = "lost"
	MatchMatched  = "matched"
	MatchRejected = "rejected"
	MemberActive  = "active"
	MemberRemoved = "removed"
)

// Gift member actions.
const (
	MemberAdd    = "add"
	MemberUpdate = "update"
	MemberRemove = "remove"
)

// Draw triggers.
const (
	TriggerManual    = "manual"
	TriggerScheduled = "scheduled"
)

// Rejection reasons of lottery entries and gift sends.
const (
	RejectUnknownActivity  = "unknown_activity"
	RejectActivityDisabled = "activity_disabled"
	RejectEnded            = "ended"
	RejectLimitReached     = "limit_reached"
	RejectDrawClosed       = "draw_closed"
	RejectAlreadyWon       = "already_won"
	RejectWrongKind        = "wrong_kind"
	RejectNotAMember       = "not_a_member"
	RejectAlreadySent      = "already_sent"
	RejectNoReceiverLeft   = "no_receiver_left"
)

// PrizeTier is one prize tier of an activity.
type PrizeTier struct {
	TierID         string `json:"tier_id"`
	Name           string `json:"name,omitempty"`
	Kind           string `json:"kind"`
	BatchID        string `json:"batch_id,omitempty"`
	Points         int64  `json:"points,omitempty"`
	Stock          int64  `json:"stock"`
	ProbabilityPPM int64  `json:"probability_ppm,omitempty"`
}

// ActivityDefined creates or updates a lottery activity
// (lottery.activity.defined v1).
type ActivityDefined struct {
	ActivityID   string      `json:"activity_id"`
	Name         string      `json:"name,omitempty"`
	Revision     int64       `json:"revision"`
	Kind         string      `json:"kind"`
	JoinFrom     time.Time   `json:"join_from"`
	JoinUntil    time.Time   `json:"join_until"`
	DrawAt       *time.Time  `json:"draw_at,omitempty"`
	PerUserLimit int64       `json:"per_user_limit"`
	Status       string      `json:"status"`
	Prizes       []PrizeTier `json:"prizes"`
}

func (ActivityDefined) EventType() string      { return TypeLotteryActivityDefined }
func (ActivityDefined) EventVersion() int      { return 1 }
func (a ActivityDefined) PartitionKey() string { return a.ActivityID }

// Tier returns the tier with id, or nil.
func (a *ActivityDefined) Tier(id string) *PrizeTier {
	for i := range a.Prizes {
		if a.Prizes[i].TierID == id {
			return &a.Prizes[i]
		}
	}
	return nil
}

// ParticipationRequested is a user joining an activity
// (lottery.participation.requested v1).
type ParticipationRequested struct {
	ActivityID string `json:"activity_id"`
	UserID     string `json:"user_id"`
	Channel    string `json:"channel,omitempty"`
}

func (ParticipationRequested) EventType() string      { return TypeLotteryParticipationRequested }
func (ParticipationRequested) EventVersion() int      { return 1 }
func (p ParticipationRequested) PartitionKey() string { return p.ActivityID }

// DrawRequested asks for an activity's draw now (lottery.draw.requested v1).
type DrawRequested struct {
	ActivityID  string `json:"activity_id"`
	RequestedBy string `json:"requested_by,omitempty"`
}

func (DrawRequested) EventType() string      { return TypeLotteryDrawRequested }
func (DrawRequested) EventVersion() int      { return 1 }
func (d DrawRequested) PartitionKey() string { return d.ActivityID }

// MemberUpdated adds, edits or removes a gift-exchange member
// (gift.member.updated v1).
type MemberUpdated struct {
	ActivityID string `json:"activity_id"`
	UserID     string `json:"user_id"`
	Action     string `json:"action"`
	Name       string `json:"name,omitempty"`
	Note       string `json:"note,omitempty"`
	ImportID   string `json:"import_id,omitempty"`
}

func (MemberUpdated) EventType() string      { return TypeGiftMemberUpdated }
func (MemberUpdated) EventVersion() int      { return 1 }
func (m MemberUpdated) PartitionKey() string { return m.ActivityID }

// SendRequested is a member pressing "send gift" (gift.send.requested v1).
type SendRequested struct {
	ActivityID string `json:"activity_id"`
	UserID     string `json:"user_id"`
}

func (SendRequested) EventType() string      { return TypeGiftSendRequested }
func (SendRequested) EventVersion() int      { return 1 }
func (s SendRequested) PartitionKey() string { return s.ActivityID }

// ActivityCommitted publishes an activity's seed commitment
// (lottery.activity.committed v1).
type ActivityCommitted struct {
	ResultID     string     `json:"result_id"`
	ActivityID   string     `json:"activity_id"`
	Name         string     `json:"name,omitempty"`
	Revision     int64      `json:"revision"`
	Kind         string     `json:"kind"`
	Status       string     `json:"status,omitempty"`
	SeedHash     string     `json:"seed_hash"`
	JoinFrom     time.Time  `json:"join_from"`
	JoinUntil    time.Time  `json:"join_until"`
	DrawAt       *time.Time `json:"draw_at,omitempty"`
	PerUserLimit int64      `json:"per_user_limit,omitempty"`
	Prizes       string     `json:"prizes"`
	CommittedAt  time.Time  `json:"committed_at"`
}

func (ActivityCommitted) EventType() string      { return TypeLotteryActivityCommitted }
func (ActivityCommitted) EventVersion() int      { return 1 }
func (a ActivityCommitted) PartitionKey() string { return a.ActivityID }

// EntryRecorded is the decision on one participation
// (lottery.entry.recorded v1).
type EntryRecorded struct {
	ResultID     string    `json:"result_id"`
	EntryEventID string    `json:"entry_event_id"`
	ActivityID   string    `json:"activity_id"`
	UserID       string    `json:"user_id"`
	Status       string    `json:"status"`
	Reason       string    `json:"reason"`
	Outcome      string    `json:"outcome"`
	TierID       string    `json:"tier_id,omitempty"`
	Roll         int64     `json:"roll"`
	Odds         string    `json:"odds,omitempty"`
	OccurredAt   time.Time `json:"occurred_at"`
	RecordedAt   time.Time `json:"recorded_at"`
}

func (EntryRecorded) EventType() string      { return TypeLotteryEntryRecorded }
func (EntryRecorded) EventVersion() int      { return 1 }
func (e EntryRecorded) PartitionKey() string { return e.UserID }

// DrawCompleted reveals an activity's seed and summarises its draw
// (lottery.draw.completed v1).
type DrawCompleted struct {
	ResultID           string    `json:"result_id"`
	ActivityID         string    `json:"activity_id"`
	Trigger            string    `json:"trigger"`
	DrawEventID        string    `json:"draw_event_id,omitempty"`
	Seed               string    `json:"seed"`
	SeedHash           string    `json:"seed_hash"`
	Participants       int64     `json:"participants"`
	ParticipantsDigest string    `json:"participants_digest"`
	Winners            int64     `json:"winners"`
	Prizes             string    `json:"prizes"`
	DrawnAt            time.Time `json:"drawn_at"`
}

func (DrawCompleted) EventType() string      { return TypeLotteryDrawCompleted }
func (DrawCompleted) EventVersion() int      { return 1 }
func (d DrawCompleted) PartitionKey() string { return d.ActivityID }

// PrizeAwarded is one user's prize (lottery.prize.awarded v1).
type PrizeAwarded struct {
	ResultID   string    `json:"result_id"`
	ActivityID string    `json:"activity_id"`
	UserID     string    `json:"user_id"`
	TierID     string    `json:"tier_id"`
	PrizeKind  string    `json:"prize_kind"`
	BatchID    string    `json:"batch_id,omitempty"`
	Points     int64     `json:"points,omitempty"`
	Source     string    `json:"source"`
	SourceID   string    `json:"source_id"`
	Rank       int64     `json:"rank"`
	AwardedAt  time.Time `json:"awarded_at"`
}

func (PrizeAwarded) EventType() string      { return TypeLotteryPrizeAwarded }
func (PrizeAwarded) EventVersion() int      { return 1 }
func (p PrizeAwarded) PartitionKey() string { return p.UserID }

// MatchDecided is the decision on one gift send (gift.match.decided v1).
type MatchDecided struct {
	ResultID    string    `json:"result_id"`
	SendEventID string    `json:"send_event_id"`
	ActivityID  string    `json:"activity_id"`
	SenderID    string    `json:"sender_id"`
	ReceiverID  string    `json:"receiver_id"`
	Status      string    `json:"status"`
	Reason      string    `json:"reason"`
	DecidedAt   time.Time `json:"decided_at"`
}

func (MatchDecided) EventType() string      { return TypeGiftMatchDecided }
func (MatchDecided) EventVersion() int      { return 1 }
func (m MatchDecided) PartitionKey() string { return m.SenderID }

// MemberRecorded is a gift-exchange member's current record
// (gift.member.recorded v1).
type MemberRecorded struct {
	ResultID   string    `json:"result_id"`
	ActivityID string    `json:"activity_id"`
	UserID     string    `json:"user_id"`
	Name       string    `json:"name,omitempty"`
	Note       string    `json:"note,omitempty"`
	Status     string    `json:"status"`
	ImportID   string    `json:"import_id,omitempty"`
	UpdatedAt  time.Time `json:"updated_at"`
}

func (MemberRecorded) EventType() string      { return TypeGiftMemberRecorded }
func (MemberRecorded) EventVersion() int      { return 1 }
func (m MemberRecorded) PartitionKey() string { return m.UserID }
