package clickhouse_test

import (
	"slices"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// BenchmarkReports runs each coupon report over 100,000 grant decisions
// and 50,000 coupon operations, every one written twice (unmerged
// replays), and reports facts/s (stored rows the report reads per second),
// latency percentiles, and the ratio to the raw limit measured in the same
// run: reading the same fact view with FINAL and counting it.
func BenchmarkReports(b *testing.B) {
	s, r := newSink(b)
	ctx := testenv.Context(b, 10*time.Minute)
	events := append(sinktest.Grants(b, "bench", 100_000), sinktest.Coupons(b, "bench", 12_500, 4)...)
	for _, batch := range slices.Collect(slices.Chunk(events, 50_000)) {
		for range 2 {
			if err := s.WriteBatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	rd, err := clickhouse.OpenReader(ctx, clickhouse.Config{Addr: testenv.ClickHouseAddr(), Database: r.db})
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()
	stored := float64(2 * len(events))

	// The raw limit: one FINAL pass over the facts, no grouping.
	raw := clickhouse.Report{Name: "raw", SQL: "SELECT count() FROM coupon_facts"}
	rawTime := timeIt(b, func() {
		if _, err := rd.Report(ctx, raw, clickhouse.Params{}); err != nil {
			b.Fatal(err)
		}
	}, 5)

	for _, name := range []string{"top-claimed", "funnel", "active-users", "budget-burn"} {
		rep, _ := clickhouse.LookupReport(name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var lat []time.Duration
			for range b.N {
				start := time.Now()
				if _, err := rd.Report(ctx, rep, clickhouse.Params{Limit: -1, Bucket: clickhouse.BucketHour}); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			slices.Sort(lat)
			mean := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(stored/mean.Seconds(), "facts/s")
			b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Milliseconds()), "p99-ms")
			b.ReportMetric(rawTime.Seconds()/mean.Seconds(), "ratio-to-final-scan")
		})
	}
}

// timeIt returns the median time of n runs of f.
func timeIt(b *testing.B, f func(), n int) time.Duration {
	b.Helper()
	times := make([]time.Duration, n)
	for i := range times {
		start := time.Now()
		f()
		times[i] = time.Since(start)
	}
	slices.Sort(times)
	return times[n/2]
}
