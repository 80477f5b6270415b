package gateway

import (
	"math"
	"sync"
	"time"
)

// bucket is one app's token bucket: rate events per second on average,
// burst at once. A new bucket starts full.
type bucket struct {
	rate  float64
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) *bucket {
	return &bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// take removes n tokens if the bucket holds them. Otherwise it removes
// nothing and returns how long until it will hold n (n must not exceed the
// burst, which New ensures by requiring BurstPerApp ≥ MaxBatch).
func (b *bucket) take(n int, now time.Time) (bool, time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = math.Min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
	need := float64(n)
	if b.tokens >= need {
		b.tokens -= need
		return true, 0
	}
	return false, time.Duration((need - b.tokens) / b.rate * float64(time.Second))
}

// retryAfter renders d as the Retry-After header: whole seconds, rounded
// up, at least 1.
func retryAfter(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		return 1
	}
	return s
}
