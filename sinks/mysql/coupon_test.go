package mysql

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

func TestCouponUpsertIsGuardedBySeq(t *testing.T) {
	got := coupons.insertSQL("coupon_1", 2)
	// Every column but the key and seq keeps its value unless the row
	// brings a higher seq; seq comes last, so that the others compare with
	// the stored one.
	var want []string
	for _, c := range []string{"user_id", "batch_id", "state", "order_id", "valid_from", "expires_at", "lock_deadline", "updated_at", "app_id"} {
		want = append(want, fmt.Sprintf("%[1]s = IF(VALUES(seq) > seq, VALUES(%[1]s), %[1]s)", c))
	}
	want = append(want, "seq = GREATEST(seq, VALUES(seq))")
	if suffix := " ON DUPLICATE KEY UPDATE " + strings.Join(want, ", "); !strings.HasSuffix(got, suffix) {
		t.Errorf("insertSQL = %s\nwant it to end with%s", got, suffix)
	}
}

func TestReminderUpsertKeepsTheFirst(t *testing.T) {
	got := couponReminders.insertSQL("coupon_reminder_0", 1)
	var want []string
	for _, c := range []string{"user_id", "template", "subject_id", "coupon_id", "due_day", "due_at", "expires_at", "app_id"} {
		want = append(want, fmt.Sprintf("%[1]s = IF(notification_id = VALUES(notification_id), VALUES(%[1]s), %[1]s)", c))
	}
	if suffix := " ON DUPLICATE KEY UPDATE " + strings.Join(want, ", "); !strings.HasSuffix(got, suffix) || strings.HasPrefix(got, "INSERT IGNORE") {
		t.Errorf("insertSQL = %s\nwant an INSERT ending with%s", got, suffix)
	}
}

// TestPlanKeepsWhatTheTablesKeep checks a batch's rows before they reach
// the tables: each coupon's highest seq, no rejected operation as a state,
// and the first reminder of a user, batch and day.
func TestPlanKeepsWhatTheTablesKeep(t *testing.T) {
	cfg := Config{Databases: 1, TablesPerDatabase: 1}
	cfg.Defaults()
	s := &Sink{cfg: cfg, dbs: make([]*sql.DB, 1)}
	at := sinktest.Epoch
	op := func(n int, status string, seq int64) *schemas.Envelope {
		return sinktest.Result(t, "app", at, schemas.StateChanged{
			ResultID: schemas.ResultID("op", "app", fmt.Sprint(n)), CouponID: "c-1", UserID: "u-1", BatchID: "b-1",
			Op: schemas.OpLock, Status: status, State: fmt.Sprintf("seq-%d-op-%d", seq, n), Seq: seq,
			ValidFrom: at, ExpiresAt: at, ChangedAt: at.Add(time.Duration(n) * time.Second),
		})
	}
	reminder := func(name string, hour time.Duration, template string) *schemas.Envelope {
		return sinktest.Result(t, "app", at, schemas.NotificationRequested{
			NotificationID: schemas.ResultID("n", "app", name), UserID: "u-1", Template: template, SubjectID: "b-1",
			DueAt: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC).Add(hour * time.Hour),
		})
	}
	events := []*schemas.Envelope{
		op(1, schemas.OpApplied, 2), op(2, schemas.OpApplied, 3), op(3, schemas.OpApplied, 1),
		op(4, schemas.OpRejected, 9), op(5, schemas.OpApplied, 3), op(2, schemas.OpApplied, 3),
		reminder("q", 11, sinks.ReminderTemplate), reminder("p", 10, sinks.ReminderTemplate),
		reminder("q", 11, sinks.ReminderTemplate), reminder("next-day", 24, sinks.ReminderTemplate),
		reminder("other", 12, "order_shipped"),
	}
	plan, err := s.plan(events)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	ops := 0
	for _, w := range plan[0] {
		for _, r := range w.rows {
			switch w.table {
			case &coupons.table:
				states = append(states, fmt.Sprint(r.values[:4]))
			case &couponOps.table:
				ops++
			}
		}
	}
	// Op 2 is the first of seq 3; op 4, rejected, makes no state.
	if want := []string{"[c-1 u-1 b-1 seq-3-op-2]"}; fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("coupon rows %v, want %v", states, want)
	}
	if ops != 5 {
		t.Errorf("%d coupon_op rows, want 5 (one per result)", ops)
	}
	var reminders []string
	for _, w := range plan[0] {
		if w.table == &couponReminders {
			for _, r := range w.rows {
				reminders = append(reminders, fmt.Sprint(r.values[5], " ", r.key == schemas.ResultID("n", "app", "q")))
			}
		}
	}
	// q came first for 2024-01-02, p lost the day, and other is no reminder.
	slices.Sort(reminders)
	if want := []string{"2024-01-02 true", "2024-01-03 false"}; !slices.Equal(reminders, want) {
		t.Errorf("reminder rows (due day, is q) %q, want %q", reminders, want)
	}
}
