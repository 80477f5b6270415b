package mysql

import (
	"context"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.CouponReader = (*Sink)(nil)

// The coupon lifecycle tables, all routed by user id so that a user's
// coupons, their operations and reminders share one table index. Sizes
// follow the schemas: coupon ids up to 32 characters, batch and order ids
// up to 64, user and event ids up to 128.
var (
	// coupons keeps each coupon's current state, one row per coupon_id:
	// the applied coupon.state.changed with the highest seq. seq guards
	// every update (see table.newer), so a replay or a late, lower seq
	// leaves the row alone, and rejected operations never reach it. The
	// order-time validation service reads a user's rows through
	// idx_user_state.
	coupons = func() *results[sinks.CouponRow] {
		r := newResults(table{
			eventType: schemas.TypeCouponStateChanged,
			what:      "coupon states",
			prefix:    "coupon",
			columns: []string{
				"coupon_id", "user_id", "batch_id", "state", "order_id", "seq",
				"valid_from", "expires_at", "lock_deadline", "updated_at",
			},
			newer: "seq",
			create: "CREATE TABLE IF NOT EXISTS %s (\n" +
				"  coupon_id           VARCHAR(32)   NOT NULL,\n" +
				"  user_id             VARCHAR(128)  NOT NULL,\n" +
				"  batch_id            VARCHAR(64)   NOT NULL,\n" +
				"  state               VARCHAR(16)   NOT NULL,\n" +
				"  order_id            VARCHAR(64)   NOT NULL DEFAULT '',\n" +
				"  seq                 BIGINT        NOT NULL,\n" +
				"  valid_from          DATETIME(3)   NOT NULL,\n" +
				"  expires_at          DATETIME(3)   NOT NULL,\n" +
				"  lock_deadline       DATETIME(3)   NULL,\n" +
				"  updated_at          DATETIME(3)   NOT NULL,\n" +
				"  app_id              VARCHAR(64)   NOT NULL,\n" +
				"  created_at          DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" +
				"  PRIMARY KEY (coupon_id),\n" +
				"  KEY idx_user_state (user_id, state)\n" +
				") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
		}, func(c *sinks.CouponRow) []any {
			return []any{
				&c.CouponID, &c.UserID, &c.BatchID, &c.State, &c.OrderID, &c.Seq,
				&c.ValidFrom, &c.ExpiresAt, &c.LockDeadline, &c.UpdatedAt,
			}
		}, func(c *sinks.CouponRow) string { return c.UserID })
		r.row = func(env *schemas.Envelope) (row, bool, error) {
			var op schemas.StateChanged
			if err := env.DecodePayload(&op); err != nil {
				return row{}, false, err
			}
			if op.Status != schemas.OpApplied {
				return row{}, false, nil
			}
			c := sinks.CouponRowOf(op)
			out := r.rowOf(env, &c)
			out.version = c.Seq
			return out, true, nil
		}
		return r
	}()

	// couponOps is the operation record: one row per coupon.state.changed,
	// applied or rejected.
	couponOps = newResults(table{
		eventType: schemas.TypeCouponStateChanged,
		what:      "coupon operations",
		prefix:    "coupon_op",
		columns: []string{
			"result_id", "coupon_id", "user_id", "batch_id", "op", "status", "reason", "state", "seq",
			"order_id", "order_amount", "source_event_id", "valid_from", "expires_at", "lock_deadline", "changed_at",
		},
		create: createSQL(""+
			"  coupon_id           VARCHAR(32)   NOT NULL,\n"+
			"  user_id             VARCHAR(128)  NOT NULL,\n"+
			"  batch_id            VARCHAR(64)   NOT NULL,\n"+
			"  op                  VARCHAR(16)   NOT NULL,\n"+
			"  status              VARCHAR(16)   NOT NULL,\n"+
			"  reason              VARCHAR(32)   NOT NULL DEFAULT '',\n"+
			"  state               VARCHAR(16)   NOT NULL DEFAULT '',\n"+
			"  seq                 BIGINT        NOT NULL,\n"+
			"  order_id            VARCHAR(64)   NOT NULL DEFAULT '',\n"+
			"  order_amount        BIGINT        NOT NULL DEFAULT 0,\n"+
			"  source_event_id     VARCHAR(128)  NOT NULL DEFAULT '',\n"+
			"  valid_from          DATETIME(3)   NOT NULL,\n"+
			"  expires_at          DATETIME(3)   NOT NULL,\n"+
			"  lock_deadline       DATETIME(3)   NULL,\n"+
			"  changed_at          DATETIME(3)   NOT NULL,\n",
			"  KEY idx_coupon_seq (coupon_id, seq),\n"+
				"  KEY idx_user_changed (user_id, changed_at),\n"+
				"  KEY idx_order (order_id)"),
	}, func(c *schemas.StateChanged) []any {
		return []any{
			&c.ResultID, &c.CouponID, &c.UserID, &c.BatchID, &c.Op, &c.Status, &c.Reason, &c.State, &c.Seq,
			&c.OrderID, &c.OrderAmount, &c.SourceEventID, &c.ValidFrom, &c.ExpiresAt, &c.LockDeadline, &c.ChangedAt,
		}
	}, func(c *schemas.StateChanged) string { return c.UserID })

	// couponReminders keeps the coupon expiry reminders
	// (notification.requested of sinks.ReminderTemplate), one per
	// notification_id and at most one per user, batch (subject_id) and day:
	// a second notification for the same day, whatever its id, changes
	// nothing (see table.firstWins). due_day is due_at's date in UTC.
	couponReminders = table{
		eventType: schemas.TypeNotificationRequested,
		what:      "coupon reminders",
		prefix:    "coupon_reminder",
		columns: []string{
			"notification_id", "user_id", "template", "subject_id", "coupon_id", "due_day", "due_at", "expires_at", "app_id",
		},
		firstWins: true,
		create: "CREATE TABLE IF NOT EXISTS %s (\n" +
			"  notification_id     CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
			"  user_id             VARCHAR(128)  NOT NULL,\n" +
			"  template            VARCHAR(64)   NOT NULL,\n" +
			"  subject_id          VARCHAR(64)   NOT NULL,\n" +
			"  coupon_id           VARCHAR(32)   NOT NULL DEFAULT '',\n" +
			"  due_day             DATE          NOT NULL,\n" +
			"  due_at              DATETIME(3)   NOT NULL,\n" +
			"  expires_at          DATETIME(3)   NULL,\n" +
			"  app_id              VARCHAR(64)   NOT NULL,\n" +
			"  created_at          DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" +
			"  PRIMARY KEY (notification_id),\n" +
			"  UNIQUE KEY uk_user_subject_day (user_id, subject_id, due_day)\n" +
			") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
		row: func(env *schemas.Envelope) (row, bool, error) {
			var n schemas.NotificationRequested
			if err := env.DecodePayload(&n); err != nil {
				return row{}, false, err
			}
			if n.Template != sinks.ReminderTemplate {
				return row{}, false, nil // the system of record keeps reminders only
			}
			dueAt := sqlTime(n.DueAt)
			day := dueAt.Format(time.DateOnly)
			return row{
				key:      n.NotificationID,
				routeKey: n.UserID,
				unique:   n.UserID + "\x00" + n.SubjectID + "\x00" + day,
				values: []any{
					n.NotificationID, n.UserID, n.Template, n.SubjectID, n.CouponID, day, dueAt, value(&n.ExpiresAt), env.AppID,
				},
			}, true, nil
		},
	}
)

// UserCoupons returns the user's coupons in the given states (any state
// when none is given), sorted by [sinks.SortCoupons]. It reads one table,
// the user's, through its (user_id, state) index: one index range per
// state asked for.
func (s *Sink) UserCoupons(ctx context.Context, userID string, states ...string) ([]sinks.CouponRow, error) {
	got, err := selectFrom(ctx, s, coupons, s.route(userID), userCouponsWhere(len(states)), userCouponsArgs(userID, states)...)
	if err != nil {
		return nil, err
	}
	// The collation pads trailing spaces, so the bytewise order is made here.
	sinks.SortCoupons(got)
	return got, nil
}

// userCouponsWhere returns the WHERE clause of UserCoupons with n states.
func userCouponsWhere(n int) string {
	w := "WHERE t.user_id = ?"
	if n > 0 {
		w += " AND t.state IN (?" + strings.Repeat(", ?", n-1) + ")"
	}
	return w
}

func userCouponsArgs(userID string, states []string) []any {
	args := make([]any, 0, 1+len(states))
	args = append(args, userID)
	for _, st := range states {
		args = append(args, st)
	}
	return args
}

// CouponOps returns the operation record of the user's coupon, sorted by
// [sinks.SortOps]. It reads one table, the user's, through its
// (coupon_id, seq) index.
func (s *Sink) CouponOps(ctx context.Context, userID, couponID string) ([]schemas.StateChanged, error) {
	ops, err := selectFrom(ctx, s, couponOps, s.route(userID), "WHERE t.coupon_id = ? AND t.user_id = ?", couponID, userID)
	if err != nil {
		return nil, err
	}
	sinks.SortOps(ops)
	return ops, nil
}
