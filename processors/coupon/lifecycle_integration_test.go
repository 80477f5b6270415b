package coupon

import (
	"bytes"
	"context"
	"errors"
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
	"github.com/promoflow/promoflow/schemas"
)

// lcHarness runs coupon processors in-process against kfake and the real
// Redis, and collects everything they publish.
type lcHarness struct {
	t       *testing.T
	brokers []string
	rdb     *redis.Client
	prefix  string
	batches *Batches
	cl      *kgo.Client

	mu  sync.Mutex
	out lcOut
}

// lcOut is what the processors published, latest record per result id.
type lcOut struct {
	grants map[string]schemas.GrantDecided          // by claim event id
	states map[string]schemas.StateChanged          // by result id
	notes  map[string]schemas.NotificationRequested // by notification id
	count  map[string]int                           // records per result id
	raw    map[string][]byte
}

func newLC(t *testing.T) *lcHarness {
	t.Helper()
	brokers, _ := testenv.KafkaWithTopics(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { rdb.Close() })
	if err := rdb.Ping(testenv.Context(t, 10*time.Second)).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	prefix := testenv.Name("lc")
	t.Cleanup(func() { lcCleanup(rdb, prefix) })
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	h := &lcHarness{t: t, brokers: brokers, rdb: rdb, prefix: prefix, batches: NewBatches(), cl: cl}
	h.out = lcOut{grants: map[string]schemas.GrantDecided{}, states: map[string]schemas.StateChanged{},
		notes: map[string]schemas.NotificationRequested{}, count: map[string]int{}, raw: map[string][]byte{}}
	h.consume()
	return h
}

func lcCleanup(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		rdb.Del(ctx, iter.Val())
	}
}

// consume reads the result topics in the background for the whole test,
// failing it if a result id is published twice with different bytes.
func (h *lcHarness) consume() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(TopicGrants, TopicStates, TopicNotifications),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var errMu sync.Mutex
	var bad error
	go func() {
		defer close(done)
		var dec schemas.Decoder
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) {
				env, err := dec.Decode(r.Value)
				if err == nil {
					h.mu.Lock()
					err = h.out.add(env, r.Value)
					h.mu.Unlock()
				}
				if err != nil {
					errMu.Lock()
					bad = errors.Join(bad, err)
					errMu.Unlock()
				}
			})
		}
	}()
	h.t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
		if bad != nil {
			h.t.Errorf("published records: %v", bad)
		}
	})
}

func (o *lcOut) add(env *schemas.Envelope, raw []byte) error {
	if prev, ok := o.raw[env.EventID]; ok && !bytes.Equal(prev, raw) {
		return fmt.Errorf("result %s published twice with different contents:\n%s\n%s", env.EventID, prev, raw)
	}
	o.raw[env.EventID] = raw
	o.count[env.EventID]++
	switch env.Type {
	case schemas.TypeCouponGrantDecided:
		var g schemas.GrantDecided
		if err := env.DecodePayload(&g); err != nil {
			return err
		}
		o.grants[g.ClaimEventID] = g
	case schemas.TypeCouponStateChanged:
		var s schemas.StateChanged
		if err := env.DecodePayload(&s); err != nil {
			return err
		}
		o.states[s.ResultID] = s
	case schemas.TypeNotificationRequested:
		var n schemas.NotificationRequested
		if err := env.DecodePayload(&n); err != nil {
			return err
		}
		o.notes[n.NotificationID] = n
	}
	return nil
}

// waitFor polls what was published until cond holds (under the lock).
func (h *lcHarness) waitFor(what string, d time.Duration, cond func(o *lcOut) bool) {
	h.t.Helper()
	deadline := time.Now().Add(d)
	for {
		h.mu.Lock()
		ok := cond(&h.out)
		h.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("waiting for %s: not after %s", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// with runs f on what was published, under the lock.
func (h *lcHarness) with(f func(o *lcOut)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(&h.out)
}

func (h *lcHarness) store() *Store {
	return NewStore(h.rdb, WithKeyPrefix(h.prefix), WithDecisionTTL(time.Hour))
}

func lcQuiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start runs one processor instance until the returned stop is called.
func (h *lcHarness) start(group string, opts ...Option) (*stream.Runner, func()) {
	h.t.Helper()
	s := h.store()
	if err := s.Load(testenv.Context(h.t, 10*time.Second)); err != nil {
		h.t.Fatal(err)
	}
	st := New(s, h.batches, opts...).Stage()
	st.Group = group
	st.TickInterval = 100 * time.Millisecond
	r, err := stream.New(stream.Config{
		Brokers: h.brokers, Logger: lcQuiet(), SessionTimeout: 6 * time.Second,
		Fencer: &stream.RedisFencer{Client: h.rdb, Prefix: h.prefix},
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

func (h *lcHarness) produce(recs ...*kgo.Record) {
	h.t.Helper()
	if err := h.cl.ProduceSync(testenv.Context(h.t, time.Minute), recs...).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// lcEvent encodes an input event for topic.
func lcEvent(t testing.TB, topic, app, event string, at time.Time, p schemas.Payload) *kgo.Record {
	t.Helper()
	env, err := schemas.New(event, app, at, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topic, Key: []byte(env.Key), Value: b}
}

func lcClone(r *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
}

// lcBatch is an active batch usable for an hour around now.
func lcBatch(id string, mut ...func(*schemas.BatchDefined)) *schemas.BatchDefined {
	now := time.Now().UTC()
	b := &schemas.BatchDefined{BatchID: id, Revision: 1, TotalStock: 1000, PerUserLimit: 10, Status: schemas.BatchActive,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour)}
	for _, m := range mut {
		m(b)
	}
	return b
}

// sameCoupon compares what a decision carries of a coupon (not OrderID).
func sameCoupon(a, b Coupon) bool {
	return a.Known == b.Known && a.BatchID == b.BatchID && a.State == b.State && a.Seq == b.Seq &&
		a.Deadline.Equal(b.Deadline) && a.From.Equal(b.From) && a.Until.Equal(b.Until)
}

// couponOf is the coupon id a granted claim gets.
func couponOf(app, event string) string { return schemas.ResultID(ResultKind, app, event) }

func opID(app, event string) string { return schemas.ResultID(KindOp, app, event) }

func lockReq(t testing.TB, event, order, user, coupon string) *kgo.Record {
	return lcEvent(t, TopicOrders, "shop", event, time.Now(), schemas.LockRequested{OrderID: order, UserID: user, CouponID: coupon, OrderAmount: 12_900})
}

func confirmReq(t testing.TB, event, order, user, coupon string) *kgo.Record {
	return lcEvent(t, TopicOrders, "shop", event, time.Now(), schemas.ConfirmRequested{OrderID: order, UserID: user, CouponID: coupon, OrderAmount: 12_900})
}

func claimReq(t testing.TB, app, event, batch, user string) *kgo.Record {
	return lcEvent(t, TopicClaims, app, event, time.Now(), schemas.ClaimRequested{BatchID: batch, UserID: user})
}

// grantedState waits for the grant's record on coupon.states.
func (h *lcHarness) grantedState(app, event string) schemas.StateChanged {
	h.t.Helper()
	id := schemas.ResultID(KindGranted, app, event)
	var s schemas.StateChanged
	h.waitFor("the grant of "+event, time.Minute, func(o *lcOut) bool {
		var ok bool
		s, ok = o.states[id]
		return ok
	})
	return s
}

// TestIntegrationLockRace is the issue's concurrency test: 200 orders race
// to lock the same coupon (200 lock events from 200 goroutines, some
// delivered twice): exactly one lock applies, 199 are rejected with
// locked_by_other_order; the winner's confirm uses the coupon, a loser's
// confirm is rejected before and after it.
func TestIntegrationLockRace(t *testing.T) {
	h := newLC(t)
	def := lcBatch("RACE")
	h.batches.Put(def)
	h.start("g-race")
	h.produce(claimReq(t, "shop", "claim-1", def.BatchID, "racer"))
	coupon := couponOf("shop", "claim-1")
	g := h.grantedState("shop", "claim-1")
	if g.CouponID != coupon || g.Op != schemas.OpGrant || g.Status != schemas.OpApplied || g.State != schemas.CouponAvailable || g.Seq != 1 ||
		!g.ValidFrom.Equal(def.ValidFrom.Truncate(time.Millisecond)) || !g.ExpiresAt.Equal(def.ValidUntil.Truncate(time.Millisecond)) {
		t.Fatalf("grant record %+v", g)
	}

	const orders = 200
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := lockReq(t, fmt.Sprintf("lock-%03d", i), fmt.Sprintf("ord-%03d", i), "racer", coupon)
			recs := []*kgo.Record{r}
			if i%7 == 0 {
				recs = append(recs, lcClone(r)) // delivered twice
			}
			if err := h.cl.ProduceSync(testenv.Context(t, time.Minute), recs...).FirstErr(); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var winner string
	h.waitFor("200 lock decisions", time.Minute, func(o *lcOut) bool {
		n := 0
		for i := range orders {
			if _, ok := o.states[opID("shop", fmt.Sprintf("lock-%03d", i))]; ok {
				n++
			}
		}
		return n == orders
	})
	h.with(func(o *lcOut) {
		applied := 0
		for i := range orders {
			s := o.states[opID("shop", fmt.Sprintf("lock-%03d", i))]
			if s.Op != schemas.OpLock || s.OrderID != fmt.Sprintf("ord-%03d", i) || s.SourceEventID != fmt.Sprintf("lock-%03d", i) || s.OrderAmount != 12_900 {
				t.Fatalf("lock record %+v", s)
			}
			switch {
			case s.Status == schemas.OpApplied:
				applied++
				winner = s.OrderID
				if s.State != schemas.CouponLocked || s.Seq != 2 || s.LockDeadline == nil || !s.LockDeadline.After(s.ChangedAt) {
					t.Fatalf("applied lock %+v", s)
				}
			case s.Reason != schemas.RejectLockedByOtherOrder || s.State != schemas.CouponLocked || s.Seq != 2:
				t.Fatalf("rejected lock %+v, want locked_by_other_order at seq 2", s)
			}
		}
		if applied != 1 {
			t.Fatalf("%d locks applied, want exactly 1", applied)
		}
	})
	loser := "ord-000"
	if winner == loser {
		loser = "ord-001"
	}
	h.produce(confirmReq(t, "confirm-early", loser, "racer", coupon))
	h.produce(confirmReq(t, "confirm-win", winner, "racer", coupon))
	h.produce(confirmReq(t, "confirm-late", loser, "racer", coupon))
	h.produce(confirmReq(t, "confirm-win", winner, "racer", coupon)) // redelivered
	h.waitFor("the confirms", time.Minute, func(o *lcOut) bool {
		return o.count[opID("shop", "confirm-win")] == 2 && o.count[opID("shop", "confirm-late")] == 1
	})
	h.with(func(o *lcOut) {
		early, win, late := o.states[opID("shop", "confirm-early")], o.states[opID("shop", "confirm-win")], o.states[opID("shop", "confirm-late")]
		if early.Status != schemas.OpRejected || early.Reason != schemas.RejectLockedByOtherOrder || early.Seq != 2 {
			t.Errorf("a loser's confirm before the winner's: %+v", early)
		}
		if win.Status != schemas.OpApplied || win.State != schemas.CouponUsed || win.Seq != 3 || win.OrderID != winner {
			t.Errorf("the winner's confirm: %+v", win)
		}
		if late.Status != schemas.OpRejected || late.Reason != schemas.RejectAlreadyUsed || late.State != schemas.CouponUsed || late.Seq != 3 {
			t.Errorf("a loser's confirm after the winner's: %+v", late)
		}
	})
}

// TestIntegrationLockRaceStore races 200 workers calling the atomic step
// directly (no partition ordering in between), each lock event twice.
func TestIntegrationLockRaceStore(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	now := time.Now()
	coupon := couponOf("shop", "c-store")
	if _, err := s.Register(ctx, "t/0", 0, now, []Grant{{UserID: "u", CouponID: coupon, BatchID: "B", At: now, From: now.Add(-time.Hour), Until: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	const workers = 200
	results := make([][2]Decision, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := OpRequest{AppID: "shop", EventID: fmt.Sprintf("l%d", i), UserID: "u", CouponID: coupon, OrderID: fmt.Sprintf("o%d", i), Kind: schemas.OpLock, Deadline: now.Add(time.Minute)}
			for round := range 2 {
				ds, err := s.Operate(ctx, fmt.Sprintf("t/%d", i%12), 0, time.Now(), []OpRequest{r})
				if err != nil {
					t.Error(err)
					return
				}
				results[i][round] = ds[0]
			}
		}()
	}
	wg.Wait()
	applied := 0
	for i, r := range results {
		if r[0].Applied != r[1].Applied || r[0].Reason != r[1].Reason || !r[0].At.Equal(r[1].At) || !sameCoupon(r[0].Coupon, r[1].Coupon) || r[1].Kind != kindDup {
			t.Fatalf("lock %d decided twice differently: %+v vs %+v", i, r[0], r[1])
		}
		if r[0].Applied {
			applied++
		} else if r[0].Reason != schemas.RejectLockedByOtherOrder {
			t.Fatalf("lock %d rejected for %s", i, r[0].Reason)
		}
	}
	if applied != 1 {
		t.Fatalf("%d locks applied, want 1", applied)
	}
}

// TestIntegrationLockTimeout: a lock neither confirmed nor cancelled is
// released after its deadline with no new event, by the instance that took
// over the partition after the one that locked it stopped.
func TestIntegrationLockTimeout(t *testing.T) {
	h := newLC(t)
	def := lcBatch("TIMEOUT")
	h.batches.Put(def)
	const timeout = 5 * time.Second
	_, stopA := h.start("g-timeout", WithLockTimeout(timeout))
	h.produce(claimReq(t, "shop", "claim-t", def.BatchID, "sleepy"))
	coupon := couponOf("shop", "claim-t")
	h.grantedState("shop", "claim-t")
	h.produce(lockReq(t, "lock-t", "ord-t", "sleepy", coupon))
	var lock schemas.StateChanged
	h.waitFor("the lock", time.Minute, func(o *lcOut) bool {
		var ok bool
		lock, ok = o.states[opID("shop", "lock-t")]
		return ok
	})
	if lock.Status != schemas.OpApplied || lock.LockDeadline == nil || lock.LockDeadline.Sub(lock.ChangedAt) != timeout {
		t.Fatalf("lock %+v, want applied with a deadline %s after it", lock, timeout)
	}
	stopA()
	if !time.Now().Before(*lock.LockDeadline) {
		t.Logf("instance A stopped only after the deadline")
	}
	rB, _ := h.start("g-timeout", WithLockTimeout(timeout))

	release := schemas.ResultID(KindTimer, schemas.OpRelease, coupon+"/3")
	var rel schemas.StateChanged
	h.waitFor("the release", time.Minute, func(o *lcOut) bool {
		var ok bool
		rel, ok = o.states[release]
		return ok
	})
	if rel.Op != schemas.OpRelease || rel.Status != schemas.OpApplied || rel.State != schemas.CouponAvailable || rel.Seq != 3 ||
		rel.OrderID != "ord-t" || rel.SourceEventID != "" || rel.LockDeadline != nil || rel.ChangedAt.Before(*lock.LockDeadline) {
		t.Fatalf("release %+v of lock %+v", rel, lock)
	}
	// The instance that took over published it (its Ticks count outputs
	// acknowledged, just after the acknowledgement the consumer may see).
	h.waitFor("instance B's timer outputs", 10*time.Second, func(*lcOut) bool { return rB.Stats().Ticks > 0 })

	// The coupon is available again: another order locks it, and the first
	// lock's timer never fires twice.
	h.produce(lockReq(t, "lock-t2", "ord-t2", "sleepy", coupon))
	h.waitFor("the second lock", time.Minute, func(o *lcOut) bool { _, ok := o.states[opID("shop", "lock-t2")]; return ok })
	time.Sleep(500 * time.Millisecond)
	h.with(func(o *lcOut) {
		if s := o.states[opID("shop", "lock-t2")]; s.Status != schemas.OpApplied || s.Seq != 4 {
			t.Errorf("lock after the release: %+v", s)
		}
		if o.count[release] != 1 {
			t.Errorf("release published %d times", o.count[release])
		}
	})
}

// TestIntegrationExpiryAndReminders: coupons with short windows get their
// reminder (one per user, batch and day, however many coupons of the batch
// the user holds and however often Tick runs) and expire at their end;
// a coupon locked at its end expires once its lock is released.
func TestIntegrationExpiryAndReminders(t *testing.T) {
	h := newLC(t)
	end := time.Now().Add(6 * time.Second).UTC().Truncate(time.Millisecond)
	short := func(b *schemas.BatchDefined) { b.ValidUntil = end; b.RemindDaysBefore = 1 }
	e1, e3 := lcBatch("E1", short), lcBatch("E3", short)
	e2 := lcBatch("E2", func(b *schemas.BatchDefined) { b.ValidUntil = end }) // no reminders
	for _, b := range []*schemas.BatchDefined{e1, e2, e3} {
		h.batches.Put(b)
	}
	type claim struct{ event, batch, user string }
	claims := []claim{
		{"u1-e1-a", "E1", "u1"}, {"u1-e1-b", "E1", "u1"}, {"u1-e1-c", "E1", "u1"},
		{"u1-e3", "E3", "u1"}, {"u2-e1", "E1", "u2"}, {"u3-e2", "E2", "u3"},
	}
	var recs []*kgo.Record
	for _, c := range claims {
		recs = append(recs, claimReq(t, "shop", c.event, c.batch, c.user))
	}
	h.produce(recs...)
	h.start("g-expiry", WithLockTimeout(6*time.Second)) // u2's lock outlasts its coupon's end

	note := func(user, batch string) string {
		return schemas.ResultID(KindReminder, user, batch+"/"+ReminderDay(end.Add(-24*time.Hour)))
	}
	h.waitFor("u2's reminder", time.Minute, func(o *lcOut) bool { _, ok := o.notes[note("u2", "E1")]; return ok })
	// u2's coupon is locked across its end: it expires after the release.
	u2 := couponOf("shop", "u2-e1")
	h.produce(lockReq(t, "lock-u2", "ord-u2", "u2", u2))

	expire := func(c claim, seq int) string {
		return schemas.ResultID(KindTimer, schemas.OpExpire, couponOf("shop", c.event)+"/"+fmt.Sprint(seq))
	}
	h.waitFor("every expiry", time.Minute, func(o *lcOut) bool {
		for _, c := range claims {
			seq := 2
			if c.user == "u2" {
				seq = 4 // grant, lock, release, expire
			}
			if _, ok := o.states[expire(c, seq)]; !ok {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // ten more Ticks
	h.with(func(o *lcOut) {
		for _, c := range claims {
			seq := 2
			if c.user == "u2" {
				seq = 4
			}
			s := o.states[expire(c, seq)]
			if s.Op != schemas.OpExpire || s.Status != schemas.OpApplied || s.State != schemas.CouponExpired || s.ChangedAt.Before(end) || !s.ExpiresAt.Equal(end) {
				t.Errorf("expiry of %s: %+v", c.event, s)
			}
			if n := o.count[expire(c, seq)]; n != 1 {
				t.Errorf("expiry of %s published %d times", c.event, n)
			}
		}
		rel := o.states[schemas.ResultID(KindTimer, schemas.OpRelease, u2+"/3")]
		if rel.Status != schemas.OpApplied || rel.OrderID != "ord-u2" {
			t.Errorf("u2's lock was not released before the expiry: %+v", rel)
		}
		want := map[string]bool{note("u1", "E1"): true, note("u1", "E3"): true, note("u2", "E1"): true}
		if len(o.notes) != len(want) {
			t.Errorf("%d reminders, want %d: %+v", len(o.notes), len(want), o.notes)
		}
		for id, n := range o.notes {
			if !want[id] || o.count[id] != 1 {
				t.Errorf("reminder %+v published %d times (wanted: %v)", n, o.count[id], want[id])
			}
			if n.Template != TemplateExpiry || n.ExpiresAt == nil || !n.ExpiresAt.Equal(end) || !n.DueAt.Equal(end.Add(-24*time.Hour)) || n.SubjectID == "" {
				t.Errorf("reminder %+v", n)
			}
		}
		if n := o.notes[note("u1", "E1")]; n.CouponID != couponOf("shop", "u1-e1-a") && n.CouponID != couponOf("shop", "u1-e1-b") && n.CouponID != couponOf("shop", "u1-e1-c") {
			t.Errorf("u1's E1 reminder names coupon %s, not one of u1's", n.CouponID)
		}
	})
	// The schedules are cleaned up; the day's reminder keys expire.
	ctx := testenv.Context(t, 10*time.Second)
	iter := h.rdb.Scan(ctx, 0, h.prefix+":cpt:*", 1000).Iterator()
	for iter.Next(ctx) {
		if n, _ := h.rdb.ZCard(ctx, iter.Val()).Result(); n != 0 {
			t.Errorf("schedule %s still holds %d entries", iter.Val(), n)
		}
	}
	key := h.store().reminderKey("u1", "E1", ReminderDay(end.Add(-24*time.Hour)))
	if ttl, err := h.rdb.TTL(ctx, key).Result(); err != nil || ttl <= 47*time.Hour || ttl > 48*time.Hour {
		t.Errorf("reminder key %s TTL %s, %v; want 2 days", key, ttl, err)
	}
}

// TestIntegrationRateLimit: a user's self-claims pass up to the burst, then
// are rejected with rate_limited (remembered: a redelivery answers the
// same); an app's claims likewise; issues and exempt apps are never
// limited.
func TestIntegrationRateLimit(t *testing.T) {
	h := newLC(t)
	def := lcBatch("RL", func(b *schemas.BatchDefined) { b.PerUserLimit = 100 })
	h.batches.Put(def)
	h.start("g-rl", WithRateLimits(RateLimit{Rate: 0.001, Burst: 3}, RateLimit{Rate: 0.001, Burst: 20}), WithRateLimitExempt("promoflow-lottery"))

	var recs []*kgo.Record
	for i := range 6 {
		recs = append(recs, claimReq(t, "shop", fmt.Sprintf("self-%d", i), def.BatchID, "flooder"))
	}
	for i := range 5 {
		recs = append(recs, lcEvent(t, TopicClaims, "ops", fmt.Sprintf("issue-%d", i), time.Now(),
			schemas.IssueRequested{BatchID: def.BatchID, UserID: "flooder", IssueID: "vip-list"}))
	}
	for i := range 25 {
		recs = append(recs, claimReq(t, "flood", fmt.Sprintf("app-%d", i), def.BatchID, fmt.Sprintf("fan-%d", i)))
	}
	for i := range 30 {
		recs = append(recs, claimReq(t, "promoflow-lottery", fmt.Sprintf("prize-%d", i), def.BatchID, fmt.Sprintf("winner-%d", i)))
	}
	h.produce(recs...)
	h.waitFor("every decision", time.Minute, func(o *lcOut) bool { return len(o.grants) == 66 })
	h.produce(lcClone(recs[0]), lcClone(recs[5])) // self-0 and self-5 redelivered
	h.waitFor("the redeliveries", time.Minute, func(o *lcOut) bool {
		return o.count[couponOf("shop", "self-0")] == 2 && o.count[couponOf("shop", "self-5")] == 2
	})
	h.with(func(o *lcOut) {
		for i := range 6 {
			g := o.grants[fmt.Sprintf("self-%d", i)]
			if granted := g.Status == schemas.StatusGranted; granted != (i < 3) || (!granted && g.Reason != schemas.RejectRateLimited) {
				t.Errorf("self-claim %d: %s %s; want the first 3 granted, then rate_limited", i, g.Status, g.Reason)
			}
		}
		for i := range 5 {
			if g := o.grants[fmt.Sprintf("issue-%d", i)]; g.Status != schemas.StatusGranted {
				t.Errorf("issue %d: %s %s; issues are not rate-limited", i, g.Status, g.Reason)
			}
		}
		by := map[string]int{}
		for i := range 25 {
			g := o.grants[fmt.Sprintf("app-%d", i)]
			by[g.Status+"/"+g.Reason]++
		}
		if by["granted/"] != 20 || by["rejected/rate_limited"] != 5 {
			t.Errorf("one app's claims: %v; want 20 granted (the burst), 5 rate_limited", by)
		}
		for i := range 30 {
			if g := o.grants[fmt.Sprintf("prize-%d", i)]; g.Status != schemas.StatusGranted {
				t.Errorf("prize claim %d: %s %s; the lottery's claims are exempt", i, g.Status, g.Reason)
			}
		}
		// A rate-limited claim registers no coupon.
		if _, ok := o.states[schemas.ResultID(KindGranted, "shop", "self-4")]; ok {
			t.Error("a rate-limited claim has a coupon")
		}
	})
}

// TestIntegrationRateLimitScriptMatchesTake runs ratelimit.lua on random
// sequences and compares every answer with Take.
func TestIntegrationRateLimitScriptMatchesTake(t *testing.T) {
	s, _ := testStore(t)
	checkLimitScript(t, s)
}

func checkLimitScript(t *testing.T, s *Store) {
	ctx := testenv.Context(t, time.Minute)
	rng := rand.New(rand.NewPCG(5, 6))
	for round := range 20 {
		l := RateLimit{Rate: []float64{0.5, 1, 4, 100}[rng.IntN(4)], Burst: int64(1 + rng.IntN(10))}
		key := s.UserBucket(fmt.Sprintf("model-%d", round))
		var b Bucket
		now := time.UnixMilli(1_800_000_000_000)
		for step := range 40 {
			now = now.Add(time.Duration(rng.IntN(1500)-100) * time.Millisecond)
			want := int64(rng.IntN(5))
			var exp int64
			exp, b = Take(b, l, now, want)
			got, err := s.TakeTokens(ctx, now, []BucketRequest{{Key: key, Limit: l, Want: want}})
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != exp {
				t.Fatalf("round %d step %d (limit %+v, want %d): script took %d, Take says %d", round, step, l, want, got[0], exp)
			}
		}
	}
}

// TestIntegrationStateScriptMatchesStep runs state.lua on random sequences
// of requests and timers over a few coupons and checks every decision
// against Step (and ShouldRemind) applied to a model of the state.
func TestIntegrationStateScriptMatchesStep(t *testing.T) {
	s, _ := testStore(t)
	checkStateScript(t, s)
}

func checkStateScript(t *testing.T, s *Store) {
	ctx := testenv.Context(t, 2*time.Minute)
	rng := rand.New(rand.NewPCG(7, 8))
	owner := stream.Owned{Topic: "t", Partition: 0}
	for round := range 30 {
		user := fmt.Sprintf("m%d", round)
		t0 := time.UnixMilli(1_800_000_000_000).UTC()
		now := t0
		model := map[string]Coupon{}
		var ids []string
		for i := range 4 {
			id := couponOf("model", fmt.Sprintf("%d-%d", round, i))
			c := Coupon{Known: true, BatchID: "B", State: schemas.CouponAvailable, Seq: 1,
				From: t0.Add(time.Duration(rng.IntN(3)-1) * time.Minute), Until: t0.Add(time.Duration(1+rng.IntN(20)) * time.Minute)}
			ds, err := s.Register(ctx, "t/0", 0, now, []Grant{{UserID: user, CouponID: id, BatchID: "B", At: t0, From: c.From, Until: c.Until}})
			if err != nil {
				t.Fatal(err)
			}
			if ds[0].Kind != kindNew || !sameCoupon(ds[0].Coupon, c) {
				t.Fatalf("register: %+v, want %+v", ds[0], c)
			}
			model[id] = c
			ids = append(ids, id)
		}
		ids = append(ids, couponOf("model", "unknown")) // never granted
		orders := []string{"o1", "o2", "o3"}
		sentFor := map[string]string{}     // day -> coupon
		timerMemo := map[string]Decision{} // timer steps applied, remembered
		for step := range 60 {
			now = now.Add(time.Duration(1+rng.IntN(60_000)) * time.Millisecond)
			id := ids[rng.IntN(len(ids))]
			c := model[id]
			order := orders[rng.IntN(len(orders))]
			var op Op
			var d Decision
			var err error
			switch k := rng.IntN(10); {
			case k < 6:
				kind := []string{schemas.OpLock, schemas.OpLock, schemas.OpConfirm, schemas.OpCancel}[rng.IntN(4)]
				op = Op{Kind: kind, OrderID: order, At: now, OtherOwner: rng.IntN(2) == 0, BatchDisabled: rng.IntN(5) == 0, Deadline: now.Add(time.Duration(1+rng.IntN(5)) * time.Minute)}
				var ds []Decision
				ds, err = s.Operate(ctx, "t/0", 0, now, []OpRequest{{AppID: "a", EventID: fmt.Sprintf("%d", step), UserID: user, CouponID: id, OrderID: order,
					Kind: kind, OtherOwner: op.OtherOwner, BatchDisabled: op.BatchDisabled, Deadline: op.Deadline}})
				if err == nil {
					d = ds[0]
				}
			case k < 8:
				op = Op{Kind: schemas.OpRelease, OrderID: order, At: now, Deadline: c.Deadline}
				if c.Deadline.IsZero() || rng.IntN(4) == 0 {
					op.Deadline = now.Add(-time.Duration(rng.IntN(1000)) * time.Millisecond)
				}
				var ds []Decision
				ds, err = s.Fire(ctx, now, []Timer{{Kind: schemas.OpRelease, Owner: owner, Due: op.Deadline, UserID: user, CouponID: id, OrderID: order}})
				if err == nil {
					d = ds[0]
				}
			case k < 9:
				op = Op{Kind: schemas.OpExpire, At: now}
				var ds []Decision
				ds, err = s.Fire(ctx, now, []Timer{{Kind: schemas.OpExpire, Owner: owner, Due: c.Until, UserID: user, CouponID: id}})
				if err == nil {
					d = ds[0]
				}
			default:
				due := now.Add(-time.Duration(rng.IntN(2)) * 24 * time.Hour)
				day := ReminderDay(due)
				ds, err := s.Fire(ctx, now, []Timer{{Kind: opRemind, Owner: owner, Due: due, UserID: user, CouponID: id, BatchID: "B"}})
				if err != nil {
					t.Fatal(err)
				}
				want := ShouldRemind(c, now, id, sentFor[day])
				if (ds[0].Kind == kindSend) != want || (want && !ds[0].Until.Equal(c.Until)) {
					t.Fatalf("round %d step %d: remind %s (sent for %q) on %+v: script %+v, ShouldRemind %v", round, step, id, sentFor[day], c, ds[0], want)
				}
				if want {
					sentFor[day] = id
				}
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			memo := op.Kind + "/" + id
			if op.Kind == schemas.OpRelease {
				memo += "/" + op.OrderID + "/" + ms(op.Deadline)
			}
			if m, ok := timerMemo[memo]; ok {
				// A timer step repeated: the script answers what it decided.
				if d.Kind != kindDup || d.Applied != m.Applied || !sameCoupon(d.Coupon, m.Coupon) || !d.At.Equal(m.At) {
					t.Fatalf("round %d step %d: repeated %s: %+v, first %+v", round, step, memo, d, m)
				}
				continue
			}
			tr := Step(c, op)
			ok := d.Applied == tr.Applied && (d.Kind == kindSkip) == tr.Skip && (d.Kind == kindWait) == tr.Wait
			if ok && tr.Wait {
				ok = d.RetryAt.Equal(tr.RetryAt)
			}
			if ok && !tr.Skip && !tr.Wait {
				ok = d.Kind == kindNew && d.Reason == tr.Reason && d.Coupon.State == tr.Next.State && d.Coupon.Seq == tr.Next.Seq &&
					d.Coupon.Deadline.Equal(tr.Next.Deadline) && d.At.Equal(now)
			}
			if !ok {
				t.Fatalf("round %d step %d: %s on %+v\nscript: %+v\nStep:   %+v", round, step, op.Kind, c, d, tr)
			}
			if tr.Applied {
				model[id] = tr.Next
				if op.Kind == schemas.OpRelease || op.Kind == schemas.OpExpire {
					timerMemo[memo] = d
				}
			}
		}
	}
}

// TestIntegrationTimersRepeat: a timer step repeated (a Tick after a crash,
// before its entries were removed) returns the remembered decision, whose
// record is the same bytes; a stale epoch is refused.
func TestIntegrationTimersRepeat(t *testing.T) {
	s, _ := testStore(t)
	ctx := testenv.Context(t, time.Minute)
	now := time.Now().UTC()
	a, b, r := couponOf("shop", "rep-a"), couponOf("shop", "rep-b"), couponOf("shop", "rep-r")
	grants := []Grant{
		{UserID: "u", CouponID: a, BatchID: "B", At: now.Add(-time.Hour), From: now.Add(-time.Hour), Until: now.Add(-time.Second)},
		{UserID: "u", CouponID: b, BatchID: "B", At: now.Add(-time.Hour), From: now.Add(-time.Hour), Until: now.Add(time.Hour)},
		{UserID: "u", CouponID: r, BatchID: "B", At: now.Add(-time.Hour), From: now.Add(-time.Hour), Until: now.Add(time.Hour), RemindAt: now.Add(-time.Hour)},
	}
	if _, err := s.Register(ctx, "coupon.claims/0", 3, now, grants); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Operate(ctx, "coupon.orders/0", 3, now, []OpRequest{{AppID: "shop", EventID: "l", UserID: "u", CouponID: b, OrderID: "o", Kind: schemas.OpLock, Deadline: now.Add(-time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	claims := stream.Owned{Topic: TopicClaims, Partition: 0, Partitions: 12, Epoch: 3}
	orders := stream.Owned{Topic: TopicOrders, Partition: 0, Partitions: 12, Epoch: 3}
	due, err := s.Due(ctx, []stream.Owned{claims, orders}, now)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, tm := range due {
		kinds[tm.Kind]++
	}
	// a: its end; r: its reminder; b: the lock deadline (its end is later).
	if len(due) != 3 || kinds[schemas.OpExpire] != 1 || kinds[opRemind] != 1 || kinds[schemas.OpRelease] != 1 {
		t.Fatalf("due timers %+v", due)
	}
	first, err := s.Fire(ctx, now, due)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.Fire(ctx, now.Add(time.Second), due)
	if err != nil {
		t.Fatal(err)
	}
	for i, tm := range due {
		f, g := first[i], again[i]
		switch tm.Kind {
		case opRemind:
			if f.Kind != kindSend || g.Kind != kindSend {
				t.Fatalf("reminder fired %s then %s; want send both times (same coupon)", f.Kind, g.Kind)
			}
			r1, _ := ReminderRecord(tm, f.Until)
			r2, _ := ReminderRecord(tm, g.Until)
			if !bytes.Equal(r1.Value, r2.Value) {
				t.Fatalf("repeated reminder differs:\n%s\n%s", r1.Value, r2.Value)
			}
		default:
			if f.Kind != kindNew || g.Kind != kindDup || !f.Applied {
				t.Fatalf("%s fired %+v then %+v; want applied, then remembered", tm.Kind, f, g)
			}
			r1, _ := TimerRecord(tm, f)
			r2, _ := TimerRecord(tm, g)
			if !bytes.Equal(r1.Value, r2.Value) {
				t.Fatalf("repeated %s record differs:\n%s\n%s", tm.Kind, r1.Value, r2.Value)
			}
		}
	}
	// Another coupon of the batch due the same day: the day is taken.
	if _, err := s.Register(ctx, "coupon.claims/0", 3, now, []Grant{{UserID: "u", CouponID: couponOf("shop", "rep-c"), BatchID: "B", At: now, From: now.Add(-time.Hour), Until: now.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Fire(ctx, now, []Timer{{Kind: opRemind, Owner: claims, Due: now.Add(-time.Hour), UserID: "u", CouponID: couponOf("shop", "rep-c"), BatchID: "B"}})
	if err != nil || ds[0].Kind != kindSkip {
		t.Fatalf("a second reminder of the day: %+v, %v", ds, err)
	}
	if err := s.Unschedule(ctx, due); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.Due(ctx, []stream.Owned{claims, orders}, now); len(left) != 0 {
		t.Fatalf("timers left after Unschedule: %+v", left)
	}

	// A newer owner of the partition writes; the old epoch is refused.
	if _, err := s.Operate(ctx, "coupon.orders/0", 4, now, []OpRequest{{AppID: "shop", EventID: "c", UserID: "u", CouponID: b, OrderID: "o", Kind: schemas.OpCancel}}); err != nil {
		t.Fatal(err)
	}
	stale := orders
	_, err = s.Fire(ctx, now, []Timer{{Kind: schemas.OpRelease, Owner: stale, Due: now, UserID: "u", CouponID: b, OrderID: "o"}})
	if !errors.Is(err, stream.ErrFenced) {
		t.Fatalf("timer with a stale epoch: err = %v, want ErrFenced", err)
	}
}
