package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

// BenchmarkBulkIssue measures bulk issuance end to end: b.N users (at least
// 20,000) issued from one batch, from the first publish to the last
// decision read back from coupon.grants, with the coupon processor running
// on kfake and the real Redis. It reports users/s and the ratio to the raw
// limit measured in the same run: publishing the same number of events
// to Kafka without waiting for decisions.
func BenchmarkBulkIssue(b *testing.B) {
	e := startCouponEnv(b, stageCoupon)
	ctx := testenv.Context(b, 10*time.Minute)
	now := time.Now().UTC()
	n := max(b.N, 20_000)
	pr, err := producers.New(producers.Config{Brokers: e.cfg.Kafka.Brokers, AppID: "ops"})
	if err != nil {
		b.Fatal(err)
	}
	defer pr.Close()
	def := schemas.BatchDefinedV2{BatchID: "BENCH", Revision: 1, TotalStock: int64(n), PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Status: schemas.BatchActive, DiscountType: schemas.DiscountFixed, Amount: 100}
	if err := pr.Publish(ctx, "def-bench", now, def); err != nil {
		b.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	// Raw limit: the same number of events published to an unused batch's
	// users, without waiting for decisions.
	raw := make([]string, n)
	for i := range raw {
		raw[i] = fmt.Sprintf("raw-%07d", i)
	}
	rr, err := producers.Issue(ctx, pr, e.cfg.Kafka.Brokers, raw, producers.IssueOptions{BatchID: "RAW"})
	if err != nil {
		b.Fatal(err)
	}
	rawRate := float64(n) / rr.Elapsed.Seconds()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("user-%07d", i)
	}
	b.ResetTimer()
	rep, err := producers.Issue(ctx, pr, e.cfg.Kafka.Brokers, users, producers.IssueOptions{BatchID: "BENCH", Wait: 5 * time.Minute})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if rep.Issued != n {
		b.Fatalf("issued %d of %d (%v %v)", rep.Issued, n, rep.SkippedBy, rep.FailedBy)
	}
	rate := float64(n) / rep.Elapsed.Seconds()
	b.ReportMetric(rate, "users/s")
	b.ReportMetric(rawRate, "raw-publish/s")
	b.ReportMetric(rate/rawRate, "ratio-to-raw")
}
