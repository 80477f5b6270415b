package sinktest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// Epoch is the instant the events made by [Grants] count back from. It lies
// in the past so the events also pass [schemas.Validate].
var Epoch = time.Date(2024, 3, 4, 5, 6, 7, 89e6, time.UTC)

// ResultKind is the kind passed to [schemas.ResultID] for generated grants.
const ResultKind = schemas.TypeCouponGrantDecided

var rejections = []string{
	schemas.RejectOutOfStock,
	schemas.RejectUserLimit,
	schemas.RejectNotStarted,
	schemas.RejectExpired,
	schemas.RejectUnknownBatch,
	schemas.RejectBatchDisabled,
}

// Grant returns a coupon.grant.decided envelope carrying g, published by
// appID and occurring at g.DecidedAt. Its event id is g.ResultID, as a
// processor republishing the same decision would choose. If g.ResultID is
// empty it is derived from appID and g.ClaimEventID first.
func Grant(tb testing.TB, appID string, g schemas.GrantDecided) *schemas.Envelope {
	tb.Helper()
	if g.ResultID == "" {
		g.ResultID = schemas.ResultID(ResultKind, appID, g.ClaimEventID)
	}
	env, err := schemas.New(g.ResultID, appID, g.DecidedAt, g)
	if err != nil {
		tb.Fatalf("building grant event: %v", err)
	}
	return env
}

// Grants returns n schema-valid grant decisions on n distinct claims of n
// distinct users; every id starts with prefix (which must start with a
// letter or digit), so batches made with different prefixes never share a
// result. Three in four are granted, the rest rejected with each reason in
// turn; the decisions spread over several apps, five coupon batches and
// about two months, at millisecond precision.
func Grants(tb testing.TB, prefix string, n int) []*schemas.Envelope {
	tb.Helper()
	out := make([]*schemas.Envelope, n)
	for i := range n {
		app := fmt.Sprintf("app-%d", i%3)
		claimID := fmt.Sprintf("%s-claim-%d", prefix, i)
		decided := Epoch.Add(-time.Duration(i)*13*time.Minute - time.Duration(i%1000)*time.Millisecond)
		g := schemas.GrantDecided{
			ResultID:     schemas.ResultID(ResultKind, app, claimID),
			ClaimEventID: claimID,
			BatchID:      fmt.Sprintf("%s-batch-%d", prefix, i%5),
			UserID:       fmt.Sprintf("%s-user-%d", prefix, i),
			ClaimedAt:    decided.Add(-time.Duration(1+i%900) * time.Millisecond),
			DecidedAt:    decided,
		}
		if i%4 == 3 {
			g.Status = schemas.StatusRejected
			g.Reason = rejections[(i/4)%len(rejections)]
		} else {
			g.Status = schemas.StatusGranted
			g.CouponID = g.ResultID
			g.GrantSeq = int64(i + 1)
		}
		out[i] = Grant(tb, app, g)
	}
	return out
}

// decodeGrant returns the GrantRow an envelope made by Grant should be
// stored as.
func decodeGrant(tb testing.TB, env *schemas.Envelope) GrantRow {
	tb.Helper()
	var g schemas.GrantDecided
	if err := env.DecodePayload(&g); err != nil {
		tb.Fatalf("decoding generated grant: %v", err)
	}
	g.ClaimedAt = g.ClaimedAt.UTC().Truncate(time.Millisecond)
	g.DecidedAt = g.DecidedAt.UTC().Truncate(time.Millisecond)
	return GrantRow{AppID: env.AppID, GrantDecided: g}
}

// hostile holds SQL and CSV injection attempts, control characters and
// unicode, at most 32 characters each.
var hostile = []string{
	`x'); DROP TABLE t; --`,
	`=cmd|' /C calc'!A0`,
	`" OR "1"="1`,
	`\'; SELECT SLEEP(10); -- \`,
	"优惠券🎉👩‍👩‍👧",
	"tab\tnew\nline\r\x00nul",
	"%s%n${jndi:x}",
	"trailing space ",
}

// hostileAt is the time of hostile results: it is truncated to .999 when
// stored.
var hostileAt = time.Date(2023, 12, 31, 23, 59, 59, 999_999_999, time.UTC)

// rep returns s repeated to n characters.
func rep(s string, n int) string {
	out := make([]rune, 0, n)
	for len(out) < n {
		out = append(out, []rune(s)...)
	}
	return string(out[:n])
}

// hostileGrants returns grants whose string fields hold the hostile values
// and ids of the maximum length the schemas allow. Only coupon_id is free
// text in the schema; the other fields carry such values although the
// schema would refuse them, because a sink must store whatever it is given
// verbatim and never execute it.
func hostileGrants(tb testing.TB) []*schemas.Envelope {
	tb.Helper()
	at := hostileAt
	var out []*schemas.Envelope
	for i, h := range hostile {
		g := schemas.GrantDecided{
			ClaimEventID: fmt.Sprintf("%s-%d", h, i),
			BatchID:      h,
			UserID:       h,
			Status:       schemas.StatusGranted,
			CouponID:     h,
			GrantSeq:     int64(i + 1),
			ClaimedAt:    at.Add(-time.Duration(i) * time.Hour),
			DecidedAt:    at,
		}
		out = append(out, Grant(tb, "hostile-app", g))
	}
	// The longest ids the schemas allow, in one- and multi-byte characters.
	for i, unit := range []string{"z", "界", "🎉"} {
		g := schemas.GrantDecided{
			ClaimEventID: rep(unit, 127) + fmt.Sprint(i),
			BatchID:      rep(unit, 64),
			UserID:       rep(unit, 128),
			Status:       schemas.StatusRejected,
			Reason:       schemas.RejectBatchDisabled,
			CouponID:     rep(unit, 32),
			GrantSeq:     1<<63 - 1,
			ClaimedAt:    time.Date(1999, 1, 1, 0, 0, 0, 1e6, time.UTC),
			DecidedAt:    time.Date(2099, 12, 31, 23, 59, 59, 999e6, time.UTC),
		}
		out = append(out, Grant(tb, rep("a", 63)+fmt.Sprint(i), g))
	}
	return out
}

// ResultTypes lists the result types every sink stores besides coupon
// grants, one row per result id (per notification id for
// notification.requested): the lottery and gift-exchange results, the
// coupon operations, the coupon expiry reminders and the recommendations
// (by recommendation_id). The applied coupon
// operations also make the coupon states (see [Reader]).
var ResultTypes = []string{
	schemas.TypeLotteryActivityCommitted,
	schemas.TypeLotteryEntryRecorded,
	schemas.TypeLotteryDrawCompleted,
	schemas.TypeLotteryPrizeAwarded,
	schemas.TypeGiftMatchDecided,
	schemas.TypeGiftMemberRecorded,
	schemas.TypeCouponStateChanged,
	schemas.TypeNotificationRequested,
	schemas.TypeReferralBound,
	schemas.TypeReferralQualificationDecided,
	schemas.TypeReferralRewardGranted,
	schemas.TypeRecommendationMade,
}

// Result returns an envelope carrying the result p (one of ResultTypes),
// published by appID and occurring at at. Its event id is p's result_id
// (notification_id), as a processor republishing the same result would
// choose.
func Result(tb testing.TB, appID string, at time.Time, p schemas.Payload) *schemas.Envelope {
	tb.Helper()
	id := resultID(p)
	if id == "" {
		tb.Fatalf("building %s event: no result id", p.EventType())
	}
	env, err := schemas.New(id, appID, at, p)
	if err != nil {
		tb.Fatalf("building %s event: %v", p.EventType(), err)
	}
	return env
}

// Results returns n schema-valid results of the types in ResultTypes in
// turn, with n distinct result ids, activities and users; every id starts
// with prefix (which must start with a letter or digit). They spread over
// three apps and about a month at millisecond precision, and cover the
// optional fields: some activities have a draw time, rejected entries and
// sends carry reasons, instant-win entries rolls and odds. The coupon
// operations come in pairs on one coupon (see couponOp), so the coupon
// states depend on which of them a store keeps.
func Results(tb testing.TB, prefix string, n int) []*schemas.Envelope {
	tb.Helper()
	kinds := []string{schemas.KindDraw, schemas.KindInstantWin, schemas.KindGiftExchange}
	out := make([]*schemas.Envelope, n)
	for i := range n {
		typ := ResultTypes[i%len(ResultTypes)]
		app := fmt.Sprintf("app-%d", i%3)
		at := Epoch.Add(-time.Duration(i)*11*time.Minute - time.Duration(i%1000)*time.Millisecond)
		id := schemas.ResultID(typ, app, fmt.Sprintf("%s-%d", prefix, i))
		activity := fmt.Sprintf("%s-act-%d", prefix, i)
		user := fmt.Sprintf("%s-user-%d", prefix, i)
		rejected := i/len(ResultTypes)%3 == 2
		var p schemas.Payload
		switch typ {
		case schemas.TypeLotteryActivityCommitted:
			a := schemas.ActivityCommitted{
				ResultID: id, ActivityID: activity, Name: "Activity " + activity, Revision: int64(1 + i%5),
				Kind: kinds[i%len(kinds)], Status: "active", SeedHash: strings.Repeat(id, 2),
				JoinFrom: at.Add(-48 * time.Hour), JoinUntil: at.Add(24 * time.Hour), PerUserLimit: int64(1 + i%3),
				Prizes: "gold:1,silver:5", CommittedAt: at,
			}
			if i%4 == 0 {
				drawAt := at.Add(25 * time.Hour)
				a.DrawAt = &drawAt
			}
			p = a
		case schemas.TypeLotteryEntryRecorded:
			e := schemas.EntryRecorded{
				ResultID: id, EntryEventID: prefix + "-entry-" + fmt.Sprint(i), ActivityID: activity, UserID: user,
				Status: schemas.EntryAccepted, Outcome: schemas.OutcomeLost, Roll: int64(i * 7919 % 1_000_000),
				Odds: "gold:1000,silver:20000", OccurredAt: at.Add(-time.Second), RecordedAt: at,
			}
			if rejected {
				e.Status, e.Reason, e.Outcome, e.Roll, e.Odds = schemas.EntryRejected, schemas.RejectLimitReached, "", -1, ""
			}
			p = e
		case schemas.TypeLotteryDrawCompleted:
			p = schemas.DrawCompleted{
				ResultID: id, ActivityID: activity, Trigger: schemas.TriggerScheduled, Seed: strings.Repeat(id[:16], 4),
				SeedHash: strings.Repeat(id, 2), Participants: int64(i * 100), ParticipantsDigest: strings.Repeat(id[16:], 4),
				Winners: int64(i % 7), Prizes: "gold:1,silver:5", DrawnAt: at,
			}
		case schemas.TypeLotteryPrizeAwarded:
			p = schemas.PrizeAwarded{
				ResultID: id, ActivityID: activity, UserID: user, TierID: "silver", PrizeKind: schemas.PrizeCoupon,
				BatchID: prefix + "-batch", Points: int64(i), Source: "draw", SourceID: id, Rank: int64(1 + i%9), AwardedAt: at,
			}
		case schemas.TypeGiftMatchDecided:
			m := schemas.MatchDecided{
				ResultID: id, SendEventID: prefix + "-send-" + fmt.Sprint(i), ActivityID: activity, SenderID: user,
				ReceiverID: user + "-to", Status: schemas.MatchMatched, DecidedAt: at,
			}
			if rejected {
				m.ReceiverID, m.Status, m.Reason = "", schemas.MatchRejected, schemas.RejectNoReceiverLeft
			}
			p = m
		case schemas.TypeGiftMemberRecorded:
			p = schemas.MemberRecorded{
				ResultID: id, ActivityID: activity, UserID: user, Name: "Member " + user, Note: "dept. " + fmt.Sprint(i%4),
				Status: schemas.MemberActive, ImportID: prefix + "-import", UpdatedAt: at,
			}
		case schemas.TypeCouponStateChanged:
			c := couponOp(prefix, i/len(ResultTypes), id)
			at, p = c.ChangedAt, c
		case schemas.TypeNotificationRequested:
			n := schemas.NotificationRequested{
				NotificationID: id, UserID: user, Template: sinks.ReminderTemplate, SubjectID: fmt.Sprintf("%s-batch-%d", prefix, i%5),
				CouponID: fmt.Sprintf("%s-c-%d", prefix, i), DueAt: at,
			}
			if i%2 == 0 {
				expires := at.Add(72*time.Hour + 1500*time.Microsecond)
				n.ExpiresAt = &expires
			}
			p = n
		case schemas.TypeRecommendationMade:
			r := schemas.RecommendationMade{
				RecommendationID: id, UserID: user, BatchID: fmt.Sprintf("%s-batch-%d", prefix, i%5), Rank: int64(1 + i%3),
				Score: int64(i)*1000 + 7, Affinity: int64(i*7919) % 1_000_001, ExpectedDiscount: int64(i) * 10, MadeAt: at,
				RulesRevision: "r-0123456789ab", TriggerEventID: fmt.Sprintf("%s-trigger-%d", prefix, i),
			}
			if i%2 == 0 {
				r.GrantEventID = "recgrant-" + id
			}
			p = r
		default:
			p = referralResult(typ, prefix, i, id, activity, user, at, rejected)
		}
		out[i] = Result(tb, app, at, p)
	}
	return out
}

// couponOp returns the k-th coupon operation of Results, whose result id is
// id. The operations come in pairs on one coupon of one user: the grant
// (seq 1), then a lock (seq 2), a confirm rejected while the coupon was
// available (carrying seq 1) or its expiry (seq 2). In every fourth pair
// the second operation comes first.
func couponOp(prefix string, k int, id string) schemas.StateChanged {
	pair := k / 2
	validFrom := Epoch.Add(-time.Duration(pair)*97*time.Minute - time.Duration(pair%1000)*time.Millisecond)
	c := schemas.StateChanged{
		ResultID: id, CouponID: fmt.Sprintf("%s-c-%d", prefix, pair), UserID: fmt.Sprintf("%s-holder-%d", prefix, pair),
		BatchID: fmt.Sprintf("%s-batch-%d", prefix, pair%5), Op: schemas.OpGrant, Status: schemas.OpApplied,
		State: schemas.CouponAvailable, Seq: 1, SourceEventID: fmt.Sprintf("%s-claim-%d", prefix, pair),
		ValidFrom: validFrom, ExpiresAt: validFrom.Add(30 * 24 * time.Hour), ChangedAt: validFrom,
	}
	if second := k%2 == 1; second == (pair%4 == 3) {
		return c
	}
	order := fmt.Sprintf("%s-order-%d", prefix, pair)
	at := validFrom.Add(time.Hour + 1234*time.Microsecond)
	switch pair % 3 {
	case 0:
		deadline := at.Add(15 * time.Minute)
		c.Op, c.State, c.Seq, c.OrderID, c.OrderAmount = schemas.OpLock, schemas.CouponLocked, 2, order, 19_900
		c.SourceEventID, c.LockDeadline, c.ChangedAt = order+"-lock", &deadline, at
	case 1:
		c.Op, c.Status, c.Reason, c.OrderID, c.OrderAmount = schemas.OpConfirm, schemas.OpRejected, schemas.RejectNotLocked, order, 5_000
		c.SourceEventID, c.ChangedAt = order+"-confirm", at
	case 2:
		c.Op, c.State, c.Seq, c.SourceEventID, c.ChangedAt = schemas.OpExpire, schemas.CouponExpired, 2, "", c.ExpiresAt
	}
	return c
}

// hostileResults returns results of every type whose string fields hold
// the hostile values, and the longest values the schemas allow, in one-
// and multi-byte characters. As with hostileGrants, ids carry values the
// schemas would refuse.
func hostileResults(tb testing.TB) []*schemas.Envelope {
	tb.Helper()
	var out []*schemas.Envelope
	add := func(i int, p schemas.Payload) {
		out = append(out, Result(tb, "hostile-app", hostileAt.Add(-time.Duration(i)*time.Hour), p))
	}
	id := func(typ string, i int) string { return schemas.ResultID(typ, "hostile", fmt.Sprint(i)) }
	hex := strings.Repeat("0123456789abcdef", 4)
	values := append([]string{}, hostile...)
	long := []string{"z", "界", "🎉"} // values[len(hostile)+k] is made of long[k]
	for _, unit := range long {
		values = append(values, unit)
	}
	for i, h := range values {
		// s returns h, or for the long values unit repeated to n characters.
		s := func(n int) string {
			if i < len(hostile) {
				return h
			}
			return rep(h, n)
		}
		drawAt := hostileAt.Add(time.Duration(i) * time.Hour)
		a := schemas.ActivityCommitted{
			ResultID: id(schemas.TypeLotteryActivityCommitted, i), ActivityID: s(64), Name: s(200), Revision: 1<<63 - 1,
			Kind: schemas.KindDraw, SeedHash: hex, JoinFrom: hostileAt, JoinUntil: hostileAt, DrawAt: &drawAt,
			PerUserLimit: 1000, Prizes: s(4000), CommittedAt: hostileAt,
		}
		if i >= len(hostile) {
			a.DrawAt = nil
		}
		add(i, a)
		add(i, schemas.EntryRecorded{
			ResultID: id(schemas.TypeLotteryEntryRecorded, i), EntryEventID: s(128), ActivityID: s(64), UserID: s(128),
			Status: schemas.EntryAccepted, Outcome: schemas.OutcomeWon, TierID: s(32), Roll: 999_999, Odds: s(4000),
			OccurredAt: drawAt, RecordedAt: hostileAt,
		})
		add(i, schemas.DrawCompleted{
			ResultID: id(schemas.TypeLotteryDrawCompleted, i), ActivityID: s(64), Trigger: schemas.TriggerManual,
			DrawEventID: s(128), Seed: hex, SeedHash: hex, Participants: 1<<63 - 1, ParticipantsDigest: hex,
			Winners: 1<<63 - 1, Prizes: s(4000), DrawnAt: hostileAt,
		})
		add(i, schemas.PrizeAwarded{
			ResultID: id(schemas.TypeLotteryPrizeAwarded, i), ActivityID: s(64), UserID: s(128), TierID: s(32),
			PrizeKind: schemas.PrizePoints, BatchID: s(64), Points: 1<<63 - 1, Source: "draw", SourceID: hex[:32],
			Rank: 1<<63 - 1, AwardedAt: hostileAt,
		})
		add(i, schemas.MatchDecided{
			ResultID: id(schemas.TypeGiftMatchDecided, i), SendEventID: s(128), ActivityID: s(64), SenderID: s(128),
			ReceiverID: s(128), Status: schemas.MatchMatched, DecidedAt: hostileAt,
		})
		add(i, schemas.MemberRecorded{
			ResultID: id(schemas.TypeGiftMemberRecorded, i), ActivityID: s(64), UserID: s(128), Name: s(200),
			Note: s(500), Status: schemas.MemberRemoved, ImportID: s(64), UpdatedAt: hostileAt,
		})
		// Every other operation is rejected, leaving no coupon state.
		op := schemas.StateChanged{
			ResultID: id(schemas.TypeCouponStateChanged, i), CouponID: s(32), UserID: s(128), BatchID: s(64),
			Op: schemas.OpLock, Status: schemas.OpApplied, State: schemas.CouponLocked, Seq: 1<<63 - 1, OrderID: s(64),
			OrderAmount: 1<<63 - 1, SourceEventID: s(128), ValidFrom: hostileAt, ExpiresAt: drawAt, LockDeadline: a.DrawAt,
			ChangedAt: hostileAt,
		}
		if i%2 == 1 {
			op.Status, op.Reason = schemas.OpRejected, schemas.RejectLockedByOtherOrder
		}
		add(i, op)
		add(i, schemas.NotificationRequested{
			NotificationID: id(schemas.TypeNotificationRequested, i), UserID: s(128), Template: sinks.ReminderTemplate,
			SubjectID: s(64), CouponID: s(32), ExpiresAt: a.DrawAt, DueAt: hostileAt,
		})
		add(i, schemas.RecommendationMade{
			RecommendationID: id(schemas.TypeRecommendationMade, i), UserID: s(128), BatchID: s(64), Rank: 100,
			Score: 1<<63 - 1, Affinity: 1_000_000, ExpectedDiscount: 1<<63 - 1, MadeAt: hostileAt,
			RulesRevision: s(64), TriggerEventID: s(128), GrantEventID: s(128),
		})
	}
	return out
}

// Entries returns one lottery.entry.recorded result per user of users in
// activityID, all with status (rejected ones for limit_reached). tag makes
// the entries' ids differ from those of another call for the same users.
func Entries(tb testing.TB, activityID, tag, status string, users []string) []*schemas.Envelope {
	tb.Helper()
	out := make([]*schemas.Envelope, len(users))
	for i, u := range users {
		event := activityID + "-" + tag + "-" + u
		e := schemas.EntryRecorded{
			ResultID: schemas.ResultID(schemas.TypeLotteryEntryRecorded, "app-0", event), EntryEventID: event,
			ActivityID: activityID, UserID: u, Status: status, Roll: -1, OccurredAt: Epoch, RecordedAt: Epoch,
		}
		if status == schemas.EntryRejected {
			e.Reason = schemas.RejectLimitReached
		}
		out[i] = Result(tb, "app-0", Epoch, e)
	}
	return out
}
