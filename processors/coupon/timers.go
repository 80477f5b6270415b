package coupon

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Tick fires the timers due on the partitions this member owns, with no new
// event: lock deadlines (schedules of coupon.orders partitions) release
// locks neither confirmed nor cancelled; coupon ends (schedules of
// coupon.claims partitions) expire coupons still available; reminders due
// send one notification per (user, batch, UTC day). Every step is fenced
// with the epoch of the partition whose schedule holds the entry, and
// remembered, so a Tick repeated after a crash (before TickDone removed the
// fired entries) produces the same records again.
func (p *Processor) Tick(ctx context.Context, now time.Time, owned []stream.Owned) (stream.Result, error) {
	var res stream.Result
	p.mu.Lock()
	p.pending = p.pending[:0]
	p.mu.Unlock()
	timers, err := p.store.Due(ctx, owned, now)
	if err != nil || len(timers) == 0 {
		return res, err
	}
	ds, err := p.store.Fire(ctx, now, timers)
	if err != nil {
		return stream.Result{}, err
	}
	var fired, drop, later []Timer
	var laterAt []time.Time
	for i, t := range timers {
		d := ds[i]
		switch d.Kind {
		case kindNew, kindDup:
			rec, err := TimerRecord(t, d)
			if err != nil {
				return stream.Result{}, err
			}
			res.Out = append(res.Out, rec)
			res.Decide(DecisionOpPrefix+t.Kind, opStatus(d), d.Reason)
			fired = append(fired, t)
		case kindSend:
			rec, err := ReminderRecord(t, d.Until)
			if err != nil {
				return stream.Result{}, err
			}
			res.Out = append(res.Out, rec)
			res.Decide(DecisionOpPrefix+opRemind, "sent", "")
			fired = append(fired, t)
		case kindWait:
			// Locked at its end: look again when the lock may be released
			// (the coupon expires if it comes back available).
			at := d.RetryAt
			if !at.After(now) {
				at = now.Add(time.Second)
			}
			later, laterAt = append(later, t), append(laterAt, at)
		default:
			drop = append(drop, t)
		}
	}
	if err := p.store.Unschedule(ctx, drop); err != nil {
		return stream.Result{}, err
	}
	if err := p.store.Reschedule(ctx, later, laterAt); err != nil {
		return stream.Result{}, err
	}
	p.mu.Lock()
	p.pending = append(p.pending, fired...)
	p.mu.Unlock()
	return res, nil
}

// TickDone removes the entries the last Tick fired once Kafka has
// acknowledged their records. If it fails, the next Tick fires them again
// and publishes the same records, which the sinks collapse.
func (p *Processor) TickDone(ctx context.Context, _ []stream.Owned, _ stream.Result) {
	p.mu.Lock()
	fired := append([]Timer(nil), p.pending...)
	p.pending = p.pending[:0]
	p.mu.Unlock()
	_ = p.store.Unschedule(ctx, fired)
}

// TimerRecord builds the coupon.state.changed record of a timer's release
// or expiry. Its result id is ResultID("coupon.timer", op, coupon/seq): a
// coupon reaches each seq once, so a repeat yields the same record.
func TimerRecord(t Timer, d Decision) (*kgo.Record, error) {
	id := schemas.ResultID(KindTimer, t.Kind, t.CouponID+"/"+strconv.FormatInt(d.Coupon.Seq, 10))
	return StateRecord(id, AppID, t.UserID, t.CouponID, t.Kind, t.OrderID, 0, "", d)
}

// ReminderRecord builds the notification.requested record of an expiry
// reminder due at t.Due for a coupon usable until until. Its id is
// ResultID("coupon.reminder", user, batch/day): one per (user, batch, UTC
// day of the due time).
func ReminderRecord(t Timer, until time.Time) (*kgo.Record, error) {
	id := schemas.ResultID(KindReminder, t.UserID, t.BatchID+"/"+ReminderDay(t.Due))
	n := schemas.NotificationRequested{
		NotificationID: id,
		UserID:         t.UserID,
		Template:       TemplateExpiry,
		SubjectID:      t.BatchID,
		CouponID:       t.CouponID,
		ExpiresAt:      &until,
		DueAt:          t.Due,
	}
	return record(TopicNotifications, id, AppID, t.Due, n)
}
