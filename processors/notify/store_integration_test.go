package notify

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

func testStore(t *testing.T, opts ...StoreOption) *Store {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), PoolSize: 32})
	t.Cleanup(func() { rdb.Close() })
	prefix := testenv.Name("ns")
	t.Cleanup(func() { deleteKeys(rdb, prefix) })
	s := NewStore(rdb, append([]StoreOption{WithKeyPrefix(prefix), WithKeep(time.Hour)}, opts...)...)
	if err := s.Load(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestIntegrationReserveOverlappingShards: eight workers send shards of
// one campaign whose users overlap (each user is in three shards), with
// live reservations refused as busy and retried: every user is reserved
// and marked sent exactly once.
func TestIntegrationReserveOverlappingShards(t *testing.T) {
	s := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	const users, shards, size = 3000, 90, 100
	var sends [users]atomic.Int32
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seq := next.Add(1) - 1
				if seq >= shards {
					return
				}
				var names []string
				for i := range size {
					names = append(names, userName(int(seq*size+int64(i)*31)%users))
				}
				for {
					codes, err := s.reserve(ctx, "c", seq, 1, names)
					if err != nil {
						t.Error(err)
						return
					}
					var mine []string
					busy := false
					for i, c := range codes {
						switch c {
						case codeReserved:
							mine = append(mine, names[i])
							sends[userNumber(names[i])].Add(1)
						case codeBusy:
							busy = true
						}
					}
					out := make([]string, len(mine))
					for i := range out {
						out[i] = outcomeSent
					}
					if _, err := s.mark(ctx, "c", seq, 1, mine, out, !busy); err != nil {
						t.Error(err)
						return
					}
					if !busy {
						break
					}
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	for i := range users {
		if n := sends[i].Load(); n != 1 {
			t.Fatalf("user %s reserved %d times", userName(i), n)
		}
	}
	p, err := s.Progress(ctx, "c")
	if err != nil || p.Sent != users || p.ShardsDone != shards {
		t.Fatalf("%+v %v", p, err)
	}
}

// TestIntegrationReservations: a redelivered shard takes its own
// reservations back; a newer epoch takes them over and the older one's
// mark is refused; another shard waits for a live lease and takes an
// expired one; what is sent, capped or failed stays so; old campaigns are
// forgotten after keep.
func TestIntegrationReservations(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := testStore(t, WithLease(time.Minute), WithKeep(48*time.Hour), WithClock(clock), WithCaps(Cap{Window: 24 * time.Hour, Max: 2}))
	ctx := testenv.Context(t, 30*time.Second)
	u := []string{"a", "b", "c"}
	expect := func(campaign string, seq, epoch int64, want string) {
		t.Helper()
		got, err := s.reserve(ctx, campaign, seq, epoch, u)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("reserve %s/%d@%d: %q, want %q", campaign, seq, epoch, got, want)
		}
	}
	expect("k1", 0, 5, "RRR")
	expect("k1", 0, 5, "RRR") // the same shard again (a retried batch)
	expect("k1", 1, 5, "BBB") // another shard of the campaign holding the same users
	expect("k1", 0, 4, "BBB") // an older epoch (a zombie) may not
	expect("k1", 0, 6, "RRR") // a newer owner takes them over
	if r, _ := s.mark(ctx, "k1", 0, 5, u, []string{"s", "s", "s"}, true); r.Lost != 3 || r.Sent != 0 {
		t.Fatalf("the older owner's mark: %+v, want all lost", r)
	}
	if r, _ := s.mark(ctx, "k1", 0, 6, u, []string{"s", "f", "x"}, false); r.Sent != 1 || r.Failed != 1 || r.Released != 1 {
		t.Fatalf("mark: %+v", r)
	}
	expect("k1", 0, 6, "SFR")
	now = now.Add(2 * time.Minute) // c's reservation has expired
	expect("k1", 1, 6, "SFR")
	s.mark(ctx, "k1", 1, 6, []string{"c"}, []string{"s"}, true)
	expect("k1", 1, 6, "SFS") // done: every user settled
	if p, _ := s.Progress(ctx, "k1"); p.ShardsDone != 1 || p.Sent != 2 || p.Failed != 1 {
		t.Fatalf("k1: %+v, want shard 1 done, 2 sent, 1 failed", p)
	}

	// Caps: a and c have one send today; k2 reaches the cap of 2, k3 is
	// capped for them (b failed k1, so b has one more).
	expect("k2", 0, 1, "RRR")
	s.mark(ctx, "k2", 0, 1, u, []string{"s", "s", "s"}, true)
	expect("k3", 0, 1, "CRC")
	expect("k3", 0, 1, "CRC") // a capped user stays capped for the campaign
	if p, _ := s.Progress(ctx, "k3"); p.Capped != 2 {
		t.Fatalf("k3 capped %d, want 2 (counted once)", p.Capped)
	}
	// A day later the window has moved on, but k3's decisions stand.
	now = now.Add(25 * time.Hour)
	expect("k3", 0, 1, "CRC")
	expect("k4", 0, 1, "RRR") // yesterday's sends are out of the window
	// Past keep, k1 and k2 are forgotten.
	now = now.Add(72 * time.Hour)
	expect("k5", 0, 1, "RRR")
	all, _ := s.rdb.HGetAll(ctx, s.userKey("a")).Result()
	if _, ok := all["k1"]; ok {
		t.Fatalf("user a still holds k1 after keep: %v", all)
	}
	if st, _ := s.UserState(ctx, "k5", "a"); st != "reserved" {
		t.Fatalf("state %q", st)
	}
}

// TestIntegrationAudit: the audit of a finished campaign agrees; a user
// whose record is gone, or a counter off by one, is reported.
func TestIntegrationAudit(t *testing.T) {
	h := newHarness(t, map[string][2]int{"c": {0, 2500}})
	s := newCountingSender(2500)
	h.planner()
	h.sender(s)
	h.request("au", "c", "spring")
	p := h.wait("au", time.Minute)
	shards := func() []schemas.NotifyShardPlanned {
		var out []schemas.NotifyShardPlanned
		cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(TopicShards), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx := testenv.Context(t, 30*time.Second)
		var dec schemas.Decoder
		for len(out) < 3 {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				env, err := dec.Decode(r.Value)
				if err != nil {
					t.Fatal(err)
				}
				var sp schemas.NotifyShardPlanned
				env.DecodePayload(&sp)
				out = append(out, sp)
			})
			if ctx.Err() != nil {
				t.Fatal(ctx.Err())
			}
		}
		return out
	}()
	audit := func() *Audit {
		a := h.store.NewAudit("au")
		for _, sp := range append(shards, shards[1]) { // a shard read twice counts once
			if err := a.Add(context.Background(), sp); err != nil {
				t.Fatal(err)
			}
		}
		return a
	}
	a := audit()
	if probs := a.Problems(p); len(probs) != 0 || a.Sent != 2500 || a.Shards != 3 || a.Records != 4 {
		t.Fatalf("a clean campaign: %v %+v", probs, a)
	}
	h.rdb.HDel(context.Background(), h.store.userKey(userName(7)), "au")
	a = audit()
	if probs := a.Problems(p); len(probs) != 2 || a.Missing != 1 || a.Unsettled[0] != userName(7) {
		t.Fatalf("a lost record: %v %+v", probs, a)
	}
}
