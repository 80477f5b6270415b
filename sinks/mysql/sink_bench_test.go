package mysql_test

import (
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
