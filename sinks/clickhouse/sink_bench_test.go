package clickhouse_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// BenchmarkWriteBatch measures WriteBatch of 5,000 grant decisions. Each
// becomes two rows (coupon_grants and events_raw); rows/s counts results.
func BenchmarkWriteBatch(b *testing.B) {
	const rows = 5000
	s, _ := newSink(b)
	ctx := testenv.Context(b, 10*time.Minute)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		events := sinktest.Grants(b, fmt.Sprintf("bench-%d", i), rows)
		b.StartTimer()
		if err := s.WriteBatch(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
}
