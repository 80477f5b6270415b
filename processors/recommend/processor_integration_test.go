package recommend

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run starts a stage on kfake until the test ends.
func run(t *testing.T, brokers []string, fencer stream.Fencer, st stream.Stage) {
	t.Helper()
	r, err := stream.New(stream.Config{Brokers: brokers, Logger: quiet(), SessionTimeout: 6 * time.Second, Fencer: fencer}, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { cancel(); <-done }) })
}

// consume reads topics from the start until cond holds for the events read
// (by event id), failing if an event id comes twice with other bytes.
func consume(t *testing.T, brokers []string, cond func(map[string]*schemas.Envelope) bool, topics ...string) map[string]*schemas.Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(t, time.Minute)
	byID := map[string]*schemas.Envelope{}
	raw := map[string][]byte{}
	for !cond(byID) {
		if ctx.Err() != nil {
			t.Fatalf("condition not met with %d events read from %v", len(byID), topics)
		}
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			env, err := schemas.Decode(r.Value)
			if err != nil {
				t.Fatalf("%s: a record does not decode: %v", r.Topic, err)
			}
			key := env.Type + "/" + env.EventID
			if prev, ok := raw[key]; ok && !bytes.Equal(prev, r.Value) {
				t.Fatalf("%s published twice with different bytes:\n%s\n%s", key, prev, r.Value)
			}
			raw[key] = r.Value
			byID[key] = env
		})
	}
	return byID
}

// drain reads topics from the start until a second passes without records.
func drain(t *testing.T, brokers []string, topics ...string) map[string]*schemas.Envelope {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	byID := map[string]*schemas.Envelope{}
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if env, err := schemas.Decode(r.Value); err == nil {
				byID[env.Type+"/"+env.EventID] = env
			}
		})
		if n == 0 {
			return byID
		}
	}
}

func ofType[T any](t *testing.T, byID map[string]*schemas.Envelope, typ string) []T {
	t.Helper()
	var out []T
	for _, env := range byID {
		if env.Type == typ {
			var v T
			if err := env.DecodePayload(&v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
	}
	return out
}

// TestIntegrationAutoGrantThroughCouponProcessor runs the recommendation
// and coupon processors on kfake and the real Redis. Phone buyers are
// recommended the phone coupon and auto-granted it through the coupon
// processor, which holds grants to the stock (2 of 5 users) and decides
// each user's grant once however often the behaviour is redelivered; once
// the phone coupon is out of stock the next user is recommended, and
// granted, the next best batch.
func TestIntegrationAutoGrantThroughCouponProcessor(t *testing.T) {
	brokers, _ := testenv.KafkaWithTopics(t)
	rdb, prefix := testRedis(t)
	store := NewStore(rdb, WithKeyPrefix(prefix))
	cs := coupon.NewStore(rdb, coupon.WithKeyPrefix(prefix))
	ctx := testenv.Context(t, 2*time.Minute)
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	batches := coupon.NewBatches()
	for _, d := range []*schemas.BatchDefined{
		{BatchID: "PHONE-50", Revision: 1, TotalStock: 2, PerUserLimit: 1, Status: schemas.BatchActive, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(240 * time.Hour),
			Categories: []string{"phone"}, DiscountType: schemas.DiscountFixed, Amount: 5000},
		{BatchID: "ALL-5", Revision: 1, TotalStock: 1000, PerUserLimit: 1, Status: schemas.BatchActive, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(240 * time.Hour),
			DiscountType: schemas.DiscountFixed, Amount: 500},
	} {
		batches.Put(d)
	}
	rules := mustRules(t, handlerRules+"auto_grant: {enabled: true, round: launch, min_score: 100}\n")
	// low_stock 1: a batch with stock left ranks fully, so the first users
	// all get the phone coupon while the coupon processor decides grants.
	rules.LowStock = 1
	fencer := &stream.RedisFencer{Client: rdb, Prefix: prefix}
	rp := New(store, cs, batches, StaticRules(rules), WithStockCacheTTL(0))
	run(t, brokers, fencer, rp.Stage())

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var first []*kgo.Record
	for u := range 5 {
		user := fmt.Sprint("buyer-", u)
		for i, action := range []string{"browse", "cart", "order"} {
			env := behaviour(t, fmt.Sprintf("%s-%d", user, i), now.Add(time.Duration(i-3)*time.Minute),
				schemas.BehaviourRecorded{UserID: user, Action: action, Category: "phone", Price: 80000, Quantity: 1})
			b, err := env.Encode()
			if err != nil {
				t.Fatal(err)
			}
			first = append(first, &kgo.Record{Topic: TopicBehaviour, Key: []byte(user), Value: b})
		}
	}
	produce := func(recs []*kgo.Record) {
		t.Helper()
		clones := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			clones[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
		}
		if err := cl.ProduceSync(ctx, clones...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(first)
	count := func(typ string, n int) func(map[string]*schemas.Envelope) bool {
		return func(m map[string]*schemas.Envelope) bool {
			c := 0
			for _, env := range m {
				if env.Type == typ {
					c++
				}
			}
			return c >= n
		}
	}
	// Every buyer is recommended the phone coupon and its grant is asked
	// for before the coupon processor starts deciding (so that no buyer
	// is ranked after the stock ran out).
	consume(t, brokers, count(schemas.TypeCouponIssueRequested, 5), coupon.TopicClaims)
	run(t, brokers, fencer, coupon.New(cs, batches).Stage())
	got := consume(t, brokers, count(schemas.TypeCouponGrantDecided, 5), coupon.TopicGrants, TopicRecommendations, coupon.TopicClaims)
	grants := ofType[schemas.GrantDecided](t, got, schemas.TypeCouponGrantDecided)
	granted := 0
	for _, g := range grants {
		if g.Status == schemas.StatusGranted {
			granted++
			if g.BatchID != "PHONE-50" {
				t.Errorf("granted %s to %s, want PHONE-50", g.BatchID, g.UserID)
			}
		}
		if g.ClaimEventID != GrantEventID("launch", g.UserID, g.BatchID) {
			t.Errorf("grant of %s decided claim %s, want the auto-grant's event id", g.UserID, g.ClaimEventID)
		}
	}
	if granted != 2 || len(grants) != 5 {
		t.Errorf("%d decisions, %d granted; want 5 decisions and the stock, 2, granted", len(grants), granted)
	}
	for _, rec := range ofType[schemas.RecommendationMade](t, got, schemas.TypeRecommendationMade) {
		if rec.Rank == 1 && (rec.BatchID != "PHONE-50" || rec.GrantEventID == "") {
			t.Errorf("%s's first recommendation %+v, want PHONE-50 granted", rec.UserID, rec)
		}
	}

	// Everything again (a producer's retry of the whole burst), and a new
	// buyer once the phone coupon is sold out.
	produce(first)
	late := behaviour(t, "late-0", now, schemas.BehaviourRecorded{UserID: "late", Action: "order", Category: "phone", Price: 80000})
	b, _ := late.Encode()
	produce([]*kgo.Record{{Topic: TopicBehaviour, Key: []byte("late"), Value: b}})
	got = consume(t, brokers, count(schemas.TypeCouponGrantDecided, 6), coupon.TopicGrants, TopicRecommendations)
	grants = ofType[schemas.GrantDecided](t, got, schemas.TypeCouponGrantDecided)
	perUser := map[string]int{}
	for _, g := range grants {
		perUser[g.UserID]++
		if g.UserID == "late" && (g.BatchID != "ALL-5" || g.Status != schemas.StatusGranted) {
			t.Errorf("late: %+v, want ALL-5 granted", g)
		}
	}
	for u, n := range perUser {
		if n != 1 {
			t.Errorf("%s has %d grant decisions, want 1", u, n)
		}
	}
	// Once the redelivered burst is handled, nothing more was decided.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		st := rp.Stats()
		if st.Duplicates == 15 && st.Counted == 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v: want 16 events counted and the 15 redelivered ones recognised", st)
		}
	}
	time.Sleep(500 * time.Millisecond) // any grant asked for again would be decided by now
	if n := len(ofType[schemas.GrantDecided](t, drain(t, brokers, coupon.TopicGrants), schemas.TypeCouponGrantDecided)); n != 6 {
		t.Errorf("%d grant decisions after the redelivery, want 6", n)
	}
	if n, err := cs.Granted(ctx, "PHONE-50"); err != nil || n != 2 {
		t.Errorf("PHONE-50 granted %d (%v), want its stock 2", n, err)
	}
}
