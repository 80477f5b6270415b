package producers_test

import (
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// BenchmarkPublishAsync measures validated, acknowledged events per second
// from one goroutine to a kfake broker persisting to disk (DataDir).
func BenchmarkPublishAsync(b *testing.B) {
	addrs := kafka(b)
	p := newProducer(b, addrs)
	ctx := testenv.Context(b, 10*time.Minute)
	users := make([]string, 1000)
	for i := range users {
		users[i] = "user-" + strconv.Itoa(i)
	}
	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		done   = func(err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		}
	)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		p.PublishAsync(ctx, "bench-"+strconv.Itoa(i), time.Time{},
			schemas.ClaimRequested{BatchID: "b-1", UserID: users[i%len(users)]}, done)
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d events failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
