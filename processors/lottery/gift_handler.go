package lottery

import (
	"context"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// members applies a run of member changes of one gift exchange.
func (p *Processor) members(ctx context.Context, b *stream.Batch, def *schemas.ActivityDefined, run []request, res *stream.Result) error {
	if def == nil || def.Kind != schemas.KindGiftExchange {
		for _, r := range run {
			reason, detail := schemas.RejectUnknownActivity, "no definition of activity "+r.activity
			if def != nil {
				reason, detail = schemas.RejectWrongKind, "activity "+r.activity+" is "+def.Kind+", not a gift exchange"
			}
			res.Dead = append(res.Dead, stream.DeadLetter{Record: r.ev.Record, Reason: reason, Detail: detail})
		}
		return nil
	}
	in := make([]MemberInput, len(run))
	for i, r := range run {
		m := r.member
		in[i] = MemberInput{AppID: r.ev.Env.AppID, EventID: r.ev.Env.EventID, UserID: m.UserID, Action: m.Action, Name: m.Name, Note: m.Note, ImportID: m.ImportID}
	}
	now := p.now()
	outs, err := p.store.Members(ctx, def.ActivityID, b.FenceField(), b.Epoch, now, p.store.expireAt(def), in)
	if err != nil {
		return err
	}
	for i, o := range outs {
		r := run[i]
		if o.Refused {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: r.ev.Record, Reason: o.Reason,
				Detail: "gift exchange " + def.ActivityID + ": cannot " + r.member.Action + " member " + r.user + ": " + o.Reason})
			continue
		}
		m := schemas.MemberRecorded{
			ResultID:   schemas.ResultID(kindMember, def.ActivityID, r.user),
			ActivityID: def.ActivityID,
			UserID:     r.user,
			Name:       o.Name,
			Note:       o.Note,
			Status:     o.Status,
			ImportID:   o.ImportID,
			UpdatedAt:  o.At,
		}
		if err := appendRecord(res, TopicResults, m.ResultID, r.ev.Env.AppID, o.At, m); err != nil {
			return err
		}
		res.Decide(DecisionMember, m.Status, "")
	}
	return nil
}

// sends decides a run of gift sends of one activity.
func (p *Processor) sends(ctx context.Context, b *stream.Batch, def *schemas.ActivityDefined, run []request, res *stream.Result) error {
	known := def != nil
	if !known {
		def = p.placeholder(run[0].activity)
	}
	in := make([]SendInput, len(run))
	for i, r := range run {
		env := r.ev.Env
		in[i] = SendInput{AppID: env.AppID, EventID: env.EventID, UserID: r.user, Precheck: schemas.RejectUnknownActivity}
		if known {
			in[i].Precheck = PrecheckSend(def, env.OccurredAt)
		}
	}
	outs, err := p.store.Send(ctx, def.ActivityID, b.FenceField(), b.Epoch, p.now(), p.store.expireAt(def), in)
	if err != nil {
		return err
	}
	for i, o := range outs {
		env := run[i].ev.Env
		m := schemas.MatchDecided{
			ResultID:    schemas.ResultID(kindMatch, env.AppID, env.EventID),
			SendEventID: env.EventID,
			ActivityID:  def.ActivityID,
			SenderID:    run[i].user,
			ReceiverID:  o.ReceiverID,
			Status:      schemas.MatchMatched,
			Reason:      o.Reason,
			DecidedAt:   o.At,
		}
		if !o.Matched {
			m.Status, m.ReceiverID = schemas.MatchRejected, ""
		}
		if err := appendRecord(res, TopicResults, m.ResultID, env.AppID, o.At, m); err != nil {
			return err
		}
		res.Decide(DecisionMatch, m.Status, m.Reason)
	}
	return nil
}
