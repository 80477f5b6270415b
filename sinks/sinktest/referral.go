package sinktest

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// referralResult returns the i-th result of Results of a referral type:
// binding decisions (bound, or refused with a reason), qualification
// decisions and rewards, with result id id.
func referralResult(typ, prefix string, i int, id, activity, user string, at time.Time, refused bool) schemas.Payload {
	inviter := user + "-inviter"
	switch typ {
	case schemas.TypeReferralBound:
		r := schemas.ReferralBoundResult{
			ResultID: id, SourceEventID: fmt.Sprintf("%s-click-%d", prefix, i), EventKind: schemas.BindClick, ActivityID: activity,
			InviteeID: user, InviterID: inviter, Status: schemas.ReferralBound, BoundInviterID: inviter, Counted: int64(i % 2),
			OccurredAt: at.Add(-1500 * time.Millisecond), DecidedAt: at,
		}
		if i%3 == 1 {
			r.EventKind = schemas.BindRegistration
		}
		if refused {
			r.Status, r.Reason, r.BoundInviterID, r.Counted = schemas.ReferralRefused, schemas.RefuseAlreadyBound, user+"-first", 0
		}
		return r
	case schemas.TypeReferralQualificationDecided:
		q := schemas.QualificationDecided{
			ResultID: id, SourceEventID: fmt.Sprintf("%s-order-%d", prefix, i), ActivityID: activity, InviteeID: user,
			InviterID: inviter, Action: "order_confirmed", Status: schemas.ReferralCounted, OccurredAt: at.Add(-time.Minute), DecidedAt: at,
		}
		if refused {
			q.Status, q.Reason, q.InviterID = schemas.ReferralRefused, schemas.RefuseNotBound, ""
		}
		return q
	default: // schemas.TypeReferralRewardGranted
		return schemas.RewardGranted{
			ResultID: id, ActivityID: activity, InviterID: inviter, Threshold: int64(1 + i%5), BatchID: prefix + "-batch",
			Successful: int64(1 + i%5), InviteeID: user, SourceEventID: fmt.Sprintf("%s-click-%d", prefix, i),
			ClaimEventID: "referral-" + id, GrantedAt: at,
		}
	}
}

// ReferralEvents returns the results of a small referral scenario, for the
// tests of a store's referral reads and reports. In activity ref-1 (rewards
// held until an order is confirmed): v1 and v3 clicked, v2 registered and
// were bound to a, b and a; v1 then clicked b's link (already_bound to a),
// v4 clicked a forged link (bad_token) and v5 its own (self_invite); v1
// and v2 qualified, v1 again (already_qualified), v9 never bound
// (not_bound); a reached threshold 2 (batch B2). In ref-2 (no qualifying
// action) w1 clicked a's link and was bound and counted at once.
func ReferralEvents(tb testing.TB) []*schemas.Envelope {
	tb.Helper()
	at := Epoch.Add(-time.Hour)
	n := 0
	bind := func(activity, kind, invitee, inviter, status, reason, holder string, counted int64) *schemas.Envelope {
		n++
		id := schemas.ResultID("referral.bind", "shop", fmt.Sprint("b", n))
		return Result(tb, "shop", at, schemas.ReferralBoundResult{
			ResultID: id, SourceEventID: fmt.Sprint("b", n), EventKind: kind, ActivityID: activity, InviteeID: invitee,
			InviterID: inviter, Status: status, Reason: reason, BoundInviterID: holder, Counted: counted,
			OccurredAt: at.Add(time.Duration(n) * time.Second), DecidedAt: at.Add(time.Duration(n)*time.Second + 3*time.Millisecond),
		})
	}
	qual := func(invitee, inviter, status, reason string) *schemas.Envelope {
		n++
		id := schemas.ResultID("referral.qualify", "orders", fmt.Sprint("q", n))
		return Result(tb, "orders", at, schemas.QualificationDecided{
			ResultID: id, SourceEventID: fmt.Sprint("q", n), ActivityID: "ref-1", InviteeID: invitee, InviterID: inviter,
			Action: "order_confirmed", Status: status, Reason: reason, OccurredAt: at.Add(time.Minute), DecidedAt: at.Add(time.Minute),
		})
	}
	const bound, refused, counted = schemas.ReferralBound, schemas.ReferralRefused, schemas.ReferralCounted
	click, reg := schemas.BindClick, schemas.BindRegistration
	rewardID := schemas.ResultID("referral.reward", "ref-1", "a/2")
	return []*schemas.Envelope{
		bind("ref-1", click, "v1", "a", bound, "", "a", 0),
		bind("ref-1", reg, "v2", "a", bound, "", "a", 0),
		bind("ref-1", click, "v3", "b", bound, "", "b", 0),
		bind("ref-1", click, "v1", "b", refused, schemas.RefuseAlreadyBound, "a", 0),
		bind("ref-1", click, "v4", "", refused, schemas.RefuseBadToken, "", 0),
		bind("ref-1", click, "v5", "v5", refused, schemas.RefuseSelfInvite, "", 0),
		qual("v1", "a", counted, ""),
		qual("v2", "a", counted, ""),
		qual("v1", "a", refused, schemas.RefuseAlreadyQualified),
		qual("v9", "", refused, schemas.RefuseNotBound),
		Result(tb, "promoflow-referral", at, schemas.RewardGranted{
			ResultID: rewardID, ActivityID: "ref-1", InviterID: "a", Threshold: 2, BatchID: "B2", Successful: 2,
			InviteeID: "v2", SourceEventID: "q8", ClaimEventID: "referral-" + rewardID, GrantedAt: at.Add(time.Minute),
		}),
		bind("ref-2", click, "w1", "a", bound, "", "a", 1),
	}
}
