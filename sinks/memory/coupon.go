package memory

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.CouponReader = (*Sink)(nil)

// Coupon is one stored coupon state: the row coupon_<Table> of shard
// database <Database> would hold in MySQL, the applied operation with the
// highest seq.
type Coupon struct {
	Database int
	Table    int
	AppID    string
	sinks.CouponRow
}

// Reminder is one stored coupon expiry reminder: the row
// coupon_reminder_<Table> of shard database <Database> would hold in
// MySQL. Times are in UTC, truncated to the millisecond.
type Reminder struct {
	Database int
	Table    int
	AppID    string
	schemas.NotificationRequested
}

// couponTables holds the coupon states and reminders, each slice indexed
// by shard (db*TablesPerDatabase+table) as the grants are. The operation
// record is a result type (see resultTypes).
type couponTables struct {
	// coupons maps coupon ids to states.
	coupons []map[string]Coupon
	// reminders maps notification ids to reminders, and reminderDays
	// (user, batch, day) to the notification id that took it.
	reminders    []map[string]Reminder
	reminderDays []map[string]string
}

func newCouponTables(shards int) couponTables {
	c := couponTables{
		coupons:      make([]map[string]Coupon, shards),
		reminders:    make([]map[string]Reminder, shards),
		reminderDays: make([]map[string]string, shards),
	}
	for i := range shards {
		c.coupons[i] = map[string]Coupon{}
		c.reminders[i] = map[string]Reminder{}
		c.reminderDays[i] = map[string]string{}
	}
	return c
}

// decodeNotification decodes notification.requested, its times as MySQL
// keeps them.
var decodeNotification = decode(func(n *schemas.NotificationRequested) (string, []*time.Time) {
	return n.NotificationID, []*time.Time{&n.DueAt, n.ExpiresAt}
})

// reminder decodes a notification.requested event into the reminder it
// stores, or returns ok false for a template other than
// sinks.ReminderTemplate, which has no table in the system of record.
func (s *Sink) reminder(env *schemas.Envelope) (r Reminder, ok bool, err error) {
	_, p, err := decodeNotification(env)
	if err != nil {
		return Reminder{}, false, err
	}
	n := p.(schemas.NotificationRequested)
	if n.Template != sinks.ReminderTemplate {
		return Reminder{}, false, nil
	}
	db, table := s.cfg.Route(n.UserID)
	return Reminder{Database: db, Table: table, AppID: env.AppID, NotificationRequested: n}, true, nil
}

// keepCoupon stores the state op leaves its coupon in if op is applied and
// newer than the stored state. s.mu is held.
func (s *Sink) keepCoupon(appID string, op schemas.StateChanged) {
	if op.Status != schemas.OpApplied {
		return
	}
	db, table := s.cfg.Route(op.UserID)
	m := s.coupons[s.shard(db, table)]
	if old, ok := m[op.CouponID]; ok && op.Seq <= old.Seq {
		return // as MySQL's seq guard: a replay or a late, lower seq
	}
	m[op.CouponID] = Coupon{Database: db, Table: table, AppID: appID, CouponRow: sinks.CouponRowOf(op)}
}

// keepReminder stores r unless another notification took its user, batch
// and day first. s.mu is held.
func (s *Sink) keepReminder(r Reminder) {
	i := s.shard(r.Database, r.Table)
	day := r.UserID + "\x00" + r.SubjectID + "\x00" + r.DueAt.Format(time.DateOnly)
	if id, taken := s.reminderDays[i][day]; taken && id != r.NotificationID {
		return
	}
	s.reminderDays[i][day] = r.NotificationID
	s.reminders[i][r.NotificationID] = r
}

func (s *Sink) shard(db, table int) int { return db*s.cfg.TablesPerDatabase + table }

// UserCoupons returns the user's coupons in the given states (any state
// when none is given), sorted by [sinks.SortCoupons], reading only the
// shard Route names.
func (s *Sink) UserCoupons(_ context.Context, userID string, states ...string) ([]sinks.CouponRow, error) {
	db, table := s.cfg.Route(userID)
	s.mu.RLock()
	var out []sinks.CouponRow
	for _, c := range s.coupons[s.shard(db, table)] {
		if c.UserID == userID && sinks.HasState(c.State, states) {
			out = append(out, c.CouponRow)
		}
	}
	s.mu.RUnlock()
	sinks.SortCoupons(out)
	return out, nil
}

// CouponOps returns the operation record of the user's coupon, sorted by
// [sinks.SortOps].
func (s *Sink) CouponOps(_ context.Context, userID, couponID string) ([]schemas.StateChanged, error) {
	ops := where(s, func(c schemas.StateChanged) bool { return c.UserID == userID && c.CouponID == couponID })
	sinks.SortOps(ops)
	return ops, nil
}

// Coupons returns every stored coupon state, ordered by coupon id.
func (s *Sink) Coupons() []Coupon {
	return all(s, s.coupons, func(a, b Coupon) int { return strings.Compare(a.CouponID, b.CouponID) })
}

// Reminders returns every stored reminder, ordered by notification id.
func (s *Sink) Reminders() []Reminder {
	return all(s, s.reminders, func(a, b Reminder) int { return strings.Compare(a.NotificationID, b.NotificationID) })
}

// all returns the rows of every shard, sorted by order.
func all[T any](s *Sink, shards []map[string]T, order func(a, b T) int) []T {
	s.mu.RLock()
	var out []T
	for _, m := range shards {
		for _, v := range m {
			out = append(out, v)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, order)
	return out
}
