package coupon

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Topics and group of the coupon claim processor.
const (
	TopicAdmin  = "coupon.admin"
	TopicClaims = "coupon.claims"
	TopicGrants = "coupon.grants"
	Group       = "promoflow-coupon"
	// AdminGroup checks the admin topic once for the whole deployment.
	AdminGroup = "promoflow-coupon-admin"
	// ResultKind separates coupon grant result ids from other processors'.
	ResultKind = "coupon.grant"
)

// Processor decides claims. It implements stream.Handler.
type Processor struct {
	store   *Store
	batches *Batches
	now     func() time.Time
}

// New returns a Processor deciding against store with the batch cache.
func New(store *Store, batches *Batches) *Processor {
	return &Processor{store: store, batches: batches, now: time.Now}
}

// Stage declares the processor for the runtime and the topology checks.
func (p *Processor) Stage() stream.Stage {
	return stream.Stage{
		Name:   "coupon",
		Group:  Group,
		Reads:  []string{TopicClaims},
		Writes: []string{TopicGrants},
		Views:  []string{TopicAdmin},
		Handles: []string{
			schemas.TypeVersion{Type: schemas.TypeCouponClaimRequested, Version: 1}.String(),
			schemas.TypeVersion{Type: schemas.TypeCouponIssueRequested, Version: 1}.String(),
			schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 1}.String(),
			schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 2}.String(),
		},
		Handler: p,
		Fenced:  true,
	}
}

// Handle decides a partition's claims in order with one Redis round trip
// and returns one coupon.grant.decided record per claim.
func (p *Processor) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	in := make([]ClaimInput, 0, len(b.Events))
	evs := make([]stream.Event, 0, len(b.Events))
	claims := make([]schemas.ClaimRequested, 0, len(b.Events))
	for _, ev := range b.Events {
		var c schemas.ClaimRequested
		if err := ev.Env.DecodePayload(&c); err != nil {
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
	}
	outcomes, err := p.store.Claim(ctx, b.FenceField(), b.Epoch, p.now(), in)
	if err != nil {
		return stream.Result{}, err
	}
	res.Out = make([]*kgo.Record, 0, len(outcomes))
	for i, o := range outcomes {
		rec, err := GrantRecord(evs[i].Env, claims[i], o)
		if err != nil {
			return stream.Result{}, err
		}
		res.Out = append(res.Out, rec)
	}
	return res, nil
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
		Handles: []string{
			schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 1}.String(),
			schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 2}.String(),
		},
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
