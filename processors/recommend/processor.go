package recommend

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

// Topics, group and ids of the recommendation processor.
const (
	// TopicBehaviour carries the behaviour events, keyed by user.
	TopicBehaviour = "behaviour.events"
	// TopicRecommendations receives the recommendations, keyed by user.
	TopicRecommendations = "recommendations"
	// StageName is the stage's name in `promoflow run --only`.
	StageName = "recommend"
	// Group is the processor's consumer group.
	Group = "promoflow-recommend"
	// ResultKind separates recommendation ids from other results':
	// ResultID(ResultKind, app, trigger event_id + "/" + rank).
	ResultKind = "recommendation"
	// GrantKind is the kind of an auto-grant's event id (GrantEventID).
	GrantKind = "recommend.grant"
	// AppID is the app_id of the auto-grants the processor publishes.
	AppID = "promoflow-recommend"
)

// DefaultStockCacheTTL is how long the batches' remaining stock is reused
// before it is read again.
const DefaultStockCacheTTL = time.Second

// maxHeldRounds bounds the round trips spent skipping batches users already
// hold to their limit.
const maxHeldRounds = 4

// RulesSource gives the rules in force. A Watcher reloads them from a file;
// StaticRules never changes.
type RulesSource interface {
	Rules() *Rules
}

type staticRules struct{ r *Rules }

func (s staticRules) Rules() *Rules { return s.r }

// StaticRules returns a RulesSource that always gives r.
func StaticRules(r *Rules) RulesSource { return staticRules{r} }

// Stats counts what a Processor did.
type Stats struct {
	// Events is behaviour events handled; Counted those added to a profile
	// for the first time; Duplicates those added before.
	Events, Counted, Duplicates int64
	// Skipped counts the events the rules did not count, by reason
	// (SkipAction, SkipOld, SkipRating, SkipFilter).
	Skipped map[string]int64
	// Emitted, Same and Held count the decisions on users' top N (new and
	// remembered); Granted the auto-grants published.
	Emitted, Same, Held, Granted int64
}

// Processor keeps users' behaviour profiles and recommends each user the
// coupon batches worth the most to them. It implements stream.Handler.
type Processor struct {
	store   *Store
	coupons *coupon.Store
	batches *coupon.Batches
	rules   RulesSource
	now     func() time.Time

	stockTTL time.Duration
	stockMu  sync.Mutex
	granted  map[string]int64
	stockAt  time.Time

	events, counted, dups, emitted, same, held, grants atomic.Int64
	skipMu                                             sync.Mutex
	skipped                                            map[string]int64
}

// Option configures a Processor.
type Option func(*Processor)

// WithStockCacheTTL sets how long the batches' granted counts are reused
// for ranking, overriding the default of 1s. Ranking on a count this old
// is harmless: grants are decided by the coupon processor against the
// real stock.
func WithStockCacheTTL(d time.Duration) Option { return func(p *Processor) { p.stockTTL = d } }

// New returns a Processor keeping profiles in store, reading stock and
// users' holdings through the coupon processor's store (nil: every batch
// counts as untouched), batch definitions from the cache batches, and the
// rules from rules.
func New(store *Store, coupons *coupon.Store, batches *coupon.Batches, rules RulesSource, opts ...Option) *Processor {
	p := &Processor{store: store, coupons: coupons, batches: batches, rules: rules, now: time.Now,
		stockTTL: DefaultStockCacheTTL, skipped: map[string]int64{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Stage declares the processor for the runtime and the topology checks.
func (p *Processor) Stage() stream.Stage {
	return stream.Stage{
		Name:   StageName,
		Group:  Group,
		Reads:  []string{TopicBehaviour},
		Writes: []string{TopicRecommendations, coupon.TopicClaims},
		Views:  []string{coupon.TopicAdmin},
		Handles: []string{
			schemas.TypeVersion{Type: schemas.TypeBehaviourEventRecorded, Version: 1}.String(),
			schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 1}.String(),
			schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 2}.String(),
		},
		Handler: p,
		Fenced:  true,
	}
}

// Stats returns a snapshot of the counters.
func (p *Processor) Stats() Stats {
	p.skipMu.Lock()
	skipped := make(map[string]int64, len(p.skipped))
	for k, v := range p.skipped {
		skipped[k] = v
	}
	p.skipMu.Unlock()
	return Stats{Events: p.events.Load(), Counted: p.counted.Load(), Duplicates: p.dups.Load(), Skipped: skipped,
		Emitted: p.emitted.Load(), Same: p.same.Load(), Held: p.held.Load(), Granted: p.grants.Load()}
}

// DecodeEvent decodes a behaviour.event.recorded v1 envelope. Every error
// wraps schemas.ErrInvalid.
func DecodeEvent(env *schemas.Envelope) (schemas.BehaviourRecorded, error) {
	var be schemas.BehaviourRecorded
	if env.Type != schemas.TypeBehaviourEventRecorded || env.Version != 1 {
		return be, fmt.Errorf("%s v%d is not a behaviour event: %w", env.Type, env.Version, schemas.ErrInvalid)
	}
	if err := env.DecodePayload(&be); err != nil {
		return be, err
	}
	return be, nil
}

// Handle adds a partition's behaviour events to their users' profiles and
// decides each touched user's top N: one Redis round trip for the profiles
// (profile.lua), one for the batches' stock (cached), one or a few for the
// users' holdings of the best batches, one for the decisions (top.lua). A
// user's top N is emitted when it changed, as one recommendation.made per
// rank, plus the coupon.issue.requested of an auto-grant.
func (p *Processor) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	rules := p.rules.Rules()
	now := p.now()
	byUser := map[string]int{}
	var users []UserEvents
	var triggers []*schemas.Envelope // each user's last counted event
	for _, ev := range b.Events {
		be, err := DecodeEvent(ev.Env)
		if err != nil {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
			continue
		}
		p.events.Add(1)
		w, skip := rules.Weigh(ev.Env.AppID, ev.Env.OccurredAt, &be, now)
		if skip != "" {
			p.skip(skip)
			res.Decide("recommend.event", "skipped", skip)
			continue
		}
		i, ok := byUser[be.UserID]
		if !ok {
			i = len(users)
			byUser[be.UserID] = i
			users = append(users, UserEvents{UserID: be.UserID})
			triggers = append(triggers, nil)
		}
		users[i].Events = append(users[i].Events, ProfileEvent{
			ID: ev.Env.AppID + "|" + ev.Env.EventID, At: ev.Env.OccurredAt, Weight: w, Fields: rules.Fields(&be),
		})
		triggers[i] = ev.Env
	}
	if len(users) == 0 {
		return res, nil
	}
	applied, err := p.store.Apply(ctx, b.FenceField(), b.Epoch, now, rules.ProfileParams(), users)
	if err != nil {
		return stream.Result{}, err
	}
	decisions := make([]Decision, len(users))
	var fresh []int // users whose trigger has no remembered decision
	for i, a := range applied {
		for _, d := range a.Dup {
			if d {
				p.dups.Add(1)
			} else {
				p.counted.Add(1)
			}
		}
		if a.Remembered == "" {
			fresh = append(fresh, i)
			continue
		}
		if decisions[i], err = ParseDecision(a.Remembered); err != nil {
			return stream.Result{}, fmt.Errorf("user %s: %w", users[i].UserID, err)
		}
		decisions[i].Replayed = true
	}
	if len(fresh) > 0 {
		tops, err := p.rank(ctx, rules, now, fresh, users, applied, triggers)
		if err != nil {
			return stream.Result{}, err
		}
		// Only a top N that would be emitted goes to the decision step,
		// which decides again atomically and remembers it. One that did
		// not change, or changed within the min interval, emits nothing
		// and is not remembered: a redelivery decides it again, and emits
		// then only if the user's top N has changed since.
		var commit []TopInput
		var at []int
		for j, i := range fresh {
			a := applied[i]
			switch sig := tops[j].Set.Signature(); {
			case sig == a.Kept:
				decisions[i] = Decision{Kind: DecisionSame}
			case a.HasKept && now.Sub(a.KeptAt) < rules.MinInterval:
				decisions[i] = Decision{Kind: DecisionHeld}
			default:
				commit = append(commit, tops[j])
				at = append(at, i)
			}
		}
		ds, err := p.store.Commit(ctx, b.FenceField(), b.Epoch, now, TopParams{MinInterval: rules.MinInterval, TTL: rules.Window}, commit)
		if err != nil {
			return stream.Result{}, err
		}
		for j, i := range at {
			decisions[i] = ds[j]
		}
	}
	for _, d := range decisions {
		// The kinds are a small fixed set: same, held, emitted, ...
		res.Decide("recommend.top", d.Kind, "")
		switch d.Kind {
		case DecisionSame:
			p.same.Add(1)
			continue
		case DecisionHeld:
			p.held.Add(1)
			continue
		}
		p.emitted.Add(1)
		recs, err := d.Set.Records()
		if err != nil {
			return stream.Result{}, err
		}
		for _, r := range recs {
			if r.Topic == coupon.TopicClaims {
				p.grants.Add(1)
				res.Decide("recommend.auto_grant", "requested", "")
			}
		}
		res.Out = append(res.Out, recs...)
	}
	return res, nil
}

func (p *Processor) skip(reason string) {
	p.skipMu.Lock()
	p.skipped[reason]++
	p.skipMu.Unlock()
}

// rank makes the new top N of each user of fresh (indexes into users).
func (p *Processor) rank(ctx context.Context, rules *Rules, now time.Time, fresh []int, users []UserEvents, applied []Applied, triggers []*schemas.Envelope) ([]TopInput, error) {
	offers, err := p.offers(ctx, rules, now)
	if err != nil {
		return nil, err
	}
	defs := make(map[string]*schemas.BatchDefined, len(offers))
	for _, o := range offers {
		defs[o.Def.BatchID] = o.Def
	}
	ranked := make([][]Ranked, len(fresh))
	ids := make([]string, len(fresh))
	for j, i := range fresh {
		prof := rules.ProfileAt(applied[i].Entries, now)
		ranked[j] = rules.Rank(&prof, offers)
		ids[j] = users[i].UserID
	}
	kept, err := p.unheld(ctx, rules.TopN, ids, ranked, defs)
	if err != nil {
		return nil, err
	}
	tops := make([]TopInput, len(fresh))
	for j, i := range fresh {
		env := triggers[i]
		tops[j] = TopInput{UserID: ids[j], Trigger: users[i].Trigger(), Set: rules.NewSet(ids[j], env.AppID, env.EventID, now, kept[j])}
	}
	return tops, nil
}

// offers returns the eligible batches as offers, with their stock left.
func (p *Processor) offers(ctx context.Context, rules *Rules, now time.Time) ([]Offer, error) {
	if p.batches == nil {
		return nil, nil
	}
	var defs []*schemas.BatchDefined
	for _, def := range p.batches.All() {
		if Eligible(def, now) {
			defs = append(defs, def)
		}
	}
	granted, err := p.grantedCounts(ctx, defs, now)
	if err != nil {
		return nil, err
	}
	remaining := make([]int64, len(defs))
	for i, def := range defs {
		remaining[i] = def.TotalStock - granted[i]
	}
	return rules.Offers(defs, remaining, now), nil
}

// grantedCounts returns the granted count of each batch of defs, read again
// when the cached counts are older than the stock cache TTL or miss one.
func (p *Processor) grantedCounts(ctx context.Context, defs []*schemas.BatchDefined, now time.Time) ([]int64, error) {
	out := make([]int64, len(defs))
	if p.coupons == nil || len(defs) == 0 {
		return out, nil
	}
	p.stockMu.Lock()
	defer p.stockMu.Unlock()
	fresh := p.granted != nil && now.Sub(p.stockAt) < p.stockTTL
	for i, def := range defs {
		n, ok := p.granted[def.BatchID]
		if !ok {
			fresh = false
			break
		}
		out[i] = n
	}
	if fresh {
		return out, nil
	}
	ids := make([]string, len(defs))
	for i, def := range defs {
		ids[i] = def.BatchID
	}
	got, err := p.coupons.GrantedMany(ctx, ids)
	if err != nil {
		return nil, err
	}
	p.granted = make(map[string]int64, len(ids))
	for i, id := range ids {
		p.granted[id] = got[i]
	}
	p.stockAt = now
	return got, nil
}

// unheld returns, for each user, the first n batches of the user's ranking
// that the user does not already hold to the batch's per-user limit,
// reading the holdings of all users at once, a few rounds at most.
func (p *Processor) unheld(ctx context.Context, n int, users []string, ranked [][]Ranked, defs map[string]*schemas.BatchDefined) ([][]Ranked, error) {
	out := make([][]Ranked, len(users))
	if p.coupons == nil {
		for i, r := range ranked {
			out[i] = r[:min(n, len(r))]
		}
		return out, nil
	}
	next := make([]int, len(users))
	for range maxHeldRounds {
		var pairs []coupon.BatchUser
		var owner, pos []int
		for i, r := range ranked {
			for want := n - len(out[i]); want > 0 && next[i] < len(r); want-- {
				pairs = append(pairs, coupon.BatchUser{BatchID: r[next[i]].BatchID, UserID: users[i]})
				owner, pos = append(owner, i), append(pos, next[i])
				next[i]++
			}
		}
		if len(pairs) == 0 {
			break
		}
		held, err := p.coupons.UserHeld(ctx, pairs)
		if err != nil {
			return nil, err
		}
		for k, h := range held {
			i := owner[k]
			if h < defs[pairs[k].BatchID].PerUserLimit {
				out[i] = append(out[i], ranked[i][pos[k]])
			}
		}
	}
	return out, nil
}
