package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/processors/recommend"
)

// fakeRecommendations serves fixed top Ns (the handler's logic is under
// test; the Redis store has its own tests, and BenchmarkRecommendationLookup
// runs the handler against it).
type fakeRecommendations struct {
	sets map[string]*recommend.Set
	err  error
}

func (f *fakeRecommendations) Top(_ context.Context, user string) (*recommend.Set, error) {
	return f.sets[user], f.err
}

func getRecommendations(t *testing.T, s *Server, user string) (*httptest.ResponseRecorder, RecommendationsResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/users/"+user+"/recommendations", nil))
	var resp RecommendationsResponse
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
	}
	return rec, resp
}

func TestRecommendations(t *testing.T) {
	s, _ := testServer(t, time.Second)
	made := now.Add(-time.Minute)
	s.cfg.Recommendations = &fakeRecommendations{sets: map[string]*recommend.Set{
		"u1": {UserID: "u1", MadeAt: made, RulesRevision: "r-abc", TriggerAppID: "shop", TriggerEventID: "e1", Items: []recommend.Item{
			{RecommendationID: "r1", BatchID: "FIX", Rank: 1, Score: 4500000, Affinity: 900000, ExpectedDiscount: 5000, GrantEventID: "recgrant-x"},
			{RecommendationID: "r2", BatchID: "GONE", Rank: 2, Score: 2000, Affinity: 1, ExpectedDiscount: 2},
			{RecommendationID: "r3", BatchID: "PCT", Rank: 3, Score: 1000, Affinity: 500000, ExpectedDiscount: 2},
		}},
	}}
	rec, resp := getRecommendations(t, s, "u1")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if resp.UserID != "u1" || resp.MadeAt == nil || !resp.MadeAt.Equal(made) || resp.RulesRevision != "r-abc" || len(resp.Recommendations) != 2 {
		t.Fatalf("response %+v", resp)
	}
	first, second := resp.Recommendations[0], resp.Recommendations[1]
	if first.BatchID != "FIX" || first.BatchName != "50 off phones" || first.Rank != 1 || !first.Granted || first.GrantEventID != "recgrant-x" ||
		first.ExpectedDiscount != 5000 || !first.ValidUntil.Equal(now.Add(time.Hour)) {
		t.Errorf("first = %+v", first)
	}
	// The unknown batch is left out; the next keeps its rank.
	if second.BatchID != "PCT" || second.Rank != 3 || second.Granted {
		t.Errorf("second = %+v", second)
	}

	// A user without recommendations: an empty list.
	rec, resp = getRecommendations(t, s, "u2")
	if rec.Code != http.StatusOK || resp.MadeAt != nil || resp.Recommendations == nil || len(resp.Recommendations) != 0 ||
		!strings.Contains(rec.Body.String(), `"recommendations":[]`) {
		t.Errorf("u2: %d %s", rec.Code, rec.Body)
	}

	// An expired batch is left out too.
	s.cfg.Now = func() time.Time { return now.Add(2 * time.Hour) }
	if _, resp = getRecommendations(t, s, "u1"); len(resp.Recommendations) != 0 {
		t.Errorf("after the batches ended: %+v", resp.Recommendations)
	}
}

func TestRecommendationsErrors(t *testing.T) {
	s, _ := testServer(t, time.Second)
	if rec, _ := getRecommendations(t, s, "u1"); rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "not configured") {
		t.Errorf("without a reader: %d %s", rec.Code, rec.Body)
	}
	s.cfg.Recommendations = &fakeRecommendations{err: errors.New("redis down")}
	if rec, _ := getRecommendations(t, s, "u1"); rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "redis down") {
		t.Errorf("store down: %d %s (the error must not leak)", rec.Code, rec.Body)
	}
	for _, user := range []string{"bad%20user", "%7Binjection%7D", strings.Repeat("x", 200)} {
		if rec, _ := getRecommendations(t, s, user); rec.Code != http.StatusBadRequest {
			t.Errorf("user %q: %d", user, rec.Code)
		}
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/users/u1/recommendations", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", rec.Code)
	}
}
