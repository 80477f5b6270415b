package gateway

import (
	"container/heap"
	"sync"
	"time"
)

// replayCache remembers one app's signatures until their timestamps leave
// the accepted window, so that a captured request cannot be sent again to
// the same gateway. It is bounded: when every remembered signature is still
// inside the window, a new request is refused (errReplayFull) rather than
// forgetting one that could then be replayed.
type replayCache struct {
	size int

	mu   sync.Mutex
	seen map[[32]byte]int64 // signature → expiry, unix nanoseconds
	exp  expiryHeap
}

func newReplayCache(size int) *replayCache {
	return &replayCache{size: size, seen: map[[32]byte]int64{}}
}

// add records sig until expires. It fails with errReplay if sig is already
// recorded and with errReplayFull, and the time until room frees up, if
// the cache is full.
func (c *replayCache) add(sig [32]byte, expires, now time.Time) (time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := now.UnixNano()
	for len(c.exp) > 0 && c.exp[0].at < n {
		e := heap.Pop(&c.exp).(expiry)
		delete(c.seen, e.sig)
	}
	if _, ok := c.seen[sig]; ok {
		return 0, errReplay
	}
	if len(c.seen) >= c.size {
		return time.Duration(c.exp[0].at - n), errReplayFull
	}
	at := expires.UnixNano()
	c.seen[sig] = at
	heap.Push(&c.exp, expiry{at: at, sig: sig})
	return 0, nil
}

// len returns how many signatures are remembered.
func (c *replayCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

type expiry struct {
	at  int64
	sig [32]byte
}

// expiryHeap orders remembered signatures by expiry, soonest first.
type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at < h[j].at }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
