package referral

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// harness runs referral processors against kfake and the real Redis.
type harness struct {
	t       *testing.T
	brokers []string
	rdb     *redis.Client
	store   *Store
	acts    *Activities
	keys    *sharelink.Keyring
	cl      *kgo.Client
	// metrics, when set, receives the runners' metrics.
	metrics *metrics.Metrics
}

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newHarness(t *testing.T) *harness {
	t.Helper()
	brokers, _ := testenv.KafkaWithTopics(t)
	store, rdb, _ := testStore(t)
	keys, err := sharelink.NewKeyring("k1", sharelink.Key{ID: "k1", Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &harness{t: t, brokers: brokers, rdb: rdb, store: store, acts: NewActivities(), keys: keys, cl: cl}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs one processor instance in group until the returned stop is
// called.
func (h *harness) start(group string) (*stream.Runner, func()) {
	h.t.Helper()
	st := New(h.store, h.acts, h.keys).Stage()
	st.Group = group
	r, err := stream.New(stream.Config{
		Brokers: h.brokers, Logger: quiet(), SessionTimeout: 6 * time.Second,
		Fencer: &stream.RedisFencer{Client: h.rdb, Prefix: h.store.prefix}, Metrics: h.metrics,
	}, st)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return r, stop
}

func (h *harness) produce(recs ...*kgo.Record) {
	h.t.Helper()
	if err := h.cl.ProduceSync(testenv.Context(h.t, time.Minute), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

func input(t testing.TB, app, id string, at time.Time, p schemas.Payload) *kgo.Record {
	t.Helper()
	env, err := schemas.New(id, app, at, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: TopicEvents, Key: []byte(env.Key), Value: b}
}

func clone(recs []*kgo.Record) []*kgo.Record {
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
	}
	return out
}

// output is what the processors published, read from the start.
type output struct {
	byID   map[string]*schemas.Envelope // results and coupon issues by event id
	copies map[string]int
	dead   map[string]int // dead letters by reason
}

// read reads referral.results, coupon.claims and the DLQ until cond holds,
// failing if an id was published twice with different bytes.
func (h *harness) read(cond func(o *output) bool) *output {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(TopicResults, TopicCouponClaims, "promoflow.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(h.t, 90*time.Second)
	o := &output{byID: map[string]*schemas.Envelope{}, copies: map[string]int{}, dead: map[string]int{}}
	raw := map[string][]byte{}
	for !cond(o) {
		if ctx.Err() != nil {
			h.t.Fatalf("condition not met: %d results, dead letters %v", len(o.byID), o.dead)
		}
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Topic == "promoflow.dlq" {
				for _, hd := range r.Headers {
					if hd.Key == stream.HeaderDLQReason {
						o.dead[string(hd.Value)]++
					}
				}
				return
			}
			env, err := schemas.Decode(r.Value)
			if err != nil {
				h.t.Fatalf("output does not decode: %v", err)
			}
			if prev, ok := raw[env.EventID]; ok && !bytes.Equal(prev, r.Value) {
				h.t.Fatalf("%s published twice with different contents:\n%s\n%s", env.EventID, prev, r.Value)
			}
			raw[env.EventID] = r.Value
			o.byID[env.EventID] = env
			o.copies[env.EventID]++
		})
	}
	return o
}

func decoded[T any](t testing.TB, o *output, typ string) []T {
	t.Helper()
	var out []T
	for _, env := range o.byID {
		if env.Type != typ {
			continue
		}
		var v T
		if err := env.DecodePayload(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// bindingsBySource returns the binding decisions by source event id.
func bindingsBySource(t testing.TB, o *output) map[string]schemas.ReferralBoundResult {
	out := map[string]schemas.ReferralBoundResult{}
	for _, b := range decoded[schemas.ReferralBoundResult](t, o, schemas.TypeReferralBound) {
		out[b.SourceEventID] = b
	}
	return out
}

// TestIntegrationReferralScenario runs the processor over kfake and Redis
// with duplicate clicks, self-invites, two inviters for one invitee,
// forged, expired and foreign tokens, a cycle, qualifications, rewards and
// garbage; then runs a second group over the same events from the start
// (every event redelivered) and requires identical results and no second
// reward.
func TestIntegrationReferralScenario(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	def := activity("spring", "order_confirmed", schemas.ReferralReward{Threshold: 2, BatchID: "B2"}, schemas.ReferralReward{Threshold: 3, BatchID: "B3"})
	def.StartsAt, def.EndsAt = now.Add(-time.Hour), now.Add(time.Hour)
	h.acts.Put(def)
	sign := func(k *sharelink.Keyring, activity, inviter string, exp time.Time) string {
		tok, err := k.Sign(activity, inviter, exp)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	exp := now.Add(time.Hour)
	alice := sign(h.keys, "spring", "alice", exp)
	bob := sign(h.keys, "spring", "bob", exp)
	carol := sign(h.keys, "spring", "carol", exp)
	attacker, _ := sharelink.NewKeyring("k1", sharelink.Key{ID: "k1", Secret: bytes.Repeat([]byte("m"), 32)})
	forged := sign(attacker, "spring", "mallory", exp)
	expired := sign(h.keys, "spring", "alice", now.Add(-time.Minute))
	foreign := sign(h.keys, "autumn", "alice", exp)

	click := func(id, invitee, token string) *kgo.Record {
		return input(t, "shop", id, now, schemas.ClickRecorded{ActivityID: "spring", InviteeID: invitee, Token: token, Channel: "wechat"})
	}
	reg := func(id, invitee, token string) *kgo.Record {
		return input(t, "shop", id, now, schemas.Registered{ActivityID: "spring", InviteeID: invitee, Token: token, Action: "register"})
	}
	qual := func(id, invitee string) *kgo.Record {
		return input(t, "orders", id, now, schemas.Qualified{ActivityID: "spring", InviteeID: invitee, Action: "order_confirmed", Reference: "o-" + id})
	}
	c1 := click("c1", "carol", alice)
	recs := []*kgo.Record{
		c1,
		click("c2", "carol", alice), // clicks again
		click("c3", "carol", bob),   // a second inviter
		click("c4", "alice", alice), // self-invite
		reg("r1", "dave", forged),
		click("c5", "erin", expired),
		click("c6", "frank", foreign),
		reg("r2", "dave", bob),
		click("c7", "alice", carol), // carol was invited by alice: a cycle
		qual("q1", "carol"),
		qual("q2", "carol"),
		click("c8", "gina", alice),
		qual("q3", "gina"), // alice's second successful invitee: B2
		qual("q4", "hank"), // never bound
		input(t, "shop", "c9", now, schemas.ClickRecorded{ActivityID: "nowhere", InviteeID: "ivan", Token: alice}),
		{Topic: TopicEvents, Key: []byte("spring"), Value: []byte(`{"event_id":"junk"`)},
		// A token that breaks the schema's pattern never reaches the processor.
		input(t, "shop", "c10", now, schemas.ClickRecorded{ActivityID: "spring", InviteeID: "judy", Token: "not a token"}),
	}
	// The same click delivered three times, the qualification twice.
	recs = append(recs, clone([]*kgo.Record{c1, c1, recs[9]})...)
	h.produce(recs...)
	h.metrics = metrics.New()
	_, stop := h.start("g1")

	const decisions = 15 // c1–c10 but c10, r1, r2, q1–q4
	done := func(o *output) bool {
		return countType(o, schemas.TypeReferralBound)+countType(o, schemas.TypeReferralQualificationDecided) >= decisions &&
			countType(o, schemas.TypeReferralRewardGranted) >= 1 && o.dead["invalid_payload"]+o.dead["malformed_json"] >= 2
	}
	o := h.read(done)
	stop()

	b := bindingsBySource(t, o)
	for id, want := range map[string]struct{ status, reason, inviter, holder string }{
		"c1": {schemas.ReferralBound, "", "alice", "alice"},
		"c2": {schemas.ReferralRefused, schemas.RefuseAlreadyBound, "alice", "alice"},
		"c3": {schemas.ReferralRefused, schemas.RefuseAlreadyBound, "bob", "alice"},
		"c4": {schemas.ReferralRefused, schemas.RefuseSelfInvite, "alice", ""},
		"r1": {schemas.ReferralRefused, schemas.RefuseBadToken, "", ""},
		"c5": {schemas.ReferralRefused, schemas.RefuseExpiredToken, "alice", ""},
		"c6": {schemas.ReferralRefused, schemas.RefuseBadToken, "alice", ""},
		"r2": {schemas.ReferralBound, "", "bob", "bob"},
		"c7": {schemas.ReferralRefused, schemas.RefuseCycle, "carol", ""},
		"c8": {schemas.ReferralBound, "", "alice", "alice"},
		"c9": {schemas.ReferralRefused, schemas.RejectUnknownActivity, "alice", ""},
	} {
		got, ok := b[id]
		if !ok {
			t.Errorf("%s: no decision", id)
			continue
		}
		if got.Status != want.status || got.Reason != want.reason || got.InviterID != want.inviter || got.BoundInviterID != want.holder || got.Counted != 0 {
			t.Errorf("%s: %s/%s inviter %q holder %q counted %d, want %+v", id, got.Status, got.Reason, got.InviterID, got.BoundInviterID, got.Counted, want)
		}
		if got.ResultID != schemas.ResultID(KindBind, "shop", id) {
			t.Errorf("%s: result id %s", id, got.ResultID)
		}
	}
	quals := map[string]schemas.QualificationDecided{}
	for _, q := range decoded[schemas.QualificationDecided](t, o, schemas.TypeReferralQualificationDecided) {
		quals[q.SourceEventID] = q
	}
	for id, want := range map[string]struct{ status, reason, inviter string }{
		"q1": {schemas.ReferralCounted, "", "alice"},
		"q2": {schemas.ReferralRefused, schemas.RefuseAlreadyQualified, "alice"},
		"q3": {schemas.ReferralCounted, "", "alice"},
		"q4": {schemas.ReferralRefused, schemas.RefuseNotBound, ""},
	} {
		if got := quals[id]; got.Status != want.status || got.Reason != want.reason || got.InviterID != want.inviter {
			t.Errorf("%s: %+v, want %+v", id, got, want)
		}
	}
	// promoflow_decisions_total counts each published decision (c1 three
	// times, q1 twice: every delivery publishes its decision again).
	sn, err := h.metrics.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[[3]string]float64{
		{"referral.bind", schemas.ReferralBound, ""}:                          5,
		{"referral.bind", schemas.ReferralRefused, schemas.RefuseSelfInvite}:  1,
		{"referral.bind", schemas.ReferralRefused, schemas.RefuseCycle}:       1,
		{"referral.qualify", schemas.ReferralRefused, schemas.RefuseNotBound}: 1,
		{"referral.qualify", schemas.ReferralCounted, ""}:                     3,
		{"referral.reward", "granted", ""}:                                    1,
	} {
		if got := sn.Value("promoflow_decisions_total", "stage", "referral", "decision", k[0], "outcome", k[1], "reason", k[2]); got != want {
			t.Errorf("decisions %v: %v, want %v", k, got, want)
		}
	}
	if n := o.copies[schemas.ResultID(KindBind, "shop", "c1")]; n != 3 {
		t.Errorf("c1 delivered 3 times gave %d results (same id, same bytes)", n)
	}
	rewards := decoded[schemas.RewardGranted](t, o, schemas.TypeReferralRewardGranted)
	if len(rewards) != 1 {
		t.Fatalf("%d rewards, want 1 (alice, threshold 2)", len(rewards))
	}
	rw := rewards[0]
	if rw.InviterID != "alice" || rw.Threshold != 2 || rw.BatchID != "B2" || rw.Successful != 2 || rw.InviteeID != "gina" ||
		rw.SourceEventID != "q3" || rw.ResultID != RewardID("spring", "alice", 2) || rw.ClaimEventID != ClaimEventID(rw.ResultID) {
		t.Errorf("reward %+v", rw)
	}
	issues := decoded[schemas.IssueRequested](t, o, schemas.TypeCouponIssueRequested)
	if len(issues) != 1 || issues[0].UserID != "alice" || issues[0].BatchID != "B2" {
		t.Fatalf("coupon issues %+v, want one of B2 to alice", issues)
	}
	if env := o.byID[rw.ClaimEventID]; env == nil || env.AppID != AppID {
		t.Errorf("the coupon issue is not published as %s under the reward's claim event id", AppID)
	}

	// Every event again, from the start, by a new group: same results.
	h.start("g2")
	again := h.read(func(o2 *output) bool {
		return o2.copies[schemas.ResultID(KindBind, "shop", "c1")] >= 6 && o2.copies[schemas.ResultID(KindQualify, "orders", "q4")] >= 2 &&
			o2.copies[rw.ResultID] >= 2
	})
	if n := countType(again, schemas.TypeReferralRewardGranted); n != 1 {
		t.Errorf("%d distinct rewards after redelivery, want 1", n)
	}
	if n := countType(again, schemas.TypeCouponIssueRequested); n != 1 {
		t.Errorf("%d distinct coupon issues after redelivery, want 1", n)
	}
	if inviter, _ := h.store.Binding(testenv.Context(t, time.Second*10), "spring", "carol"); inviter != "alice" {
		t.Errorf("carol is bound to %q in Redis, want alice", inviter)
	}
}

func countType(o *output, typ string) int {
	n := 0
	for _, env := range o.byID {
		if env.Type == typ {
			n++
		}
	}
	return n
}

// flaky fails a share of the batches after they were decided, before any
// output is produced: the runtime rewinds and redelivers them, as after a
// crash between the Redis step and the produce.
type flaky struct {
	h    stream.Handler
	mu   sync.Mutex
	rng  *rand.Rand
	fail int // percent
	n    *atomic.Int64
}

func (f *flaky) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	res, err := f.h.Handle(ctx, b)
	f.mu.Lock()
	drop := f.rng.IntN(100) < f.fail
	f.mu.Unlock()
	if err == nil && drop {
		f.n.Add(1)
		return stream.Result{}, errors.New("injected failure after the step")
	}
	return res, err
}

// TestIntegrationStressOneInviterPerInvitee runs three processor members
// (one joins late, one leaves mid-stream) over 8 activities whose events
// are all delivered twice and whose batches fail a fifth of the time after
// their Redis step (so they are decided again). Users invite each other at
// random, so self-invites, second inviters and cycles abound. Because one
// activity's events are decided in partition order, Graph predicts every
// decision exactly; the test requires each one, one inviter per invitee,
// and each reward once.
func TestIntegrationStressOneInviterPerInvitee(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	rng := rand.New(rand.NewPCG(42, 42))
	rewards := []schemas.ReferralReward{{Threshold: 1, BatchID: "B1"}, {Threshold: 4, BatchID: "B4"}, {Threshold: 10, BatchID: "B10"}}
	const (
		activities = 8
		users      = 120
		perAct     = 700
	)
	type expect struct {
		bind    bool
		reason  string
		inviter string
		rewards int
	}
	want := map[string]expect{} // result id -> decision
	wantRewards := map[string]bool{}
	var recs []*kgo.Record
	tokens := map[string]string{}
	for a := range activities {
		act := fmt.Sprintf("stress-%d", a)
		needs := a%2 == 1
		q := schemas.QualifyNone
		if needs {
			q = "order_confirmed"
		}
		def := activity(act, q, rewards...)
		def.StartsAt, def.EndsAt = now.Add(-time.Hour), now.Add(time.Hour)
		h.acts.Put(def)
		g := NewGraph()
		for i := range perAct {
			id := fmt.Sprintf("%s-e%d", act, i)
			invitee := fmt.Sprintf("u%d", rng.IntN(users))
			var rec *kgo.Record
			var e expect
			var st Step
			if needs && rng.IntN(3) == 0 {
				rec = input(t, "shop", id, now, schemas.Qualified{ActivityID: act, InviteeID: invitee, Action: "order_confirmed"})
				st = g.Qualify(invitee, rewards)
				e = expect{reason: st.Reason, inviter: st.Inviter}
				want[schemas.ResultID(KindQualify, "shop", id)] = e
			} else {
				inviter := fmt.Sprintf("u%d", rng.IntN(users))
				key := act + "/" + inviter
				if tokens[key] == "" {
					tok, err := h.keys.Sign(act, inviter, now.Add(time.Hour))
					if err != nil {
						t.Fatal(err)
					}
					tokens[key] = tok
				}
				rec = input(t, "shop", id, now, schemas.ClickRecorded{ActivityID: act, InviteeID: invitee, Token: tokens[key]})
				if inviter == invitee {
					e = expect{bind: true, reason: schemas.RefuseSelfInvite}
				} else {
					st = g.Bind(invitee, inviter, needs, rewards)
					e = expect{bind: true, reason: st.Reason, inviter: st.Inviter}
				}
				want[schemas.ResultID(KindBind, "shop", id)] = e
			}
			for _, r := range st.Rewards {
				wantRewards[RewardID(act, st.Inviter, r.Threshold)] = true
			}
			recs = append(recs, rec)
			if rng.IntN(2) == 0 { // delivered twice, at once or later
				recs = append(recs, clone([]*kgo.Record{rec})...)
			}
		}
	}
	h.produce(recs...)

	var failed atomic.Int64
	startFlaky := func(group string) func() {
		st := New(h.store, h.acts, h.keys).Stage()
		st.Group = group
		f := &flaky{h: st.Handler, rng: rand.New(rand.NewPCG(rng.Uint64(), rng.Uint64())), fail: 20, n: &failed}
		st.Handler = f
		st.MaxPollRecords = 50
		r, err := stream.New(stream.Config{
			Brokers: h.brokers, Logger: quiet(), SessionTimeout: 6 * time.Second, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
			Fencer: &stream.RedisFencer{Client: h.rdb, Prefix: h.store.prefix},
		}, st)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = r.Run(ctx) }()
		var once sync.Once
		stop := func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(stop)
		return stop
	}
	stop1 := startFlaky("stress")
	startFlaky("stress")
	go func() {
		time.Sleep(time.Second)
		startFlaky("stress")
		time.Sleep(time.Second)
		stop1()
	}()
	o := h.read(func(o *output) bool {
		n := 0
		for id := range want {
			if o.byID[id] != nil {
				n++
			}
		}
		return n == len(want)
	})

	for _, b := range decoded[schemas.ReferralBoundResult](t, o, schemas.TypeReferralBound) {
		e := want[b.ResultID]
		holder := b.BoundInviterID
		if e.reason == "" && holder != b.InviterID || e.reason != "" && e.reason != schemas.RefuseAlreadyBound && holder != "" {
			t.Errorf("%s: holder %q, inviter %q, reason %q", b.SourceEventID, holder, b.InviterID, b.Reason)
		}
		if b.Reason != e.reason || e.inviter != "" && holder != e.inviter {
			t.Errorf("%s (%s invites %s): %s/%s holder %q, Graph says %q holder %q", b.SourceEventID, b.InviterID, b.InviteeID, b.Status, b.Reason, holder, e.reason, e.inviter)
		}
	}
	for _, q := range decoded[schemas.QualificationDecided](t, o, schemas.TypeReferralQualificationDecided) {
		if e := want[q.ResultID]; q.Reason != e.reason || q.InviterID != e.inviter {
			t.Errorf("%s: %s inviter %q, Graph says %q inviter %q", q.SourceEventID, q.Reason, q.InviterID, e.reason, e.inviter)
		}
	}
	// One inviter per invitee, from the results alone.
	boundTo := map[string]string{}
	for _, b := range decoded[schemas.ReferralBoundResult](t, o, schemas.TypeReferralBound) {
		if b.Status != schemas.ReferralBound {
			continue
		}
		k := b.ActivityID + "/" + b.InviteeID
		if prev, ok := boundTo[k]; ok {
			t.Errorf("%s bound twice: to %s and %s", k, prev, b.InviterID)
		}
		boundTo[k] = b.InviterID
	}
	got := decoded[schemas.RewardGranted](t, o, schemas.TypeReferralRewardGranted)
	if len(got) != len(wantRewards) {
		t.Errorf("%d rewards, Graph grants %d", len(got), len(wantRewards))
	}
	for _, r := range got {
		if !wantRewards[r.ResultID] {
			t.Errorf("unexpected reward %+v", r)
		}
	}
	if n := countType(o, schemas.TypeCouponIssueRequested); n != len(wantRewards) {
		t.Errorf("%d coupon issues, want %d", n, len(wantRewards))
	}
	t.Logf("%d events (%d records), %d bindings, %d rewards; %d batches failed after their step and were decided again",
		len(want), len(recs), len(boundTo), len(got), failed.Load())
}
