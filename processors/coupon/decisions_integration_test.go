package coupon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// TestIntegrationDecisionMetrics runs the processor with metrics: two
// claims on a batch of stock 1 (granted, out_of_stock), then the owner's
// lock and confirm and a stranger's lock. promoflow_decisions_total
// counts each decision with the status and reason published.
func TestIntegrationDecisionMetrics(t *testing.T) {
	h := newLC(t)
	def := lcBatch("ONE", func(b *schemas.BatchDefined) { b.TotalStock = 1 })
	h.batches.Put(def)
	s := h.store()
	if err := s.Load(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	st := New(s, h.batches).Stage()
	st.Group = "g-decisions"
	r, err := stream.New(stream.Config{Brokers: h.brokers, Logger: lcQuiet(), Metrics: m,
		Fencer: &stream.RedisFencer{Client: h.rdb, Prefix: h.prefix}}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	h.produce(claimReq(t, "shop", "claim-a", def.BatchID, "alice"))
	h.grantedState("shop", "claim-a")
	h.produce(claimReq(t, "shop", "claim-b", def.BatchID, "bob"))
	coupon := couponOf("shop", "claim-a")
	h.produce(lockReq(t, "lock-a", "order-1", "alice", coupon), lockReq(t, "lock-b", "order-2", "bob", coupon))
	h.waitFor("both locks decided", time.Minute, func(o *lcOut) bool {
		_, a := o.states[opID("shop", "lock-a")]
		_, b := o.states[opID("shop", "lock-b")]
		return a && b
	})
	h.produce(confirmReq(t, "confirm-a", "order-1", "alice", coupon))
	h.waitFor("the confirm and bob's claim decided", time.Minute, func(o *lcOut) bool {
		_, c := o.states[opID("shop", "confirm-a")]
		_, g := o.grants["claim-b"]
		return c && g
	})

	want := map[[3]string]float64{}
	h.with(func(o *lcOut) {
		for _, g := range o.grants {
			want[[3]string{DecisionGrant, g.Status, g.Reason}]++
		}
		for _, ev := range []string{"lock-a", "lock-b", "confirm-a"} {
			sc := o.states[opID("shop", ev)]
			want[[3]string{DecisionOpPrefix + sc.Op, sc.Status, sc.Reason}]++
		}
	})
	if want[[3]string{DecisionGrant, schemas.StatusRejected, schemas.RejectOutOfStock}] != 1 ||
		want[[3]string{"coupon.lock", schemas.OpApplied, ""}] != 1 || want[[3]string{"coupon.confirm", schemas.OpApplied, ""}] != 1 {
		t.Fatalf("unexpected results: %v", want)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		sn, err := m.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var bad []string
		for k, n := range want {
			if got := sn.Value("promoflow_decisions_total", "stage", "coupon", "decision", k[0], "outcome", k[1], "reason", k[2]); got != n {
				bad = append(bad, fmt.Sprintf("%v: %v, want %v", k, got, n))
			}
		}
		if got := sn.Value("promoflow_decisions_total", "stage", "coupon"); got != 5 {
			bad = append(bad, fmt.Sprintf("total %v, want 5", got))
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
