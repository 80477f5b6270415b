package api

import (
	"context"
	"net/http"
	"time"

	"github.com/promoflow/promoflow/processors/recommend"
)

// RecommendationReader reads a user's current recommended top N, or nil
// when there is none (the recommendation processor's Store: one Redis HGET).
type RecommendationReader interface {
	Top(ctx context.Context, user string) (*recommend.Set, error)
}

// Recommendation is one recommended batch in a response.
type Recommendation struct {
	Rank             int64  `json:"rank"`
	BatchID          string `json:"batch_id"`
	BatchName        string `json:"batch_name,omitempty"`
	RecommendationID string `json:"recommendation_id"`
	// Score is the expected value in thousandths of a minor unit.
	Score int64 `json:"score"`
	// Affinity is in parts per million.
	Affinity int64 `json:"affinity"`
	// ExpectedDiscount is in minor units.
	ExpectedDiscount int64 `json:"expected_discount"`
	// ValidUntil is when the batch stops being claimable.
	ValidUntil time.Time `json:"valid_until"`
	// Granted is true when the batch was granted to the user
	// automatically (GrantEventID is the grant's claim event id).
	Granted      bool   `json:"granted"`
	GrantEventID string `json:"grant_event_id,omitempty"`
}

// RecommendationsResponse answers GET /v1/users/{user}/recommendations.
type RecommendationsResponse struct {
	UserID string `json:"user_id"`
	// MadeAt and RulesRevision are those of the top N; absent when the
	// user has none.
	MadeAt          *time.Time       `json:"made_at,omitempty"`
	RulesRevision   string           `json:"rules_revision,omitempty"`
	Recommendations []Recommendation `json:"recommendations"`
}

// recommendations answers from the user's top N kept in Redis, leaving out
// the batches that can no longer be claimed (unknown to the batch cache,
// disabled, or past valid_until); the others keep the rank they were
// recommended at.
func (s *Server) recommendations(w http.ResponseWriter, r *http.Request) {
	user, ok := s.user(w, r)
	if !ok {
		return
	}
	if s.cfg.Recommendations == nil {
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "recommendations are not configured on this server"})
		return
	}
	set, err := s.cfg.Recommendations.Top(r.Context(), user)
	if err != nil {
		s.cfg.Logger.Error("reading recommendations", "user", user, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the recommendation store is unavailable"})
		return
	}
	resp := RecommendationsResponse{UserID: user, Recommendations: []Recommendation{}}
	if set != nil {
		at := set.MadeAt.UTC()
		resp.MadeAt, resp.RulesRevision = &at, set.RulesRevision
		now := s.cfg.Now()
		for _, it := range set.Items {
			def := s.cfg.Batches.Get(it.BatchID)
			if def == nil || !recommend.Eligible(def, now) {
				continue
			}
			resp.Recommendations = append(resp.Recommendations, Recommendation{
				Rank: it.Rank, BatchID: it.BatchID, BatchName: def.Name, RecommendationID: it.RecommendationID,
				Score: it.Score, Affinity: it.Affinity, ExpectedDiscount: it.ExpectedDiscount, ValidUntil: def.ValidUntil.UTC(),
				Granted: it.GrantEventID != "", GrantEventID: it.GrantEventID,
			})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
