package recommend

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

// Set is a user's top N as recommended at one moment: what the store keeps
// for lookups (GET /v1/users/{id}/recommendations), and what the records
// are built from, so that a remembered Set yields the same records.
type Set struct {
	UserID         string    `json:"user_id"`
	MadeAt         time.Time `json:"made_at"`
	RulesRevision  string    `json:"rules_revision"`
	TriggerAppID   string    `json:"trigger_app_id"`
	TriggerEventID string    `json:"trigger_event_id"`
	// GrantRound is the auto-grant round of the items' grants.
	GrantRound string `json:"grant_round,omitempty"`
	Items      []Item `json:"items"`
}

// Item is one recommended batch of a Set.
type Item struct {
	RecommendationID string `json:"recommendation_id"`
	BatchID          string `json:"batch_id"`
	Rank             int64  `json:"rank"`
	// Score is the expected value in thousandths of a minor unit.
	Score int64 `json:"score"`
	// Affinity is in parts per million.
	Affinity int64 `json:"affinity"`
	// ExpectedDiscount is in minor units.
	ExpectedDiscount int64 `json:"expected_discount"`
	// GrantEventID is the event id of the coupon.issue.requested that
	// grants the batch, when the auto-grant rule granted it.
	GrantEventID string `json:"grant_event_id,omitempty"`
}

// NewSet makes the Set of ranked (at most TopN of it) recommended to user
// at at, triggered by app's event. With the auto-grant rule on, the first
// item is granted when the rule allows it.
func (r *Rules) NewSet(user, app, event string, at time.Time, ranked []Ranked) Set {
	s := Set{UserID: user, MadeAt: at.UTC().Truncate(time.Millisecond), RulesRevision: r.Revision, TriggerAppID: app, TriggerEventID: event,
		Items: make([]Item, 0, min(len(ranked), r.TopN))}
	for i, x := range ranked[:min(len(ranked), r.TopN)] {
		it := Item{
			RecommendationID: schemas.ResultID(ResultKind, app, event+"/"+strconv.Itoa(i+1)),
			BatchID:          x.BatchID,
			Rank:             int64(i + 1),
			Score:            round(x.Score * 1000),
			Affinity:         round(x.Affinity * 1e6),
			ExpectedDiscount: round(x.ExpectedDiscount),
		}
		if i == 0 && r.AutoGrant.Grants(x.BatchID, x.Score) {
			s.GrantRound = r.AutoGrant.Round
			it.GrantEventID = GrantEventID(r.AutoGrant.Round, user, x.BatchID)
		}
		s.Items = append(s.Items, it)
	}
	return s
}

func round(x float64) int64 {
	if math.IsNaN(x) || x <= 0 {
		return 0
	}
	return int64(math.Round(min(x, 1e17)))
}

// GrantEventID is the event id of the auto-grant of batch to user in
// round: "recgrant-" and the result id of (round, user/batch). The coupon
// processor remembers its decision by it, so publishing it again never
// grants twice.
func GrantEventID(round, user, batch string) string {
	return "recgrant-" + schemas.ResultID(GrantKind, round, user+"/"+batch)
}

// Signature names the Set's batches in rank order; a user's top N is
// emitted again only when it changes.
func (s *Set) Signature() string {
	ids := make([]string, len(s.Items))
	for i, it := range s.Items {
		ids[i] = it.BatchID
	}
	return strings.Join(ids, ",")
}

// Records returns the Set's records: one recommendation.made per item on
// the recommendations topic, and the coupon.issue.requested of a granted
// item on coupon.claims. They are a pure function of the Set.
func (s *Set) Records() ([]*kgo.Record, error) {
	out := make([]*kgo.Record, 0, len(s.Items)+1)
	for _, it := range s.Items {
		rec, err := stream.NewRecord(TopicRecommendations, it.RecommendationID, s.TriggerAppID, s.MadeAt, schemas.RecommendationMade{
			RecommendationID: it.RecommendationID, UserID: s.UserID, BatchID: it.BatchID, Rank: it.Rank, Score: it.Score,
			Affinity: it.Affinity, ExpectedDiscount: it.ExpectedDiscount, MadeAt: s.MadeAt, RulesRevision: s.RulesRevision,
			TriggerEventID: s.TriggerEventID, GrantEventID: it.GrantEventID,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	for _, it := range s.Items {
		if it.GrantEventID == "" {
			continue
		}
		rec, err := stream.NewRecord(coupon.TopicClaims, it.GrantEventID, AppID, s.MadeAt, schemas.IssueRequested{
			BatchID: it.BatchID, UserID: s.UserID, IssueID: "recommend-" + s.GrantRound,
		})
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}
