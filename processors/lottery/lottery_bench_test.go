package lottery

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// BenchmarkEnter measures participations decided per second against the
// real Redis, as partitions hand them over (runs of up to 500 of one
// activity per script call), with 1 and 12 partitions working at once. It
// reports the rate, the latency of one batch (p50, p99), and the ratio to
// the raw limit measured in the same run: the same number of members added
// with pipelined SADDs, the cheapest write that records a participant.
func BenchmarkEnter(b *testing.B) {
	s, rdb := giftStore(b)
	ctx := testenv.Context(b, 10*time.Minute)
	const batch = 500
	for _, parts := range []int{1, 12} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			defs := make([]*schemas.ActivityDefined, parts)
			for i := range defs {
				defs[i] = benchActivity(testenv.Name("enter"))
			}
			// Raw limit: the same members with pipelined SADDs.
			n := max(b.N, batch)
			t0 := time.Now()
			pipe := rdb.Pipeline()
			for i := range n {
				pipe.SAdd(ctx, s.key(defs[i%parts].ActivityID, "raw"), fmt.Sprintf("u%d", i))
				if pipe.Len() == batch {
					if _, err := pipe.Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := pipe.Exec(ctx); err != nil && pipe.Len() > 0 {
				b.Fatal(err)
			}
			raw := float64(n) / time.Since(t0).Seconds()

			var (
				mu   sync.Mutex
				lats []time.Duration
			)
			now := time.Now()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := range parts {
				wg.Go(func() {
					in := make([]EntryInput, 0, batch)
					flush := func() {
						t := time.Now()
						if _, err := s.Enter(ctx, defs[p], fmt.Sprintf("lottery.requests/%d", p), 1, now, in); err != nil {
							b.Error(err)
						}
						mu.Lock()
						lats = append(lats, time.Since(t))
						mu.Unlock()
						in = in[:0]
					}
					for i := p; i < b.N; i += parts {
						in = append(in, EntryInput{AppID: "live", EventID: fmt.Sprintf("e%d", i), UserID: fmt.Sprintf("u%d", i), Roll: -1})
						if len(in) == batch {
							flush()
						}
					}
					if len(in) > 0 {
						flush()
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			rate := float64(b.N) / b.Elapsed().Seconds()
			slices.Sort(lats)
			b.ReportMetric(rate, "participations/s")
			b.ReportMetric(raw, "raw-sadd/s")
			b.ReportMetric(rate/raw, "ratio-to-raw")
			if len(lats) > 0 {
				b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "batch-p50-ms")
				b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "batch-p99-ms")
			}
		})
	}
}

func benchActivity(id string) *schemas.ActivityDefined {
	now := time.Now().UTC()
	return &schemas.ActivityDefined{
		ActivityID: id, Revision: 1, Kind: schemas.KindDraw, Status: schemas.BatchActive, PerUserLimit: 1,
		JoinFrom: now.Add(-time.Hour), JoinUntil: now.Add(time.Hour),
		Prizes: []schemas.PrizeTier{
			{TierID: "gold", Kind: schemas.PrizeGoods, Stock: 10},
			{TierID: "silver", Kind: schemas.PrizeGoods, Stock: 990},
			{TierID: "bronze", Kind: schemas.PrizePoints, Stock: 9000},
		},
	}
}

// BenchmarkDraw1M measures the draw of an activity with 1,000,000
// participants and 10,000 prizes, end to end in the store: close the
// activity, read the participants from Redis, sort them, pick the winners
// and commit the record. Each iteration draws a fresh copy of the set.
func BenchmarkDraw1M(b *testing.B) {
	s, rdb := giftStore(b)
	ctx := testenv.Context(b, 10*time.Minute)
	const n = 1_000_000
	src := s.key("draw-source", "users")
	pipe := rdb.Pipeline()
	members := make([]any, 0, 10_000)
	for i := range n {
		members = append(members, fmt.Sprintf("viewer-%07d", i))
		if len(members) == cap(members) {
			pipe.SAdd(ctx, src, members...)
			members = make([]any, 0, 10_000)
		}
		if pipe.Len() == 20 {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var read time.Duration
	for i := range b.N {
		b.StopTimer()
		def := benchActivity(fmt.Sprintf("draw-%d", i))
		if err := rdb.Copy(ctx, src, s.key(def.ActivityID, "users"), 0, true).Err(); err != nil {
			b.Fatal(err)
		}
		t := time.Now()
		if _, err := s.Participants(ctx, def.ActivityID); err != nil {
			b.Fatal(err)
		}
		read += time.Since(t)
		b.StartTimer()
		rec, err := s.Draw(ctx, def, "lottery.requests/0", 1, schemas.TriggerManual, "bench", time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if rec.Participants != n || len(rec.Awards) != 10_000 {
			b.Fatalf("draw of %d participants, %d awards", rec.Participants, len(rec.Awards))
		}
		b.StopTimer()
		_ = rdb.Del(context.Background(), s.key(def.ActivityID, "users"), s.key(def.ActivityID, "draw")).Err()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/draw")
	b.ReportMetric(read.Seconds()/float64(b.N), "s-reading-participants")
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "participants/s")
}
