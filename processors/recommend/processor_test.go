package recommend

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

// handlerRules are the rules of the Handle tests: the shape of the default
// rules, a week's window so that t0 (in the past) still counts.
const handlerRules = `
version: 1
profile: {half_life: 72h, window: 30d, price_bands: [0, 2000, 10000, 50000, 200000]}
actions:
  browse: {weight: 1}
  cart: {weight: 3, per_quantity: true}
  order: {weight: 10, per_quantity: true}
  review: {weight: 4, min_rating: 4}
filters:
  - {name: gift cards, match: {categories: [gift-card]}, ignore: true}
scoring: {top_n: 2, min_affinity: 0.05, min_score: 1, unscoped_affinity: 0.5, default_price: 10000, low_stock: 10, low_time: 1h}
`

type fixture struct {
	t       testing.TB
	p       *Processor
	store   *Store
	coupons *coupon.Store
	batches *coupon.Batches
	now     time.Time
}

// newFixture returns a processor over the real Redis with the catalogue of
// batches the tests rank: phones, TVs (worth it from 500.00 on), and a
// small coupon valid on everything.
func newFixture(t testing.TB, rulesYAML string) *fixture {
	t.Helper()
	rdb, prefix := testRedis(t)
	return newFixtureOn(t, rdb, prefix, rulesYAML)
}

// newFixtureOn is newFixture on rdb under prefix.
func newFixtureOn(t testing.TB, rdb redis.UniversalClient, prefix, rulesYAML string) *fixture {
	t.Helper()
	store := NewStore(rdb, WithKeyPrefix(prefix))
	cs := coupon.NewStore(rdb, coupon.WithKeyPrefix(prefix))
	ctx := testenv.Context(t, 10*time.Second)
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cs.Load(ctx); err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, store: store, coupons: cs, batches: coupon.NewBatches(), now: t0}
	for _, d := range []*schemas.BatchDefined{
		def("PHONE-50", func(d *schemas.BatchDefined) { d.Categories = []string{"phone"}; d.Amount = 5000 }),
		def("TV-100", func(d *schemas.BatchDefined) { d.Categories = []string{"tv"}; d.Amount = 10000; d.Threshold = 50000 }),
		def("ALL-5", func(d *schemas.BatchDefined) { d.Amount = 500 }),
		def("ACME-PCT", func(d *schemas.BatchDefined) {
			d.Brands = []string{"acme"}
			d.DiscountType, d.Amount, d.Percent, d.Cap = schemas.DiscountPercent, 0, 10, 3000
		}),
	} {
		f.batches.Put(d)
	}
	f.p = New(store, cs, f.batches, StaticRules(mustRules(t, rulesYAML)), WithStockCacheTTL(0))
	f.p.now = func() time.Time { return f.now }
	return f
}

// behaviour builds a behaviour event of app shop.
func behaviour(t testing.TB, id string, at time.Time, b schemas.BehaviourRecorded) *schemas.Envelope {
	t.Helper()
	env, err := schemas.New(id, "shop", at, b)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func batchOf(part int32, epoch int64, envs ...*schemas.Envelope) *stream.Batch {
	b := &stream.Batch{Topic: TopicBehaviour, Partition: part, Epoch: epoch}
	for _, env := range envs {
		b.Events = append(b.Events, stream.Event{Env: env, Record: &kgo.Record{Topic: TopicBehaviour, Partition: part, Key: []byte(env.Key)}})
	}
	return b
}

func (f *fixture) handle(b *stream.Batch) stream.Result {
	f.t.Helper()
	res, err := f.p.Handle(testenv.Context(f.t, 30*time.Second), b)
	if err != nil {
		f.t.Fatal(err)
	}
	return res
}

// recommended returns each user's emitted top N as batch ids by rank, from
// the records of res (the last emission of a user wins).
func recommended(t testing.TB, out []*kgo.Record) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	trigger := map[string]string{}
	for _, rec := range out {
		if rec.Topic != TopicRecommendations {
			continue
		}
		env, err := schemas.Decode(rec.Value)
		if err != nil {
			t.Fatalf("a recommendation does not decode: %v", err)
		}
		var m schemas.RecommendationMade
		if err := env.DecodePayload(&m); err != nil {
			t.Fatal(err)
		}
		if trigger[m.UserID] != m.TriggerEventID {
			trigger[m.UserID] = m.TriggerEventID
			got[m.UserID] = nil
		}
		got[m.UserID] = append(got[m.UserID], m.BatchID)
	}
	return got
}

// TestIntegrationHistoryMakesExpectedCouponWin: a user's browse, cart,
// order and review history decides which coupon is recommended first.
func TestIntegrationHistoryMakesExpectedCouponWin(t *testing.T) {
	f := newFixture(t, handlerRules)
	at := func(h int) time.Time { return t0.Add(-time.Duration(h) * time.Hour) }
	type ev struct {
		h int
		b schemas.BehaviourRecorded
	}
	phone := func(action string, price int64) schemas.BehaviourRecorded {
		return schemas.BehaviourRecorded{Action: action, Category: "phone", Brand: "zeta", Price: price, Quantity: 1}
	}
	tv := func(action string, price int64) schemas.BehaviourRecorded {
		return schemas.BehaviourRecorded{Action: action, Category: "tv", Brand: "acme", Price: price, Quantity: 1}
	}
	cases := []struct {
		user    string
		history []ev
		want    string // batch ids by rank
	}{
		{"phone-browser", []ev{{5, phone("browse", 80000)}, {4, phone("browse", 90000)}, {1, phone("browse", 85000)}}, "PHONE-50 ALL-5"},
		{"tv-buyer", []ev{{30, tv("browse", 150000)}, {29, tv("order", 150000)}}, "TV-100 ACME-PCT"},
		// Browsing phones a lot but ordering a TV: the order weighs more.
		{"tv-orderer-phone-browser", []ev{{50, phone("browse", 9000)}, {49, phone("browse", 9000)}, {48, phone("browse", 9000)}, {2, tv("order", 120000)}},
			"TV-100 ACME-PCT"},
		// Old TV interest decayed; recent phone carts win.
		{"tastes-changed", []ev{{24 * 20, tv("order", 150000)}, {3, phone("cart", 70000)}, {2, phone("cart", 70000)}}, "PHONE-50 ALL-5"},
		// Cheap TV browsing: TV-100 needs 500.00, the brand coupon applies.
		{"cheap-tv", []ev{{3, tv("browse", 9000)}, {2, tv("browse", 8000)}}, "ACME-PCT ALL-5"},
		// Only gift cards: nothing counts, nothing is recommended.
		{"gift-carder", []ev{{1, schemas.BehaviourRecorded{Action: "order", Category: "gift-card", Price: 5000}}}, ""},
		// A bad review says nothing; a good one does.
		{"reviewer", []ev{{3, schemas.BehaviourRecorded{Action: "review", Category: "tv", Brand: "acme", Rating: 1}},
			{2, schemas.BehaviourRecorded{Action: "review", Category: "phone", Rating: 5}}}, "PHONE-50 ALL-5"},
	}
	var envs []*schemas.Envelope
	for _, c := range cases {
		for i, e := range c.history {
			e.b.UserID = c.user
			envs = append(envs, behaviour(t, fmt.Sprintf("%s-%d", c.user, i), at(e.h), e.b))
		}
	}
	res := f.handle(batchOf(0, 1, envs...))
	got := recommended(t, res.Out)
	for _, c := range cases {
		if s := fmt.Sprint(got[c.user]); s != fmt.Sprint(splitWords(c.want)) {
			t.Errorf("%s is recommended %v, want %v", c.user, got[c.user], splitWords(c.want))
		}
		// The kept top N answers lookups the same way.
		top, err := f.store.Top(testenv.Context(t, 10*time.Second), c.user)
		if err != nil {
			t.Fatal(err)
		}
		sig := ""
		if top != nil {
			sig = top.Signature()
		}
		if want := joinWords(c.want); sig != want {
			t.Errorf("%s: kept top N %q, want %q", c.user, sig, want)
		}
	}
	if st := f.p.Stats(); st.Skipped[SkipFilter] != 1 || st.Skipped[SkipRating] != 1 || st.Emitted != 6 || st.Same != 0 {
		t.Errorf("stats = %+v", st)
	}
	// The metrics' decisions say the same (promoflow_decisions_total).
	for d, want := range map[stream.Decision]int{
		{Kind: "recommend.event", Outcome: "skipped", Reason: SkipFilter}: 1,
		{Kind: "recommend.event", Outcome: "skipped", Reason: SkipRating}: 1,
		{Kind: "recommend.top", Outcome: DecisionEmit}:                    6,
	} {
		if res.Decisions[d] != want {
			t.Errorf("decisions %v: %d, want %d (all: %v)", d, res.Decisions[d], want, res.Decisions)
		}
	}
}

func splitWords(s string) []string {
	var out []string
	for _, w := range bytes.Fields([]byte(s)) {
		out = append(out, string(w))
	}
	return out
}

func joinWords(s string) string {
	return string(bytes.Join(bytes.Fields([]byte(s)), []byte(",")))
}

// TestIntegrationRedeliveryYieldsSameRecords: a batch handled again, whole
// or split differently, changes no profile and yields byte-identical
// records or none; a new event that leaves the top N unchanged emits
// nothing (no spam); one that changes it emits it.
func TestIntegrationRedeliveryYieldsSameRecords(t *testing.T) {
	f := newFixture(t, handlerRules)
	var envs []*schemas.Envelope
	for i := range 6 {
		envs = append(envs, behaviour(t, fmt.Sprint("e", i), t0.Add(-time.Duration(10-i)*time.Minute),
			schemas.BehaviourRecorded{UserID: "u1", Action: "browse", Category: "phone", Price: 60000}))
	}
	first := f.handle(batchOf(0, 1, envs...))
	if len(first.Out) != 2 {
		t.Fatalf("first delivery: %d records, want a top 2", len(first.Out))
	}
	ctx := testenv.Context(t, 10*time.Second)
	before, err := f.store.Profile(ctx, "u1")
	if err != nil || len(before) != 2 {
		t.Fatalf("profile after the first delivery: %v, %v", before, err)
	}

	f.now = t0.Add(time.Minute) // a later redelivery: the same decision, not a new one
	again := f.handle(batchOf(0, 1, envs...))
	if len(again.Out) != len(first.Out) {
		t.Fatalf("redelivery: %d records, want %d", len(again.Out), len(first.Out))
	}
	for i := range first.Out {
		if !bytes.Equal(first.Out[i].Value, again.Out[i].Value) {
			t.Errorf("record %d differs on redelivery:\n%s\n%s", i, first.Out[i].Value, again.Out[i].Value)
		}
	}
	// Split differently: the first half's trigger was never a trigger; its
	// top N is the kept one, so nothing new is emitted.
	if res := f.handle(batchOf(0, 1, envs[:3]...)); len(res.Out) != 0 {
		t.Errorf("a redelivered prefix emitted %d records", len(res.Out))
	}
	if after, err := f.store.Profile(ctx, "u1"); err != nil || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("redeliveries changed the profile:\n%v\n%v (%v)", before, after, err)
	}
	if st := f.p.Stats(); st.Counted != 6 || st.Duplicates != 9 {
		t.Errorf("counted %d, duplicates %d; want 6 and 9", st.Counted, st.Duplicates)
	}

	// More of the same interest: the top N does not change, nothing is emitted.
	more := behaviour(t, "e-more", t0, schemas.BehaviourRecorded{UserID: "u1", Action: "order", Category: "phone", Price: 60000})
	if res := f.handle(batchOf(0, 1, more)); len(res.Out) != 0 {
		t.Errorf("an unchanged top N was emitted again: %d records", len(res.Out))
	}
	// A strong new interest changes it: emitted.
	tv := behaviour(t, "e-tv", t0, schemas.BehaviourRecorded{UserID: "u1", Action: "order", Category: "tv", Brand: "acme", Price: 150000, Quantity: 3})
	res := f.handle(batchOf(0, 1, tv))
	if got := recommended(t, res.Out)["u1"]; fmt.Sprint(got) != "[TV-100 ACME-PCT]" {
		t.Errorf("after TV orders: %v", got)
	}
}

// TestIntegrationSkipsWhatTheUserHolds: a batch the user already holds to
// its per-user limit, or that has sold out, gives way to the next.
func TestIntegrationSkipsWhatTheUserHolds(t *testing.T) {
	f := newFixture(t, handlerRules)
	ctx := testenv.Context(t, 10*time.Second)
	phone := f.batches.Get("PHONE-50")
	if _, err := f.coupons.Claim(ctx, "", 0, t0, []coupon.ClaimInput{{AppID: "shop", EventID: "c1", BatchID: "PHONE-50", UserID: "holder", Def: phone}}); err != nil {
		t.Fatal(err)
	}
	ev := func(user string) *schemas.Envelope {
		return behaviour(t, "b-"+user, t0, schemas.BehaviourRecorded{UserID: user, Action: "order", Category: "phone", Price: 60000})
	}
	got := recommended(t, f.handle(batchOf(0, 1, ev("holder"), ev("other"))).Out)
	if fmt.Sprint(got["holder"]) != "[ALL-5]" || fmt.Sprint(got["other"]) != "[PHONE-50 ALL-5]" {
		t.Errorf("recommended %v; the holder of PHONE-50 must get ALL-5 only", got)
	}
	// Sell PHONE-50 out: 1,000 granted.
	sold := *phone
	sold.TotalStock = 1
	sold.Revision = 2
	f.batches.Put(&sold)
	got = recommended(t, f.handle(batchOf(0, 1, behaviour(t, "b-late", t0, schemas.BehaviourRecorded{UserID: "late", Action: "order", Category: "phone", Price: 60000}))).Out)
	if fmt.Sprint(got["late"]) != "[ALL-5]" {
		t.Errorf("with PHONE-50 sold out, late gets %v", got["late"])
	}
}

// TestIntegrationStressRedeliveredPartitions: eight partitions handled
// concurrently, each batch delivered up to three times in random splits
// (as rewinds and rebalances do): every profile ends as the exact decayed
// sum of its distinct events, and a recommendation id always carries the
// same bytes.
func TestIntegrationStressRedeliveredPartitions(t *testing.T) {
	f := newFixture(t, handlerRules)
	const parts, usersPer, eventsPer = 8, 25, 12
	cats := []string{"phone", "tv", "food", "garden"}
	type user struct {
		id     string
		events []*schemas.Envelope
	}
	var (
		mu   sync.Mutex
		seen = map[string][]byte{} // recommendation id -> record value
		errs []string
		wg   sync.WaitGroup
	)
	all := make([][]user, parts)
	for p := range parts {
		rng := rand.New(rand.NewPCG(uint64(p), 7))
		for u := range usersPer {
			us := user{id: fmt.Sprintf("p%d-u%d", p, u)}
			for e := range eventsPer {
				us.events = append(us.events, behaviour(t, fmt.Sprintf("%s-e%d", us.id, e), t0.Add(-time.Duration(rng.IntN(100*60))*time.Minute),
					schemas.BehaviourRecorded{UserID: us.id, Action: []string{"browse", "cart", "order"}[rng.IntN(3)], Category: cats[rng.IntN(len(cats))],
						Brand: []string{"", "acme", "zeta"}[rng.IntN(3)], Price: int64(1 + rng.IntN(200000)), Quantity: int64(1 + rng.IntN(3))}))
			}
			all[p] = append(all[p], us)
		}
	}
	for p := range parts {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 8))
			var stream []*schemas.Envelope
			for i := range eventsPer {
				for _, u := range all[p] {
					stream = append(stream, u.events[i])
				}
			}
			// Deliver the partition's stream in batches; each batch may be
			// redelivered later from its start, whole or in part.
			for lo := 0; lo < len(stream); {
				hi := min(len(stream), lo+1+rng.IntN(80))
				for attempt := 0; attempt < 1+rng.IntN(3); attempt++ {
					end := hi
					if attempt > 0 && rng.IntN(2) == 0 {
						end = lo + 1 + rng.IntN(hi-lo)
					}
					res, err := f.p.Handle(context.Background(), batchOf(int32(p), 1, stream[lo:end]...))
					mu.Lock()
					if err != nil {
						errs = append(errs, err.Error())
					}
					for _, rec := range res.Out {
						env, err := schemas.Decode(rec.Value)
						if err != nil {
							errs = append(errs, err.Error())
							continue
						}
						if prev, ok := seen[env.EventID]; ok && !bytes.Equal(prev, rec.Value) {
							errs = append(errs, fmt.Sprintf("%s published with different bytes:\n%s\n%s", env.EventID, prev, rec.Value))
						}
						seen[env.EventID] = rec.Value
					}
					mu.Unlock()
				}
				lo = hi
			}
		})
	}
	wg.Wait()
	for _, e := range errs[:min(len(errs), 5)] {
		t.Error(e)
	}
	rules := f.p.rules.Rules()
	ctx := testenv.Context(t, 30*time.Second)
	for p := range parts {
		for _, u := range all[p] {
			want := map[string]float64{}
			for _, env := range u.events {
				be, _ := DecodeEvent(env)
				w, skip := rules.Weigh(env.AppID, env.OccurredAt, &be, t0)
				if skip != "" {
					continue
				}
				for _, fld := range rules.Fields(&be) {
					want[fld] += w * math.Exp2(-float64(t0.Sub(env.OccurredAt))/float64(rules.HalfLife))
				}
			}
			got, err := f.store.Profile(ctx, u.id)
			if err != nil {
				t.Fatal(err)
			}
			for fld, w := range want {
				e, ok := ParseEntry(got[fld])
				if !ok {
					t.Fatalf("%s: no entry %s", u.id, fld)
				}
				if v := decay(e.Value, e.At, t0, rules.HalfLife); math.Abs(v-w) > 1e-9*w {
					t.Errorf("%s %s = %.12g, want %.12g", u.id, fld, v, w)
				}
			}
		}
	}
	if st := f.p.Stats(); st.Counted != parts*usersPer*eventsPer {
		t.Errorf("counted %d distinct events, want %d", st.Counted, parts*usersPer*eventsPer)
	}
}
