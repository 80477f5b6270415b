package referral

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// testStore returns a Store on the test Redis under a random key prefix
// whose keys are deleted when the test ends.
func testStore(t testing.TB, opts ...StoreOption) (*Store, *redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), PoolSize: 64})
	t.Cleanup(func() { rdb.Close() })
	ctx := testenv.Context(t, time.Minute)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	prefix := testenv.Name("rt")
	t.Cleanup(func() { deleteKeys(rdb, prefix) })
	s := NewStore(rdb, append([]StoreOption{WithKeyPrefix(prefix), WithDecisionTTL(time.Hour)}, opts...)...)
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return s, rdb, prefix
}

func deleteKeys(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

func params(needsQualify bool, rewards ...schemas.ReferralReward) Params {
	now := time.Now()
	return Params{FenceField: "referral.events/0", Epoch: 1, Now: now, ExpireAt: now.Add(time.Hour), NeedsQualify: needsQualify, Rewards: rewards}
}

// TestIntegrationStepMatchesGraph runs random sequences of bindings and
// qualifications (with redeliveries) through step.lua and through Graph,
// and requires the same decision for every event; a redelivered event
// gets its first decision back.
func TestIntegrationStepMatchesGraph(t *testing.T) {
	s, _, _ := testStore(t, WithMaxChainDepth(4))
	ctx := testenv.Context(t, time.Minute)
	rewards := []schemas.ReferralReward{{Threshold: 1, BatchID: "B1"}, {Threshold: 3, BatchID: "B3"}, {Threshold: 4, BatchID: "B4"}}
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 7))
		needs := seed%2 == 1
		act := fmt.Sprintf("act-%d", seed)
		g := NewGraph()
		g.MaxDepth = 4
		users := 4 + rng.IntN(10)
		var ops []Op
		var want []Step
		first := map[string]Step{} // event id -> first decision
		for i := range 300 {
			if len(ops) > 0 && rng.IntN(8) == 0 { // a redelivery of an earlier event
				j := rng.IntN(len(ops))
				ops = append(ops, ops[j])
				want = append(want, first[ops[j].EventID])
				continue
			}
			o := Op{AppID: "app", EventID: fmt.Sprint("e", i), Invitee: fmt.Sprint("u", rng.IntN(users))}
			var st Step
			if needs && rng.IntN(3) == 0 {
				o.Kind = OpQualify
				st = g.Qualify(o.Invitee, rewards)
			} else {
				o.Kind, o.Inviter = OpBind, fmt.Sprint("u", rng.IntN(users))
				st = g.Bind(o.Invitee, o.Inviter, needs, rewards)
			}
			ops = append(ops, o)
			want = append(want, st)
			first[o.EventID] = st
		}
		// Decide in runs of random sizes, as batches would.
		p := params(needs, rewards...)
		for lo := 0; lo < len(ops); {
			hi := min(len(ops), lo+1+rng.IntN(40))
			out, err := s.Step(ctx, act, p, ops[lo:hi])
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range out {
				if !reflect.DeepEqual(o.Step, want[lo+i]) {
					t.Fatalf("seed %d event %d (%+v): script says %+v, Graph says %+v", seed, lo+i, ops[lo+i], o.Step, want[lo+i])
				}
			}
			lo = hi
		}
		got, err := s.Bindings(ctx, act)
		if err != nil {
			t.Fatal(err)
		}
		for invitee, inviter := range got {
			if g.InviterOf(invitee) != inviter {
				t.Fatalf("seed %d: Redis binds %s to %s, Graph to %q", seed, invitee, inviter, g.InviterOf(invitee))
			}
		}
	}
}

// TestIntegrationStepRemembersAcrossRevisions replays events after the
// activity changed (thresholds and qualifying action): the remembered
// decisions come back unchanged.
func TestIntegrationStepRemembersAcrossRevisions(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	ops := []Op{
		{Kind: OpBind, AppID: "a", EventID: "c1", Invitee: "v1", Inviter: "alice"},
		{Kind: OpBind, AppID: "a", EventID: "c2", Invitee: "v2", Inviter: "alice"},
		{Kind: OpBind, AppID: "a", EventID: "c3", Invitee: "v2", Inviter: "bob"},
		{Kind: OpBind, AppID: "a", EventID: "c4", Invitee: "bob", Inviter: "x", Precheck: schemas.RefuseBadToken},
	}
	first, err := s.Step(ctx, "act", params(false, schemas.ReferralReward{Threshold: 2, BatchID: "B2"}), ops)
	if err != nil {
		t.Fatal(err)
	}
	if got := first[1].Rewards; len(got) != 1 || got[0].BatchID != "B2" {
		t.Fatalf("second invitee reached no reward: %+v", first[1])
	}
	again, err := s.Step(ctx, "act", params(true, schemas.ReferralReward{Threshold: 1, BatchID: "OTHER"}), ops)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ops {
		if !again[i].Replayed || !reflect.DeepEqual(again[i].Step, first[i].Step) || !again[i].At.Equal(first[i].At) {
			t.Errorf("event %d replayed as %+v, first %+v", i, again[i], first[i])
		}
	}
	if first[3].Reason != schemas.RefuseBadToken || first[2].Reason != schemas.RefuseAlreadyBound || first[2].Inviter != "alice" {
		t.Errorf("refusals: %+v, %+v", first[2], first[3])
	}
	// An event id reused for a different kind of fact is an error, not a
	// silent wrong answer.
	if _, err := s.Step(ctx, "act", params(false), []Op{{Kind: OpQualify, AppID: "a", EventID: "c1", Invitee: "v1"}}); err == nil {
		t.Error("a qualification with a binding's event id was decided")
	}
}

func TestIntegrationStepFencing(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	p := params(false)
	p.Epoch = 5
	if _, err := s.Step(ctx, "act", p, []Op{{Kind: OpBind, AppID: "a", EventID: "e1", Invitee: "v", Inviter: "i"}}); err != nil {
		t.Fatal(err)
	}
	p.Epoch = 4
	_, err := s.Step(ctx, "act", p, []Op{{Kind: OpBind, AppID: "a", EventID: "e2", Invitee: "w", Inviter: "i"}})
	if !errors.Is(err, stream.ErrFenced) {
		t.Fatalf("a stale epoch wrote: %v", err)
	}
	if inviter, _ := s.Binding(ctx, "act", "w"); inviter != "" {
		t.Fatalf("the fenced step bound w to %s", inviter)
	}
}

func TestIntegrationStepKeysExpire(t *testing.T) {
	s, rdb, prefix := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	p := params(false, schemas.ReferralReward{Threshold: 1, BatchID: "B"})
	// An expiry already past must not delete the state it writes.
	p.ExpireAt = p.Now.Add(-time.Minute)
	if _, err := s.Step(ctx, "act", p, []Op{{Kind: OpBind, AppID: "a", EventID: "e1", Invitee: "v", Inviter: "i"}}); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"fence", "inv", "st", "n", "rw", "d"} {
		k := prefix + ":ref:{act}:" + part
		ttl, err := rdb.TTL(ctx, k).Result()
		if err != nil || ttl <= 30*time.Minute || ttl > time.Hour {
			t.Errorf("%s: ttl %s (%v), want about the decision TTL (1h)", k, ttl, err)
		}
	}
}

// TestIntegrationOneInviterUnderConcurrency is the stress test of the
// invariant: 16 workers decide overlapping streams of bindings for the
// same invitees at once (as a zombie and a new owner would, fencing off),
// each event delivered several times, some by two workers in parallel.
// Every invitee ends with exactly one inviter, every delivery of an event
// gets the same decision, exactly one binding per invitee says bound, and
// each reward threshold is reached exactly once per inviter.
func TestIntegrationOneInviterUnderConcurrency(t *testing.T) {
	s, _, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	const (
		workers  = 16
		invitees = 400
		inviters = 20
		events   = 4000
	)
	rewards := []schemas.ReferralReward{{Threshold: 1, BatchID: "B1"}, {Threshold: 5, BatchID: "B5"}, {Threshold: 20, BatchID: "B20"}}
	all := make([]Op, events)
	for i := range all {
		// Inviters are "i<k>", invitees "v<k>": no chains, so cycles cannot
		// hide a wrong "already bound".
		all[i] = Op{Kind: OpBind, AppID: "app", EventID: fmt.Sprint("e", i), Invitee: fmt.Sprint("v", i%invitees), Inviter: fmt.Sprint("i", (i*7+i/invitees)%inviters)}
	}
	var (
		mu        sync.Mutex
		decisions = map[string]Step{}
		bound     = map[string]int{}
		granted   = map[string]int{}
		conflicts []string
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for round := 0; round < 3; round++ {
				order := rng.Perm(events)
				for lo := 0; lo < events; lo += 250 {
					batch := make([]Op, 0, 250)
					for _, k := range order[lo:min(lo+250, events)] {
						batch = append(batch, all[k])
					}
					out, err := s.Step(ctx, "hot", params(false, rewards...), batch)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for i, o := range out {
						id := batch[i].EventID
						if prev, ok := decisions[id]; !ok {
							decisions[id] = o.Step
							if o.Reason == "" {
								bound[batch[i].Invitee]++
							}
							for _, r := range o.Rewards {
								granted[fmt.Sprintf("%s/%d", o.Inviter, r.Threshold)]++
							}
						} else if !reflect.DeepEqual(prev, o.Step) {
							conflicts = append(conflicts, fmt.Sprintf("%s: %+v then %+v", id, prev, o.Step))
						}
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if len(conflicts) > 0 {
		t.Fatalf("%d events decided differently on redelivery, e.g. %s", len(conflicts), conflicts[0])
	}
	binds, err := s.Bindings(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if len(binds) != invitees {
		t.Fatalf("%d invitees bound, want %d", len(binds), invitees)
	}
	for v, n := range bound {
		if n != 1 {
			t.Errorf("invitee %s has %d bound decisions", v, n)
		}
	}
	counts, err := s.Counts(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for inviter, n := range counts {
		sum += n
		for _, r := range rewards {
			want := 0
			if n >= r.Threshold {
				want = 1
			}
			if got := granted[fmt.Sprintf("%s/%d", inviter, r.Threshold)]; got != want {
				t.Errorf("inviter %s with %d invitees got reward %d %d times, want %d", inviter, n, r.Threshold, got, want)
			}
		}
	}
	if sum != invitees {
		t.Errorf("counts add up to %d, want %d", sum, invitees)
	}
}
