package clickhouse

import (
	"strconv"

	"github.com/promoflow/promoflow/schemas"
)

// couponBatches keeps each batch's latest definition, archived from the
// coupon.batch.defined events of coupon.admin (v1 and v2 decode alike; a v1
// definition leaves the usage rules empty). It is where the budget views
// find a batch's discount. ReplacingMergeTree(revision): the highest
// revision wins, as in the coupon processor, whichever order the
// definitions arrive in. Definitions are few and their rows move in time,
// so the table is not partitioned.
var couponBatches = table{
	name: "coupon_batches",
	what: "coupon batch definitions",
	columns: []string{
		"batch_id", "app_id", "name", "revision", "status", "total_stock", "per_user_limit",
		"valid_from", "valid_from_ms", "valid_until", "valid_until_ms", "validity_days",
		"categories", "brands", "models", "threshold", "discount_type", "amount", "percent", "cap",
		"exclusion_group", "remind_days_before", "defined_at", "defined_at_ms",
	},
	create: "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  batch_id            String,\n" +
		"  app_id              String,\n" +
		"  name                String,\n" +
		"  revision            UInt64,\n" +
		"  status              String,\n" +
		"  total_stock         Int64,\n" +
		"  per_user_limit      Int64,\n" +
		"  valid_from          DateTime,\n" +
		"  valid_from_ms       UInt64,\n" +
		"  valid_until         DateTime,\n" +
		"  valid_until_ms      UInt64,\n" +
		"  validity_days       Int64,\n" +
		"  categories          Array(String),\n" +
		"  brands              Array(String),\n" +
		"  models              Array(String),\n" +
		"  threshold           Int64,\n" +
		"  discount_type       String,\n" +
		"  amount              Int64,\n" +
		"  percent             Int64,\n" +
		"  cap                 Int64,\n" +
		"  exclusion_group     String,\n" +
		"  remind_days_before  Int64,\n" +
		"  defined_at          DateTime,\n" +
		"  defined_at_ms       UInt64,\n" +
		"  created_at          DateTime DEFAULT now()\n" +
		") ENGINE = ReplacingMergeTree(revision)\n" +
		"ORDER BY batch_id",
	row: resultRow(func(env *schemas.Envelope, b *schemas.BatchDefined) (string, []any) {
		// Keyed by revision as well: a batch of writes keeps every
		// revision, and the merge the highest.
		key := b.BatchID + "\x00" + strconv.FormatInt(b.Revision, 10)
		return key, []any{
			b.BatchID, env.AppID, b.Name, uint64(max(b.Revision, 0)), b.Status, b.TotalStock, b.PerUserLimit,
			dateTime(b.ValidFrom), millis(b.ValidFrom), dateTime(b.ValidUntil), millis(b.ValidUntil), b.ValidityDays,
			nonNil(b.Categories), nonNil(b.Brands), nonNil(b.Models), b.Threshold, b.DiscountType, b.Amount, b.Percent, b.Cap,
			b.ExclusionGroup, b.RemindDaysBefore, dateTime(env.OccurredAt), millis(env.OccurredAt),
		}
	}),
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// The analysts' views. Each reads the result tables with FINAL, so a
// result replayed into several parts counts once before any merge; joins
// are UNION ALL plus GROUP BY (18.16 allows one JOIN per SELECT and no
// FULL JOIN that current releases still run), and the few real joins are
// ANY LEFT JOIN … USING on subqueries with aliases, which both 18.16 and
// current releases accept. Aliases never shadow a column that the same
// SELECT reads (current releases resolve those differently from 18.16).
// %[1]s is the quoted database.
//
// The fact views (coupon_facts, user_facts, coupon_budget) hold one row per
// event with its time (happened_at, happened_at_ms); the summary views
// aggregate them over all time, and the reports (report.go) aggregate them
// with the same columns over a window.

// couponFactsView is every grant decision (src 'decision': claims and
// issues, granted or rejected) and every coupon operation (src 'op': grant,
// lock, confirm, cancel, release, expire, applied or rejected), each once.
const couponFactsView = "CREATE VIEW IF NOT EXISTS %[1]s.`coupon_facts` AS\n" +
	"SELECT 'decision' AS src, batch_id, user_id, coupon_id, '' AS op, status, reason,\n" +
	"  decided_at AS happened_at, decided_at_ms AS happened_at_ms\n" +
	"FROM %[1]s.`coupon_grants` FINAL\n" +
	"UNION ALL\n" +
	"SELECT 'op' AS src, batch_id, user_id, coupon_id, op, status, reason,\n" +
	"  changed_at AS happened_at, changed_at_ms AS happened_at_ms\n" +
	"FROM %[1]s.`coupon_operations` FINAL"

// userFactsView adds the lottery to coupon_facts: every participation
// decided (src 'entry', accepted or rejected) and every prize awarded (src
// 'award'), for the users' activity.
const userFactsView = "CREATE VIEW IF NOT EXISTS %[1]s.`user_facts` AS\n" +
	"SELECT src, user_id, batch_id, '' AS activity_id, coupon_id, op, status, happened_at, happened_at_ms\n" +
	"FROM %[1]s.`coupon_facts`\n" +
	"UNION ALL\n" +
	"SELECT 'entry' AS src, user_id, '' AS batch_id, activity_id, '' AS coupon_id, '' AS op, status,\n" +
	"  recorded_at AS happened_at, recorded_at_ms AS happened_at_ms\n" +
	"FROM %[1]s.`lottery_entries` FINAL\n" +
	"UNION ALL\n" +
	"SELECT 'award' AS src, user_id, batch_id, activity_id, '' AS coupon_id, '' AS op, '' AS status,\n" +
	"  awarded_at AS happened_at, awarded_at_ms AS happened_at_ms\n" +
	"FROM %[1]s.`lottery_awards` FINAL"

// funnelColumns are the claim → grant → lock → redeem steps of the coupons
// in coupon_facts rows: claims are decisions, grants and rejections their
// outcomes; locked, redeemed and expired count coupons (not operations) with
// an applied lock, confirm or expire, so a coupon locked twice counts once.
// The rates divide each step by the one before; conversion is redeemed /
// grants, as in coupon_batch_stats. Each is 0 when its divisor is.
const funnelColumns = "" +
	"  countIf(src = 'decision') AS claims,\n" +
	"  countIf(src = 'decision' AND status = '" + schemas.StatusGranted + "') AS grants,\n" +
	"  countIf(src = 'decision' AND status = '" + schemas.StatusRejected + "') AS rejections,\n" +
	"  uniqExactIf(coupon_id, src = 'op' AND op = '" + schemas.OpLock + "' AND status = '" + schemas.OpApplied + "') AS locked,\n" +
	"  uniqExactIf(coupon_id, src = 'op' AND op = '" + schemas.OpConfirm + "' AND status = '" + schemas.OpApplied + "') AS redeemed,\n" +
	"  uniqExactIf(coupon_id, src = 'op' AND op = '" + schemas.OpExpire + "' AND status = '" + schemas.OpApplied + "') AS expired,\n" +
	"  if(claims = 0, toFloat64(0), grants / claims) AS grant_rate,\n" +
	"  if(grants = 0, toFloat64(0), locked / grants) AS lock_rate,\n" +
	"  if(locked = 0, toFloat64(0), redeemed / locked) AS redeem_rate,\n" +
	"  if(grants = 0, toFloat64(0), redeemed / grants) AS conversion\n"

// couponFunnelView is the funnel of each batch over all time.
const couponFunnelView = "CREATE VIEW IF NOT EXISTS %[1]s.`coupon_funnel` AS\n" +
	"SELECT batch_id,\n" + funnelColumns +
	"FROM %[1]s.`coupon_facts`\n" +
	"GROUP BY batch_id"

// userColumns are a user's activity in user_facts rows: claims (decisions
// on the user's claims and issues), grants, redemptions (coupons used),
// participations (lottery participations decided, accepted or rejected),
// wins (prizes awarded) and actions = claims + redemptions + participations,
// what "most active" ranks by.
const userColumns = "" +
	"  countIf(src = 'decision') AS claims,\n" +
	"  countIf(src = 'decision' AND status = '" + schemas.StatusGranted + "') AS grants,\n" +
	"  uniqExactIf(coupon_id, src = 'op' AND op = '" + schemas.OpConfirm + "' AND status = '" + schemas.OpApplied + "') AS redemptions,\n" +
	"  countIf(src = 'entry') AS participations,\n" +
	"  countIf(src = 'award') AS wins,\n" +
	"  claims + redemptions + participations AS actions\n"

// userActivityView is each user's activity over all time.
const userActivityView = "CREATE VIEW IF NOT EXISTS %[1]s.`user_activity` AS\n" +
	"SELECT user_id,\n" + userColumns +
	"FROM %[1]s.`user_facts`\n" +
	"GROUP BY user_id"

// couponBudgetView prices every grant (src 'grant', at its decision) and
// every redemption (src 'redeem', one per coupon, at its first applied
// confirm) with its batch's latest definition in coupon_batches:
//
//   - a grant is worth what the coupon can cost at most: amount for fixed
//     and price_increase, cap for percent (0 without a cap);
//   - a redemption is worth the discount of the order that used it, from
//     order_amount (the confirm's, or else its lock's): fixed
//     least(amount, order_amount), percent order_amount × percent / 100
//     rounded down and capped, price_increase amount. Without an order
//     amount, fixed and price_increase are worth amount and percent its cap.
//
// A batch with no definition in coupon_batches, or a v1 one (no discount),
// is worth 0. order_amount is the whole order's, so for a coupon scoped to
// some items the value is an upper bound of its discount.
const couponBudgetView = "CREATE VIEW IF NOT EXISTS %[1]s.`coupon_budget` AS\n" +
	"SELECT src, batch_id, coupon_id, happened_at, happened_at_ms, order_amount, discount_type,\n" +
	"  multiIf(\n" +
	"    src = 'grant' AND discount_type IN ('" + schemas.DiscountFixed + "', '" + schemas.DiscountPriceIncrease + "'), amount,\n" +
	"    src = 'grant' AND discount_type = '" + schemas.DiscountPercent + "', cap,\n" +
	"    src = 'redeem' AND discount_type = '" + schemas.DiscountFixed + "', if(order_amount > 0, least(amount, order_amount), amount),\n" +
	"    src = 'redeem' AND discount_type = '" + schemas.DiscountPriceIncrease + "', amount,\n" +
	"    src = 'redeem' AND discount_type = '" + schemas.DiscountPercent + "' AND order_amount > 0,\n" +
	"      if(cap > 0, least(intDiv(order_amount * percent, 100), cap), intDiv(order_amount * percent, 100)),\n" +
	"    src = 'redeem' AND discount_type = '" + schemas.DiscountPercent + "', cap,\n" +
	"    toInt64(0)) AS discount_value\n" +
	"FROM (\n" +
	"  SELECT 'grant' AS src, batch_id, coupon_id, decided_at AS happened_at, decided_at_ms AS happened_at_ms,\n" +
	"    toInt64(0) AS order_amount\n" +
	"  FROM %[1]s.`coupon_grants` FINAL\n" +
	"  WHERE status = '" + schemas.StatusGranted + "'\n" +
	"  UNION ALL\n" +
	"  SELECT 'redeem' AS src, batch_id, coupon_id, confirmed_at AS happened_at, confirmed_at_ms AS happened_at_ms,\n" +
	"    if(confirm_amount > 0, confirm_amount, lock_amount) AS order_amount\n" +
	"  FROM (\n" +
	"    SELECT batch_id, coupon_id,\n" +
	"      minIf(changed_at, op = '" + schemas.OpConfirm + "') AS confirmed_at,\n" +
	"      minIf(changed_at_ms, op = '" + schemas.OpConfirm + "') AS confirmed_at_ms,\n" +
	"      argMinIf(order_amount, changed_at_ms, op = '" + schemas.OpConfirm + "') AS confirm_amount,\n" +
	"      argMaxIf(order_amount, changed_at_ms, op = '" + schemas.OpLock + "') AS lock_amount\n" +
	"    FROM %[1]s.`coupon_operations` FINAL\n" +
	"    WHERE status = '" + schemas.OpApplied + "' AND op IN ('" + schemas.OpLock + "', '" + schemas.OpConfirm + "')\n" +
	"    GROUP BY batch_id, coupon_id\n" +
	"    HAVING countIf(op = '" + schemas.OpConfirm + "') > 0\n" +
	"  )\n" +
	") AS f\n" +
	"ANY LEFT JOIN (\n" +
	"  SELECT batch_id, discount_type, amount, percent, cap FROM %[1]s.`coupon_batches` FINAL\n" +
	") AS b USING (batch_id)"

// budgetColumns add up coupon_budget rows: grants and their value, and
// redemptions and theirs, in minor units.
const budgetColumns = "" +
	"  countIf(src = 'grant') AS grants,\n" +
	"  sumIf(discount_value, src = 'grant') AS granted_value,\n" +
	"  countIf(src = 'redeem') AS redemptions,\n" +
	"  sumIf(discount_value, src = 'redeem') AS redeemed_value\n"

// couponBudgetHourlyView is the budget burn of each batch per hour
// (hour_start, in the server's time zone, which shifts whole hours for
// most zones).
const couponBudgetHourlyView = "CREATE VIEW IF NOT EXISTS %[1]s.`coupon_budget_hourly` AS\n" +
	"SELECT batch_id, toStartOfHour(happened_at) AS hour_start,\n" + budgetColumns +
	"FROM %[1]s.`coupon_budget`\n" +
	"GROUP BY batch_id, hour_start"

// rejectionColumns count the rejected lottery_entries rows of an activity
// and reason.
const rejectionColumns = "  count() AS rejected_entries,\n  uniqExact(user_id) AS users\n"

// lotteryRejectionsView is the rejected participations of each activity by
// reason.
const lotteryRejectionsView = "CREATE VIEW IF NOT EXISTS %[1]s.`lottery_rejections` AS\n" +
	"SELECT activity_id, reason,\n" + rejectionColumns +
	"FROM %[1]s.`lottery_entries` FINAL\n" +
	"WHERE status = '" + schemas.EntryRejected + "'\n" +
	"GROUP BY activity_id, reason"

// tierColumns count the lottery_awards rows of an activity's tier:
// distinct winners and the points awarded (points prizes).
const tierColumns = "  uniqExact(user_id) AS winners,\n  sum(points) AS points_awarded\n"

// lotteryTierWinnersView is the winners of each activity by prize tier,
// whether drawn or won instantly.
const lotteryTierWinnersView = "CREATE VIEW IF NOT EXISTS %[1]s.`lottery_tier_winners` AS\n" +
	"SELECT activity_id, tier_id, prize_kind,\n" + tierColumns +
	"FROM %[1]s.`lottery_awards` FINAL\n" +
	"GROUP BY activity_id, tier_id, prize_kind"

// lotteryActivityStatsView is one row per committed activity (latest
// revision): participants (distinct users with an accepted entry),
// entries, rejected_entries and rejections ("reason=n …", by reason),
// winners (distinct users awarded) and tier_winners ("tier=n …"), and its
// draw: drawn (1 once drawn), drawn_at, time_to_draw_s (seconds from
// join_from to the draw) and draw_delay_ms (from the scheduled draw_at to
// the draw; 0 for a manual draw, or no draw). Activities with results but
// no commitment row are left out.
const lotteryActivityStatsView = "CREATE VIEW IF NOT EXISTS %[1]s.`lottery_activity_stats` AS\n" +
	"SELECT activity_id, name, kind, join_from, join_until, has_draw_at, draw_at,\n" +
	"  participants, entries, rejected_entries, rejections, winners, tier_winners,\n" +
	"  drawn, toDateTime(intDiv(drawn_at_ms, 1000)) AS drawn_at,\n" +
	"  if(drawn = 1, intDiv(toInt64(drawn_at_ms) - toInt64(join_from_ms), 1000), toInt64(0)) AS time_to_draw_s,\n" +
	"  if(drawn = 1 AND has_draw_at = 1, toInt64(drawn_at_ms) - toInt64(draw_at_ms), toInt64(0)) AS draw_delay_ms\n" +
	"FROM (\n" +
	"  SELECT activity_id, name, kind, join_from, join_from_ms, join_until, has_draw_at, draw_at, draw_at_ms\n" +
	"  FROM %[1]s.`lottery_activities` FINAL\n" +
	") AS a\n" +
	"ANY LEFT JOIN (\n" +
	"  SELECT activity_id,\n" +
	"    uniqExactIf(who, src = 'entry' AND state = '" + schemas.EntryAccepted + "') AS participants,\n" +
	"    countIf(src = 'entry') AS entries,\n" +
	"    countIf(src = 'entry' AND state = '" + schemas.EntryRejected + "') AS rejected_entries,\n" +
	"    arrayStringConcat(arraySort(groupArrayIf(label, src = 'reason')), ' ') AS rejections,\n" +
	"    uniqExactIf(who, src = 'award') AS winners,\n" +
	"    arrayStringConcat(arraySort(groupArrayIf(label, src = 'tier')), ' ') AS tier_winners,\n" +
	"    toUInt8(countIf(src = 'draw') > 0) AS drawn,\n" +
	"    maxIf(ms, src = 'draw') AS drawn_at_ms\n" +
	"  FROM (\n" +
	"    SELECT activity_id, 'entry' AS src, user_id AS who, status AS state, '' AS label, toUInt64(0) AS ms\n" +
	"    FROM %[1]s.`lottery_entries` FINAL\n" +
	"    UNION ALL\n" +
	"    SELECT activity_id, 'reason' AS src, '' AS who, '' AS state, concat(reason, '=', toString(count())) AS label, toUInt64(0) AS ms\n" +
	"    FROM %[1]s.`lottery_entries` FINAL\n" +
	"    WHERE status = '" + schemas.EntryRejected + "'\n" +
	"    GROUP BY activity_id, reason\n" +
	"    UNION ALL\n" +
	"    SELECT activity_id, 'award' AS src, user_id AS who, '' AS state, '' AS label, toUInt64(0) AS ms\n" +
	"    FROM %[1]s.`lottery_awards` FINAL\n" +
	"    UNION ALL\n" +
	"    SELECT activity_id, 'tier' AS src, '' AS who, '' AS state, concat(tier_id, '=', toString(uniqExact(user_id))) AS label, toUInt64(0) AS ms\n" +
	"    FROM %[1]s.`lottery_awards` FINAL\n" +
	"    GROUP BY activity_id, tier_id\n" +
	"    UNION ALL\n" +
	"    SELECT activity_id, 'draw' AS src, '' AS who, '' AS state, '' AS label, drawn_at_ms AS ms\n" +
	"    FROM %[1]s.`lottery_draws` FINAL\n" +
	"  )\n" +
	"  GROUP BY activity_id\n" +
	") AS s USING (activity_id)"

// analyticsViews are the views above in the order they must be created
// (a view after the views it reads).
var analyticsViews = []string{
	couponFactsView, userFactsView, couponFunnelView, userActivityView,
	couponBudgetView, couponBudgetHourlyView,
	lotteryRejectionsView, lotteryTierWinnersView, lotteryActivityStatsView,
}
