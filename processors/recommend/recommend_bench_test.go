package recommend

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// BenchmarkRecommend measures behaviour events through Handle against the
// real Redis: batches of 500 events (a partition's share of a poll) over
// 20,000 users and 40 active batches, every event new (a distinct event
// id), with the default rules. Each batch costs the profile step, the
// stock read (cached 1s), the holdings of each touched user's best batches
// and the decision step. It reports events/s, the p50 and p99 of a batch,
// and, measured in the same run on the same kind of batches, the raw
// Redis pipelined limit: one pipeline per batch of the plain commands an
// event needs at least (ZADD of its id, HINCRBYFLOAT of each of its
// entries), without atomicity, deduplication, decay or ranking; and the
// ratio of the two.
func BenchmarkRecommend(b *testing.B) {
	f := newFixture(b, string(DefaultRulesYAML))
	f.p.rules = StaticRules(func() *Rules {
		r := DefaultRules()
		r.Window = 365 * 24 * time.Hour // t0 lies in the past
		return r
	}())
	f.p.stockTTL = DefaultStockCacheTTL
	cats := []string{"phone", "tv", "laptop", "food", "garden", "books", "toys", "shoes"}
	brands := []string{"acme", "zeta", "nova", "orbit", "umbra"}
	for i := range 40 {
		f.batches.Put(def(fmt.Sprintf("BENCH-%02d", i), func(d *schemas.BatchDefined) {
			d.Categories = []string{cats[i%len(cats)]}
			if i%3 == 0 {
				d.Brands = []string{brands[i%len(brands)]}
			}
			d.Amount = int64(500 + 250*(i%9))
			d.Threshold = int64(1000 * (i % 5))
			d.TotalStock = 1 << 30
		}))
	}
	const users, batchSize = 20000, 500
	rng := rand.New(rand.NewPCG(3, 4))
	seq := 0
	next := func() *stream.Batch {
		envs := make([]*schemas.Envelope, batchSize)
		for i := range envs {
			seq++
			envs[i] = behaviour(b, "bench-"+strconv.Itoa(seq), t0.Add(-time.Duration(rng.IntN(48*60))*time.Minute), schemas.BehaviourRecorded{
				UserID: "user-" + strconv.Itoa(rng.IntN(users)), Action: []string{"browse", "browse", "browse", "cart", "order"}[rng.IntN(5)],
				Category: cats[rng.IntN(len(cats))], Brand: brands[rng.IntN(len(brands))], Price: int64(1000 + rng.IntN(200000)), Quantity: 1,
			})
		}
		return batchOf(int32(seq/batchSize%12), 1, envs...)
	}
	ctx := context.Background()

	// The raw limit: the same keys touched by plain pipelined commands.
	rawBatches := make([]*stream.Batch, 40)
	for i := range rawBatches {
		rawBatches[i] = next()
	}
	rules := f.p.rules.Rules()
	t0raw := time.Now()
	for _, bt := range rawBatches {
		pipe := f.store.rdb.Pipeline()
		for _, ev := range bt.Events {
			be, _ := DecodeEvent(ev.Env)
			k := f.store.userKey(be.UserID) + ":raw"
			pipe.ZAdd(ctx, k+"seen", redis.Z{Score: float64(t0.UnixMilli()), Member: ev.Env.EventID})
			for _, fld := range rules.Fields(&be) {
				pipe.HIncrByFloat(ctx, k+"prof", fld, 1)
			}
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	raw := float64(len(rawBatches)*batchSize) / time.Since(t0raw).Seconds()

	// Warm the users' profiles a little, outside the measure.
	for range 20 {
		if _, err := f.p.Handle(ctx, next()); err != nil {
			b.Fatal(err)
		}
	}
	batches := make([]*stream.Batch, b.N)
	for i := range batches {
		batches[i] = next()
	}
	lats := make([]time.Duration, 0, b.N)
	out := 0
	b.ReportAllocs()
	b.ResetTimer()
	for _, bt := range batches {
		start := time.Now()
		res, err := f.p.Handle(ctx, bt)
		if err != nil {
			b.Fatal(err)
		}
		lats = append(lats, time.Since(start))
		out += len(res.Out)
	}
	b.StopTimer()
	slices.Sort(lats)
	rate := float64(b.N*batchSize) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "batch-p50-ms")
	b.ReportMetric(float64(lats[(len(lats)*99)/100].Microseconds())/1000, "batch-p99-ms")
	b.ReportMetric(float64(out)/float64(b.N*batchSize), "records/event")
	b.ReportMetric(raw, "raw-redis-events/s")
	b.ReportMetric(rate/raw, "ratio-to-raw")
	_ = testenv.RedisAddr
}
