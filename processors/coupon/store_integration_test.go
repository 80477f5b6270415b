package coupon

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

func testStore(t *testing.T) (*Store, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	ctx := testenv.Context(t, time.Minute)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	prefix := testenv.Name("t")
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	s := NewStore(rdb, WithKeyPrefix(prefix), WithDecisionTTL(time.Hour))
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

func claimIn(def *schemas.BatchDefined, event, user string) ClaimInput {
	return ClaimInput{AppID: "shop", EventID: event, BatchID: def.BatchID, UserID: user, Def: def, Precheck: Precheck(def, def.ValidFrom)}
}

func TestIntegrationClaimScript(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	def := batch(func(b *schemas.BatchDefined) { b.TotalStock = 3; b.PerUserLimit = 2 })
	now := time.UnixMilli(1_800_000_000_000)

	out, err := s.Claim(ctx, "coupon.claims/0", 1, now, []ClaimInput{
		claimIn(def, "e1", "alice"),
		claimIn(def, "e2", "alice"),
		claimIn(def, "e3", "alice"), // over the per-user limit
		claimIn(def, "e4", "bob"),   // last coupon
		claimIn(def, "e5", "carol"), // out of stock
		{AppID: "shop", EventID: "e6", BatchID: "nope", UserID: "dave", Precheck: schemas.RejectUnknownBatch},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		granted bool
		seq     int64
		reason  string
	}{{true, 1, ""}, {true, 2, ""}, {false, 0, schemas.RejectUserLimit}, {true, 3, ""}, {false, 0, schemas.RejectOutOfStock}, {false, 0, schemas.RejectUnknownBatch}}
	for i, w := range want {
		o := out[i]
		if o.Granted != w.granted || o.Seq != w.seq || o.Reason != w.reason || o.Replayed || !o.At.Equal(now) {
			t.Errorf("claim %d = %+v, want %+v at %v", i, o, w, now)
		}
	}

	// Redelivery of every event, later, even with a batch whose stock grew:
	// the remembered decisions come back unchanged and nothing moves.
	bigger := batch(func(b *schemas.BatchDefined) { b.TotalStock = 100; b.PerUserLimit = 5; b.Revision = 2 })
	again, err := s.Claim(ctx, "coupon.claims/0", 1, now.Add(time.Hour), []ClaimInput{
		claimIn(bigger, "e1", "alice"), claimIn(bigger, "e2", "alice"), claimIn(bigger, "e3", "alice"),
		claimIn(bigger, "e4", "bob"), claimIn(bigger, "e5", "carol"),
		{AppID: "shop", EventID: "e6", BatchID: "nope", UserID: "dave", Precheck: schemas.RejectUnknownBatch},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		o := again[i]
		if !o.Replayed || o.Granted != out[i].Granted || o.Seq != out[i].Seq || o.Reason != out[i].Reason || !o.At.Equal(now) {
			t.Errorf("replayed claim %d = %+v, want %+v replayed", i, o, out[i])
		}
	}
	if n, _ := s.Granted(ctx, def.BatchID); n != 3 {
		t.Fatalf("granted = %d after replay, want 3", n)
	}
}

func TestIntegrationClaimFencing(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	def := batch(nil)
	now := time.Now()
	if _, err := s.Claim(ctx, "coupon.claims/3", 5, now, []ClaimInput{claimIn(def, "a", "u1")}); err != nil {
		t.Fatal(err)
	}
	// A new owner (epoch 6) writes; the old owner (epoch 5) is now refused.
	if _, err := s.Claim(ctx, "coupon.claims/3", 6, now, []ClaimInput{claimIn(def, "b", "u2")}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Claim(ctx, "coupon.claims/3", 5, now, []ClaimInput{claimIn(def, "c", "u3")})
	if !errors.Is(err, stream.ErrFenced) {
		t.Fatalf("stale epoch: err = %v, want ErrFenced", err)
	}
	// The refused claim changed nothing.
	if n, _ := s.Granted(ctx, def.BatchID); n != 2 {
		t.Fatalf("granted = %d, want 2", n)
	}
	// Fencing is per partition: epoch 5 of another partition still works.
	if _, err := s.Claim(ctx, "coupon.claims/4", 5, now, []ClaimInput{claimIn(def, "d", "u4")}); err != nil {
		t.Fatalf("other partition: %v", err)
	}
}

func TestIntegrationClaimScriptReloadsAfterFlush(t *testing.T) {
	s, rdb := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	out, err := s.Claim(ctx, "coupon.claims/0", 1, time.Now(), []ClaimInput{claimIn(batch(nil), "x", "u")})
	if err != nil || !out[0].Granted {
		t.Fatalf("claim after SCRIPT FLUSH = %+v, %v", out, err)
	}
}

// TestIntegrationClaimLuaMatchesDecide checks that the script implements
// Decide: for random counter states, the script's reason equals Decide's.
func TestIntegrationClaimLuaMatchesDecide(t *testing.T) {
	s, rdb := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		def := batch(func(b *schemas.BatchDefined) {
			b.BatchID = fmt.Sprintf("P%d", i)
			b.TotalStock = int64(rng.Intn(5))
			b.PerUserLimit = int64(1 + rng.Intn(3))
		})
		c := Counters{Granted: int64(rng.Intn(6)), UserHeld: int64(rng.Intn(4))}
		bk := s.batchKey(def.BatchID)
		rdb.Set(ctx, bk+":granted", c.Granted, 0)
		rdb.Set(ctx, bk+":u:u", c.UserHeld, 0)
		out, err := s.Claim(ctx, "t/0", 0, time.Now(), []ClaimInput{claimIn(def, "e", "u")})
		if err != nil {
			t.Fatal(err)
		}
		if want := Decide(def, c); out[0].Reason != want || out[0].Granted != (want == "") {
			t.Fatalf("state %+v def stock=%d limit=%d: script says %+v, Decide says %q", c, def.TotalStock, def.PerUserLimit, out[0], want)
		}
	}
}

// TestIntegrationClaimConcurrentDuplicates races 16 workers over 5,000
// claims (each delivered twice) for a batch of 1,000: grants = stock, no user
// over the limit, and each event's two deliveries agree.
func TestIntegrationClaimConcurrentDuplicates(t *testing.T) {
	s, rdb := testStore(t)
	ctx := testenv.Context(t, 2*time.Minute)
	def := batch(func(b *schemas.BatchDefined) { b.TotalStock = 1000; b.PerUserLimit = 2 })
	const claims, users, workers = 5000, 1500, 16
	results := make([][2]Outcome, claims)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for round := 0; round < 2; round++ {
				var in []ClaimInput
				var idx []int
				for i := w; i < claims; i += workers {
					in = append(in, claimIn(def, fmt.Sprintf("ev%d", i), fmt.Sprintf("user%d", i%users)))
					idx = append(idx, i)
					if len(in) == 50 || i+workers >= claims {
						out, err := s.Claim(ctx, fmt.Sprintf("t/%d", w), 0, time.Now(), in)
						if err != nil {
							t.Error(err)
							return
						}
						for j, o := range out {
							results[idx[j]][round] = o
						}
						in, idx = nil, nil
					}
				}
			}
		}(w)
	}
	wg.Wait()
	granted := 0
	perUser := map[int]int{}
	seqs := map[int64]bool{}
	for i, r := range results {
		if r[0].Granted != r[1].Granted || r[0].Seq != r[1].Seq || r[0].Reason != r[1].Reason {
			t.Fatalf("event %d decided twice differently: %+v vs %+v", i, r[0], r[1])
		}
		if r[0].Granted {
			granted++
			perUser[i%users]++
			if seqs[r[0].Seq] {
				t.Fatalf("grant seq %d given twice", r[0].Seq)
			}
			seqs[r[0].Seq] = true
		}
	}
	if granted != 1000 {
		t.Fatalf("granted %d, want exactly the stock 1000", granted)
	}
	for u, n := range perUser {
		if n > 2 {
			t.Fatalf("user%d got %d coupons, limit 2", u, n)
		}
	}
	if n, _ := rdb.Get(ctx, s.GrantedKey(def.BatchID)).Int64(); n != 1000 {
		t.Fatalf("granted counter = %d", n)
	}
}

// TestIntegrationClaimLongRunsKeepOrder decides 1,300 claims of one batch
// (more than one script call's run) mixed with another batch's: grants are
// numbered in input order and stop exactly at the stock.
func TestIntegrationClaimLongRunsKeepOrder(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	a := batch(func(b *schemas.BatchDefined) { b.BatchID = "A"; b.TotalStock = 1000; b.PerUserLimit = 1 })
	b := batch(func(b *schemas.BatchDefined) { b.BatchID = "B"; b.TotalStock = 5; b.PerUserLimit = 1 })
	var in []ClaimInput
	for i := 0; i < 1300; i++ {
		in = append(in, claimIn(a, fmt.Sprintf("a%d", i), fmt.Sprintf("u%d", i)))
		if i%100 == 0 {
			in = append(in, claimIn(b, fmt.Sprintf("b%d", i), fmt.Sprintf("u%d", i)))
		}
	}
	out, err := s.Claim(ctx, "t/0", 1, time.Now(), in)
	if err != nil {
		t.Fatal(err)
	}
	var seqA, seqB int64
	for i, o := range out {
		seq := &seqA
		stock := a.TotalStock
		if in[i].BatchID == "B" {
			seq, stock = &seqB, b.TotalStock
		}
		if *seq < stock {
			*seq++
			if !o.Granted || o.Seq != *seq {
				t.Fatalf("claim %d (%s): %+v, want grant #%d", i, in[i].EventID, o, *seq)
			}
		} else if o.Granted || o.Reason != schemas.RejectOutOfStock {
			t.Fatalf("claim %d (%s): %+v, want out_of_stock", i, in[i].EventID, o)
		}
	}
}

// TestIntegrationCounterReads checks the read methods other processors use
// (the recommender ranks by remaining stock and skips batches a user holds
// to the limit) against counts made by the claim script itself.
func TestIntegrationCounterReads(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	def := batch(func(b *schemas.BatchDefined) { b.TotalStock = 5; b.PerUserLimit = 3 })
	other := batch(func(b *schemas.BatchDefined) { b.BatchID = "B2" })
	if _, err := s.Claim(ctx, "coupon.claims/0", 0, def.ValidFrom, []ClaimInput{
		claimIn(def, "e1", "alice"), claimIn(def, "e2", "alice"), claimIn(def, "e3", "bob"), claimIn(other, "e4", "bob"),
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GrantedMany(ctx, []string{"B1", "never-claimed", "B2"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[3 0 1]" {
		t.Errorf("GrantedMany = %v, want [3 0 1]", got)
	}
	held, err := s.UserHeld(ctx, []BatchUser{{"B1", "alice"}, {"B1", "bob"}, {"B2", "alice"}, {"B2", "bob"}, {"nope", "carol"}})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(held) != "[2 1 0 1 0]" {
		t.Errorf("UserHeld = %v, want [2 1 0 1 0]", held)
	}
	if got, err := s.GrantedMany(ctx, nil); err != nil || got != nil {
		t.Errorf("GrantedMany(nil) = %v, %v; want nil, nil", got, err)
	}
}
