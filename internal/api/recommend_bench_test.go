package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/recommend"
	"github.com/promoflow/promoflow/schemas"
)

// BenchmarkRecommendationLookup measures GET /v1/users/{id}/recommendations
// through the HTTP handler against the real Redis: 10,000 users with a top
// 3 each, kept by the recommendation store as the processor keeps them,
// one lookup per iteration over the users in turn. It reports lookups/s,
// p50 and p99, and the ratio to the raw limit measured in the same run:
// the same HGETs straight from Redis, one at a time, without HTTP, JSON or
// the batch cache.
func BenchmarkRecommendationLookup(b *testing.B) {
	ctx := testenv.Context(b, 10*time.Minute)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	b.Cleanup(func() { rdb.Close() })
	prefix := testenv.Name("apirec")
	b.Cleanup(func() {
		iter := rdb.Scan(context.Background(), 0, prefix+":*", 1000).Iterator()
		for iter.Next(context.Background()) {
			rdb.Del(context.Background(), iter.Val())
		}
	})
	store := recommend.NewStore(rdb, recommend.WithKeyPrefix(prefix))
	if err := store.Load(ctx); err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	batches := coupon.NewBatches()
	for g := range 30 {
		batches.Put(&schemas.BatchDefined{BatchID: fmt.Sprintf("B%02d", g), Name: fmt.Sprintf("Batch %d", g), Revision: 1, TotalStock: 1 << 20,
			PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive,
			DiscountType: schemas.DiscountFixed, Amount: 1000})
	}
	const users = 10_000
	var tops []recommend.TopInput
	for u := range users {
		user := fmt.Sprintf("user-%05d", u)
		set := recommend.Set{UserID: user, MadeAt: now, RulesRevision: "r-0123456789ab", TriggerAppID: "shop", TriggerEventID: "e-" + user}
		for r := range 3 {
			set.Items = append(set.Items, recommend.Item{RecommendationID: schemas.ResultID("recommendation", "shop", fmt.Sprint(user, r)),
				BatchID: fmt.Sprintf("B%02d", (u+r*7)%30), Rank: int64(r + 1), Score: int64(100000 - r), Affinity: 500000, ExpectedDiscount: 1000})
		}
		tops = append(tops, recommend.TopInput{UserID: user, Trigger: "shop|e-" + user, Set: set})
		if len(tops) == 1000 || u == users-1 {
			if _, err := store.Commit(ctx, "", 0, now, recommend.TopParams{TTL: time.Hour}, tops); err != nil {
				b.Fatal(err)
			}
			tops = tops[:0]
		}
	}

	// The raw limit: the same reads, straight from Redis.
	n := 5000
	t0 := time.Now()
	for i := range n {
		if err := rdb.HGet(ctx, store.TopKey(fmt.Sprintf("user-%05d", (i*7919)%users)), "set").Err(); err != nil {
			b.Fatal(err)
		}
	}
	raw := float64(n) / time.Since(t0).Seconds()

	s, err := New(Config{Coupons: &fakeCoupons{}, Batches: batches, Recommendations: store})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	lats := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		req := httptest.NewRequest(http.MethodGet, fmt.Sprintf("/v1/users/user-%05d/recommendations", (i*7919)%users), nil)
		rec := httptest.NewRecorder()
		t := time.Now()
		h.ServeHTTP(rec, req)
		lats = append(lats, time.Since(t))
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"rank":3`) {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	slices.Sort(lats)
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "lookups/s")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(raw, "raw-redis-hget/s")
	b.ReportMetric(rate/raw, "ratio-to-raw")
}
