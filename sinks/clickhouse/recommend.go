package clickhouse

import "github.com/promoflow/promoflow/schemas"

// recommendations keeps every recommendation.made, one row per
// recommendation_id once merged, with the columns of the MySQL sink's
// recommendation tables (rec_rank for rank) and made_at as DateTime plus
// milliseconds. ReplacingMergeTree(made_at_ms) ORDER BY recommendation_id,
// partitioned by the month of made_at, which a replay keeps.
var recommendations = table{
	name: "recommendations",
	what: "recommendations",
	columns: []string{
		"recommendation_id", "app_id", "user_id", "batch_id", "rec_rank", "score", "affinity", "expected_discount",
		"made_at", "made_at_ms", "rules_revision", "trigger_event_id", "grant_event_id",
	},
	create: "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  recommendation_id   String,\n" +
		"  app_id              String,\n" +
		"  user_id             String,\n" +
		"  batch_id            String,\n" +
		"  rec_rank            Int64,\n" +
		"  score               Int64,\n" +
		"  affinity            Int64,\n" +
		"  expected_discount   Int64,\n" +
		"  made_at             DateTime,\n" +
		"  made_at_ms          UInt64,\n" +
		"  rules_revision      String,\n" +
		"  trigger_event_id    String,\n" +
		"  grant_event_id      String,\n" +
		"  created_at          DateTime DEFAULT now()\n" +
		") ENGINE = ReplacingMergeTree(made_at_ms)\n" +
		"PARTITION BY toYYYYMM(made_at)\n" +
		"ORDER BY recommendation_id",
	row: resultRow(func(env *schemas.Envelope, r *schemas.RecommendationMade) (string, []any) {
		return r.RecommendationID, []any{
			r.RecommendationID, env.AppID, r.UserID, r.BatchID, r.Rank, r.Score, r.Affinity, r.ExpectedDiscount,
			dateTime(r.MadeAt), millis(r.MadeAt), r.RulesRevision, r.TriggerEventID, r.GrantEventID,
		}
	}),
}

// recommendationConversion is the funnel of recommendations per batch_id:
// recommended_users (users the batch was recommended to, at any rank),
// claimed_users (those of them granted a coupon of the batch after it was
// first recommended to them: a coupon.grant.decided granted, whether by a
// self-claim, an issue or the auto-grant), and redeemed_users (those of
// them who used a coupon of the batch after it was first recommended to
// them: an applied confirm on coupon_operations). Each table is read once
// with FINAL; the joins are ANY LEFT JOIN … USING, which ClickHouse 18.16
// runs, on one row per (batch_id, user_id) of each side, so a user counts
// once however many recommendations, grants or redemptions there were.
// Conversion rates are ratios of its columns:
//
//	SELECT batch_id, recommended_users, claimed_users, redeemed_users,
//	       claimed_users / recommended_users AS claim_rate
//	FROM promoflow.recommendation_conversion ORDER BY recommended_users DESC
const recommendationConversion = "CREATE VIEW IF NOT EXISTS %[1]s.`recommendation_conversion` AS\n" +
	"SELECT batch_id,\n" +
	"  count() AS recommended_users,\n" +
	"  countIf(granted_ms >= first_ms) AS claimed_users,\n" +
	"  countIf(redeemed_ms >= first_ms) AS redeemed_users\n" +
	"FROM (\n" +
	"  SELECT batch_id, user_id, first_ms, granted_ms, redeemed_ms FROM (\n" +
	"    SELECT batch_id, user_id, first_ms, granted_ms FROM (\n" +
	"      SELECT batch_id, user_id, min(made_at_ms) AS first_ms FROM %[1]s.`recommendations` FINAL GROUP BY batch_id, user_id\n" +
	"    ) ANY LEFT JOIN (\n" +
	"      SELECT batch_id, user_id, max(decided_at_ms) AS granted_ms FROM %[1]s.`coupon_grants` FINAL\n" +
	"      WHERE status = '" + schemas.StatusGranted + "' GROUP BY batch_id, user_id\n" +
	"    ) USING (batch_id, user_id)\n" +
	"  ) ANY LEFT JOIN (\n" +
	"    SELECT batch_id, user_id, max(changed_at_ms) AS redeemed_ms FROM %[1]s.`coupon_operations` FINAL\n" +
	"    WHERE op = '" + schemas.OpConfirm + "' AND status = '" + schemas.OpApplied + "' GROUP BY batch_id, user_id\n" +
	"  ) USING (batch_id, user_id)\n" +
	")\n" +
	"GROUP BY batch_id"
