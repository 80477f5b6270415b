package sinktest

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
)

// BenchWriteBatch is the shared sink benchmark: each iteration writes n new
// grant results (generated outside the timer) and the run reports rows/s.
func BenchWriteBatch(b *testing.B, s Sink, n int) {
	ctx := testenv.Context(b, 10*time.Minute)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		events := Grants(b, fmt.Sprintf("bench-%d", i), n)
		b.StartTimer()
		if err := s.WriteBatch(ctx, events); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rows/s")
}
