package coupon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Topics and group of the coupon processor.
const (
	TopicAdmin  = "coupon.admin"
	TopicClaims = "coupon.claims"
	TopicGrants = "coupon.grants"
	// TopicOrders carries the lock, confirm and cancel requests of orders.
	TopicOrders = "coupon.orders"
	// TopicStates receives the operation record of every coupon.
	TopicStates = "coupon.states"
	// TopicNotifications receives expiry reminders.
	TopicNotifications = "notifications"
	Group              = "promoflow-coupon"
	// AdminGroup checks the admin topic once for the whole deployment.
	AdminGroup = "promoflow-coupon-admin"
	// ResultKind separates coupon grant result ids from other processors'.
	ResultKind = "coupon.grant"
	// AppID is the app_id of the records the processor originates (timer
	// operations, reminders).
	AppID = "promoflow-coupon"
	// TemplateExpiry is the notification template of expiry reminders.
	TemplateExpiry = "coupon_expiry"
	// DefaultLockTimeout is how long a lock holds by default before the
	// timer may release it.
	DefaultLockTimeout = 15 * time.Minute
)

// Result kinds of the lifecycle's records (schemas.ResultID's kind).
const (
	// KindOp is the kind of an order's request's record: ResultID(KindOp, app, event).
	KindOp = "coupon.op"
	// KindGranted is the kind of a grant's record on coupon.states:
	// ResultID(KindGranted, app, claim event).
	KindGranted = "coupon.granted"
	// KindTimer is the kind of a timer's release or expiry:
	// ResultID(KindTimer, op, coupon+"/"+seq).
	KindTimer = "coupon.timer"
	// KindReminder is the kind of a reminder (its notification_id):
	// ResultID(KindReminder, user, batch+"/"+day).
	KindReminder = "coupon.reminder"
)

// Processor decides claims and issues, runs the coupons' lifecycle (lock,
// confirm, cancel) and fires its timers (lock timeouts, expiry,
// reminders). It implements stream.Handler, stream.Ticker and
// stream.TickDoner.
type Processor struct {
	store       *Store
	batches     *Batches
	now         func() time.Time
	lockTimeout time.Duration
	perUser     RateLimit
	perApp      RateLimit
	exempt      map[string]bool

	mu      sync.Mutex
	pending []Timer // fired by the last Tick, to unschedule once published
}

// Option configures a Processor.
type Option func(*Processor)

// WithLockTimeout sets how long a lock holds before the timer releases it
// (unless confirmed or cancelled), overriding the default of 15m.
func WithLockTimeout(d time.Duration) Option { return func(p *Processor) { p.lockTimeout = d } }

// WithRateLimits sets the token buckets of self-claims per user and per
// app, overriding the default of none (a zero RateLimit is off). Issues are
// never limited.
func WithRateLimits(perUser, perApp RateLimit) Option {
	return func(p *Processor) { p.perUser, p.perApp = perUser, perApp }
}

// WithRateLimitExempt exempts the claims published by these apps from the
// rate limits (e.g. the lottery's claims of prizes won), overriding the
// default of none.
func WithRateLimitExempt(apps ...string) Option {
	return func(p *Processor) {
		for _, a := range apps {
			p.exempt[a] = true
		}
	}
}

// New returns a Processor deciding against store with the batch cache.
func New(store *Store, batches *Batches, opts ...Option) *Processor {
	p := &Processor{store: store, batches: batches, now: time.Now, lockTimeout: DefaultLockTimeout, exempt: map[string]bool{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Stage declares the processor for the runtime and the topology checks.
func (p *Processor) Stage() stream.Stage {
	return stream.Stage{
		Name:   "coupon",
		Group:  Group,
		Reads:  []string{TopicClaims, TopicOrders},
		Writes: []string{TopicGrants, TopicStates, TopicNotifications},
		Views:  []string{TopicAdmin},
		Handles: []string{
			tv(schemas.TypeCouponClaimRequested, 1),
			tv(schemas.TypeCouponIssueRequested, 1),
			tv(schemas.TypeCouponLockRequested, 1),
			tv(schemas.TypeCouponConfirmRequested, 1),
			tv(schemas.TypeCouponCancelRequested, 1),
			tv(schemas.TypeCouponBatchDefined, 1),
			tv(schemas.TypeCouponBatchDefined, 2),
		},
		Handler: p,
		Fenced:  true,
	}
}

func tv(typ string, v int) string { return schemas.TypeVersion{Type: typ, Version: v}.String() }

// Handle decides a partition's records in order: claims and issues on
// coupon.claims, lock/confirm/cancel requests on coupon.orders.
func (p *Processor) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	if b.Topic == TopicOrders {
		return p.handleOrders(ctx, b)
	}
	return p.handleClaims(ctx, b)
}

// handleClaims decides claims and issues with one Redis round trip for the
// rate limits (when on), one for the decisions, and one to register the
// granted coupons. It returns one coupon.grant.decided record per claim
// and a coupon.state.changed (op grant) per coupon granted.
func (p *Processor) handleClaims(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	in := make([]ClaimInput, 0, len(b.Events))
	evs := make([]stream.Event, 0, len(b.Events))
	claims := make([]schemas.ClaimRequested, 0, len(b.Events))
	limited := make([]bool, 0, len(b.Events)) // subject to the rate limits
	for _, ev := range b.Events {
		var c schemas.ClaimRequested
		var err error
		self := false
		switch ev.Env.Type {
		case schemas.TypeCouponClaimRequested:
			err = ev.Env.DecodePayload(&c)
			self = !p.exempt[ev.Env.AppID]
		case schemas.TypeCouponIssueRequested:
			var is schemas.IssueRequested
			err = ev.Env.DecodePayload(&is)
			c = schemas.ClaimRequested{BatchID: is.BatchID, UserID: is.UserID, Channel: "issue"}
		default:
			err = fmt.Errorf("%s is not a claim or an issue: %w", ev.Env.Type, schemas.ErrInvalid)
		}
		if err != nil {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
			continue
		}
		def := p.batches.Get(c.BatchID)
		in = append(in, ClaimInput{
			AppID: ev.Env.AppID, EventID: ev.Env.EventID, BatchID: c.BatchID, UserID: c.UserID,
			Precheck: Precheck(def, ev.Env.OccurredAt), Def: def,
		})
		evs = append(evs, ev)
		claims = append(claims, c)
		limited = append(limited, self)
	}
	now := p.now()
	if err := p.rateLimit(ctx, now, in, limited); err != nil {
		return stream.Result{}, err
	}
	outcomes, err := p.store.Claim(ctx, b.FenceField(), b.Epoch, now, in)
	if err != nil {
		return stream.Result{}, err
	}
	var grants []Grant
	var granted []int
	for i, o := range outcomes {
		// A grant remembered from a batch no longer cached cannot be
		// registered (its window is unknown); it never happens while the
		// cache holds every batch, as the compacted admin topic ensures.
		if !o.Granted || in[i].Def == nil {
			continue
		}
		g := Grant{UserID: in[i].UserID, CouponID: schemas.ResultID(ResultKind, in[i].AppID, in[i].EventID), BatchID: in[i].BatchID, At: o.At}
		g.From, g.Until = in[i].Def.CouponWindow(o.At)
		if due, ok := ReminderDue(g.Until, in[i].Def.RemindDaysBefore); ok {
			g.RemindAt = due
		}
		grants = append(grants, g)
		granted = append(granted, i)
	}
	regs, err := p.store.Register(ctx, b.FenceField(), b.Epoch, now, grants)
	if err != nil {
		return stream.Result{}, err
	}
	res.Out = make([]*kgo.Record, 0, len(outcomes)+len(grants))
	for i, o := range outcomes {
		rec, err := GrantRecord(evs[i].Env, claims[i], o)
		if err != nil {
			return stream.Result{}, err
		}
		res.Out = append(res.Out, rec)
		res.Decide(DecisionGrant, grantStatus(o), o.Reason)
	}
	for j, i := range granted {
		env := evs[i].Env
		id := schemas.ResultID(KindGranted, env.AppID, env.EventID)
		rec, err := StateRecord(id, env.AppID, grants[j].UserID, grants[j].CouponID, schemas.OpGrant, "", 0, env.EventID, regs[j])
		if err != nil {
			return stream.Result{}, err
		}
		res.Out = append(res.Out, rec)
	}
	return res, nil
}

// rateLimit turns the precheck of the self-claims over a limit into
// rate_limited, so that claim.lua remembers the rejection like any
// decision. Each user's and each app's claims of the batch ask their bucket
// once; the first claims get the tokens. A claim rejected by the other
// bucket still spent its token. A redelivered claim (whose decision is
// remembered and does not change) takes a token again.
func (p *Processor) rateLimit(ctx context.Context, now time.Time, in []ClaimInput, limited []bool) error {
	if !p.perUser.On() && !p.perApp.On() {
		return nil
	}
	type bucket struct {
		req  int // index in reqs
		idx  []int
		took int64
	}
	var reqs []BucketRequest
	buckets := map[string]*bucket{}
	var order []*bucket
	ask := func(key string, l RateLimit, i int) {
		bk := buckets[key]
		if bk == nil {
			bk = &bucket{req: len(reqs)}
			buckets[key] = bk
			order = append(order, bk)
			reqs = append(reqs, BucketRequest{Key: key, Limit: l})
		}
		bk.idx = append(bk.idx, i)
		reqs[bk.req].Want++
	}
	for i, c := range in {
		if !limited[i] || c.Precheck != "" {
			continue
		}
		if p.perUser.On() {
			ask(p.store.UserBucket(c.UserID), p.perUser, i)
		}
		if p.perApp.On() {
			ask(p.store.AppBucket(c.AppID), p.perApp, i)
		}
	}
	got, err := p.store.TakeTokens(ctx, now, reqs)
	if err != nil {
		return err
	}
	for _, bk := range order {
		for k, i := range bk.idx {
			if int64(k) >= got[bk.req] {
				in[i].Precheck = schemas.RejectRateLimited
			}
		}
	}
	return nil
}

// handleOrders decides lock, confirm and cancel requests: one round trip
// to find the owners of the coupons named, one for the decisions (and one
// to schedule lock timeouts). Every request yields one coupon.state.changed
// record, applied or rejected, whose result id derives from the request.
func (p *Processor) handleOrders(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	now := p.now()
	in := make([]OpRequest, 0, len(b.Events))
	evs := make([]stream.Event, 0, len(b.Events))
	amounts := make([]int64, 0, len(b.Events))
	for _, ev := range b.Events {
		var oc schemas.OrderCoupon
		var kind string
		var err error
		switch ev.Env.Type {
		case schemas.TypeCouponLockRequested:
			kind = schemas.OpLock
			err = ev.Env.DecodePayload((*schemas.LockRequested)(&oc))
		case schemas.TypeCouponConfirmRequested:
			kind = schemas.OpConfirm
			err = ev.Env.DecodePayload((*schemas.ConfirmRequested)(&oc))
		case schemas.TypeCouponCancelRequested:
			kind = schemas.OpCancel
			err = ev.Env.DecodePayload((*schemas.CancelRequested)(&oc))
		default:
			err = fmt.Errorf("%s is not an order's coupon request: %w", ev.Env.Type, schemas.ErrInvalid)
		}
		if err != nil {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
			continue
		}
		in = append(in, OpRequest{
			AppID: ev.Env.AppID, EventID: ev.Env.EventID, UserID: oc.UserID, CouponID: oc.CouponID,
			OrderID: oc.OrderID, Kind: kind, Deadline: now.Add(p.lockTimeout),
		})
		evs = append(evs, ev)
		amounts = append(amounts, oc.OrderAmount)
	}
	if len(in) == 0 {
		return res, nil
	}
	coupons := make([]string, len(in))
	for i, r := range in {
		coupons[i] = r.CouponID
	}
	owners, err := p.store.Owners(ctx, coupons)
	if err != nil {
		return stream.Result{}, err
	}
	for i := range in {
		o, ok := owners[in[i].CouponID]
		if !ok {
			continue
		}
		in[i].OtherOwner = o.UserID != in[i].UserID
		if def := p.batches.Get(o.BatchID); def != nil {
			in[i].BatchDisabled = def.Status == schemas.BatchDisabled
		}
	}
	ds, err := p.store.Operate(ctx, b.FenceField(), b.Epoch, now, in)
	if err != nil {
		return stream.Result{}, err
	}
	res.Out = make([]*kgo.Record, 0, len(ds))
	for i, d := range ds {
		r := in[i]
		rec, err := StateRecord(schemas.ResultID(KindOp, r.AppID, r.EventID), r.AppID, r.UserID, r.CouponID, r.Kind, r.OrderID, amounts[i], r.EventID, d)
		if err != nil {
			return stream.Result{}, err
		}
		res.Out = append(res.Out, rec)
		res.Decide(DecisionOpPrefix+r.Kind, opStatus(d), d.Reason)
	}
	return res, nil
}

// Decision kinds the processor counts in promoflow_decisions_total.
const (
	// DecisionGrant is a claim's or an issue's decision: granted, or
	// rejected with the reason.
	DecisionGrant = "coupon.grant"
	// DecisionOpPrefix starts the kind of an operation on a coupon:
	// coupon.lock, coupon.confirm, coupon.cancel (orders) and
	// coupon.release, coupon.expire (timers), applied or rejected with the
	// reason; coupon.remind counts reminders sent.
	DecisionOpPrefix = "coupon."
)

func grantStatus(o Outcome) string {
	if o.Granted {
		return schemas.StatusGranted
	}
	return schemas.StatusRejected
}

func opStatus(d Decision) string {
	if d.Applied {
		return schemas.OpApplied
	}
	return schemas.OpRejected
}

// StateRecord builds a coupon.state.changed record of one operation from
// its (remembered) decision; the same decision gives the same bytes.
func StateRecord(id, app, user, coupon, op, order string, amount int64, source string, d Decision) (*kgo.Record, error) {
	sc := schemas.StateChanged{
		ResultID:      id,
		CouponID:      coupon,
		UserID:        user,
		BatchID:       d.Coupon.BatchID,
		Op:            op,
		Status:        schemas.OpApplied,
		Reason:        d.Reason,
		State:         d.Coupon.State,
		Seq:           d.Coupon.Seq,
		OrderID:       order,
		OrderAmount:   amount,
		SourceEventID: source,
		ValidFrom:     d.Coupon.From,
		ExpiresAt:     d.Coupon.Until,
		ChangedAt:     d.At,
	}
	if !d.Applied {
		sc.Status = schemas.OpRejected
	}
	if d.Coupon.State == schemas.CouponLocked && !d.Coupon.Deadline.IsZero() {
		dl := d.Coupon.Deadline
		sc.LockDeadline = &dl
	}
	return record(TopicStates, id, app, d.At, sc)
}

// record encodes p as the envelope of result id on topic.
func record(topic, id, app string, at time.Time, p schemas.Payload) (*kgo.Record, error) {
	return stream.NewRecord(topic, id, app, at, p)
}

// GrantRecord builds the result record of a claim. It is a pure function of
// the claim and its (remembered) outcome, so a replay yields the same bytes.
func GrantRecord(claim *schemas.Envelope, c schemas.ClaimRequested, o Outcome) (*kgo.Record, error) {
	id := schemas.ResultID(ResultKind, claim.AppID, claim.EventID)
	g := schemas.GrantDecided{
		ResultID:     id,
		ClaimEventID: claim.EventID,
		BatchID:      c.BatchID,
		UserID:       c.UserID,
		ClaimedAt:    claim.OccurredAt,
		DecidedAt:    o.At,
	}
	if o.Granted {
		g.Status, g.CouponID, g.GrantSeq = schemas.StatusGranted, id, o.Seq
	} else {
		g.Status, g.Reason = schemas.StatusRejected, o.Reason
	}
	env, err := schemas.New(id, claim.AppID, o.At, g)
	if err != nil {
		return nil, err
	}
	b, err := env.Encode()
	if err != nil {
		return nil, err
	}
	return &kgo.Record{
		Topic: TopicGrants,
		Key:   []byte(g.UserID),
		Value: b,
		Headers: []kgo.RecordHeader{
			{Key: "promoflow.type", Value: []byte(schemas.TypeCouponGrantDecided)},
			{Key: "promoflow.version", Value: []byte("1")},
		},
	}, nil
}

// AdminStage declares the check of the admin topic. Every instance reads
// that topic whole into its cache (a View), so none of them owns its bad
// records; this one group reads it too and dead-letters, once, each
// definition that does not decode or breaks CheckBatch (reason
// invalid_batch). It changes no state.
func AdminStage() stream.Stage {
	return stream.Stage{
		Name:    "coupon-admin",
		Group:   AdminGroup,
		Reads:   []string{TopicAdmin},
		Handles: []string{tv(schemas.TypeCouponBatchDefined, 1), tv(schemas.TypeCouponBatchDefined, 2)},
		Handler: stream.HandlerFunc(func(_ context.Context, b *stream.Batch) (stream.Result, error) {
			var res stream.Result
			for _, ev := range b.Events {
				var def schemas.BatchDefined
				err := ev.Env.DecodePayload(&def)
				if err == nil {
					err = CheckBatch(&def)
				}
				if err != nil {
					res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: "invalid_batch", Detail: err.Error()})
				}
			}
			return res, nil
		}),
	}
}
