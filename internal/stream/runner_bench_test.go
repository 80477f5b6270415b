package stream

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/testenv"
)

// echoDeciding echoes every claim and counts a decision for it, like a
// processor reporting its outcomes.
func echoDeciding(ctx context.Context, b *Batch) (Result, error) {
	res, err := echo(ctx, b)
	for i := range b.Events {
		if i%3 == 0 {
			res.Decide("bench.claim", "rejected", "sold_out")
		} else {
			res.Decide("bench.claim", "granted", "")
		}
	}
	return res, err
}

// BenchmarkRunner measures the runtime's consume → decode → handle →
// produce → commit rate over kfake with a handler that does no I/O, with
// the metrics off and on (their overhead is the difference), and the raw
// kfake consume→produce rate of the same records in the same run.
func BenchmarkRunner(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(fmt.Sprintf("metrics=%v", on), func(b *testing.B) {
			b.ReportAllocs()
			brokers, _ := testenv.KafkaWithTopics(b)
			n := max(b.N, 1000)
			recs := make([]*kgo.Record, n)
			for i := range recs {
				recs[i] = claimRecord(b, i, fmt.Sprintf("u%d", i%5000))
			}
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
			if err != nil {
				b.Fatal(err)
			}
			defer cl.Close()
			ctx := testenv.Context(b, 5*time.Minute)
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			raw := rawConsumeProduce(b, brokers, n)

			cfg := Config{Brokers: brokers, Logger: quiet()}
			if on {
				cfg.Metrics = metrics.New()
			}
			st := testStage(HandlerFunc(echoDeciding))
			r, err := New(cfg, st)
			if err != nil {
				b.Fatal(err)
			}
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			b.ResetTimer()
			start := time.Now()
			go func() { defer close(done); _ = r.Run(rctx) }()
			for r.Stats().Committed < int64(n) {
				if ctx.Err() != nil {
					b.Fatalf("committed %d of %d", r.Stats().Committed, n)
				}
				time.Sleep(2 * time.Millisecond)
			}
			took := time.Since(start)
			b.StopTimer()
			cancel()
			<-done
			rate := float64(n) / took.Seconds()
			b.ReportMetric(rate, "events/s")
			b.ReportMetric(rate/raw, "x_raw_kafka")
		})
	}
}

// rawConsumeProduce reads n records of the claims topic with a plain group
// consumer and produces each to the grants topic, without decoding: the
// component limit of BenchmarkRunner. It returns records/s.
func rawConsumeProduce(b *testing.B, brokers []string, n int) float64 {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("g-raw"), kgo.ConsumeTopics(claims),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.ProducerLinger(0), kgo.DisableAutoCommit())
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(b, 5*time.Minute)
	start := time.Now()
	seen := 0
	for seen < n && ctx.Err() == nil {
		fs := cl.PollRecords(ctx, 5000)
		var out []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, &kgo.Record{Topic: grants, Key: r.Key, Value: r.Value})
		})
		if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			b.Fatal(err)
		}
		seen += len(out)
	}
	return float64(seen) / time.Since(start).Seconds()
}
