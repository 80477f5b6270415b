package lottery

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// TestIntegrationDecisionMetrics runs the processor with metrics on an
// instant-win activity, a scheduled draw and entries for an unknown
// activity, and checks that promoflow_decisions_total counts exactly the
// results published: entries by status and reason, instant rolls by
// outcome, the draw (from a timer) and the awards by source.
func TestIntegrationDecisionMetrics(t *testing.T) {
	h := newHarness(t)
	at := time.Now().UTC()
	spin := drawActivity("m-spin", schemas.PrizeTier{TierID: "p", Kind: schemas.PrizePoints, Points: 5, Stock: 20, ProbabilityPPM: 300_000})
	spin.Kind = schemas.KindInstantWin
	h.acts.Put(spin)
	draw := drawActivity("m-draw", schemas.PrizeTier{TierID: "p", Kind: schemas.PrizeGoods, Stock: 4})
	draw.JoinUntil = at.Add(time.Second)
	drawAt := at.Add(1500 * time.Millisecond)
	draw.DrawAt = &drawAt
	h.acts.Put(draw)
	var recs []*kgo.Record
	for i := range 60 {
		recs = append(recs, req(t, "app", fmt.Sprintf("spin-%d", i), at, schemas.ParticipationRequested{ActivityID: spin.ActivityID, UserID: fmt.Sprintf("u%d", i%40)}))
	}
	for i := range 10 {
		recs = append(recs, req(t, "app", fmt.Sprintf("draw-%d", i), at, schemas.ParticipationRequested{ActivityID: draw.ActivityID, UserID: fmt.Sprintf("u%d", i)}))
		recs = append(recs, req(t, "app", fmt.Sprintf("nowhere-%d", i), at, schemas.ParticipationRequested{ActivityID: "m-unknown", UserID: fmt.Sprintf("u%d", i)}))
	}
	h.produce(recs...)

	m := metrics.New()
	p := New(h.store(), h.acts)
	st := p.Stage()
	st.Group = "g-decisions"
	st.TickInterval = 100 * time.Millisecond
	r, err := stream.New(stream.Config{Brokers: h.brokers, Logger: quiet(), Metrics: m,
		Fencer: &stream.RedisFencer{Client: h.rdb, Prefix: h.prefix}}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	byID := h.results(func(m map[string]*schemas.Envelope) bool {
		return countType(m, schemas.TypeLotteryEntryRecorded) == 80 && countType(m, schemas.TypeLotteryDrawCompleted) == 1
	})
	want := map[[3]string]float64{}
	for _, e := range ofType[schemas.EntryRecorded](t, byID, schemas.TypeLotteryEntryRecorded) {
		want[[3]string{DecisionEntry, e.Status, e.Reason}]++
		if e.Outcome != "" {
			want[[3]string{DecisionInstant, e.Outcome, ""}]++
		}
	}
	for _, a := range ofType[schemas.PrizeAwarded](t, byID, schemas.TypeLotteryPrizeAwarded) {
		want[[3]string{DecisionAward, a.Source, ""}]++
	}
	want[[3]string{DecisionDraw, schemas.TriggerScheduled, ""}] = 1
	if want[[3]string{DecisionEntry, schemas.EntryRejected, schemas.RejectUnknownActivity}] != 10 || want[[3]string{DecisionAward, "draw", ""}] != 4 {
		t.Fatalf("unexpected results: %v", want)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		total := 0.0
		for k, n := range want {
			total += n
			if got := s.Value("promoflow_decisions_total", "stage", "lottery", "decision", k[0], "outcome", k[1], "reason", k[2]); got != n {
				bad = append(bad, fmt.Sprintf("%v: %v, want %v", k, got, n))
			}
		}
		if got := s.Value("promoflow_decisions_total", "stage", "lottery"); got != total {
			bad = append(bad, fmt.Sprintf("total %v, want %v", got, total))
		}
		if len(bad) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("decision metrics differ from the results: %v", bad)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
