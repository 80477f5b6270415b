package mysql_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// BenchmarkWriteBatch measures WriteBatch of 5,000 new results, as a sink
// consuming a busy coupon.grants topic sees them, over the default 2x4
// layout; ReplayedBatch writes a batch already stored.
func BenchmarkWriteBatch(b *testing.B) {
	const rows = 5000
	b.Run("NewResults", func(b *testing.B) {
		s, _ := newSink(b, mysql.Config{})
		sinktest.BenchWriteBatch(b, s, rows)
	})
	b.Run("ReplayedBatch", func(b *testing.B) {
		s, _ := newSink(b, mysql.Config{})
		ctx := testenv.Context(b, 10*time.Minute)
		events := sinktest.Grants(b, "bench", rows)
		if err := s.WriteBatch(ctx, events); err != nil {
			b.Fatal(err)
		}
		writeAll(b, s, events)
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
}

func writeAll(b *testing.B, s *mysql.Sink, events []*schemas.Envelope) {
	ctx := testenv.Context(b, 10*time.Minute)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.WriteBatch(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLotteryReads measures reads of an activity with a million
// participants over the default 2x4 layout: Participants, as promoflow
// draw verify reads them, and EntryCounts. Seeding the entries takes half
// a minute or so and is not timed.
func BenchmarkLotteryReads(b *testing.B) {
	const users, batch, writers = 1_000_000, 5_000, 4
	s, _ := newSink(b, mysql.Config{BatchRows: batch, MaxOpenConns: writers})
	ctx := testenv.Context(b, 30*time.Minute)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for lo := w * batch; lo < users; lo += writers * batch {
				names := make([]string, batch)
				for i := range names {
					names[i] = fmt.Sprintf("user-%d", lo+i)
				}
				if err := s.WriteBatch(ctx, sinktest.Entries(b, "million", "e", schemas.EntryAccepted, names)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Run("Participants", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got, err := s.Participants(ctx, "million"); err != nil || len(got) != users {
				b.Fatalf("Participants = %d users, %v; want %d", len(got), err, users)
			}
		}
	})
	b.Run("EntryCounts", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c, err := s.EntryCounts(ctx, "million"); err != nil || c.Participants != users {
				b.Fatalf("EntryCounts = %+v, %v; want %d participants", c, err, users)
			}
		}
	})
}
