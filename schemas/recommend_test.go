package schemas

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestRecommendationAppendJSONMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 2, 3, 4000, time.FixedZone("", 8*3600))
	for _, r := range []RecommendationMade{
		{RecommendationID: "r", UserID: "u\"\\\n<&>", BatchID: "b", Rank: 1, Score: 1<<63 - 1, Affinity: 1_000_000, ExpectedDiscount: 5000,
			MadeAt: at, RulesRevision: "r-0123456789ab", TriggerEventID: "é🎉\u2028\b\f\x01", GrantEventID: "recgrant-x"},
		{RecommendationID: "r", UserID: "u", BatchID: "b\x00", Rank: -3, MadeAt: at.UTC(), RulesRevision: "x", TriggerEventID: "t", GrantEventID: ""},
		{},
	} {
		want, _ := json.Marshal(r)
		if got := r.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("appendJSON\n got %s\nwant %s", got, want)
		}
	}
}

func FuzzRecommendationAppendJSON(f *testing.F) {
	f.Add("r", "u1", "B1", int64(1), int64(4799541), "r-0123456789ab", "ev", "")
	f.Add("\xff", "<", "\u2029", int64(-1), int64(0), "", "\x00", "g")
	f.Fuzz(func(t *testing.T, id, user, batch string, rank, score int64, rev, trigger, grant string) {
		r := RecommendationMade{RecommendationID: id, UserID: user, BatchID: batch, Rank: rank, Score: score, Affinity: rank ^ score,
			ExpectedDiscount: score / 7, MadeAt: time.Unix(score%1e10, rank%1e9).UTC(), RulesRevision: rev, TriggerEventID: trigger, GrantEventID: grant}
		want, err := json.Marshal(r)
		if err != nil {
			return
		}
		if got := r.appendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("appendJSON\n got %s\nwant %s", got, want)
		}
	})
}
