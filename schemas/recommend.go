package schemas

import (
	"strconv"
	"time"
)

// Behaviour and recommendation event types.
const (
	TypeBehaviourEventRecorded = "behaviour.event.recorded"
	TypeRecommendationMade     = "recommendation.made"
)

// Behaviour actions (BehaviourRecorded.Action).
const (
	ActionBrowse = "browse"
	ActionCart   = "cart"
	ActionOrder  = "order"
	ActionReview = "review"
)

// BehaviourRecorded is something a user did in a shop
// (behaviour.event.recorded v1). When it happened is the envelope's
// occurred_at. Price is the unit price in minor units, 0 when unknown;
// Quantity and Rating are 0 when absent.
type BehaviourRecorded struct {
	UserID   string `json:"user_id"`
	Action   string `json:"action"`
	Category string `json:"category"`
	Brand    string `json:"brand,omitempty"`
	Model    string `json:"model,omitempty"`
	SKU      string `json:"sku,omitempty"`
	Price    int64  `json:"price,omitempty"`
	Quantity int64  `json:"quantity,omitempty"`
	Rating   int64  `json:"rating,omitempty"`
}

func (BehaviourRecorded) EventType() string      { return TypeBehaviourEventRecorded }
func (BehaviourRecorded) EventVersion() int      { return 1 }
func (b BehaviourRecorded) PartitionKey() string { return b.UserID }

// RecommendationMade is one batch at one rank of a user's recommended top N
// (recommendation.made v1). RecommendationID is every sink's idempotency
// key. Score is the expected value in thousandths of a minor unit, Affinity
// in parts per million, ExpectedDiscount in minor units.
type RecommendationMade struct {
	RecommendationID string    `json:"recommendation_id"`
	UserID           string    `json:"user_id"`
	BatchID          string    `json:"batch_id"`
	Rank             int64     `json:"rank"`
	Score            int64     `json:"score"`
	Affinity         int64     `json:"affinity"`
	ExpectedDiscount int64     `json:"expected_discount"`
	MadeAt           time.Time `json:"made_at"`
	RulesRevision    string    `json:"rules_revision"`
	TriggerEventID   string    `json:"trigger_event_id"`
	GrantEventID     string    `json:"grant_event_id,omitempty"`
}

func (RecommendationMade) EventType() string      { return TypeRecommendationMade }
func (RecommendationMade) EventVersion() int      { return 1 }
func (r RecommendationMade) PartitionKey() string { return r.UserID }

// appendJSON appends r as json.Marshal would: recommendations are encoded
// on the processor's hot path.
func (r RecommendationMade) appendJSON(b []byte) []byte {
	b = append(b, `{"recommendation_id":`...)
	b = appendString(b, r.RecommendationID)
	b = append(b, `,"user_id":`...)
	b = appendString(b, r.UserID)
	b = append(b, `,"batch_id":`...)
	b = appendString(b, r.BatchID)
	b = append(b, `,"rank":`...)
	b = strconv.AppendInt(b, r.Rank, 10)
	b = append(b, `,"score":`...)
	b = strconv.AppendInt(b, r.Score, 10)
	b = append(b, `,"affinity":`...)
	b = strconv.AppendInt(b, r.Affinity, 10)
	b = append(b, `,"expected_discount":`...)
	b = strconv.AppendInt(b, r.ExpectedDiscount, 10)
	b = append(b, `,"made_at":`...)
	b = appendTime(b, r.MadeAt)
	b = append(b, `,"rules_revision":`...)
	b = appendString(b, r.RulesRevision)
	b = append(b, `,"trigger_event_id":`...)
	b = appendString(b, r.TriggerEventID)
	if r.GrantEventID != "" {
		b = append(b, `,"grant_event_id":`...)
		b = appendString(b, r.GrantEventID)
	}
	return append(b, '}')
}
