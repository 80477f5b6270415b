package clickhouse_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// d11 is the start of the analytics story: Double 11.
var d11 = time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)

const storyApp = "shop"

// analyticsStory is a campaign's worth of real results, as the processors
// publish them: batch definitions, claims decided, coupons locked, used,
// cancelled and expired, lottery activities with entries, draws and
// awards. It is random but reproducible (a fixed seed), so the reports'
// expectations are computed from the events, not written down.
type analyticsStory struct {
	tb  testing.TB
	rng *rand.Rand
	n   int
	// events are the results in the order the pipeline produced them;
	// late are older revisions of definitions that arrive after them.
	events, late []*schemas.Envelope
}

// Batch ids of the story; storyNoDef is claimed but never defined.
const (
	storyPhone  = "D11-PHONE-50"
	storyPct    = "D11-PCT-10"
	storyPctRaw = "D11-PCT-15"
	storyBonus  = "D11-BONUS"
	storyLegacy = "LEGACY-V1"
	storyNoDef  = "NO-DEF"
)

// Activity ids of the story.
const (
	storyDraw    = "A-DRAW-1"
	storyInstant = "A-INSTANT"
	storyManual  = "A-MANUAL"
	storyEmpty   = "A-EMPTY"
)

func newAnalyticsStory(tb testing.TB, seed uint64) *analyticsStory {
	st := &analyticsStory{tb: tb, rng: rand.New(rand.NewPCG(seed, 11))}
	users := make([]string, 40)
	for i := range users {
		users[i] = fmt.Sprintf("u-%02d", i+1)
	}
	// Ids that sort differently bytewise and naturally, and one with '@'.
	users = append(users, "U-1", "a@b", "z_9")

	window := func(days int) (time.Time, time.Time) {
		return d11.Add(-24 * time.Hour), d11.Add(time.Duration(days) * 24 * time.Hour)
	}
	from, until := window(4)
	// D11-PHONE-50: revision 2 raised the amount; revision 1 arrives late.
	phone := schemas.BatchDefined{BatchID: storyPhone, Name: "双十一手机券 60 off", Revision: 2, TotalStock: 500, PerUserLimit: 2,
		ValidFrom: from, ValidUntil: until, Status: schemas.BatchActive, Categories: []string{"phone", "tablet"},
		Threshold: 50000, DiscountType: schemas.DiscountFixed, Amount: 6000, ExclusionGroup: "d11"}
	st.define(phone, false)
	phone.Revision, phone.Amount, phone.Name = 1, 5000, "50 off phones"
	st.define(phone, true)
	st.define(schemas.BatchDefined{BatchID: storyPct, Name: `=HYPERLINK("http://evil.example/","10% off")`, Revision: 1,
		TotalStock: 300, PerUserLimit: 3, ValidFrom: from, ValidUntil: until, Status: schemas.BatchActive,
		DiscountType: schemas.DiscountPercent, Percent: 10, Cap: 3000}, false)
	st.define(schemas.BatchDefined{BatchID: storyPctRaw, Revision: 4, TotalStock: 300, PerUserLimit: 3,
		ValidFrom: from, ValidUntil: until, Status: schemas.BatchActive, DiscountType: schemas.DiscountPercent, Percent: 15}, false)
	st.define(schemas.BatchDefined{BatchID: storyBonus, Revision: 1, TotalStock: 300, PerUserLimit: 2,
		ValidFrom: from, ValidUntil: until, Status: schemas.BatchActive, DiscountType: schemas.DiscountPriceIncrease, Amount: 2000}, false)
	st.define(schemas.BatchDefined{BatchID: storyLegacy, Revision: 1, TotalStock: 100, PerUserLimit: 1,
		ValidFrom: from, ValidUntil: until, Status: schemas.BatchDisabled}, false)

	for _, b := range []struct {
		id     string
		claims int
	}{{storyPhone, 60}, {storyPct, 45}, {storyPctRaw, 30}, {storyBonus, 25}, {storyLegacy, 12}, {storyNoDef, 8}} {
		for i := range b.claims {
			st.claim(b.id, i, users[st.rng.IntN(len(users))])
		}
	}
	// Recommendations to random users that mostly lead nowhere, one to a
	// batch nobody defined and one batch recommended twice to one user.
	for i := range 30 {
		batch := []string{storyPhone, storyPct, storyBonus, storyNoDef}[i%4]
		st.recommend(batch, users[st.rng.IntN(len(users))], st.at())
	}
	st.recommend(storyPct, "u-01", d11.Add(-time.Hour))
	st.recommend(storyPct, "u-01", d11.Add(80*time.Hour))
	st.lottery(users)
	return st
}

// recommend publishes a recommendation of batch to user at a time.
func (st *analyticsStory) recommend(batch, user string, at time.Time) {
	st.n++
	trigger := fmt.Sprintf("behaviour-%d", st.n)
	st.add(sinktest.Result(st.tb, storyApp, at, schemas.RecommendationMade{
		RecommendationID: schemas.ResultID(schemas.TypeRecommendationMade, storyApp, trigger), UserID: user, BatchID: batch,
		Rank: 1, Score: 1000, Affinity: 500000, ExpectedDiscount: 2, MadeAt: at, RulesRevision: "r-0123456789ab", TriggerEventID: trigger,
	}))
}

// at returns a time on the three days of the campaign, at a random
// millisecond, distinct from every other.
func (st *analyticsStory) at() time.Time {
	st.n++
	return d11.Add(time.Duration(st.rng.Int64N(int64(72*time.Hour/time.Millisecond)))*time.Millisecond + time.Duration(st.n)*time.Microsecond)
}

func (st *analyticsStory) add(env *schemas.Envelope) { st.events = append(st.events, env) }

// define publishes a batch definition (v2 when it has a discount type),
// late or not.
func (st *analyticsStory) define(b schemas.BatchDefined, late bool) {
	var p schemas.Payload = b
	if b.DiscountType != "" {
		p = schemas.BatchDefinedV2(b)
	}
	env, err := schemas.New(fmt.Sprintf("def-%s-%d", b.BatchID, b.Revision), storyApp, d11.Add(-time.Duration(10-b.Revision)*time.Hour), p)
	if err != nil {
		st.tb.Fatal(err)
	}
	if late {
		st.late = append(st.late, env)
		return
	}
	st.add(env)
}

var claimRejections = []string{schemas.RejectOutOfStock, schemas.RejectUserLimit, schemas.RejectRateLimited, schemas.RejectExpired}

// claim decides claim i of user on batch and, when granted, runs the
// coupon through a random lifecycle.
func (st *analyticsStory) claim(batch string, i int, user string) {
	decided := st.at()
	claimID := fmt.Sprintf("claim-%s-%d", batch, i)
	// A third of claims follow a recommendation of the batch; a few come
	// before it (the recommendation did not lead to them).
	switch r := st.rng.IntN(12); {
	case r < 4:
		st.recommend(batch, user, decided.Add(-time.Duration(1+st.rng.IntN(6*3600_000))*time.Millisecond))
	case r < 5:
		st.recommend(batch, user, decided.Add(time.Duration(1+st.rng.IntN(3600_000))*time.Millisecond))
	}
	g := schemas.GrantDecided{ClaimEventID: claimID, BatchID: batch, UserID: user, ClaimedAt: decided.Add(-3 * time.Millisecond), DecidedAt: decided}
	if st.rng.IntN(10) < 3 {
		g.Status, g.Reason = schemas.StatusRejected, claimRejections[st.rng.IntN(len(claimRejections))]
		st.add(sinktest.Grant(st.tb, storyApp, g))
		return
	}
	coupon := fmt.Sprintf("k-%s-%d", batch, i)
	g.Status, g.CouponID, g.GrantSeq = schemas.StatusGranted, coupon, int64(i+1)
	st.add(sinktest.Grant(st.tb, storyApp, g))

	c := &couponLife{st: st, coupon: coupon, user: user, batch: batch, at: decided}
	c.op(schemas.OpGrant, "", "", 0)
	amounts := []int64{0, 3000, 9999, 25000, 129900, 60001}
	amount := func() int64 { return amounts[st.rng.IntN(len(amounts))] }
	switch r := st.rng.IntN(20); {
	case r < 8: // locked and used, the confirm carrying the amount or not
		order := "o-" + coupon
		lockAmount := amount()
		c.op(schemas.OpLock, "", order, lockAmount)
		if st.rng.IntN(2) == 0 {
			c.op(schemas.OpConfirm, "", order, 0)
		} else {
			c.op(schemas.OpConfirm, "", order, amount())
		}
		if st.rng.IntN(4) == 0 {
			c.op(schemas.OpConfirm, schemas.RejectAlreadyUsed, order, 0)
		}
	case r < 11: // locked, cancelled, locked by another order and used
		c.op(schemas.OpLock, "", "o1-"+coupon, amount())
		c.op(schemas.OpCancel, "", "o1-"+coupon, 0)
		c.op(schemas.OpLock, "", "o2-"+coupon, amount())
		c.op(schemas.OpConfirm, "", "o2-"+coupon, 0)
	case r < 13: // locked, released by the timer
		c.op(schemas.OpLock, "", "o-"+coupon, amount())
		c.op(schemas.OpRelease, "", "o-"+coupon, 0)
	case r < 15:
		c.op(schemas.OpExpire, "", "", 0)
	case r < 16: // a stranger's lock refused
		c.op(schemas.OpLock, schemas.RejectNotOwner, "o-x", 100)
	}
}

// couponLife makes the operations on one coupon, each a little after the
// one before.
type couponLife struct {
	st                  *analyticsStory
	coupon, user, batch string
	seq                 int64
	at                  time.Time
}

func (c *couponLife) op(op, reason, order string, amount int64) {
	c.at = c.at.Add(time.Duration(1+c.st.rng.IntN(90*60_000)) * time.Millisecond)
	states := map[string]string{
		schemas.OpGrant: schemas.CouponAvailable, schemas.OpLock: schemas.CouponLocked, schemas.OpConfirm: schemas.CouponUsed,
		schemas.OpCancel: schemas.CouponAvailable, schemas.OpRelease: schemas.CouponAvailable, schemas.OpExpire: schemas.CouponExpired,
	}
	status, state := schemas.OpApplied, states[op]
	if reason != "" {
		status, state = schemas.OpRejected, ""
	} else {
		c.seq++
	}
	sc := schemas.StateChanged{
		ResultID: schemas.ResultID(schemas.TypeCouponStateChanged, storyApp, fmt.Sprintf("%s-%s-%d", c.coupon, op, c.at.UnixMilli())),
		CouponID: c.coupon, UserID: c.user, BatchID: c.batch, Op: op, Status: status, Reason: reason, State: state, Seq: c.seq,
		OrderID: order, OrderAmount: amount, ValidFrom: d11, ExpiresAt: d11.Add(30 * 24 * time.Hour), ChangedAt: c.at,
	}
	c.st.add(sinktest.Result(c.st.tb, storyApp, c.at, sc))
}

// lottery adds the activities: a scheduled draw (its first revision
// arriving late), an instant-win activity, a manual draw with points
// prizes, and an activity nobody joined.
func (st *analyticsStory) lottery(users []string) {
	drawAt := d11.Add(25 * time.Hour)
	commit := func(a schemas.ActivityCommitted, late bool) {
		a.ResultID = schemas.ResultID(schemas.TypeLotteryActivityCommitted, storyApp, a.ActivityID)
		a.SeedHash, a.Prizes, a.Status = "ab12", "[]", "active"
		a.CommittedAt = d11.Add(-2 * time.Hour)
		env := sinktest.Result(st.tb, storyApp, a.CommittedAt, a)
		if late {
			st.late = append(st.late, env)
			return
		}
		st.add(env)
	}
	commit(schemas.ActivityCommitted{ActivityID: storyDraw, Name: "双十一大抽奖", Revision: 2, Kind: schemas.KindDraw,
		JoinFrom: d11.Add(time.Hour + 500*time.Millisecond), JoinUntil: drawAt, DrawAt: &drawAt, PerUserLimit: 1}, false)
	commit(schemas.ActivityCommitted{ActivityID: storyDraw, Name: "draft", Revision: 1, Kind: schemas.KindDraw,
		JoinFrom: d11, JoinUntil: drawAt, PerUserLimit: 1}, true)
	commit(schemas.ActivityCommitted{ActivityID: storyInstant, Name: `=cmd|' /C calc'!A0`, Revision: 1, Kind: schemas.KindInstantWin,
		JoinFrom: d11, JoinUntil: d11.Add(72 * time.Hour), PerUserLimit: 3}, false)
	commit(schemas.ActivityCommitted{ActivityID: storyManual, Name: "Manual draw", Revision: 1, Kind: schemas.KindDraw,
		JoinFrom: d11.Add(2 * time.Hour), JoinUntil: d11.Add(48 * time.Hour), PerUserLimit: 1}, false)
	commit(schemas.ActivityCommitted{ActivityID: storyEmpty, Name: "Nobody came", Revision: 1, Kind: schemas.KindDraw,
		JoinFrom: d11, JoinUntil: d11.Add(48 * time.Hour), PerUserLimit: 1}, false)

	entry := func(activity, user, status, reason, outcome, tier string, at time.Time) {
		id := fmt.Sprintf("join-%s-%s-%d", activity, user, at.UnixMilli())
		st.add(sinktest.Result(st.tb, storyApp, at, schemas.EntryRecorded{
			ResultID: schemas.ResultID(schemas.TypeLotteryEntryRecorded, storyApp, id), EntryEventID: id,
			ActivityID: activity, UserID: user, Status: status, Reason: reason, Outcome: outcome, TierID: tier,
			OccurredAt: at.Add(-time.Millisecond), RecordedAt: at,
		}))
	}
	award := func(activity, user, tier, kind, batch string, points, rank int64, source string, at time.Time) {
		st.add(sinktest.Result(st.tb, storyApp, at, schemas.PrizeAwarded{
			ResultID:   schemas.ResultID(schemas.TypeLotteryPrizeAwarded, storyApp, activity+"/"+user),
			ActivityID: activity, UserID: user, TierID: tier, PrizeKind: kind, BatchID: batch, Points: points,
			Source: source, SourceID: activity, Rank: rank, AwardedAt: at,
		}))
	}
	draw := func(activity, trigger string, participants, winners int64, at time.Time) {
		st.add(sinktest.Result(st.tb, storyApp, at, schemas.DrawCompleted{
			ResultID:   schemas.ResultID(schemas.TypeLotteryDrawCompleted, storyApp, activity),
			ActivityID: activity, Trigger: trigger, Seed: "cd34", SeedHash: "ab12", Participants: participants,
			ParticipantsDigest: "ef56", Winners: winners, Prizes: "[]", DrawnAt: at,
		}))
	}
	// joined returns the time of a join in [from, until).
	joined := func(from, until time.Time) time.Time {
		st.n++
		return from.Add(time.Duration(st.rng.Int64N(int64(until.Sub(from)/time.Millisecond)))*time.Millisecond + time.Duration(st.n)*time.Microsecond)
	}

	// The scheduled draw: a random half of the users join, some twice
	// (limit_reached), some after it closed (ended).
	var joinedDraw []string
	for _, u := range users {
		if st.rng.IntN(2) == 0 {
			continue
		}
		joinedDraw = append(joinedDraw, u)
		entry(storyDraw, u, schemas.EntryAccepted, "", "", "", joined(d11.Add(time.Hour), drawAt))
		if st.rng.IntN(5) == 0 {
			entry(storyDraw, u, schemas.EntryRejected, schemas.RejectLimitReached, "", "", joined(d11.Add(time.Hour), drawAt))
		}
	}
	for i := range 4 {
		entry(storyDraw, users[i], schemas.EntryRejected, schemas.RejectEnded, "", "", joined(drawAt, drawAt.Add(time.Hour)))
	}
	drawnAt := drawAt.Add(1234 * time.Millisecond)
	draw(storyDraw, schemas.TriggerScheduled, int64(len(joinedDraw)), 9, drawnAt)
	st.rng.Shuffle(len(joinedDraw), func(i, j int) { joinedDraw[i], joinedDraw[j] = joinedDraw[j], joinedDraw[i] })
	for i, u := range joinedDraw[:9] {
		tier, kind, batch := "silver", schemas.PrizeGoods, ""
		switch {
		case i == 0:
			tier = "gold"
		case i >= 4:
			tier, kind, batch = "coupon", schemas.PrizeCoupon, storyPhone
		}
		award(storyDraw, u, tier, kind, batch, 0, int64(i+1), "draw", drawnAt)
	}

	// The instant-win activity: every entry rolls; a win is an award.
	tiers := []string{"", "", "", "small", "small", "big"}
	won := map[string]bool{}
	for range 60 {
		u := users[st.rng.IntN(len(users))]
		at := joined(d11, d11.Add(72*time.Hour))
		switch tier := tiers[st.rng.IntN(len(tiers))]; {
		case won[u]:
			entry(storyInstant, u, schemas.EntryRejected, schemas.RejectAlreadyWon, "", "", at)
		case tier == "":
			entry(storyInstant, u, schemas.EntryAccepted, "", schemas.OutcomeLost, "", at)
		default:
			won[u] = true
			entry(storyInstant, u, schemas.EntryAccepted, "", schemas.OutcomeWon, tier, at)
			award(storyInstant, u, tier, schemas.PrizePoints, "", 100, 0, "instant", at.Add(time.Millisecond))
		}
	}

	// The manual draw, triggered before joining closed, with points.
	manualAt := d11.Add(30*time.Hour + 777*time.Millisecond)
	var joinedManual []string
	for _, u := range users[10:30] {
		joinedManual = append(joinedManual, u)
		entry(storyManual, u, schemas.EntryAccepted, "", "", "", joined(d11.Add(2*time.Hour), manualAt))
	}
	entry(storyManual, "late-1", schemas.EntryRejected, schemas.RejectDrawClosed, "", "", manualAt.Add(time.Minute))
	draw(storyManual, schemas.TriggerManual, int64(len(joinedManual)), 5, manualAt)
	for i, u := range joinedManual[:5] {
		award(storyManual, u, "p500", schemas.PrizePoints, "", 500, int64(i+1), "draw", manualAt)
	}
}
