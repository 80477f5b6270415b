package mysql_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// TestIntegrationMySQLUserRecommendations: the latest top N of a user is
// the user's rows of the latest made_at, by rank, whatever order the sets
// arrive in and however often they are replayed.
func TestIntegrationMySQLUserRecommendations(t *testing.T) {
	s, _ := newSink(t, mysql.Config{Databases: 2, TablesPerDatabase: 2})
	ctx := testenv.Context(t, 30*time.Second)
	set := func(user, trigger string, at time.Time, batches ...string) []*schemas.Envelope {
		var out []*schemas.Envelope
		for i, b := range batches {
			id := schemas.ResultID("recommendation", "shop", fmt.Sprintf("%s/%d", trigger, i+1))
			out = append(out, sinktest.Result(t, "shop", at, schemas.RecommendationMade{
				RecommendationID: id, UserID: user, BatchID: b, Rank: int64(i + 1), Score: int64(1000 - i), Affinity: 1, ExpectedDiscount: 1,
				MadeAt: at, RulesRevision: "r-1", TriggerEventID: trigger,
			}))
		}
		return out
	}
	t1 := sinktest.Epoch
	newer := set("u1", "e2", t1.Add(time.Minute), "B", "A")
	older := set("u1", "e1", t1, "A", "B", "C")
	other := set("u2", "e9", t1.Add(time.Hour), "Z")
	for _, batch := range [][]*schemas.Envelope{newer, older, other, newer, older} {
		if err := s.WriteBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.UserRecommendations(ctx, "u1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, fmt.Sprintf("%s#%d@%s", r.BatchID, r.Rank, r.TriggerEventID))
	}
	if fmt.Sprint(ids) != "[B#1@e2 A#2@e2]" {
		t.Errorf("latest top N of u1 = %v, want [B#1@e2 A#2@e2]", ids)
	}
	if got, err := s.UserRecommendations(ctx, "nobody"); err != nil || len(got) != 0 {
		t.Errorf("a user never recommended: %v, %v", got, err)
	}
}
