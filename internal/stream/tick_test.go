package stream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
)

// tickHandler echoes events and, on every Tick, records the partitions it
// was given and produces one record naming the tick.
type tickHandler struct {
	mu    sync.Mutex
	seen  [][]Owned
	done  int
	fired chan struct{}
}

func (h *tickHandler) Handle(ctx context.Context, b *Batch) (Result, error) { return echo(ctx, b) }

func (h *tickHandler) Tick(_ context.Context, _ time.Time, owned []Owned) (Result, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seen = append(h.seen, owned)
	if len(h.seen) == 3 {
		close(h.fired)
	}
	return Result{Out: []*kgo.Record{{Topic: grants, Key: []byte("tick"), Value: []byte("tick")}}}, nil
}

func (h *tickHandler) TickDone(context.Context, []Owned, Result) {
	h.mu.Lock()
	h.done++
	h.mu.Unlock()
}

func TestTickFiresOnOwnedPartitionsWithEpochs(t *testing.T) {
	brokers, _ := cluster(t)
	h := &tickHandler{fired: make(chan struct{})}
	st := testStage(h)
	st.Fenced = true
	st.TickInterval = 50 * time.Millisecond
	r, _, _ := startRunner(t, Config{Brokers: brokers, Fencer: &memFencer{}}, st)
	select {
	case <-h.fired:
	case <-testenv.Context(t, 30*time.Second).Done():
		t.Fatal("Tick was not called three times")
	}
	h.mu.Lock()
	owned := h.seen[len(h.seen)-1]
	h.mu.Unlock()
	if len(owned) != 12 {
		t.Fatalf("Tick got %d partitions, want all 12 of %s", len(owned), claims)
	}
	for i, o := range owned {
		if o.Topic != claims || o.Partition != int32(i) || o.Partitions != 12 || o.Epoch < 1 {
			t.Errorf("owned[%d] = %+v, want %s/%d of 12 with an epoch", i, o, claims, i)
		}
		if o.FenceField() != fenceField(claims, int32(i)) {
			t.Errorf("FenceField = %q", o.FenceField())
		}
	}
	// Every Tick's output is produced and acknowledged before TickDone.
	recs := consumeAll(t, brokers, grants, 3)
	if len(recs) < 3 {
		t.Fatalf("got %d tick outputs, want at least 3", len(recs))
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.Stats().Ticks < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.Stats().Ticks < 3 || h.done < 3 {
		t.Errorf("Stats().Ticks = %d, TickDone calls = %d; want at least 3", r.Stats().Ticks, h.done)
	}
}
