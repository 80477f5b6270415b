package referral

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// rawHSetNX measures the raw limit of the same run: n bindings written
// with pipelined HSETNX (the cheapest write that records a binding once)
// over parts activities, in runs of batch.
func rawHSetNX(b *testing.B, s *Store, acts []string, n, batch int) float64 {
	ctx := testenv.Context(b, 5*time.Minute)
	t0 := time.Now()
	pipe := s.rdb.Pipeline()
	for i := range n {
		pipe.HSetNX(ctx, s.key(acts[i%len(acts)], "raw"), fmt.Sprintf("v%d", i), "i")
		if pipe.Len() == batch {
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	if pipe.Len() > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return float64(n) / time.Since(t0).Seconds()
}

func reportLatencies(b *testing.B, lats []time.Duration) {
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(float64(lats[len(lats)/2].Microseconds())/1000, "batch-p50-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100].Microseconds())/1000, "batch-p99-ms")
	}
}

// BenchmarkBind measures bindings decided per second by the atomic step
// against the real Redis, as partitions hand them over (runs of 500 of one
// activity per script call, pipelined), with 1 and 12 partitions at once.
// Each invitee is new and its inviter's chain is a few links long, so every
// binding walks the chain and counts toward a reward. It reports the rate,
// the latency of one batch (p50, p99) and the ratio to the raw HSETNX rate
// of the same run.
func BenchmarkBind(b *testing.B) {
	s, _, _ := testStore(b)
	ctx := testenv.Context(b, 10*time.Minute)
	const batch = 500
	rewards := []schemas.ReferralReward{{Threshold: 3, BatchID: "B3"}, {Threshold: 10, BatchID: "B10"}}
	for _, parts := range []int{1, 12} {
		b.Run(fmt.Sprintf("partitions=%d", parts), func(b *testing.B) {
			acts := make([]string, parts)
			for i := range acts {
				acts[i] = testenv.Name("bind")
			}
			raw := rawHSetNX(b, s, acts, max(b.N, batch), batch)
			var (
				mu   sync.Mutex
				lats []time.Duration
			)
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for p := range parts {
				wg.Go(func() {
					pr := params(false, rewards...)
					pr.FenceField = fmt.Sprintf("referral.events/%d", p)
					ops := make([]Op, 0, batch)
					flush := func() {
						t := time.Now()
						if _, err := s.Step(ctx, acts[p], pr, ops); err != nil {
							b.Error(err)
						}
						mu.Lock()
						lats = append(lats, time.Since(t))
						mu.Unlock()
						ops = ops[:0]
					}
					for i := p; i < b.N; i += parts {
						// Invitee v<i> is invited by v<i/8>: chains of
						// growing depth, fan-out 8.
						ops = append(ops, Op{Kind: OpBind, AppID: "shop", EventID: fmt.Sprintf("e%d", i), Invitee: fmt.Sprintf("v%d", i+1), Inviter: fmt.Sprintf("v%d", (i+1)/8)})
						if len(ops) == batch {
							flush()
						}
					}
					if len(ops) > 0 {
						flush()
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			rate := float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate, "binds/s")
			b.ReportMetric(raw, "raw-hsetnx/s")
			b.ReportMetric(rate/raw, "ratio-to-raw")
			reportLatencies(b, lats)
		})
	}
}

// BenchmarkHandleClicks measures the processor's handler on batches of 500
// decoded clicks of one activity: token verification, the prechecks, the
// atomic step and encoding the results (and rewards), against the real
// Redis. It reports clicks/s, batch latency and the ratio to the raw HSETNX
// rate of the same run.
func BenchmarkHandleClicks(b *testing.B) {
	s, _, _ := testStore(b)
	ctx := testenv.Context(b, 10*time.Minute)
	keys, err := sharelink.NewKeyring("k1", sharelink.Key{ID: "k1", Secret: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 500
	act := testenv.Name("click")
	now := time.Now().UTC()
	def := activity(act, schemas.QualifyNone, schemas.ReferralReward{Threshold: 5, BatchID: "B5"})
	def.StartsAt, def.EndsAt = now.Add(-time.Hour), now.Add(time.Hour)
	acts := NewActivities()
	acts.Put(def)
	p := New(s, acts, keys)
	tokens := make([]string, 1000)
	for i := range tokens {
		if tokens[i], err = keys.Sign(act, fmt.Sprintf("inviter-%d", i), now.Add(time.Hour)); err != nil {
			b.Fatal(err)
		}
	}
	var dec schemas.Decoder
	mk := func(i int) stream.Event {
		env, err := schemas.New(fmt.Sprintf("c%d", i), "shop", now, schemas.ClickRecorded{ActivityID: act, InviteeID: fmt.Sprintf("user-%d", i), Token: tokens[i%len(tokens)]})
		if err != nil {
			b.Fatal(err)
		}
		v, _ := env.Encode()
		if env, err = dec.Decode(v); err != nil {
			b.Fatal(err)
		}
		return stream.Event{Env: env, Record: &kgo.Record{Topic: TopicEvents, Value: v}}
	}
	raw := rawHSetNX(b, s, []string{act}, max(b.N, batch), batch)
	events := make([]stream.Event, b.N)
	for i := range events {
		events[i] = mk(i)
	}
	var lats []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for lo := 0; lo < b.N; lo += batch {
		t := time.Now()
		res, err := p.Handle(ctx, &stream.Batch{Topic: TopicEvents, Partition: 0, Epoch: 1, Events: events[lo:min(lo+batch, b.N)]})
		if err != nil || len(res.Dead) > 0 {
			b.Fatalf("handle: %v, %d dead", err, len(res.Dead))
		}
		lats = append(lats, time.Since(t))
	}
	b.StopTimer()
	rate := float64(b.N) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "clicks/s")
	b.ReportMetric(raw, "raw-hsetnx/s")
	b.ReportMetric(rate/raw, "ratio-to-raw")
	reportLatencies(b, lats)
}
