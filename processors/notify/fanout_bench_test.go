package notify

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// timedSender wraps a Sender and records, per shard, the time from the
// planner cutting it to its delivery.
type timedSender struct {
	Sender
	mu  sync.Mutex
	lat []time.Duration
}

func (s *timedSender) Send(ctx context.Context, msgs []Message) ([]error, error) {
	errs, err := s.Sender.Send(ctx, msgs)
	s.mu.Lock()
	s.lat = append(s.lat, time.Since(msgs[0].PlannedAt))
	s.mu.Unlock()
	return errs, err
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkFanout fans campaigns of PROMOFLOW_BENCH_FANOUT_USERS (default
// 500,000) generated users out through the planner and two sender members
// on kfake, with the log sender writing every message to a file, and
// reports users/s, the plan→delivery latency of shards, and the time a
// 10,000,000-user campaign takes at that rate. For reference it measures,
// in the same run, the raw rate of the two script calls per shard (reserve
// and mark) from two goroutines, without Kafka or the sender.
func BenchmarkFanout(b *testing.B) {
	n := 500_000
	if s := os.Getenv("PROMOFLOW_BENCH_FANOUT_USERS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	h := newHarness(b, map[string][2]int{"all": {0, n}})
	f, err := os.Create(filepath.Join(b.TempDir(), "notifications.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ts := &timedSender{Sender: NewLogSender(f)}
	h.planner()
	h.sender(ts)
	h.sender(ts)

	raw := rawScriptRate(b, h, 200_000)
	b.ResetTimer()
	var elapsed time.Duration
	for i := range b.N {
		campaign := fmt.Sprintf("bench-%d", i)
		start := time.Now()
		h.request(campaign, "all", "spring")
		p := h.wait(campaign, 30*time.Minute)
		elapsed += time.Since(start)
		if p.Sent != int64(n) {
			b.Fatalf("%+v", p)
		}
	}
	b.StopTimer()
	rate := float64(n*b.N) / elapsed.Seconds()
	info, _ := f.Stat()
	b.ReportMetric(rate, "users/s")
	b.ReportMetric(raw, "raw-script-users/s")
	b.ReportMetric(rate/raw, "ratio")
	b.ReportMetric(percentile(ts.lat, 0.5).Seconds()*1000, "p50-shard-ms")
	b.ReportMetric(percentile(ts.lat, 0.99).Seconds()*1000, "p99-shard-ms")
	b.ReportMetric(10_000_000/rate, "s-per-10M")
	b.Logf("%d users × %d: %.0f users/s (raw reserve+mark %.0f users/s, ratio %.2f); shard plan→delivery p50 %s p99 %s; 10,000,000 users would take %s; log file %d MB",
		n, b.N, rate, raw, rate/raw, percentile(ts.lat, 0.5).Round(time.Millisecond), percentile(ts.lat, 0.99).Round(time.Millisecond),
		time.Duration(10_000_000/rate*float64(time.Second)).Round(time.Second), info.Size()>>20)
}

// rawScriptRate reserves and marks users shards of 1,000 at a time from two
// goroutines, straight on the store, and returns users/s.
func rawScriptRate(b *testing.B, h *harness, users int) float64 {
	ctx := context.Background()
	const shard = 1000
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			names := make([]string, shard)
			outcomes := make([]string, shard)
			for i := range outcomes {
				outcomes[i] = outcomeSent
			}
			for seq := int64(w); seq*shard < int64(users); seq += 2 {
				for i := range names {
					names[i] = "raw" + userName(int(seq)*shard+i)
				}
				if _, err := h.store.reserve(ctx, "raw", seq, 1, names); err != nil {
					b.Error(err)
					return
				}
				if _, err := h.store.mark(ctx, "raw", seq, 1, names, outcomes, true); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(users) / time.Since(start).Seconds()
}
