package lottery

import (
	"context"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/lottery/fair"
	"github.com/promoflow/promoflow/schemas"
)

// Topics and groups of the lottery processor.
const (
	TopicAdmin    = "lottery.admin"
	TopicRequests = "lottery.requests"
	TopicResults  = "lottery.results"
	// TopicCouponClaims receives a claim for every coupon prize won; the
	// coupon processor grants it against the batch's stock.
	TopicCouponClaims = "coupon.claims"
	Group             = "promoflow-lottery"
	// AdminGroup commits seeds and checks the admin topic once for the
	// whole deployment.
	AdminGroup = "promoflow-lottery-admin"
	// AppID is the app_id of the results the processor originates (seed
	// commitments, draws, awards, coupon claims of prizes).
	AppID = "promoflow-lottery"
)

// Result kinds, separating the result ids of each result type.
const (
	kindEntry    = "lottery.entry"
	kindAward    = "lottery.award"
	kindDraw     = "lottery.draw"
	kindActivity = "lottery.activity"
	kindMatch    = "gift.match"
	kindMember   = "gift.member"
)

// Processor decides participations, draws and gift-exchange requests, and
// fires scheduled draws. It implements stream.Handler and stream.Ticker.
type Processor struct {
	store *Store
	acts  *Activities
	now   func() time.Time

	mu        sync.Mutex
	published map[string]bool // scheduled draws known to be published
	pending   []pendingDraw   // drawn by the last Tick, to mark published

	// afterDraw, when set (tests), runs after a draw is committed in Redis
	// and before its results are returned: where a crash hurts most.
	afterDraw func()
}

type pendingDraw struct {
	def   *schemas.ActivityDefined
	owner stream.Owned
}

// New returns a Processor deciding against store with the activity cache.
func New(store *Store, acts *Activities) *Processor {
	return &Processor{store: store, acts: acts, now: time.Now, published: map[string]bool{}}
}

// Stage declares the processor for the runtime and the topology checks.
func (p *Processor) Stage() stream.Stage {
	return stream.Stage{
		Name:   "lottery",
		Group:  Group,
		Reads:  []string{TopicRequests},
		Writes: []string{TopicResults, TopicCouponClaims},
		Views:  []string{TopicAdmin},
		Handles: []string{
			tv(schemas.TypeLotteryParticipationRequested), tv(schemas.TypeLotteryDrawRequested),
			tv(schemas.TypeGiftMemberUpdated), tv(schemas.TypeGiftSendRequested), tv(schemas.TypeLotteryActivityDefined),
		},
		Handler: p,
		Fenced:  true,
	}
}

func tv(typ string) string { return schemas.TypeVersion{Type: typ, Version: 1}.String() }

// request is one decoded input event.
type request struct {
	ev       stream.Event
	activity string
	user     string
	member   *schemas.MemberUpdated
}

// Handle decides a partition's requests. Requests of one activity are
// decided in order; runs of the same kind go to Redis together.
func (p *Processor) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	byActivity := map[string][]request{}
	var order []string
	for _, ev := range b.Events {
		r, err := decodeRequest(ev)
		if err != nil {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
			continue
		}
		if _, ok := byActivity[r.activity]; !ok {
			order = append(order, r.activity)
		}
		byActivity[r.activity] = append(byActivity[r.activity], r)
	}
	for _, a := range order {
		reqs := byActivity[a]
		for lo := 0; lo < len(reqs); {
			hi := lo + 1
			for hi < len(reqs) && reqs[hi].ev.Env.Type == reqs[lo].ev.Env.Type {
				hi++
			}
			if err := p.handleRun(ctx, b, reqs[lo:hi], &res); err != nil {
				return stream.Result{}, err
			}
			lo = hi
		}
	}
	return res, nil
}

func decodeRequest(ev stream.Event) (request, error) {
	r := request{ev: ev}
	switch ev.Env.Type {
	case schemas.TypeLotteryParticipationRequested:
		var v schemas.ParticipationRequested
		if err := ev.Env.DecodePayload(&v); err != nil {
			return r, err
		}
		r.activity, r.user = v.ActivityID, v.UserID
	case schemas.TypeLotteryDrawRequested:
		var v schemas.DrawRequested
		if err := ev.Env.DecodePayload(&v); err != nil {
			return r, err
		}
		r.activity = v.ActivityID
	case schemas.TypeGiftMemberUpdated:
		var v schemas.MemberUpdated
		if err := ev.Env.DecodePayload(&v); err != nil {
			return r, err
		}
		r.activity, r.user, r.member = v.ActivityID, v.UserID, &v
	case schemas.TypeGiftSendRequested:
		var v schemas.SendRequested
		if err := ev.Env.DecodePayload(&v); err != nil {
			return r, err
		}
		r.activity, r.user = v.ActivityID, v.UserID
	default:
		return r, fmt.Errorf("the lottery processor does not handle %s: %w", ev.Env.Type, schemas.ErrInvalid)
	}
	return r, nil
}

// handleRun decides a run of requests of one activity and one type.
func (p *Processor) handleRun(ctx context.Context, b *stream.Batch, run []request, res *stream.Result) error {
	def := p.acts.Get(run[0].activity)
	switch run[0].ev.Env.Type {
	case schemas.TypeLotteryParticipationRequested:
		return p.enter(ctx, b, def, run, res)
	case schemas.TypeLotteryDrawRequested:
		for _, r := range run {
			if err := p.drawRequested(ctx, b, def, r, res); err != nil {
				return err
			}
		}
		return nil
	case schemas.TypeGiftMemberUpdated:
		return p.members(ctx, b, def, run, res)
	default:
		return p.sends(ctx, b, def, run, res)
	}
}

// placeholder stands in for an unknown activity so that its rejections are
// remembered like any other decision.
func (p *Processor) placeholder(id string) *schemas.ActivityDefined {
	now := p.now()
	return &schemas.ActivityDefined{ActivityID: id, Kind: schemas.KindDraw, JoinFrom: now, JoinUntil: now, PerUserLimit: 1}
}

func (p *Processor) enter(ctx context.Context, b *stream.Batch, def *schemas.ActivityDefined, run []request, res *stream.Result) error {
	known := def != nil
	if !known {
		def = p.placeholder(run[0].activity)
	}
	var seed []byte
	if known && def.Kind == schemas.KindInstantWin {
		var err error
		if seed, err = p.store.Seed(ctx, def.ActivityID); err != nil {
			return err
		}
	}
	in := make([]EntryInput, len(run))
	for i, r := range run {
		env := r.ev.Env
		in[i] = EntryInput{AppID: env.AppID, EventID: env.EventID, UserID: r.user, Roll: -1}
		if known {
			in[i].Precheck = PrecheckEntry(def, env.OccurredAt)
		} else {
			in[i].Precheck = schemas.RejectUnknownActivity
		}
		if seed != nil && in[i].Precheck == "" {
			in[i].Roll = fair.Roll(seed, def.ActivityID, env.AppID, env.EventID)
		}
	}
	outs, err := p.store.Enter(ctx, def, b.FenceField(), b.Epoch, p.now(), in)
	if err != nil {
		return err
	}
	for i, o := range outs {
		env := run[i].ev.Env
		e := schemas.EntryRecorded{
			ResultID:     schemas.ResultID(kindEntry, env.AppID, env.EventID),
			EntryEventID: env.EventID,
			ActivityID:   def.ActivityID,
			UserID:       run[i].user,
			Status:       schemas.EntryAccepted,
			Reason:       o.Reason,
			Roll:         -1,
			OccurredAt:   env.OccurredAt,
			RecordedAt:   o.At,
		}
		if !o.Accepted {
			e.Status = schemas.EntryRejected
		}
		if o.Tried {
			e.Outcome, e.TierID, e.Roll, e.Odds = schemas.OutcomeLost, o.Tier, in[i].Roll, o.Odds
			if o.Tier != "" {
				e.Outcome = schemas.OutcomeWon
			}
		}
		if err := appendRecord(res, TopicResults, e.ResultID, env.AppID, o.At, e); err != nil {
			return err
		}
		res.Decide(DecisionEntry, e.Status, e.Reason)
		if o.Tried {
			res.Decide(DecisionInstant, e.Outcome, "")
		}
		if e.Outcome == schemas.OutcomeWon {
			if err := p.award(res, def, e.UserID, e.TierID, "instant", e.ResultID, 0, o.At); err != nil {
				return err
			}
		}
	}
	return nil
}

// Decision kinds the processor counts in promoflow_decisions_total.
const (
	// DecisionEntry is a participation's decision: accepted, or rejected
	// with the reason.
	DecisionEntry = "lottery.entry"
	// DecisionInstant is an instant-win roll of an accepted entry: won or
	// lost.
	DecisionInstant = "lottery.instant"
	// DecisionDraw is a draw's results published, by trigger (manual,
	// scheduled); a draw published again after a crash counts again.
	DecisionDraw = "lottery.draw"
	// DecisionAward is a prize awarded, by source (draw, instant).
	DecisionAward = "lottery.award"
	// DecisionMatch is a gift send's decision: matched, or rejected with
	// the reason.
	DecisionMatch = "gift.match"
	// DecisionMember is a member change of a gift exchange recorded, by
	// the member's status.
	DecisionMember = "gift.member"
)

// award appends a prize and, for a coupon prize, the claim that grants it.
func (p *Processor) award(res *stream.Result, def *schemas.ActivityDefined, user, tier, source, sourceID string, rank int64, at time.Time) error {
	t := def.Tier(tier)
	if t == nil {
		return fmt.Errorf("awarding tier %s of activity %s: no such tier in revision %d", tier, def.ActivityID, def.Revision)
	}
	a := schemas.PrizeAwarded{
		ResultID:   schemas.ResultID(kindAward, def.ActivityID, user),
		ActivityID: def.ActivityID,
		UserID:     user,
		TierID:     tier,
		PrizeKind:  t.Kind,
		BatchID:    t.BatchID,
		Points:     t.Points,
		Source:     source,
		SourceID:   sourceID,
		Rank:       rank,
		AwardedAt:  at,
	}
	if err := appendRecord(res, TopicResults, a.ResultID, AppID, at, a); err != nil {
		return err
	}
	res.Decide(DecisionAward, source, "")
	if t.Kind == schemas.PrizeCoupon {
		// The coupon processor remembers its decision by this event id, so
		// re-publishing the award never grants twice.
		c := schemas.ClaimRequested{BatchID: t.BatchID, UserID: user, Channel: "lottery"}
		if err := appendRecord(res, TopicCouponClaims, "lottery-"+a.ResultID, AppID, at, c); err != nil {
			return err
		}
	}
	return nil
}

func (p *Processor) drawRequested(ctx context.Context, b *stream.Batch, def *schemas.ActivityDefined, r request, res *stream.Result) error {
	var reason, detail string
	switch {
	case def == nil:
		reason, detail = schemas.RejectUnknownActivity, "no definition of activity "+r.activity
	case def.Kind != schemas.KindDraw:
		reason, detail = schemas.RejectWrongKind, fmt.Sprintf("activity %s is %s, not a draw", r.activity, def.Kind)
	}
	if reason != "" {
		res.Dead = append(res.Dead, stream.DeadLetter{Record: r.ev.Record, Reason: reason, Detail: detail})
		return nil
	}
	rec, err := p.store.Draw(ctx, def, b.FenceField(), b.Epoch, schemas.TriggerManual, r.ev.Env.EventID, p.now())
	if err != nil {
		return err
	}
	if p.afterDraw != nil {
		p.afterDraw()
	}
	return p.drawResults(ctx, res, def, rec)
}

// drawResults appends a committed draw's records: the draw (revealing the
// seed), then one award per winner.
func (p *Processor) drawResults(ctx context.Context, res *stream.Result, def *schemas.ActivityDefined, rec *DrawRecord) error {
	seed, err := p.store.Seed(ctx, def.ActivityID)
	if err != nil {
		return err
	}
	at := time.UnixMilli(rec.DrawnAtMs).UTC()
	d := schemas.DrawCompleted{
		ResultID:           schemas.ResultID(kindDraw, "", def.ActivityID),
		ActivityID:         def.ActivityID,
		Trigger:            rec.Trigger,
		DrawEventID:        rec.EventID,
		Seed:               hex.EncodeToString(seed),
		SeedHash:           fair.SeedHash(seed),
		Participants:       rec.Participants,
		ParticipantsDigest: rec.Digest,
		Winners:            int64(len(rec.Awards)),
		Prizes:             rec.Prizes,
		DrawnAt:            at,
	}
	if err := appendRecord(res, TopicResults, d.ResultID, AppID, at, d); err != nil {
		return err
	}
	res.Decide(DecisionDraw, rec.Trigger, "")
	res.Out = growRecords(res.Out, len(rec.Awards))
	for _, a := range rec.Awards {
		if err := p.award(res, def, a.UserID, a.TierID, "draw", d.ResultID, a.Rank, at); err != nil {
			return err
		}
	}
	return nil
}

func growRecords(s []*kgo.Record, n int) []*kgo.Record {
	if cap(s)-len(s) < n {
		t := make([]*kgo.Record, len(s), len(s)+n)
		copy(t, s)
		return t
	}
	return s
}

// appendRecord encodes p as the result id's envelope and appends it.
func appendRecord(res *stream.Result, topic, id, app string, at time.Time, p schemas.Payload) error {
	rec, err := stream.NewRecord(topic, id, app, at, p)
	if err != nil {
		return err
	}
	res.Out = append(res.Out, rec)
	return nil
}

// Tick fires the scheduled draws that are due on the partitions this member
// owns. An activity's draw belongs to the owner of the partition its id
// hashes to, so the timer moves with ownership, and the draw step in Redis
// is fenced and happens once: a repeat returns the committed record.
func (p *Processor) Tick(ctx context.Context, now time.Time, owned []stream.Owned) (stream.Result, error) {
	var res stream.Result
	mine := map[int32]stream.Owned{}
	var n int32
	for _, o := range owned {
		if o.Topic == TopicRequests {
			mine[o.Partition], n = o, o.Partitions
		}
	}
	if len(mine) == 0 {
		return res, nil
	}
	part := kgo.StickyKeyPartitioner(nil).ForTopic(TopicRequests)
	p.mu.Lock()
	p.pending = p.pending[:0]
	p.mu.Unlock()
	for _, def := range p.acts.DueDraws(now) {
		p.mu.Lock()
		done := p.published[def.ActivityID]
		p.mu.Unlock()
		if done {
			continue
		}
		o, ok := mine[int32(part.Partition(&kgo.Record{Key: []byte(def.ActivityID)}, int(n)))]
		if !ok {
			continue
		}
		if !now.Before(p.store.expireAt(def).Add(-min(time.Hour, p.store.ttl/4))) {
			// The activity's state is gone (or about to go) from Redis: a
			// draw now would see no participants and overwrite the real
			// one. Past its TTL an activity is history.
			p.mu.Lock()
			p.published[def.ActivityID] = true
			p.mu.Unlock()
			continue
		}
		_, published, err := p.store.DrawState(ctx, def.ActivityID)
		if err != nil {
			return stream.Result{}, err
		}
		if published {
			p.mu.Lock()
			p.published[def.ActivityID] = true
			p.mu.Unlock()
			continue
		}
		rec, err := p.store.Draw(ctx, def, o.FenceField(), o.Epoch, schemas.TriggerScheduled, "", now)
		if err != nil {
			return stream.Result{}, err
		}
		if p.afterDraw != nil {
			p.afterDraw()
		}
		if err := p.drawResults(ctx, &res, def, rec); err != nil {
			return stream.Result{}, err
		}
		p.mu.Lock()
		p.pending = append(p.pending, pendingDraw{def, o})
		p.mu.Unlock()
	}
	return res, nil
}

// TickDone marks the draws of the last Tick published once Kafka has
// acknowledged their results.
func (p *Processor) TickDone(ctx context.Context, _ []stream.Owned, _ stream.Result) {
	p.mu.Lock()
	pending := append([]pendingDraw(nil), p.pending...)
	p.mu.Unlock()
	for _, d := range pending {
		// If this fails the next owner publishes the same records again,
		// which the sinks collapse.
		if err := p.store.MarkPublished(ctx, d.def, d.owner.FenceField(), d.owner.Epoch); err == nil {
			p.mu.Lock()
			p.published[d.def.ActivityID] = true
			p.mu.Unlock()
		}
	}
}
