package mysql_test

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// BenchmarkUserCoupons measures UserCoupons as the order-time validation
// service calls it: users holding 20 coupons each among 100,000 coupons
// (5,000 users) over the default 2x4 layout, reading every state, the
// available coupons only, and from 16 callers at once (or GOMAXPROCS, if
// more). It reports
// queries/s and the p99 latency. Seeding takes a few seconds and is not
// timed.
func BenchmarkUserCoupons(b *testing.B) {
	const users, perUser, batch = 5_000, 20, 5_000
	s, _ := newSink(b, mysql.Config{BatchRows: batch, MaxOpenConns: 16})
	ctx := testenv.Context(b, 10*time.Minute)
	events := sinktest.Coupons(b, "bench", users, perUser)
	for lo := 0; lo < len(events); lo += batch {
		if err := s.WriteBatch(ctx, events[lo:lo+batch]); err != nil {
			b.Fatal(err)
		}
	}
	// read reads the coupons of the i-th user (of a stride that visits
	// every shard) and checks how many came back.
	read := func(i int, want int, states ...string) error {
		user := fmt.Sprintf("bench-user-%d", i*7919%users)
		got, err := s.UserCoupons(ctx, user, states...)
		if err == nil && len(got) != want {
			err = fmt.Errorf("UserCoupons(%s, %q) = %d coupons, want %d", user, states, len(got), want)
		}
		return err
	}
	b.Run("AllStates", func(b *testing.B) {
		measure(b, func(i int) error { return read(i, perUser) })
	})
	b.Run("Available", func(b *testing.B) {
		measure(b, func(i int) error { return read(i, perUser/4, schemas.CouponAvailable) })
	})
	b.Run("Parallel16", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0))) // 16 callers (at least GOMAXPROCS)
		var (
			mu  sync.Mutex
			all []time.Duration
		)
		b.RunParallel(func(pb *testing.PB) {
			var lat []time.Duration
			for i := 0; pb.Next(); i++ {
				start := time.Now()
				if err := read(i, perUser); err != nil {
					b.Error(err)
					return
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		})
		report(b, all)
	})
}

// measure runs query once per iteration and reports queries/s and the p99
// latency.
func measure(b *testing.B, query func(i int) error) {
	report(b, timed(b, query))
}

// timed runs query once per iteration and returns the latencies.
func timed(b *testing.B, query func(i int) error) []time.Duration {
	b.ReportAllocs()
	var lat []time.Duration
	for i := 0; b.Loop(); i++ {
		start := time.Now()
		if err := query(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	return lat
}

func report(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "queries/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
