package coupon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// batchV2 is a valid v2 batch (fixed 5.00 off) changed by mut.
func batchV2(mut func(*schemas.BatchDefined)) *schemas.BatchDefined {
	return batch(func(b *schemas.BatchDefined) {
		b.DiscountType, b.Amount = schemas.DiscountFixed, 500
		if mut != nil {
			mut(b)
		}
	})
}

func TestCheckBatch(t *testing.T) {
	const day = 24 * time.Hour
	window := func(d time.Duration) func(*schemas.BatchDefined) {
		return func(b *schemas.BatchDefined) { b.ValidUntil = b.ValidFrom.Add(d) }
	}
	both := func(fs ...func(*schemas.BatchDefined)) func(*schemas.BatchDefined) {
		return func(b *schemas.BatchDefined) {
			for _, f := range fs {
				f(b)
			}
		}
	}
	percent := func(p, amount, cap int64) func(*schemas.BatchDefined) {
		return func(b *schemas.BatchDefined) {
			b.DiscountType, b.Percent, b.Amount, b.Cap = schemas.DiscountPercent, p, amount, cap
		}
	}
	cases := []struct {
		name string
		def  *schemas.BatchDefined
		bad  string // a substring of the error; "" when valid
	}{
		{"v1", batch(nil), ""},
		{"window of 1ns", batch(window(1)), ""},
		{"empty window", batch(window(0)), "valid_until must be after valid_from"},
		{"reversed window", batch(window(-day)), "valid_until must be after valid_from"},

		{"v2 fixed", batchV2(nil), ""},
		{"v2 rules without discount_type: scope", batch(func(b *schemas.BatchDefined) { b.Categories = []string{"phones"} }), "need discount_type"},
		{"v2 rules without discount_type: threshold", batch(func(b *schemas.BatchDefined) { b.Threshold = 100 }), "need discount_type"},
		{"v2 rules without discount_type: amount", batch(func(b *schemas.BatchDefined) { b.Amount = 100 }), "need discount_type"},
		{"v2 rules without discount_type: exclusion group", batch(func(b *schemas.BatchDefined) { b.ExclusionGroup = "g" }), "need discount_type"},
		{"unknown discount_type", batchV2(func(b *schemas.BatchDefined) { b.DiscountType = "bogo" }), "unknown discount_type"},

		{"fixed amount 1", batchV2(func(b *schemas.BatchDefined) { b.Amount = 1 }), ""},
		{"fixed amount 0", batchV2(func(b *schemas.BatchDefined) { b.Amount = 0 }), "needs amount > 0"},
		{"fixed amount -1", batchV2(func(b *schemas.BatchDefined) { b.Amount = -1 }), "needs amount > 0"},
		{"fixed with percent", batchV2(func(b *schemas.BatchDefined) { b.Percent = 10 }), "takes no percent"},
		{"fixed with cap", batchV2(func(b *schemas.BatchDefined) { b.Cap = 100 }), "cap is for discount_type percent only"},
		{"price_increase amount 1", batchV2(func(b *schemas.BatchDefined) { b.DiscountType, b.Amount = schemas.DiscountPriceIncrease, 1 }), ""},
		{"price_increase amount 0", batchV2(func(b *schemas.BatchDefined) { b.DiscountType, b.Amount = schemas.DiscountPriceIncrease, 0 }), "needs amount > 0"},
		{"price_increase with percent", batchV2(func(b *schemas.BatchDefined) { b.DiscountType, b.Percent = schemas.DiscountPriceIncrease, 5 }), "takes no percent"},
		{"price_increase with cap", batchV2(func(b *schemas.BatchDefined) { b.DiscountType, b.Cap = schemas.DiscountPriceIncrease, 5 }), "cap is for discount_type percent only"},

		{"percent 1", batchV2(percent(1, 0, 0)), ""},
		{"percent 100", batchV2(percent(100, 0, 0)), ""},
		{"percent with cap", batchV2(percent(20, 0, 1000)), ""},
		{"percent 0", batchV2(percent(0, 0, 0)), "1 <= percent <= 100"},
		{"percent 101", batchV2(percent(101, 0, 0)), "1 <= percent <= 100"},
		{"percent -1", batchV2(percent(-1, 0, 0)), "1 <= percent <= 100"},
		{"percent with amount", batchV2(percent(10, 1, 0)), "takes no amount"},

		{"validity 30 days, reminder 29 before", batchV2(func(b *schemas.BatchDefined) { b.ValidityDays, b.RemindDaysBefore = 30, 29 }), ""},
		{"validity 30 days, reminder 30 before", batchV2(func(b *schemas.BatchDefined) { b.ValidityDays, b.RemindDaysBefore = 30, 30 }), "must be less than validity_days"},
		{"validity 30 days, reminder 31 before", batchV2(func(b *schemas.BatchDefined) { b.ValidityDays, b.RemindDaysBefore = 30, 31 }), "must be less than validity_days"},
		{"validity 1 day, reminder 1 before", batchV2(func(b *schemas.BatchDefined) { b.ValidityDays, b.RemindDaysBefore = 1, 1 }), "must be less than validity_days"},
		{"validity days ignore a short fixed window", batchV2(both(window(day), func(b *schemas.BatchDefined) { b.ValidityDays, b.RemindDaysBefore = 30, 7 })), ""},
		{"fixed window 30 days, reminder 29 before", batchV2(both(window(30*day), func(b *schemas.BatchDefined) { b.RemindDaysBefore = 29 })), ""},
		{"fixed window 30 days + 1ns, reminder 30 before", batchV2(both(window(30*day+1), func(b *schemas.BatchDefined) { b.RemindDaysBefore = 30 })), ""},
		{"fixed window 30 days, reminder 30 before", batchV2(both(window(30*day), func(b *schemas.BatchDefined) { b.RemindDaysBefore = 30 })), "must be shorter than the window"},
		{"fixed window 30 days - 1ns, reminder 30 before", batchV2(both(window(30*day-1), func(b *schemas.BatchDefined) { b.RemindDaysBefore = 30 })), "must be shorter than the window"},
		{"reminder too large for a duration", batchV2(func(b *schemas.BatchDefined) { b.RemindDaysBefore = 1 << 50 }), "must be shorter than the window"},

		{"distinct scope", batchV2(func(b *schemas.BatchDefined) {
			b.Categories, b.Brands, b.Models = []string{"phones", "tablets"}, []string{"acme", "Acme"}, []string{"x1"}
		}), ""},
		{"duplicate category", batchV2(func(b *schemas.BatchDefined) { b.Categories = []string{"phones", "tablets", "phones"} }), `categories lists "phones" twice`},
		{"duplicate brand", batchV2(func(b *schemas.BatchDefined) { b.Brands = []string{"acme", "acme"} }), `brands lists "acme" twice`},
		{"duplicate model", batchV2(func(b *schemas.BatchDefined) { b.Models = []string{"x1", "x2", "x2"} }), `models lists "x2" twice`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := CheckBatch(c.def)
			switch {
			case c.bad == "" && err != nil:
				t.Fatalf("CheckBatch rejected a valid batch: %v", err)
			case c.bad != "" && err == nil:
				t.Fatalf("CheckBatch accepted a batch that should fail with %q", c.bad)
			case c.bad != "" && (!errors.Is(err, schemas.ErrInvalid) || !strings.Contains(err.Error(), c.bad)):
				t.Fatalf("CheckBatch = %v, want an ErrInvalid saying %q", err, c.bad)
			}
		})
	}
}

// builtEnv builds an envelope for p without validating it, as a producer
// that skipped validation would.
func builtEnv(t *testing.T, id string, p schemas.Payload) *schemas.Envelope {
	t.Helper()
	env, err := schemas.New(id, "admin", time.Now(), p)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// decodedEnv is builtEnv validated through the schemas, as the View sees it.
func decodedEnv(t *testing.T, id string, p schemas.Payload) *schemas.Envelope {
	t.Helper()
	b, err := builtEnv(t, id, p).Encode()
	if err != nil {
		t.Fatal(err)
	}
	env, err := schemas.Decode(b)
	if err != nil {
		t.Fatalf("decoding %s: %v", id, err)
	}
	return env
}

func TestApplyVersions(t *testing.T) {
	bs := NewBatches()
	v2 := batchV2(func(b *schemas.BatchDefined) {
		b.Revision, b.ValidityDays, b.Categories, b.Threshold, b.ExclusionGroup, b.RemindDaysBefore = 2, 30, []string{"phones"}, 10000, "welcome", 3
	})
	if err := bs.Apply(decodedEnv(t, "v2-r2", schemas.BatchDefinedV2(*v2))); err != nil {
		t.Fatalf("applying v2: %v", err)
	}
	got := bs.Get("B1")
	if got == nil || got.Revision != 2 || got.DiscountType != schemas.DiscountFixed || got.Amount != 500 || got.ValidityDays != 30 ||
		fmt.Sprint(got.Categories) != "[phones]" || got.Threshold != 10000 || got.ExclusionGroup != "welcome" || got.RemindDaysBefore != 3 {
		t.Fatalf("cached v2 = %+v", got)
	}

	// v1 and v2 share one revision sequence.
	for _, rev := range []int64{1, 2} {
		if err := bs.Apply(decodedEnv(t, fmt.Sprintf("v1-r%d", rev), *batch(func(b *schemas.BatchDefined) { b.Revision = rev }))); err != nil {
			t.Fatal(err)
		}
		if bs.Get("B1").Revision != 2 || bs.Get("B1").DiscountType == "" {
			t.Fatalf("v1 revision %d replaced v2 revision 2", rev)
		}
	}
	if err := bs.Apply(decodedEnv(t, "v1-r3", *batch(func(b *schemas.BatchDefined) { b.Revision, b.Status = 3, schemas.BatchDisabled }))); err != nil {
		t.Fatal(err)
	}
	if got := bs.Get("B1"); got.Revision != 3 || got.Status != schemas.BatchDisabled || hasRules(got) {
		t.Fatalf("v1 revision 3 over v2 revision 2: cached %+v", got)
	}

	// A v2 that passes the schema but breaks a rule is not cached.
	bad := batchV2(func(b *schemas.BatchDefined) { b.Revision, b.DiscountType, b.Percent = 4, schemas.DiscountPercent, 10 }) // amount 500 too
	if err := bs.Apply(decodedEnv(t, "v2-r4", schemas.BatchDefinedV2(*bad))); !errors.Is(err, schemas.ErrInvalid) {
		t.Fatalf("percent with amount applied: %v", err)
	}
	if bs.Get("B1").Revision != 3 {
		t.Fatal("a rejected revision replaced the cached one")
	}
}

func TestApplyRejects(t *testing.T) {
	noType := batch(func(b *schemas.BatchDefined) { b.Revision = 9 })
	withRules := batchV2(func(b *schemas.BatchDefined) { b.Revision = 9 })
	v3 := builtEnv(t, "v3", schemas.BatchDefinedV2(*withRules))
	v3.Version = 3
	claim := builtEnv(t, "claim", schemas.ClaimRequested{BatchID: "B1", UserID: "u"})
	cases := []struct {
		name string
		env  *schemas.Envelope
		want string
	}{
		{"v2 without discount_type", builtEnv(t, "v2", schemas.BatchDefinedV2(*noType)), "a v2 definition needs discount_type"},
		{"v1 with usage rules", builtEnv(t, "v1", *withRules), "a v1 definition carries no usage rules"},
		{"version 3", v3, "unsupported version"},
		{"another type", claim, "applying coupon.claim.requested to coupon batches"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bs := NewBatches()
			err := bs.Apply(c.env)
			if !errors.Is(err, schemas.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Apply = %v, want an ErrInvalid saying %q", err, c.want)
			}
			if bs.Len() != 0 {
				t.Fatal("a rejected definition was cached")
			}
		})
	}
	// The schemas refuse the first two before they reach a View.
	for _, p := range []schemas.Payload{schemas.BatchDefinedV2(*noType), *withRules} {
		b, _ := builtEnv(t, "x", p).Encode()
		if _, err := schemas.Decode(b); err == nil {
			t.Errorf("schemas accepted %T %+v", p, p)
		}
	}
}

func batchRecord(t *testing.T, def *schemas.BatchDefined) *kgo.Record {
	t.Helper()
	env := builtEnv(t, fmt.Sprintf("batch-%s-r%d", def.BatchID, def.Revision), schemas.BatchDefinedV2(*def))
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: TopicAdmin, Key: []byte(def.BatchID), Value: b}
}

func publishBatches(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(testenv.Context(t, 10*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// startBatchView runs one instance's cache: a View of the admin topic into
// a Batches, through apply when it is not nil.
func startBatchView(t *testing.T, brokers []string, bs *Batches, apply func(*schemas.Envelope) error, opts ...stream.ViewOpt) *stream.View {
	t.Helper()
	if apply == nil {
		apply = bs.Apply
	}
	v, err := stream.NewView(stream.Config{Brokers: brokers, Logger: discardLog()}, TopicAdmin, apply, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := v.Run(ctx); err != nil {
			t.Errorf("view: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	if err := v.WaitCaughtUp(testenv.Context(t, 20*time.Second)); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestDisablePropagatesToEveryInstance: a revision that disables a batch
// reaches the caches of two instances within a second.
func TestDisablePropagatesToEveryInstance(t *testing.T) {
	brokers, _ := testenv.KafkaWithTopics(t)
	publishBatches(t, brokers, batchRecord(t, batchV2(nil)), batchRecord(t, batchV2(func(b *schemas.BatchDefined) { b.BatchID = "B2" })))
	a, b := NewBatches(), NewBatches()
	startBatchView(t, brokers, a, nil)
	startBatchView(t, brokers, b, nil)
	for _, bs := range []*Batches{a, b} {
		if bs.Len() != 2 || bs.Get("B1").Status != schemas.BatchActive {
			t.Fatalf("instance cache after catching up: %d batches, B1 %+v", bs.Len(), bs.Get("B1"))
		}
	}

	start := time.Now()
	publishBatches(t, brokers, batchRecord(t, batchV2(func(b *schemas.BatchDefined) { b.Revision, b.Status = 2, schemas.BatchDisabled })))
	seen := [2]time.Duration{}
	for i, bs := range []*Batches{a, b} {
		for {
			if d := bs.Get("B1"); d.Revision == 2 && d.Status == schemas.BatchDisabled {
				seen[i] = time.Since(start)
				break
			}
			if time.Since(start) > 5*time.Second {
				t.Fatalf("instance %d still has %+v after 5s", i, bs.Get("B1"))
			}
			time.Sleep(time.Millisecond)
		}
	}
	t.Logf("disable seen by instance 0 after %s, instance 1 after %s (from the produce call)", seen[0], seen[1])
	for i, d := range seen {
		if d >= time.Second {
			t.Errorf("instance %d saw the disable after %s, want < 1s", i, d)
		}
	}
	if a.Get("B2").Status != schemas.BatchActive || b.Get("B2").Status != schemas.BatchActive {
		t.Fatal("the disable of B1 touched B2")
	}
	if Precheck(a.Get("B1"), time.Date(2026, 11, 15, 0, 0, 0, 0, time.UTC)) != schemas.RejectBatchDisabled {
		t.Fatal("claims against the disabled batch are not rejected")
	}
}

// TestRefreshReappliesWithoutChangingRevision: the periodic re-read applies
// records that were applied before, and the cache keeps the highest
// revision, also when an older revision follows a newer one on the topic.
func TestRefreshReappliesWithoutChangingRevision(t *testing.T) {
	brokers, _ := testenv.KafkaWithTopics(t)
	publishBatches(t, brokers,
		batchRecord(t, batchV2(func(b *schemas.BatchDefined) { b.Revision, b.Amount = 2, 700 })),
		batchRecord(t, batchV2(func(b *schemas.BatchDefined) { b.Revision, b.Amount = 1, 100 })), // late, older
	)
	bs := NewBatches()
	var applied, stored atomic.Int64
	apply := func(env *schemas.Envelope) error {
		applied.Add(1)
		def, err := DecodeBatch(env)
		if err != nil {
			return err
		}
		if bs.Put(def) {
			stored.Add(1)
		}
		return nil
	}
	v := startBatchView(t, brokers, bs, apply, stream.ViewRefresh(100*time.Millisecond))
	if applied.Load() != 2 || stored.Load() != 1 {
		t.Fatalf("after catching up: %d applied, %d stored; want 2 and 1", applied.Load(), stored.Load())
	}
	deadline := time.Now().Add(10 * time.Second)
	for v.Refreshes() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d refreshes after 10s", v.Refreshes())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := applied.Load(); n < 6 {
		t.Fatalf("%d apply calls after 2 refreshes, want >= 6 (both records re-applied each time)", n)
	}
	if stored.Load() != 1 {
		t.Fatalf("re-applied records were stored %d times, want 1 (the first application)", stored.Load())
	}
	if got := bs.Get("B1"); got.Revision != 2 || got.Amount != 700 {
		t.Fatalf("cached after refreshes: revision %d amount %d, want 2 and 700", got.Revision, got.Amount)
	}
	if v.Invalid() != 0 {
		t.Fatalf("Invalid = %d", v.Invalid())
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestBatchesAll(t *testing.T) {
	b := NewBatches()
	for _, id := range []string{"b", "a", "c"} {
		b.Put(&schemas.BatchDefined{BatchID: id, Revision: 1})
	}
	b.Put(&schemas.BatchDefined{BatchID: "a", Revision: 2})
	var got []string
	for _, def := range b.All() {
		got = append(got, fmt.Sprintf("%s/%d", def.BatchID, def.Revision))
	}
	if strings.Join(got, " ") != "a/2 b/1 c/1" {
		t.Errorf("All() = %v", got)
	}
}
