package referral

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Topics and groups of the referral processor.
const (
	TopicAdmin   = "referral.admin"
	TopicEvents  = "referral.events"
	TopicResults = "referral.results"
	// TopicCouponClaims receives the coupon issue of every reward; the
	// coupon processor grants it against the batch's stock and limits.
	TopicCouponClaims = "coupon.claims"
	Group             = "promoflow-referral"
	// AdminGroup checks the admin topic once for the whole deployment.
	AdminGroup = "promoflow-referral-admin"
	// AppID is the app_id of the records the processor originates
	// (rewards and their coupon issues).
	AppID = "promoflow-referral"
)

// Result kinds, separating the result ids of each result type.
const (
	KindBind    = "referral.bind"
	KindQualify = "referral.qualify"
	KindReward  = "referral.reward"
)

// RewardID returns the result id of inviter's reward for threshold in
// activity: one id per (activity, inviter, threshold), whatever event
// reached it.
func RewardID(activity, inviter string, threshold int64) string {
	return schemas.ResultID(KindReward, activity, inviter+"/"+strconv.FormatInt(threshold, 10))
}

// ClaimEventID returns the event id of the coupon.issue.requested that
// issues a reward (app AppID): the coupon processor remembers its decision
// by it, so publishing the reward again never issues twice.
func ClaimEventID(rewardID string) string { return "referral-" + rewardID }

// Processor decides share-link clicks, registrations and qualifying
// actions. It implements stream.Handler.
type Processor struct {
	store *Store
	acts  *Activities
	keys  *sharelink.Keyring
	now   func() time.Time
}

// New returns a Processor deciding against store with the activity cache,
// verifying tokens with keys.
func New(store *Store, acts *Activities, keys *sharelink.Keyring) *Processor {
	return &Processor{store: store, acts: acts, keys: keys, now: time.Now}
}

func tv(typ string) string { return schemas.TypeVersion{Type: typ, Version: 1}.String() }

// Stage declares the processor for the runtime and the topology checks.
func (p *Processor) Stage() stream.Stage {
	return stream.Stage{
		Name:   "referral",
		Group:  Group,
		Reads:  []string{TopicEvents},
		Writes: []string{TopicResults, TopicCouponClaims},
		Views:  []string{TopicAdmin},
		Handles: []string{
			tv(schemas.TypeReferralClickRecorded), tv(schemas.TypeReferralRegistered), tv(schemas.TypeReferralQualified),
			tv(schemas.TypeReferralActivityDefined),
		},
		Handler: p,
		Fenced:  true,
	}
}

// AdminStage declares the stage that owns the admin topic. Every
// processor instance reads that topic whole into its cache (a View), so
// none of them owns its records; this group reads it once for the whole
// deployment and dead-letters a definition that breaks CheckActivity
// (reason invalid_activity), once.
func AdminStage() stream.Stage {
	return stream.Stage{
		Name:    "referral-admin",
		Group:   AdminGroup,
		Reads:   []string{TopicAdmin},
		Handles: []string{tv(schemas.TypeReferralActivityDefined)},
		Handler: stream.HandlerFunc(func(_ context.Context, b *stream.Batch) (stream.Result, error) {
			var res stream.Result
			for _, ev := range b.Events {
				if _, err := DecodeActivity(ev.Env); err != nil {
					res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: "invalid_activity", Detail: err.Error()})
				}
			}
			return res, nil
		}),
	}
}

// event is one decoded input with its op.
type event struct {
	ev       stream.Event
	activity string
	op       Op
	kind     string // schemas.BindClick or BindRegistration (binds)
	action   string // the qualifying action (qualifications)
}

// Handle decides a partition's events. Events of one activity are decided
// in order in one atomic step (per 500).
func (p *Processor) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	byActivity := map[string][]event{}
	var order []string
	now := p.now()
	for _, ev := range b.Events {
		e, err := p.decode(ev, now)
		if err != nil {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
			continue
		}
		if _, ok := byActivity[e.activity]; !ok {
			order = append(order, e.activity)
		}
		byActivity[e.activity] = append(byActivity[e.activity], e)
	}
	for _, a := range order {
		evs := byActivity[a]
		ops := make([]Op, len(evs))
		for i, e := range evs {
			ops[i] = e.op
		}
		outs, err := p.store.Step(ctx, a, p.store.ParamsFor(p.acts.Get(a), b.FenceField(), b.Epoch, now), ops)
		if err != nil {
			return stream.Result{}, err
		}
		for i, o := range outs {
			if err := p.results(&res, evs[i], o); err != nil {
				return stream.Result{}, err
			}
		}
	}
	return res, nil
}

// decode reads an event and runs its precheck.
func (p *Processor) decode(ev stream.Event, now time.Time) (event, error) {
	env := ev.Env
	e := event{ev: ev, op: Op{AppID: env.AppID, EventID: env.EventID}}
	var token string
	switch env.Type {
	case schemas.TypeReferralClickRecorded:
		var v schemas.ClickRecorded
		if err := env.DecodePayload(&v); err != nil {
			return e, err
		}
		e.activity, e.op.Invitee, token, e.kind = v.ActivityID, v.InviteeID, v.Token, schemas.BindClick
	case schemas.TypeReferralRegistered:
		var v schemas.Registered
		if err := env.DecodePayload(&v); err != nil {
			return e, err
		}
		e.activity, e.op.Invitee, token, e.kind = v.ActivityID, v.InviteeID, v.Token, schemas.BindRegistration
	case schemas.TypeReferralQualified:
		var v schemas.Qualified
		if err := env.DecodePayload(&v); err != nil {
			return e, err
		}
		e.activity, e.op.Invitee, e.action = v.ActivityID, v.InviteeID, v.Action
		e.op.Kind = OpQualify
		def := p.acts.Get(e.activity)
		var end time.Time
		if def != nil {
			end = p.store.StateEnd(def)
		}
		e.op.Precheck = PrecheckQualify(def, v.Action, env.OccurredAt, now, end)
		return e, nil
	default:
		return e, fmt.Errorf("the referral processor does not handle %s: %w", env.Type, schemas.ErrInvalid)
	}
	e.op.Kind = OpBind
	link, err := p.keys.Verify(token)
	if err == nil {
		e.op.Inviter = link.Inviter
	}
	def := p.acts.Get(e.activity)
	var end time.Time
	if def != nil {
		end = p.store.StateEnd(def)
	}
	e.op.Precheck = PrecheckBind(def, link, err, e.op.Invitee, env.OccurredAt, now, end)
	return e, nil
}

// results appends the records of one decision: the binding or
// qualification decision, then per reward reached the reward and the
// coupon issue that pays it.
func (p *Processor) results(res *stream.Result, e event, o Outcome) error {
	env := e.ev.Env
	var err error
	if e.op.Kind == OpBind {
		r := schemas.ReferralBoundResult{
			ResultID:      schemas.ResultID(KindBind, env.AppID, env.EventID),
			SourceEventID: env.EventID,
			EventKind:     e.kind,
			ActivityID:    e.activity,
			InviteeID:     e.op.Invitee,
			InviterID:     e.op.Inviter,
			Status:        schemas.ReferralBound,
			Reason:        o.Reason,
			OccurredAt:    env.OccurredAt,
			DecidedAt:     o.At,
		}
		if o.Reason != "" {
			r.Status = schemas.ReferralRefused
		}
		if o.Reason == "" || o.Reason == schemas.RefuseAlreadyBound {
			r.BoundInviterID = o.Inviter
		}
		if o.Counted {
			r.Counted = 1
		}
		res.Decide("referral.bind", r.Status, o.Reason)
		err = appendRecord(res, TopicResults, r.ResultID, env.AppID, o.At, r)
	} else {
		q := schemas.QualificationDecided{
			ResultID:      schemas.ResultID(KindQualify, env.AppID, env.EventID),
			SourceEventID: env.EventID,
			ActivityID:    e.activity,
			InviteeID:     e.op.Invitee,
			InviterID:     o.Inviter,
			Action:        e.action,
			Status:        schemas.ReferralCounted,
			Reason:        o.Reason,
			OccurredAt:    env.OccurredAt,
			DecidedAt:     o.At,
		}
		if o.Reason != "" {
			q.Status = schemas.ReferralRefused
		}
		res.Decide("referral.qualify", q.Status, o.Reason)
		err = appendRecord(res, TopicResults, q.ResultID, env.AppID, o.At, q)
	}
	if err != nil {
		return err
	}
	for _, rw := range o.Rewards {
		g := schemas.RewardGranted{
			ResultID:      RewardID(e.activity, o.Inviter, rw.Threshold),
			ActivityID:    e.activity,
			InviterID:     o.Inviter,
			Threshold:     rw.Threshold,
			BatchID:       rw.BatchID,
			Successful:    o.Successful,
			InviteeID:     e.op.Invitee,
			SourceEventID: env.EventID,
			GrantedAt:     o.At,
		}
		g.ClaimEventID = ClaimEventID(g.ResultID)
		res.Decide("referral.reward", "granted", "")
		if err := appendRecord(res, TopicResults, g.ResultID, AppID, o.At, g); err != nil {
			return err
		}
		// The issue id names the activity for the coupon reports.
		issue := schemas.IssueRequested{BatchID: rw.BatchID, UserID: o.Inviter, IssueID: e.activity}
		if err := appendRecord(res, TopicCouponClaims, g.ClaimEventID, AppID, o.At, issue); err != nil {
			return err
		}
	}
	return nil
}

func appendRecord(res *stream.Result, topic, id, app string, at time.Time, p schemas.Payload) error {
	rec, err := stream.NewRecord(topic, id, app, at, p)
	if err != nil {
		return fmt.Errorf("encoding %s %s: %w", p.EventType(), id, err)
	}
	res.Out = append(res.Out, rec)
	return nil
}
