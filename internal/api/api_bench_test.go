package api

import (
	"database/sql"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// BenchmarkUsable measures order-time validation through the HTTP handler
// against the real MariaDB: 5,000 users holding 20 coupons each (100,000
// coupons over 2 databases x 4 tables), one request per iteration, each
// user asked three times in a row as a checkout does (cart, coupon picker,
// order confirmation), without the cache (every request reads the user's
// shard) and with it. It reports requests/s, p50 and p99, and the ratio to the
// raw limit measured in the same run: the same reads straight from the
// store, without HTTP, JSON or evaluation.
func BenchmarkUsable(b *testing.B) {
	ctx := testenv.Context(b, 10*time.Minute)
	prefix := testenv.Name("apibench")
	cfg := mysql.Config{DSN: testenv.MySQLDSN(), DatabasePrefix: prefix, Databases: 2, TablesPerDatabase: 4}
	store, err := mysql.New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		store.Close()
		if db, err := sql.Open("mysql", testenv.MySQLDSN()); err == nil {
			for i := range 2 {
				db.Exec(fmt.Sprintf("DROP DATABASE IF EXISTS `%s_%d`", prefix, i))
			}
			db.Close()
		}
	})
	now := time.Now().UTC()
	batches := coupon.NewBatches()
	for g := range 20 {
		batches.Put(&schemas.BatchDefined{BatchID: fmt.Sprintf("B%02d", g), Revision: 1, TotalStock: 1 << 20, PerUserLimit: 1,
			ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive,
			Categories: []string{[]string{"phone", "case", "tv", "food"}[g%4]}, Threshold: int64(g * 1000),
			DiscountType: schemas.DiscountPercent, Percent: int64(5 + g%10), Cap: 20000, ExclusionGroup: fmt.Sprintf("g%d", g%5)})
	}
	const users = 5000
	var events []*schemas.Envelope
	for u := range users {
		for g := range 20 {
			id := schemas.ResultID("bench", fmt.Sprint(u), fmt.Sprint(g))
			events = append(events, sinktest.Result(b, "shop", now, schemas.StateChanged{
				ResultID: id, CouponID: id, UserID: fmt.Sprintf("user-%05d", u), BatchID: fmt.Sprintf("B%02d", g),
				Op: schemas.OpGrant, Status: schemas.OpApplied, State: schemas.CouponAvailable, Seq: 1,
				ValidFrom: now.Add(-time.Hour), ExpiresAt: now.Add(24 * time.Hour), ChangedAt: now,
			}))
		}
		if len(events) >= 10_000 || u == users-1 {
			if err := store.WriteBatch(ctx, events); err != nil {
				b.Fatal(err)
			}
			events = events[:0]
		}
	}
	body := `{"items":[{"sku":"p","category":"phone","brand":"acme","amount":120000},{"sku":"c","category":"case","amount":3000},{"sku":"f","category":"food","amount":900}]}`

	// The raw limit: the same reads, straight from the store.
	n := 2000
	t0 := time.Now()
	for i := range n {
		if _, err := store.UserCoupons(ctx, fmt.Sprintf("user-%05d", (i*7919)%users)); err != nil {
			b.Fatal(err)
		}
	}
	raw := float64(n) / time.Since(t0).Seconds()

	for _, ttl := range []time.Duration{-1, time.Second} {
		name := "cache=off"
		if ttl > 0 {
			name = "cache=1s"
		}
		b.Run(name, func(b *testing.B) {
			s, err := New(Config{Coupons: store, Batches: batches, CacheTTL: ttl})
			if err != nil {
				b.Fatal(err)
			}
			h := s.Handler()
			lats := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				req := httptest.NewRequest(http.MethodPost, fmt.Sprintf("/v1/users/user-%05d/coupons/usable", (i/3*7919)%users), strings.NewReader(body))
				rec := httptest.NewRecorder()
				t := time.Now()
				h.ServeHTTP(rec, req)
				lats = append(lats, time.Since(t))
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"usable":true`) {
					b.Fatalf("%d %s", rec.Code, rec.Body)
				}
			}
			b.StopTimer()
			slices.Sort(lats)
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "requests/s")
			b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "p99-ms")
			b.ReportMetric(raw, "raw-store-reads/s")
			b.ReportMetric(rate/raw, "ratio-to-raw")
		})
	}
}
