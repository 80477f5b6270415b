package clickhouse_test

import (
	"testing"

	"github.com/promoflow/promoflow/sinks/sinktest"
)

// BenchmarkWriteBatch measures WriteBatch of 5,000 grant decisions. Each
// becomes two rows (coupon_grants and events_raw); rows/s counts results.
func BenchmarkWriteBatch(b *testing.B) {
	s, _ := newSink(b)
	sinktest.BenchWriteBatch(b, s, 5000)
}
