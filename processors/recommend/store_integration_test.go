package recommend

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
)

// testRedis connects to the test Redis and removes the keys under the
// returned prefix when the test ends.
func testRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(testenv.Context(t, 10*time.Second)).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	prefix := testenv.Name("rec")
	t.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		for lo := 0; lo < len(keys); lo += 500 {
			pipe := rdb.Pipeline()
			for _, k := range keys[lo:min(lo+500, len(keys))] {
				pipe.Del(ctx, k)
			}
			_, _ = pipe.Exec(ctx)
		}
	})
	return rdb, prefix
}

func testStore(t testing.TB, opts ...StoreOption) (*Store, *redis.Client) {
	t.Helper()
	rdb, prefix := testRedis(t)
	s := NewStore(rdb, append([]StoreOption{WithKeyPrefix(prefix)}, opts...)...)
	if err := s.Load(testenv.Context(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

var params = ProfileParams{HalfLife: 24 * time.Hour, Window: 10 * 24 * time.Hour, MaxEntries: 200, MaxEvents: 10000}

// TestIntegrationProfileScriptMatchesDecay: whatever order events arrive
// in, over however many calls, and however often they are redelivered, the
// profile profile.lua keeps decays to the exact sum Σ w·2^(-(now-t)/h) of
// the distinct events.
func TestIntegrationProfileScriptMatchesDecay(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	rng := rand.New(rand.NewPCG(1, 2))
	fields := []string{"c:phone", "c:tv", "b:acme", "m:x1", "p:3"}
	var events []ProfileEvent
	for i := range 300 {
		var fs []string
		for _, f := range fields {
			if rng.IntN(2) == 0 {
				fs = append(fs, f)
			}
		}
		events = append(events, ProfileEvent{
			ID: fmt.Sprintf("shop|e%d", i), At: t0.Add(-time.Duration(rng.Int64N(int64(9 * 24 * time.Hour)))).Truncate(time.Millisecond),
			Weight: float64(1 + rng.IntN(20)), Fields: fs,
		})
	}
	want := map[string]float64{}
	for _, e := range events {
		for _, f := range e.Fields {
			want[f] += e.Weight * math.Exp2(-float64(t0.Sub(e.At))/float64(params.HalfLife))
		}
	}
	// Delivered in a shuffled order, in uneven calls, then all again.
	shuffled := append([]ProfileEvent(nil), events...)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	var last Applied
	for round := range 2 {
		for lo := 0; lo < len(shuffled); {
			hi := min(len(shuffled), lo+1+rng.IntN(40))
			got, err := s.Apply(ctx, "behaviour.events/0", 1, t0, params, []UserEvents{{UserID: "u1", Events: shuffled[lo:hi]}})
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range got[0].Dup {
				if d != (round == 1) {
					t.Fatalf("round %d: event %s dup = %v", round, shuffled[lo+i].ID, d)
				}
			}
			last = got[0]
			lo = hi
		}
	}
	r := &Rules{HalfLife: params.HalfLife, Window: params.Window, PriceBands: []int64{0, 1, 2, 3}}
	p := r.ProfileAt(last.Entries, t0)
	got := map[string]float64{"c:phone": p.Categories["phone"], "c:tv": p.Categories["tv"], "b:acme": p.Brands["acme"], "m:x1": p.Models["x1"], "p:3": p.Bands[3]}
	for f, w := range want {
		if math.Abs(got[f]-w) > 1e-9*w {
			t.Errorf("%s = %.12g, want %.12g", f, got[f], w)
		}
	}
}

// TestIntegrationProfileBounds: event ids are forgotten after the dedupe
// window or beyond max_events, and a profile over max_entries keeps its
// strongest three quarters.
func TestIntegrationProfileBounds(t *testing.T) {
	s, rdb := testStore(t, WithDecisionTTL(time.Hour))
	ctx := testenv.Context(t, time.Minute)
	ev := func(id string, w float64, fs ...string) ProfileEvent {
		return ProfileEvent{ID: "shop|" + id, At: t0, Weight: w, Fields: fs}
	}
	apply := func(now time.Time, p ProfileParams, evs ...ProfileEvent) Applied {
		t.Helper()
		got, err := s.Apply(ctx, "", 0, now, p, []UserEvents{{UserID: "u2", Events: evs}})
		if err != nil {
			t.Fatal(err)
		}
		return got[0]
	}
	apply(t0, params, ev("a", 1, "c:x"))
	if a := apply(t0.Add(59*time.Minute), params, ev("a", 1, "c:x")); !a.Dup[0] {
		t.Error("an event redelivered within the dedupe window was added again")
	}
	if a := apply(t0.Add(61*time.Minute), params, ev("a", 1, "c:x")); a.Dup[0] {
		t.Error("an event id older than the dedupe window was still remembered")
	}

	small := params
	small.MaxEvents = 3
	for i := range 5 {
		apply(t0, small, ev(fmt.Sprint("m", i), 1, "c:y"))
	}
	if n := rdb.ZCard(ctx, s.userKey("u2")+":seen").Val(); n != 3 {
		t.Errorf("%d event ids remembered, want max_events 3", n)
	}

	small = params
	small.MaxEntries = 10
	var evs []ProfileEvent
	for i := range 12 {
		evs = append(evs, ev(fmt.Sprint("w", i), float64(100+i), fmt.Sprintf("b:brand%02d", i)))
	}
	a := apply(t0, small, evs...)
	// c:x, c:y and brand00..brand11 = 14 entries > 10: keep the strongest 7.
	var kept []string
	for f := range a.Entries {
		kept = append(kept, f)
	}
	if len(kept) != 7 {
		t.Fatalf("kept %d entries %v, want 7", len(kept), kept)
	}
	for i := 5; i < 12; i++ {
		if _, ok := a.Entries[fmt.Sprintf("b:brand%02d", i)]; !ok {
			t.Errorf("the strong entry brand%02d was dropped: %v", i, kept)
		}
	}
	if ttl := rdb.PTTL(ctx, s.userKey("u2")+":prof").Val(); ttl <= 9*24*time.Hour || ttl > params.Window {
		t.Errorf("profile TTL %s, want the window %s", ttl, params.Window)
	}
}

func setOf(user, trigger string, batches ...string) Set {
	s := Set{UserID: user, MadeAt: t0, RulesRevision: "r-test", TriggerAppID: "shop", TriggerEventID: trigger}
	for i, b := range batches {
		s.Items = append(s.Items, Item{RecommendationID: fmt.Sprintf("%032x", i), BatchID: b, Rank: int64(i + 1)})
	}
	return s
}

// TestIntegrationCommitDecisions: a top N is emitted when it changes, not
// when it stays the same, held within the min interval, and every decision
// is remembered with its trigger.
func TestIntegrationCommitDecisions(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	p := TopParams{MinInterval: 10 * time.Minute, TTL: time.Hour}
	commit := func(now time.Time, trigger string, set Set) Decision {
		t.Helper()
		ds, err := s.Commit(ctx, "behaviour.events/3", 1, now, p, []TopInput{{UserID: set.UserID, Trigger: "shop|" + trigger, Set: set}})
		if err != nil {
			t.Fatal(err)
		}
		return ds[0]
	}
	steps := []struct {
		at       time.Duration
		trigger  string
		batches  []string
		kind     string
		replayed bool
		kept     string // the kept top N's signature after the step
	}{
		{0, "e1", nil, DecisionSame, false, ""}, // nothing to recommend, nothing kept
		{0, "e2", []string{"A", "B"}, DecisionEmit, false, "A,B"},
		{time.Minute, "e3", []string{"A", "B"}, DecisionSame, false, "A,B"},
		{2 * time.Minute, "e4", []string{"B", "A"}, DecisionHeld, false, "A,B"}, // changed within 10m
		{11 * time.Minute, "e5", []string{"B", "A"}, DecisionEmit, false, "B,A"},
		{12 * time.Minute, "e2", []string{"C"}, DecisionEmit, true, "B,A"}, // e2 again: its first decision
		{13 * time.Minute, "e4", []string{"C"}, DecisionHeld, true, "B,A"},
		{30 * time.Minute, "e6", nil, DecisionEmit, false, ""}, // the top N emptied
	}
	for _, st := range steps {
		d := commit(t0.Add(st.at), st.trigger, setOf("u3", st.trigger, st.batches...))
		if d.Kind != st.kind || d.Replayed != st.replayed {
			t.Errorf("%s: decision %s (replayed %v), want %s (replayed %v)", st.trigger, d.Kind, d.Replayed, st.kind, st.replayed)
		}
		if st.trigger == "e2" && st.replayed && (d.Set.Signature() != "A,B" || d.Set.TriggerEventID != "e2") {
			t.Errorf("replayed e2 gave the set %+v, want the first one (A,B)", d.Set)
		}
		top, err := s.Top(ctx, "u3")
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		if top != nil {
			got = top.Signature()
		}
		if got != st.kept {
			t.Errorf("after %s the kept top N is %q, want %q", st.trigger, got, st.kept)
		}
	}
	if top, err := s.Top(ctx, "nobody"); top != nil || err != nil {
		t.Errorf("Top of a user without one = %v, %v", top, err)
	}
}

// TestIntegrationScriptsFenced: after a newer owner of the partition has
// written a user's keys, the older owner can change neither the profile
// nor the top N.
func TestIntegrationScriptsFenced(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	evs := []UserEvents{{UserID: "u4", Events: []ProfileEvent{{ID: "shop|e1", At: t0, Weight: 1, Fields: []string{"c:x"}}}}}
	if _, err := s.Apply(ctx, "behaviour.events/1", 2, t0, params, evs); err != nil {
		t.Fatal(err)
	}
	_, err := s.Apply(ctx, "behaviour.events/1", 1, t0, params, evs)
	if !errors.Is(err, stream.ErrFenced) {
		t.Errorf("profile with an older epoch: %v, want ErrFenced", err)
	}
	in := []TopInput{{UserID: "u4", Trigger: "shop|e1", Set: setOf("u4", "e1", "A")}}
	if _, err := s.Commit(ctx, "behaviour.events/1", 1, t0, TopParams{TTL: time.Hour}, in); !errors.Is(err, stream.ErrFenced) {
		t.Errorf("top N with an older epoch: %v, want ErrFenced", err)
	}
	if _, err := s.Commit(ctx, "behaviour.events/1", 3, t0, TopParams{TTL: time.Hour}, in); err != nil {
		t.Errorf("top N with a newer epoch: %v", err)
	}
	// Another partition's epochs are its own.
	if _, err := s.Apply(ctx, "behaviour.events/2", 1, t0, params, evs); err != nil {
		t.Errorf("another partition: %v", err)
	}
}
