package stream

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

const admin = "coupon.admin"

// adminRecord is a valid batch definition keyed by batch.
func adminRecord(t testing.TB, batch string, rev int64) *kgo.Record {
	t.Helper()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	def := schemas.BatchDefined{BatchID: batch, Revision: rev, TotalStock: 10, PerUserLimit: 1,
		ValidFrom: from, ValidUntil: from.AddDate(1, 0, 0), Status: schemas.BatchActive}
	env, err := schemas.New(fmt.Sprintf("%s-r%d", batch, rev), "admin", time.Now(), def)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: admin, Key: []byte(batch), Value: b}
}

// applyLog records every apply call by event id, in call order.
type applyLog struct {
	mu    sync.Mutex
	calls []string
	busy  bool // an apply is running: concurrent calls are a bug
	t     *testing.T
}

func (l *applyLog) apply(env *schemas.Envelope) error {
	l.mu.Lock()
	if l.busy {
		l.t.Error("apply called concurrently")
	}
	l.busy = true
	l.calls = append(l.calls, env.EventID)
	l.mu.Unlock()
	time.Sleep(100 * time.Microsecond) // widen the window for overlapping calls
	l.mu.Lock()
	l.busy = false
	l.mu.Unlock()
	return nil
}

func (l *applyLog) count(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.calls {
		if c == id {
			n++
		}
	}
	return n
}

func (l *applyLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.calls...)
}

func startView(t *testing.T, brokers []string, apply func(*schemas.Envelope) error, opts ...ViewOpt) *View {
	t.Helper()
	v, err := NewView(Config{Brokers: brokers, Logger: quiet()}, admin, apply, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := v.Run(ctx); err != nil {
			t.Errorf("view Run: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	if err := v.WaitCaughtUp(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestViewCatchesUpAndCountsInvalid(t *testing.T) {
	brokers, _ := cluster(t)
	recs := []*kgo.Record{adminRecord(t, "A", 1), adminRecord(t, "B", 1), adminRecord(t, "A", 2),
		{Topic: admin, Key: []byte("A"), Value: []byte("{not json")}}
	produce(t, brokers, recs...)
	l := &applyLog{t: t}
	v := startView(t, brokers, l.apply, ViewRefresh(0))
	for _, id := range []string{"A-r1", "B-r1", "A-r2"} {
		if n := l.count(id); n != 1 {
			t.Errorf("%s applied %d times after catching up, want 1", id, n)
		}
	}
	if v.Invalid() != 1 {
		t.Fatalf("Invalid = %d, want 1", v.Invalid())
	}
	// A's revisions share a partition: applied in offset order.
	var a []string
	for _, c := range l.snapshot() {
		if c[0] == 'A' {
			a = append(a, c)
		}
	}
	if fmt.Sprint(a) != "[A-r1 A-r2]" {
		t.Fatalf("partition of A applied as %v", a)
	}
}

// TestViewRefreshReappliesEveryRecord: with a refresh, every record (also
// ones that arrived after the start) is applied again, in offset order
// within its partition, never concurrently with the live reader, and a
// record that failed once is not counted invalid again.
func TestViewRefreshReappliesEveryRecord(t *testing.T) {
	brokers, _ := cluster(t)
	produce(t, brokers, adminRecord(t, "A", 1), adminRecord(t, "A", 2), adminRecord(t, "B", 1),
		&kgo.Record{Topic: admin, Key: []byte("B"), Value: []byte("{not json")})
	l := &applyLog{t: t}
	v := startView(t, brokers, l.apply, ViewRefresh(100*time.Millisecond))
	produce(t, brokers, adminRecord(t, "C", 1))
	waitFor(t, 10*time.Second, "C applied live", func() bool { return l.count("C-r1") >= 1 })
	before := v.Refreshes()
	waitFor(t, 10*time.Second, "two more refreshes", func() bool { return v.Refreshes() >= before+2 })
	for _, id := range []string{"A-r1", "A-r2", "B-r1", "C-r1"} {
		if n := l.count(id); n < 3 {
			t.Errorf("%s applied %d times after two refreshes, want >= 3", id, n)
		}
	}
	if v.Invalid() != 1 {
		t.Fatalf("Invalid = %d after refreshes, want still 1", v.Invalid())
	}
	// Every pass applies A-r1 before A-r2: A's calls alternate.
	var a []string
	for _, c := range l.snapshot() {
		if c[0] == 'A' {
			a = append(a, c)
		}
	}
	for i, c := range a {
		if want := []string{"A-r1", "A-r2"}[i%2]; c != want {
			t.Fatalf("partition of A applied out of order: %v", a)
		}
	}
}

func TestViewRefreshDisabled(t *testing.T) {
	brokers, _ := cluster(t)
	produce(t, brokers, adminRecord(t, "A", 1))
	l := &applyLog{t: t}
	v := startView(t, brokers, l.apply, ViewRefresh(0))
	time.Sleep(500 * time.Millisecond)
	if n := l.count("A-r1"); n != 1 || v.Refreshes() != 0 {
		t.Fatalf("A-r1 applied %d times, %d refreshes; want 1 and 0 with refresh disabled", n, v.Refreshes())
	}
}

func TestViewRefreshDefault(t *testing.T) {
	v, err := NewView(Config{Brokers: []string{"127.0.0.1:1"}, Logger: quiet()}, admin, func(*schemas.Envelope) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	defer v.cl.Close()
	if v.refresh != DefaultViewRefresh || DefaultViewRefresh != 5*time.Minute {
		t.Fatalf("default refresh = %s", v.refresh)
	}
	ViewRefresh(-time.Second)(v)
	if v.refresh != 0 {
		t.Fatalf("negative refresh = %s, want 0 (disabled)", v.refresh)
	}
}
