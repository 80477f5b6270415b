package lottery

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/lottery/fair"
	"github.com/promoflow/promoflow/schemas"
)

// harness runs lottery processors against kfake and the real Redis.
type harness struct {
	t       *testing.T
	brokers []string
	rdb     *redis.Client
	prefix  string
	acts    *Activities
	cl      *kgo.Client
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	brokers, _ := testenv.KafkaWithTopics(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(testenv.Context(t, 10*time.Second)).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	prefix := testenv.Name("lt")
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &harness{t: t, brokers: brokers, rdb: rdb, prefix: prefix, acts: NewActivities(), cl: cl}
}

func (h *harness) store() *Store {
	return NewStore(h.rdb, WithKeyPrefix(h.prefix), WithDecisionTTL(time.Hour))
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs one processor instance until the returned stop is called.
func (h *harness) start(group string, hook func(p *Processor, r *stream.Runner)) (*Processor, *stream.Runner, func()) {
	h.t.Helper()
	p := New(h.store(), h.acts)
	st := p.Stage()
	st.Group = group
	st.TickInterval = 100 * time.Millisecond
	r, err := stream.New(stream.Config{
		Brokers: h.brokers, Logger: quiet(), SessionTimeout: 6 * time.Second,
		Fencer: &stream.RedisFencer{Client: h.rdb, Prefix: h.prefix},
	}, st)
	if err != nil {
		h.t.Fatal(err)
	}
	if hook != nil {
		hook(p, r)
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
	return p, r, stop
}

func (h *harness) produce(recs ...*kgo.Record) {
	h.t.Helper()
	if err := h.cl.ProduceSync(testenv.Context(h.t, time.Minute), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

func req(t testing.TB, app, event string, at time.Time, p schemas.Payload) *kgo.Record {
	t.Helper()
	env, err := schemas.New(event, app, at, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: TopicRequests, Key: []byte(env.Key), Value: b}
}

// clone copies a record for producing it again (kgo owns a produced record).
func clone(r *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
}

// results reads lottery.results until cond holds for what was read, and
// returns the latest record per result id, failing if a result id was
// published twice with different bytes.
func (h *harness) results(cond func(map[string]*schemas.Envelope) bool) map[string]*schemas.Envelope {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(TopicResults), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(h.t, 2*time.Minute)
	byID := map[string]*schemas.Envelope{}
	raw := map[string][]byte{}
	var dec schemas.Decoder
	for !cond(byID) {
		if ctx.Err() != nil {
			h.t.Fatalf("results: condition not met with %d results read", len(byID))
		}
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			env, err := dec.Decode(r.Value)
			if err != nil {
				h.t.Fatalf("result does not decode: %v", err)
			}
			if prev, ok := raw[env.EventID]; ok && !bytes.Equal(prev, r.Value) {
				h.t.Fatalf("result %s published twice with different contents:\n%s\n%s", env.EventID, prev, r.Value)
			}
			raw[env.EventID] = r.Value
			byID[env.EventID] = env
		})
	}
	return byID
}

func ofType[T any](t testing.TB, byID map[string]*schemas.Envelope, typ string) []T {
	t.Helper()
	var out []T
	for _, env := range byID {
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

func countType(byID map[string]*schemas.Envelope, typ string) int {
	n := 0
	for _, env := range byID {
		if env.Type == typ {
			n++
		}
	}
	return n
}

func drawActivity(id string, tiers ...schemas.PrizeTier) *schemas.ActivityDefined {
	now := time.Now().UTC()
	return &schemas.ActivityDefined{
		ActivityID: id, Revision: 1, Kind: schemas.KindDraw, Status: schemas.BatchActive,
		JoinFrom: now.Add(-time.Hour), JoinUntil: now.Add(time.Hour), PerUserLimit: 1, Prizes: tiers,
	}
}

// verifyDraw recomputes a draw from what was published (the revealed seed,
// the accepted entries and the tiers) and compares it with the awards.
func verifyDraw(t *testing.T, activity string, byID map[string]*schemas.Envelope) schemas.DrawCompleted {
	t.Helper()
	draws := ofType[schemas.DrawCompleted](t, byID, schemas.TypeLotteryDrawCompleted)
	if len(draws) != 1 {
		t.Fatalf("%d draw results, want 1", len(draws))
	}
	d := draws[0]
	seed, err := hex.DecodeString(d.Seed)
	if err != nil || fair.SeedHash(seed) != d.SeedHash {
		t.Fatalf("revealed seed does not match its hash")
	}
	var users []string
	for _, e := range ofType[schemas.EntryRecorded](t, byID, schemas.TypeLotteryEntryRecorded) {
		if e.ActivityID == activity && e.Status == schemas.EntryAccepted {
			users = append(users, e.UserID)
		}
	}
	sorted := fair.Normalize(users)
	if fair.Digest(sorted) != d.ParticipantsDigest || int64(len(sorted)) != d.Participants {
		t.Fatalf("participants digest/count %s/%d do not match the %d accepted entries", d.ParticipantsDigest, d.Participants, len(sorted))
	}
	var tiers []fair.Tier
	for _, spec := range splitPrizes(t, d.Prizes) {
		tiers = append(tiers, spec)
	}
	want := fair.Draw(seed, activity, sorted, tiers)
	got := map[string]schemas.PrizeAwarded{}
	for _, a := range ofType[schemas.PrizeAwarded](t, byID, schemas.TypeLotteryPrizeAwarded) {
		if a.ActivityID != activity {
			continue
		}
		if _, dup := got[a.UserID]; dup {
			t.Fatalf("user %s won twice", a.UserID)
		}
		got[a.UserID] = a
	}
	if len(got) != len(want) {
		t.Fatalf("%d awards published, recomputation gives %d", len(got), len(want))
	}
	for _, w := range want {
		a, ok := got[w.UserID]
		if !ok || a.TierID != w.TierID || a.Rank != w.Rank {
			t.Fatalf("award of %s = %+v, recomputed %+v", w.UserID, a, w)
		}
	}
	return d
}

func splitPrizes(t *testing.T, s string) []fair.Tier {
	t.Helper()
	var out []fair.Tier
	for _, part := range bytes.Split([]byte(s), []byte(",")) {
		var id string
		var stock int64
		i := bytes.LastIndexByte(part, ':')
		id = string(part[:i])
		if _, err := fmt.Sscan(string(part[i+1:]), &stock); err != nil {
			t.Fatal(err)
		}
		out = append(out, fair.Tier{ID: id, Stock: stock})
	}
	return out
}

// TestIntegrationDrawUnderRestart is the concurrency test: 50,000
// participants (every participation delivered twice, some users joining
// twice), 3 prize tiers, and the processor killed right after committing
// the draw, before its results are out. Another instance takes over: each
// winner once, awards = stock, results identical on replay.
func TestIntegrationDrawUnderRestart(t *testing.T) {
	h := newHarness(t)
	const users = 50_000
	def := drawActivity("xmas-draw",
		schemas.PrizeTier{TierID: "gold", Kind: schemas.PrizeGoods, Stock: 10},
		schemas.PrizeTier{TierID: "silver", Kind: schemas.PrizePoints, Points: 500, Stock: 100},
		schemas.PrizeTier{TierID: "bronze", Kind: schemas.PrizeCoupon, BatchID: "B-bronze", Stock: 1000})
	h.acts.Put(def)

	at := time.Now().UTC()
	var recs []*kgo.Record
	for i := range users {
		u := fmt.Sprintf("user-%05d", i)
		r := req(t, "live", "join-"+u, at, schemas.ParticipationRequested{ActivityID: def.ActivityID, UserID: u})
		recs = append(recs, r, clone(r)) // duplicate delivery
		if i%10 == 0 {                   // joining again with a new event: limit_reached
			recs = append(recs, req(t, "live", "again-"+u, at, schemas.ParticipationRequested{ActivityID: def.ActivityID, UserID: u}))
		}
	}
	h.produce(recs...)

	// The first instance dies right after the draw is committed in Redis.
	// Every attempt of the first instance fails right after the commit (as
	// a process killed there would), so it never publishes or commits.
	killed := make(chan struct{})
	var once sync.Once
	_, _, stopA := h.start("g-draw", func(p *Processor, _ *stream.Runner) {
		p.afterDraw = func() {
			once.Do(func() { close(killed) })
			panic("killed after commit")
		}
	})
	h.produce(req(t, "ops", "draw-1", at, schemas.DrawRequested{ActivityID: def.ActivityID, RequestedBy: "test"}))
	select {
	case <-killed:
	case <-testenv.Context(t, 2*time.Minute).Done():
		t.Fatal("the draw was never committed")
	}
	stopA()
	// A second draw command arrives meanwhile; it must return the same draw.
	h.produce(req(t, "ops", "draw-2", at, schemas.DrawRequested{ActivityID: def.ActivityID, RequestedBy: "test"}))
	h.start("g-draw", nil)

	byID := h.results(func(m map[string]*schemas.Envelope) bool {
		return countType(m, schemas.TypeLotteryPrizeAwarded) >= 1110 && countType(m, schemas.TypeLotteryEntryRecorded) >= users+users/10
	})
	d := verifyDraw(t, def.ActivityID, byID)
	if d.Participants != users || d.Winners != 1110 || d.Trigger != schemas.TriggerManual || d.DrawEventID != "draw-1" {
		t.Fatalf("draw = %+v, want %d participants, 1110 winners, manual by draw-1", d, users)
	}
	perTier := map[string]int{}
	for _, a := range ofType[schemas.PrizeAwarded](t, byID, schemas.TypeLotteryPrizeAwarded) {
		perTier[a.TierID]++
	}
	if perTier["gold"] != 10 || perTier["silver"] != 100 || perTier["bronze"] != 1000 {
		t.Fatalf("awards per tier = %v, want the stock 10/100/1000", perTier)
	}
	rejected := 0
	for _, e := range ofType[schemas.EntryRecorded](t, byID, schemas.TypeLotteryEntryRecorded) {
		if e.Status == schemas.EntryRejected {
			if e.Reason != schemas.RejectLimitReached {
				t.Fatalf("entry %s rejected for %s", e.EntryEventID, e.Reason)
			}
			rejected++
		}
	}
	if rejected != users/10 {
		t.Fatalf("%d second joins rejected, want %d", rejected, users/10)
	}

	// Replay everything through a fresh group: the same bytes for every
	// result id (results() fails on a difference) and nothing new.
	before := len(byID)
	h.start("g-replay", nil)
	time.Sleep(3 * time.Second)
	again := h.results(func(m map[string]*schemas.Envelope) bool { return len(m) >= before })
	if len(again) != before {
		t.Fatalf("replay produced %d result ids, want the same %d", len(again), before)
	}
}

// TestIntegrationScheduledDraw: an activity whose draw_at comes is drawn by
// the owner of its partition without any new event, once, even when the
// owner changes (a second member joins, then the first leaves) around it.
func TestIntegrationScheduledDraw(t *testing.T) {
	h := newHarness(t)
	at := time.Now().UTC()
	var defs []*schemas.ActivityDefined
	for i := range 6 {
		def := drawActivity(fmt.Sprintf("sched-%d", i), schemas.PrizeTier{TierID: "p", Kind: schemas.PrizeGoods, Stock: 3})
		def.JoinUntil = at.Add(2 * time.Second)
		drawAt := at.Add(time.Duration(2+i%3) * time.Second)
		def.DrawAt = &drawAt
		defs = append(defs, def)
		h.acts.Put(def)
	}
	var recs []*kgo.Record
	for _, def := range defs {
		for u := range 20 {
			recs = append(recs, req(t, "live", fmt.Sprintf("%s-j%d", def.ActivityID, u), at, schemas.ParticipationRequested{ActivityID: def.ActivityID, UserID: fmt.Sprintf("u%d", u)}))
		}
	}
	h.produce(recs...)
	_, _, stopA := h.start("g-sched", nil)
	time.Sleep(1500 * time.Millisecond)
	h.start("g-sched", nil) // a rebalance while draws come due
	time.Sleep(1500 * time.Millisecond)
	stopA()
	h.start("g-sched", nil)

	byID := h.results(func(m map[string]*schemas.Envelope) bool {
		return countType(m, schemas.TypeLotteryDrawCompleted) == len(defs) && countType(m, schemas.TypeLotteryPrizeAwarded) == 3*len(defs)
	})
	for _, d := range ofType[schemas.DrawCompleted](t, byID, schemas.TypeLotteryDrawCompleted) {
		if d.Trigger != schemas.TriggerScheduled || d.Participants != 20 || d.Winners != 3 {
			t.Errorf("draw %+v, want scheduled with 20 participants and 3 winners", d)
		}
		var def *schemas.ActivityDefined
		for _, x := range defs {
			if x.ActivityID == d.ActivityID {
				def = x
			}
		}
		if d.DrawnAt.Before(def.DrawAt.Truncate(time.Millisecond)) || d.DrawnAt.After(def.DrawAt.Add(3*time.Second)) {
			t.Errorf("%s drawn at %s, due %s", d.ActivityID, d.DrawnAt, def.DrawAt)
		}
	}
	for _, def := range defs {
		_, published, err := h.store().DrawState(context.Background(), def.ActivityID)
		if err != nil || !published {
			t.Errorf("%s: published = %v, %v", def.ActivityID, published, err)
		}
	}
}

// TestIntegrationInstantWin: every try draws against the odds at once;
// stock is never exceeded, a user wins at most once, exhausted tiers show
// 0 in the recorded odds, and every roll recomputes from the revealed seed.
func TestIntegrationInstantWin(t *testing.T) {
	h := newHarness(t)
	def := drawActivity("spin",
		schemas.PrizeTier{TierID: "big", Kind: schemas.PrizeGoods, Stock: 5, ProbabilityPPM: 100_000},
		schemas.PrizeTier{TierID: "small", Kind: schemas.PrizePoints, Points: 10, Stock: 200, ProbabilityPPM: 300_000})
	def.Kind = schemas.KindInstantWin
	def.PerUserLimit = 3
	h.acts.Put(def)
	at := time.Now().UTC()
	var recs []*kgo.Record
	rng := rand.New(rand.NewPCG(1, 2))
	const tries = 3000
	for i := range tries {
		u := fmt.Sprintf("u%d", rng.IntN(800))
		r := req(t, "app", fmt.Sprintf("try-%d", i), at, schemas.ParticipationRequested{ActivityID: def.ActivityID, UserID: u})
		recs = append(recs, r)
		if i%7 == 0 {
			recs = append(recs, clone(r))
		}
	}
	h.produce(recs...)
	h.start("g-instant", nil)
	byID := h.results(func(m map[string]*schemas.Envelope) bool {
		return countType(m, schemas.TypeLotteryEntryRecorded) == tries
	})
	seed, err := h.store().Seed(context.Background(), def.ActivityID)
	if err != nil {
		t.Fatal(err)
	}
	won := map[string]string{}
	perTier := map[string]int{}
	exhaustedSeen := false
	for _, e := range ofType[schemas.EntryRecorded](t, byID, schemas.TypeLotteryEntryRecorded) {
		if e.Status != schemas.EntryAccepted {
			if e.Reason != schemas.RejectLimitReached && e.Reason != schemas.RejectAlreadyWon {
				t.Fatalf("entry rejected for %s", e.Reason)
			}
			continue
		}
		if roll := fair.Roll(seed, def.ActivityID, "app", e.EntryEventID); roll != e.Roll {
			t.Fatalf("roll of %s = %d, recomputed %d", e.EntryEventID, e.Roll, roll)
		}
		odds, err := fair.ParseOdds(e.Odds)
		if err != nil {
			t.Fatal(err)
		}
		if odds[0].PPM == 0 {
			exhaustedSeen = true
		}
		pick := fair.Pick(e.Roll, odds)
		if (pick < 0) != (e.Outcome == schemas.OutcomeLost) || (pick >= 0 && odds[pick].TierID != e.TierID) {
			t.Fatalf("entry %+v does not follow its odds", e)
		}
		if e.Outcome == schemas.OutcomeWon {
			if prev, ok := won[e.UserID]; ok {
				t.Fatalf("user %s won %s and %s", e.UserID, prev, e.TierID)
			}
			won[e.UserID] = e.TierID
			perTier[e.TierID]++
		}
	}
	if perTier["big"] > 5 || perTier["small"] > 200 {
		t.Fatalf("wins per tier %v exceed the stock 5/200", perTier)
	}
	if perTier["big"] != 5 || !exhaustedSeen {
		t.Fatalf("the big tier (10%% of %d tries) should have run out openly: wins %v, exhausted odds seen %v", tries, perTier, exhaustedSeen)
	}
	if n := countType(byID, schemas.TypeLotteryPrizeAwarded); n != len(won) {
		t.Fatalf("%d awards for %d winners", n, len(won))
	}
}

// TestIntegrationScheduledDrawIgnoresExpiredActivities: an activity whose
// draw time is older than its state's TTL is history; its timer must not
// draw it again over an empty participant set.
func TestIntegrationScheduledDrawIgnoresExpiredActivities(t *testing.T) {
	h := newHarness(t)
	old := drawActivity("ancient", schemas.PrizeTier{TierID: "p", Kind: schemas.PrizeGoods, Stock: 1})
	old.JoinFrom = time.Now().Add(-30 * 24 * time.Hour)
	old.JoinUntil = old.JoinFrom.Add(time.Hour)
	drawAt := old.JoinUntil
	old.DrawAt = &drawAt
	h.acts.Put(old)
	fresh := drawActivity("fresh", schemas.PrizeTier{TierID: "p", Kind: schemas.PrizeGoods, Stock: 1})
	fresh.JoinUntil = time.Now()
	now := time.Now()
	fresh.DrawAt = &now
	h.acts.Put(fresh)
	h.start("g-expired", nil)
	byID := h.results(func(m map[string]*schemas.Envelope) bool { return countType(m, schemas.TypeLotteryDrawCompleted) >= 1 })
	time.Sleep(500 * time.Millisecond) // a few more ticks
	byID = h.results(func(m map[string]*schemas.Envelope) bool { return len(m) >= len(byID) })
	for _, d := range ofType[schemas.DrawCompleted](t, byID, schemas.TypeLotteryDrawCompleted) {
		if d.ActivityID != "fresh" {
			t.Fatalf("drew %s, whose state expired long ago", d.ActivityID)
		}
	}
}
