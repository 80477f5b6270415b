package clickhouse

import (
	"github.com/promoflow/promoflow/schemas"
)

// The referral tables hold the columns of the MySQL sink's tables of the
// same results, with each time as DateTime plus UInt64 milliseconds.
var (
	referralBindings = table{
		name: "referral_bindings",
		what: "referral bindings",
		columns: []string{
			"result_id", "app_id", "source_event_id", "event_kind", "activity_id", "invitee_id", "inviter_id", "status", "reason",
			"bound_inviter_id", "counted", "occurred_at", "occurred_at_ms", "decided_at", "decided_at_ms",
		},
		create: createSQL(""+
			"  source_event_id     String,\n"+
			"  event_kind          String,\n"+
			"  activity_id         String,\n"+
			"  invitee_id          String,\n"+
			"  inviter_id          String,\n"+
			"  status              String,\n"+
			"  reason              String,\n"+
			"  bound_inviter_id    String,\n"+
			"  counted             Int64,\n"+
			"  occurred_at         DateTime,\n"+
			"  occurred_at_ms      UInt64,\n"+
			"  decided_at          DateTime,\n"+
			"  decided_at_ms       UInt64,\n",
			"decided_at_ms", "PARTITION BY toYYYYMM(decided_at)\n"),
		row: resultRow(func(env *schemas.Envelope, r *schemas.ReferralBoundResult) (string, []any) {
			return r.ResultID, []any{
				r.ResultID, env.AppID, r.SourceEventID, r.EventKind, r.ActivityID, r.InviteeID, r.InviterID, r.Status, r.Reason,
				r.BoundInviterID, r.Counted, dateTime(r.OccurredAt), millis(r.OccurredAt), dateTime(r.DecidedAt), millis(r.DecidedAt),
			}
		}),
	}

	referralQualifications = table{
		name: "referral_qualifications",
		what: "referral qualifications",
		columns: []string{
			"result_id", "app_id", "source_event_id", "activity_id", "invitee_id", "inviter_id", "action", "status", "reason",
			"occurred_at", "occurred_at_ms", "decided_at", "decided_at_ms",
		},
		create: createSQL(""+
			"  source_event_id     String,\n"+
			"  activity_id         String,\n"+
			"  invitee_id          String,\n"+
			"  inviter_id          String,\n"+
			"  action              String,\n"+
			"  status              String,\n"+
			"  reason              String,\n"+
			"  occurred_at         DateTime,\n"+
			"  occurred_at_ms      UInt64,\n"+
			"  decided_at          DateTime,\n"+
			"  decided_at_ms       UInt64,\n",
			"decided_at_ms", "PARTITION BY toYYYYMM(decided_at)\n"),
		row: resultRow(func(env *schemas.Envelope, q *schemas.QualificationDecided) (string, []any) {
			return q.ResultID, []any{
				q.ResultID, env.AppID, q.SourceEventID, q.ActivityID, q.InviteeID, q.InviterID, q.Action, q.Status, q.Reason,
				dateTime(q.OccurredAt), millis(q.OccurredAt), dateTime(q.DecidedAt), millis(q.DecidedAt),
			}
		}),
	}

	referralRewards = table{
		name: "referral_rewards",
		what: "referral rewards",
		columns: []string{
			"result_id", "app_id", "activity_id", "inviter_id", "threshold", "batch_id", "successful", "invitee_id",
			"source_event_id", "claim_event_id", "granted_at", "granted_at_ms",
		},
		create: createSQL(""+
			"  activity_id         String,\n"+
			"  inviter_id          String,\n"+
			"  threshold           Int64,\n"+
			"  batch_id            String,\n"+
			"  successful          Int64,\n"+
			"  invitee_id          String,\n"+
			"  source_event_id     String,\n"+
			"  claim_event_id      String,\n"+
			"  granted_at          DateTime,\n"+
			"  granted_at_ms       UInt64,\n",
			"granted_at_ms", "PARTITION BY toYYYYMM(granted_at)\n"),
		row: resultRow(func(env *schemas.Envelope, r *schemas.RewardGranted) (string, []any) {
			return r.ResultID, []any{
				r.ResultID, env.AppID, r.ActivityID, r.InviterID, r.Threshold, r.BatchID, r.Successful, r.InviteeID,
				r.SourceEventID, r.ClaimEventID, dateTime(r.GrantedAt), millis(r.GrantedAt),
			}
		}),
	}
)

// referralFacts is the FROM clause of the referral views: one row per
// binding decision (src bind), per invitee that counts toward its inviter
// (src count: bound in an activity without a qualifying action, or
// qualified) and per reward (src reward), read with FINAL so that replays
// count once. %[1]s is the quoted database.
const referralFacts = "FROM (\n" +
	"  SELECT activity_id, bound_inviter_id AS inviter_id, invitee_id, event_kind, status, 'bind' AS src FROM %[1]s.`referral_bindings` FINAL\n" +
	"  UNION ALL\n" +
	"  SELECT activity_id, bound_inviter_id AS inviter_id, invitee_id, '' AS event_kind, status, 'count' AS src FROM %[1]s.`referral_bindings` FINAL\n" +
	"    WHERE status = '" + schemas.ReferralBound + "' AND counted = 1\n" +
	"  UNION ALL\n" +
	"  SELECT activity_id, inviter_id, invitee_id, '' AS event_kind, status, 'count' AS src FROM %[1]s.`referral_qualifications` FINAL\n" +
	"    WHERE status = '" + schemas.ReferralCounted + "'\n" +
	"  UNION ALL\n" +
	"  SELECT activity_id, inviter_id, '' AS invitee_id, '' AS event_kind, '' AS status, 'reward' AS src FROM %[1]s.`referral_rewards` FINAL\n" +
	")\n"

// referralActivityFunnel is the conversion of each referral activity:
// clicks and registrations (binding decisions, whatever their outcome),
// refused ones, invitees bound, invitees qualified (counting toward their
// inviter), rewards granted, inviters rewarded, and conversion, qualified /
// bound as a Float64 (0 when nobody was bound):
//
//	SELECT activity_id, clicks, bound, qualified, rewards, conversion
//	FROM promoflow.referral_activity_funnel ORDER BY clicks DESC
const referralActivityFunnel = "CREATE VIEW IF NOT EXISTS %[1]s.`referral_activity_funnel` AS\n" +
	"SELECT activity_id,\n" +
	"  countIf(src = 'bind' AND event_kind = '" + schemas.BindClick + "') AS clicks,\n" +
	"  countIf(src = 'bind' AND event_kind = '" + schemas.BindRegistration + "') AS registrations,\n" +
	"  countIf(src = 'bind' AND status = '" + schemas.ReferralRefused + "') AS refused,\n" +
	"  uniqExactIf(invitee_id, src = 'bind' AND status = '" + schemas.ReferralBound + "') AS bound,\n" +
	"  uniqExactIf(invitee_id, src = 'count') AS qualified,\n" +
	"  countIf(src = 'reward') AS rewards,\n" +
	"  uniqExactIf(inviter_id, src = 'reward') AS rewarded_inviters,\n" +
	"  if(bound = 0, toFloat64(0), qualified / bound) AS conversion\n" +
	referralFacts +
	"GROUP BY activity_id"

// referralInviterStats is each inviter's standing per activity: invitees
// bound, invitees that count (qualified) and rewards granted. The top
// inviters of an activity:
//
//	SELECT inviter_id, invitees, qualified, rewards FROM promoflow.referral_inviter_stats
//	WHERE activity_id = 'spring' ORDER BY qualified DESC, inviter_id LIMIT 10
const referralInviterStats = "CREATE VIEW IF NOT EXISTS %[1]s.`referral_inviter_stats` AS\n" +
	"SELECT activity_id, inviter_id,\n" +
	"  uniqExactIf(invitee_id, src = 'bind' AND status = '" + schemas.ReferralBound + "') AS invitees,\n" +
	"  uniqExactIf(invitee_id, src = 'count') AS qualified,\n" +
	"  countIf(src = 'reward') AS rewards\n" +
	referralFacts +
	"WHERE inviter_id != ''\n" +
	"GROUP BY activity_id, inviter_id"
