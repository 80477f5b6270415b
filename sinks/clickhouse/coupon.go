package clickhouse

import (
	"slices"
	"strconv"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// The coupon lifecycle tables. Times are DateTime plus UInt64 milliseconds
// (x, x_ms); an absent lock_deadline or expires_at is the epoch with
// has_x = 0.
var (
	// couponStates keeps each coupon's latest state: the applied
	// coupon.state.changed with the highest seq, whichever order the
	// operations arrive in (ReplacingMergeTree(seq); read it with FINAL).
	// Its rows move in time as the coupon changes, so it is not
	// partitioned: two versions of a coupon in different partitions would
	// never collapse.
	couponStates = table{
		name: "coupon_states",
		what: "coupon states",
		columns: slices.Concat([]string{
			"coupon_id", "app_id", "user_id", "batch_id", "state", "order_id", "seq",
		}, couponTimeColumns, []string{"updated_at", "updated_at_ms"}),
		create: "CREATE TABLE IF NOT EXISTS %s (\n" +
			"  coupon_id           String,\n" +
			"  app_id              String,\n" +
			"  user_id             String,\n" +
			"  batch_id            String,\n" +
			"  state               String,\n" +
			"  order_id            String,\n" +
			"  seq                 UInt64,\n" +
			couponTimeDefinitions +
			"  updated_at          DateTime,\n" +
			"  updated_at_ms       UInt64,\n" +
			"  created_at          DateTime DEFAULT now()\n" +
			") ENGINE = ReplacingMergeTree(seq)\n" +
			"ORDER BY coupon_id",
		row: resultRow(func(env *schemas.Envelope, c *schemas.StateChanged) (string, []any) {
			if c.Status != schemas.OpApplied {
				return "", nil
			}
			// Keyed by seq as well: the batch keeps every version of a
			// coupon, and the merge the highest.
			key := c.CouponID + "\x00" + strconv.FormatInt(c.Seq, 10)
			values := []any{c.CouponID, env.AppID, c.UserID, c.BatchID, c.State, c.OrderID, uint64(max(c.Seq, 0))}
			return key, append(append(values, couponTimes(c)...), dateTime(c.ChangedAt), millis(c.ChangedAt))
		}),
	}

	// couponOperations is the operation record: one row per
	// coupon.state.changed result, applied or rejected.
	couponOperations = table{
		name: "coupon_operations",
		what: "coupon operations",
		columns: slices.Concat([]string{
			"result_id", "app_id", "coupon_id", "user_id", "batch_id", "op", "status", "reason", "state", "seq",
			"order_id", "order_amount", "source_event_id",
		}, couponTimeColumns, []string{"changed_at", "changed_at_ms"}),
		create: createSQL(""+
			"  coupon_id           String,\n"+
			"  user_id             String,\n"+
			"  batch_id            String,\n"+
			"  op                  String,\n"+
			"  status              String,\n"+
			"  reason              String,\n"+
			"  state               String,\n"+
			"  seq                 Int64,\n"+
			"  order_id            String,\n"+
			"  order_amount        Int64,\n"+
			"  source_event_id     String,\n"+
			couponTimeDefinitions+
			"  changed_at          DateTime,\n"+
			"  changed_at_ms       UInt64,\n",
			"changed_at_ms", "PARTITION BY toYYYYMM(changed_at)\n"),
		row: resultRow(func(env *schemas.Envelope, c *schemas.StateChanged) (string, []any) {
			values := []any{
				c.ResultID, env.AppID, c.CouponID, c.UserID, c.BatchID, c.Op, c.Status, c.Reason, c.State, c.Seq,
				c.OrderID, c.OrderAmount, c.SourceEventID,
			}
			return c.ResultID, append(append(values, couponTimes(c)...), dateTime(c.ChangedAt), millis(c.ChangedAt))
		}),
	}

	// notifications keeps every notification.requested, one row per
	// notification_id, whatever its template. due_day is due_at's date in
	// UTC, the day of "one reminder per user, batch and day"; that rule is
	// the system of record's (MySQL's coupon_reminder tables), this table
	// keeps what was requested.
	notifications = table{
		name: "notifications",
		what: "notifications",
		columns: []string{
			"notification_id", "app_id", "user_id", "template", "subject_id", "coupon_id",
			"expires_at", "expires_at_ms", "has_expires_at", "due_at", "due_at_ms", "due_day",
		},
		create: "CREATE TABLE IF NOT EXISTS %s (\n" +
			"  notification_id     String,\n" +
			"  app_id              String,\n" +
			"  user_id             String,\n" +
			"  template            String,\n" +
			"  subject_id          String,\n" +
			"  coupon_id           String,\n" +
			"  expires_at          DateTime,\n" +
			"  expires_at_ms       UInt64,\n" +
			"  has_expires_at      UInt8,\n" +
			"  due_at              DateTime,\n" +
			"  due_at_ms           UInt64,\n" +
			"  due_day             Date,\n" +
			"  created_at          DateTime DEFAULT now()\n" +
			") ENGINE = ReplacingMergeTree(due_at_ms)\n" +
			"PARTITION BY toYYYYMM(due_at)\n" +
			"ORDER BY notification_id",
		row: resultRow(func(env *schemas.Envelope, n *schemas.NotificationRequested) (string, []any) {
			expiresAt, expiresAtMs, hasExpiresAt := optional(n.ExpiresAt)
			dueAt := dateTime(n.DueAt)
			return n.NotificationID, []any{
				n.NotificationID, env.AppID, n.UserID, n.Template, n.SubjectID, n.CouponID,
				expiresAt, expiresAtMs, hasExpiresAt, dueAt, millis(n.DueAt), dueAt.Truncate(24 * time.Hour),
			}
		}),
	}
)

// couponTimeColumns are the columns of a coupon's validity and lock
// deadline that coupon_states and coupon_operations share, defined by
// couponTimeDefinitions and valued by couponTimes.
var couponTimeColumns = []string{
	"valid_from", "valid_from_ms", "expires_at", "expires_at_ms", "lock_deadline", "lock_deadline_ms", "has_lock_deadline",
}

const couponTimeDefinitions = "" +
	"  valid_from          DateTime,\n" +
	"  valid_from_ms       UInt64,\n" +
	"  expires_at          DateTime,\n" +
	"  expires_at_ms       UInt64,\n" +
	"  lock_deadline       DateTime,\n" +
	"  lock_deadline_ms    UInt64,\n" +
	"  has_lock_deadline   UInt8,\n"

func couponTimes(c *schemas.StateChanged) []any {
	lockDeadline, lockDeadlineMs, hasLockDeadline := optional(c.LockDeadline)
	return []any{
		dateTime(c.ValidFrom), millis(c.ValidFrom), dateTime(c.ExpiresAt), millis(c.ExpiresAt),
		lockDeadline, lockDeadlineMs, hasLockDeadline,
	}
}

// The analysts' coupon views aggregate couponFacts: every grant decision
// (src 'decision') and every operation (src 'op'), each once (FINAL),
// joined by UNION ALL rather than JOIN so that a batch or user with
// operations but no decisions (or the reverse) still shows. A redemption is
// an applied confirm, an expiration an applied expire, each counted once
// per coupon. %[1]s is the quoted database.
const (
	couponFacts = "FROM (\n" +
		"  SELECT batch_id, user_id, coupon_id, status, '' AS op, 'decision' AS src FROM %[1]s.`coupon_grants` FINAL\n" +
		"  UNION ALL\n" +
		"  SELECT batch_id, user_id, coupon_id, status, op, 'op' AS src FROM %[1]s.`coupon_operations` FINAL\n" +
		")\n"
	grantsColumn      = "  countIf(src = 'decision' AND status = '" + schemas.StatusGranted + "') AS grants,\n"
	redemptionsColumn = "  uniqExactIf(coupon_id, src = 'op' AND op = '" + schemas.OpConfirm + "' AND status = '" + schemas.OpApplied + "') AS redemptions"
)

// couponBatchStats is the coupon funnel of each batch_id: claims (grant
// decisions), grants, rejections, redemptions, expirations, and conversion,
// the claim→redeem rate redemptions / grants as a Float64 (0 when nothing
// was granted). The most claimed and the most redeemed batches are an
// ORDER BY on it:
//
//	SELECT batch_id, claims, grants, redemptions FROM promoflow.coupon_batch_stats
//	ORDER BY claims DESC, batch_id LIMIT 10
//
//	SELECT batch_id, redemptions, grants, conversion FROM promoflow.coupon_batch_stats
//	ORDER BY redemptions DESC, batch_id LIMIT 10
const couponBatchStats = "CREATE VIEW IF NOT EXISTS %[1]s.`coupon_batch_stats` AS\n" +
	"SELECT batch_id,\n" +
	"  countIf(src = 'decision') AS claims,\n" +
	grantsColumn +
	"  countIf(src = 'decision' AND status = '" + schemas.StatusRejected + "') AS rejections,\n" +
	redemptionsColumn + ",\n" +
	"  uniqExactIf(coupon_id, src = 'op' AND op = '" + schemas.OpExpire + "' AND status = '" + schemas.OpApplied + "') AS expirations,\n" +
	"  if(grants = 0, toFloat64(0), redemptions / grants) AS conversion\n" +
	couponFacts +
	"GROUP BY batch_id"

// couponTopUsers is the coupon activity of each user_id: grants,
// redemptions and operations (every operation on the user's coupons,
// applied or rejected, the grants' included). The most active users:
//
//	SELECT user_id, operations, grants, redemptions FROM promoflow.coupon_top_users
//	ORDER BY operations DESC, user_id LIMIT 10
const couponTopUsers = "CREATE VIEW IF NOT EXISTS %[1]s.`coupon_top_users` AS\n" +
	"SELECT user_id,\n" +
	grantsColumn +
	redemptionsColumn + ",\n" +
	"  countIf(src = 'op') AS operations\n" +
	couponFacts +
	"GROUP BY user_id"
