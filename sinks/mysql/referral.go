package mysql

import (
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.ReferralReader = (*Sink)(nil)

// The referral tables. Binding and qualification decisions are routed by
// invitee, so that an invitee's whole history (and the "one inviter per
// invitee" check) is in one shard table; rewards by inviter, so that an
// inviter's rewards are too. Sizes follow the schemas.
var (
	// referralBindings stores referral.bound: every click's and
	// registration's decision, bound or refused.
	referralBindings = newResults(table{
		eventType: schemas.TypeReferralBound,
		what:      "referral bindings",
		prefix:    "referral",
		columns: []string{
			"result_id", "source_event_id", "event_kind", "activity_id", "invitee_id", "inviter_id", "status", "reason",
			"bound_inviter_id", "counted", "occurred_at", "decided_at",
		},
		create: createSQL(""+
			"  source_event_id     VARCHAR(128)  NOT NULL,\n"+
			"  event_kind          VARCHAR(16)   NOT NULL,\n"+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  invitee_id          VARCHAR(128)  NOT NULL,\n"+
			"  inviter_id          VARCHAR(128)  NOT NULL DEFAULT '',\n"+
			"  status              VARCHAR(16)   NOT NULL,\n"+
			"  reason              VARCHAR(32)   NOT NULL DEFAULT '',\n"+
			"  bound_inviter_id    VARCHAR(128)  NOT NULL DEFAULT '',\n"+
			"  counted             TINYINT       NOT NULL DEFAULT 0,\n"+
			"  occurred_at         DATETIME(3)   NOT NULL,\n"+
			"  decided_at          DATETIME(3)   NOT NULL,\n",
			// An invitee's binding, and the one-inviter check, read the
			// first; an inviter's invitees the second.
			"  KEY idx_activity_invitee (activity_id, invitee_id, status),\n"+
				"  KEY idx_activity_inviter (activity_id, bound_inviter_id, status)"),
	}, func(r *schemas.ReferralBoundResult) []any {
		return []any{
			&r.ResultID, &r.SourceEventID, &r.EventKind, &r.ActivityID, &r.InviteeID, &r.InviterID, &r.Status, &r.Reason,
			&r.BoundInviterID, &r.Counted, &r.OccurredAt, &r.DecidedAt,
		}
	}, func(r *schemas.ReferralBoundResult) string { return r.InviteeID })

	// referralQualifications stores referral.qualification.decided.
	referralQualifications = newResults(table{
		eventType: schemas.TypeReferralQualificationDecided,
		what:      "referral qualifications",
		prefix:    "referral_qualification",
		columns: []string{
			"result_id", "source_event_id", "activity_id", "invitee_id", "inviter_id", "action", "status", "reason",
			"occurred_at", "decided_at",
		},
		create: createSQL(""+
			"  source_event_id     VARCHAR(128)  NOT NULL,\n"+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  invitee_id          VARCHAR(128)  NOT NULL,\n"+
			"  inviter_id          VARCHAR(128)  NOT NULL DEFAULT '',\n"+
			"  action              VARCHAR(32)   NOT NULL,\n"+
			"  status              VARCHAR(16)   NOT NULL,\n"+
			"  reason              VARCHAR(32)   NOT NULL DEFAULT '',\n"+
			"  occurred_at         DATETIME(3)   NOT NULL,\n"+
			"  decided_at          DATETIME(3)   NOT NULL,\n",
			"  KEY idx_activity_invitee (activity_id, invitee_id, status)"),
	}, func(q *schemas.QualificationDecided) []any {
		return []any{
			&q.ResultID, &q.SourceEventID, &q.ActivityID, &q.InviteeID, &q.InviterID, &q.Action, &q.Status, &q.Reason,
			&q.OccurredAt, &q.DecidedAt,
		}
	}, func(q *schemas.QualificationDecided) string { return q.InviteeID })

	// referralRewards stores referral.reward.granted, one row per
	// (activity, inviter, threshold): the result id derives from them.
	referralRewards = newResults(table{
		eventType: schemas.TypeReferralRewardGranted,
		what:      "referral rewards",
		prefix:    "referral_reward",
		columns: []string{
			"result_id", "activity_id", "inviter_id", "threshold", "batch_id", "successful", "invitee_id",
			"source_event_id", "claim_event_id", "granted_at",
		},
		create: createSQL(""+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  inviter_id          VARCHAR(128)  NOT NULL,\n"+
			"  threshold           BIGINT        NOT NULL,\n"+
			"  batch_id            VARCHAR(64)   NOT NULL,\n"+
			"  successful          BIGINT        NOT NULL,\n"+
			"  invitee_id          VARCHAR(128)  NOT NULL,\n"+
			"  source_event_id     VARCHAR(128)  NOT NULL,\n"+
			"  claim_event_id      VARCHAR(128)  NOT NULL,\n"+
			"  granted_at          DATETIME(3)   NOT NULL,\n",
			"  KEY idx_activity_inviter (activity_id, inviter_id, threshold)"),
	}, func(r *schemas.RewardGranted) []any {
		return []any{
			&r.ResultID, &r.ActivityID, &r.InviterID, &r.Threshold, &r.BatchID, &r.Successful, &r.InviteeID,
			&r.SourceEventID, &r.ClaimEventID, &r.GrantedAt,
		}
	}, func(r *schemas.RewardGranted) string { return r.InviterID })
)

// Binding returns invitee's binding in the activity (the bound decision),
// reading the one table the invitee routes to, or an error wrapping
// [ErrNotFound].
func (s *Sink) Binding(ctx context.Context, activityID, invitee string) (*schemas.ReferralBoundResult, error) {
	got, err := selectFrom(ctx, s, referralBindings, s.route(invitee),
		"WHERE activity_id = ? AND invitee_id = ? AND status = '"+schemas.ReferralBound+"' ORDER BY decided_at, result_id LIMIT 1",
		activityID, invitee)
	return first(got, err, "binding of "+invitee+" in activity", activityID)
}

// Invitees returns the invitees bound to inviter in the activity, sorted
// by invitee id, each with whether it counts toward the inviter. Invitees
// are routed by their own id, so it reads every shard's (activity_id,
// bound_inviter_id, status) index range and, in the same table index, the
// invitee's qualification.
func (s *Sink) Invitees(ctx context.Context, activityID, inviter string) ([]sinks.Invitee, error) {
	q := "SELECT t.invitee_id, t.decided_at, t.counted = 1 OR EXISTS (SELECT 1 FROM referral_qualification_%[1]d q" +
		" WHERE q.activity_id = t.activity_id AND q.invitee_id = t.invitee_id AND q.status = '" + schemas.ReferralCounted + "')" +
		" FROM referral_%[1]d t WHERE t.activity_id = ? AND t.bound_inviter_id = ? AND t.status = '" + schemas.ReferralBound + "'"
	out, err := query(ctx, s, referralBindings.what, s.everyShard(), q, []any{activityID, inviter}, func(rows *sql.Rows) (sinks.Invitee, error) {
		var v sinks.Invitee
		err := rows.Scan(&v.InviteeID, &v.BoundAt, &v.Counted)
		v.BoundAt = v.BoundAt.UTC()
		return v, err
	})
	slices.SortFunc(out, func(a, b sinks.Invitee) int { return strings.Compare(a.InviteeID, b.InviteeID) })
	return out, err
}

// Rewards returns inviter's rewards in the activity by threshold, reading
// the one table the inviter routes to.
func (s *Sink) Rewards(ctx context.Context, activityID, inviter string) ([]schemas.RewardGranted, error) {
	return selectFrom(ctx, s, referralRewards, s.route(inviter),
		"WHERE activity_id = ? AND inviter_id = ? ORDER BY threshold, result_id", activityID, inviter)
}

// ReferralCounts counts the activity's decisions in every shard.
func (s *Sink) ReferralCounts(ctx context.Context, activityID string) (sinks.ReferralCounts, error) {
	c := sinks.ReferralCounts{RefusedBy: map[string]int64{}}
	type count struct {
		kind, status, reason string
		counted              bool
		n                    int64
	}
	scan := func(rows *sql.Rows) (count, error) {
		var v count
		err := rows.Scan(&v.kind, &v.status, &v.reason, &v.counted, &v.n)
		return v, err
	}
	binds, err := query(ctx, s, referralBindings.what, s.everyShard(),
		"SELECT event_kind, status, reason, counted, COUNT(*) FROM referral_%[1]d WHERE activity_id = ? GROUP BY event_kind, status, reason, counted",
		[]any{activityID}, scan)
	if err != nil {
		return c, err
	}
	quals, err := query(ctx, s, referralQualifications.what, s.everyShard(),
		"SELECT 'qualification', status, reason, 0, COUNT(*) FROM referral_qualification_%[1]d WHERE activity_id = ? GROUP BY status, reason",
		[]any{activityID}, scan)
	if err != nil {
		return c, err
	}
	for _, v := range append(binds, quals...) {
		switch {
		case v.kind == schemas.BindClick:
			c.Clicks += v.n
		case v.kind == schemas.BindRegistration:
			c.Registrations += v.n
		}
		switch {
		case v.status == schemas.ReferralBound:
			c.Bound += v.n
			if v.counted {
				c.Counted += v.n
			}
		case v.status == schemas.ReferralCounted:
			c.Counted += v.n
		case v.reason != "":
			c.RefusedBy[v.reason] += v.n
		}
	}
	rewards, err := query(ctx, s, referralRewards.what, s.everyShard(),
		"SELECT COUNT(*) FROM referral_reward_%[1]d WHERE activity_id = ?", []any{activityID}, scanOne[int64])
	for _, n := range rewards {
		c.Rewards += n
	}
	return c, err
}
