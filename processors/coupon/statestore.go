package coupon

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

//go:embed state.lua
var stateLua string

var stateScript = redis.NewScript(stateLua)

// unscheduleScript removes a timer entry only if it still has the score it
// was read with: an entry scheduled again meanwhile (the same order locking
// the coupon again) stays.
var unscheduleScript = redis.NewScript(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0`)

// Decision kinds returned by state.lua.
const (
	kindNew  = "new"  // decided now
	kindDup  = "dup"  // remembered from an earlier delivery or Tick
	kindSkip = "skip" // a timer with nothing to do
	kindWait = "wait" // an expiry to look at again later
	kindSend = "send" // a reminder to send
)

// Decision is what the atomic step decided on one operation.
type Decision struct {
	// Kind is "new", "dup" (remembered), "skip", "wait" or "send".
	Kind string
	// Applied is true when the operation changed the coupon; Reason is the
	// rejection reason otherwise.
	Applied bool
	Reason  string
	// Coupon is the coupon after the operation (as the record shows it).
	Coupon Coupon
	// At is when the operation was first decided.
	At time.Time
	// RetryAt is when a waiting expiry looks again; Until is the coupon's
	// end for a reminder to send.
	RetryAt, Until time.Time
}

// Replayed reports whether the decision was remembered.
func (d Decision) Replayed() bool { return d.Kind == kindDup }

// Grant is a granted coupon to register in its user's state.
type Grant struct {
	UserID, CouponID, BatchID string
	// At is the decision time of the grant.
	At time.Time
	// From and Until are the coupon's window (BatchDefined.CouponWindow).
	From, Until time.Time
	// RemindAt is when its expiry reminder is due; zero for none.
	RemindAt time.Time
}

// OpRequest is a lock, confirm or cancel request of an order.
type OpRequest struct {
	AppID, EventID string
	UserID         string
	CouponID       string
	OrderID        string
	// Kind is schemas.OpLock, OpConfirm or OpCancel.
	Kind string
	// OtherOwner and BatchDisabled are found by Owners before the step.
	OtherOwner    bool
	BatchDisabled bool
	// Deadline is the lock deadline to set (lock).
	Deadline time.Time
}

// Owner is who holds a coupon id, from the owner index.
type Owner struct {
	UserID, BatchID string
}

// Timer is one entry of a partition's timer schedule.
type Timer struct {
	// Kind is schemas.OpRelease, schemas.OpExpire or opRemind.
	Kind string
	// Owner is the partition whose schedule holds the entry; the step is
	// fenced with its epoch.
	Owner stream.Owned
	// Due is the entry's score: the lock deadline, the coupon's end, or the
	// reminder's due time.
	Due                                time.Time
	UserID, CouponID, OrderID, BatchID string

	key, member string
}

// opRemind is the Kind of a reminder timer.
const opRemind = "remind"

// Schedules of a partition.
const (
	schedLocks  = "locks"  // on coupon.orders partitions: lock deadlines
	schedExpire = "expire" // on coupon.claims partitions: coupon ends
	schedRemind = "remind" // on coupon.claims partitions: reminders due
)

// reminderTTL is how long the key that takes a (user, batch, day)'s
// reminder lives.
const reminderTTL = 2 * 24 * time.Hour

func (s *Store) userKey(user string) string { return s.prefix + ":cpu:{" + user + "}" }

func (s *Store) couponKey(user, coupon string) string { return s.userKey(user) + ":c:" + coupon }

func (s *Store) ownerKey(coupon string) string { return s.prefix + ":cpo:{" + coupon + "}" }

func (s *Store) schedKey(fenceField, kind string) string {
	return s.prefix + ":cpt:{" + fenceField + "}:" + kind
}

func (s *Store) reminderKey(user, batch, day string) string {
	return s.userKey(user) + ":rm:" + batch + ":" + day
}

// stateOp is one operation handed to state.lua.
type stateOp struct {
	user, coupon string
	memo, aux    string // keys; "" = unused
	args         [7]string
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func fromMs(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// runState runs state.lua for ops in one pipelined round trip: one call per
// run of operations of the same user (their keys share the user's slot),
// keeping each user's operations in order. more adds commands to the same
// pipeline, after the scripts.
func (s *Store) runState(ctx context.Context, fenceField string, epoch int64, now time.Time, ops []stateOp, more func(redis.Pipeliner)) ([]Decision, error) {
	if len(ops) == 0 && more == nil {
		return nil, nil
	}
	type run struct {
		idx []int
		cmd *redis.Cmd
	}
	var order []string
	runs := map[string][]*run{}
	for i, op := range ops {
		rs := runs[op.user]
		if len(rs) == 0 || len(rs[len(rs)-1].idx) == maxRun {
			if len(rs) == 0 {
				order = append(order, op.user)
			}
			rs = append(rs, &run{})
			runs[op.user] = rs
		}
		r := rs[len(rs)-1]
		r.idx = append(r.idx, i)
	}
	nowS, epochS := ms(now), strconv.FormatInt(epoch, 10)
	ttl := strconv.FormatInt(int64(s.ttl/time.Second), 10)
	err := s.retryNoScript(ctx, func() error {
		pipe := s.rdb.Pipeline()
		for _, user := range order {
			for _, r := range runs[user] {
				keys := make([]string, 0, 1+3*len(r.idx))
				keys = append(keys, s.userKey(user)+":fence")
				args := make([]any, 0, 4+7*len(r.idx))
				args = append(args, fenceField, epochS, nowS, ttl)
				for _, i := range r.idx {
					op := ops[i]
					ck := s.couponKey(op.user, op.coupon)
					mk, xk := op.memo, op.aux
					if mk == "" {
						mk = ck
					}
					if xk == "" {
						xk = ck
					}
					keys = append(keys, ck, mk, xk)
					for _, a := range op.args {
						args = append(args, a)
					}
				}
				r.cmd = pipe.EvalSha(ctx, stateScript.Hash(), keys, args...)
			}
		}
		if more != nil {
			more(pipe)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("running coupon state script: %w", err)
	}
	out := make([]Decision, len(ops))
	for _, user := range order {
		for _, r := range runs[user] {
			res, err := r.cmd.StringSlice()
			if err != nil {
				return nil, fmt.Errorf("reading coupon state script result: %w", err)
			}
			if len(res) == 1 && res[0] == "fenced" {
				return nil, fmt.Errorf("coupons of user %s: %w", user, stream.ErrFenced)
			}
			if len(res) != 1+2*len(r.idx) || res[0] != "ok" {
				return nil, fmt.Errorf("reading coupon state script result: %d values for %d operations", len(res), len(r.idx))
			}
			for j, i := range r.idx {
				d, err := parseStateDecision(res[1+2*j], res[2+2*j])
				if err != nil {
					return nil, err
				}
				out[i] = d
			}
		}
	}
	return out, nil
}

// parseStateDecision reads one (kind, value) pair of state.lua.
func parseStateDecision(kind, v string) (Decision, error) {
	d := Decision{Kind: kind}
	switch kind {
	case kindSkip:
		return d, nil
	case kindWait:
		d.RetryAt = fromMs(v)
		return d, nil
	case kindSend:
		d.Until = fromMs(v)
		return d, nil
	case kindNew, kindDup:
	default:
		return Decision{}, fmt.Errorf("parsing coupon decision: unknown kind %q", kind)
	}
	f := strings.Split(v, "|")
	if len(f) != 9 || (f[0] != "a" && f[0] != "r") {
		return Decision{}, fmt.Errorf("parsing coupon decision %q: malformed", v)
	}
	seq, err1 := strconv.ParseInt(f[3], 10, 64)
	at, err2 := strconv.ParseInt(f[4], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return Decision{}, fmt.Errorf("parsing coupon decision %q: %w", v, err)
	}
	d.Applied, d.Reason, d.At = f[0] == "a", f[1], time.UnixMilli(at).UTC()
	d.Coupon = Coupon{
		Known: f[5] != "", BatchID: f[5], State: f[2], Seq: seq,
		From: fromMs(f[6]), Until: fromMs(f[7]),
	}
	if f[8] != "" && f[8] != "0" {
		d.Coupon.Deadline = fromMs(f[8])
	}
	return d, nil
}

// Register records granted coupons in their users' state (state
// available, seq 1, idempotent by coupon id), indexes their owners, and
// schedules their expiry and reminders on the schedules of the claims
// partition fenceField. It returns one decision per grant: "new", or "dup"
// with the window stored first. A coupon's state is kept until the later of
// its end and its grant, plus the decision TTL.
func (s *Store) Register(ctx context.Context, fenceField string, epoch int64, now time.Time, grants []Grant) ([]Decision, error) {
	if len(grants) == 0 {
		return nil, nil
	}
	ops := make([]stateOp, len(grants))
	for i, g := range grants {
		keep := g.Until
		if g.At.After(keep) {
			keep = g.At
		}
		expireAt := strconv.FormatInt(keep.Add(s.ttl).Unix(), 10)
		ops[i] = stateOp{user: g.UserID, coupon: g.CouponID,
			args: [7]string{schemas.OpGrant, "", g.BatchID, ms(g.From), ms(g.Until), expireAt, ms(g.At)}}
	}
	return s.runState(ctx, fenceField, epoch, now, ops, func(pipe redis.Pipeliner) {
		expire, remind := s.schedKey(fenceField, schedExpire), s.schedKey(fenceField, schedRemind)
		for _, g := range grants {
			keep := g.Until
			if g.At.After(keep) {
				keep = g.At
			}
			pipe.SetArgs(ctx, s.ownerKey(g.CouponID), g.UserID+"|"+g.BatchID, redis.SetArgs{ExpireAt: keep.Add(s.ttl)})
			pipe.ZAdd(ctx, expire, redis.Z{Score: float64(g.Until.UnixMilli()), Member: g.UserID + "|" + g.CouponID})
			if !g.RemindAt.IsZero() {
				pipe.ZAdd(ctx, remind, redis.Z{Score: float64(g.RemindAt.UnixMilli()), Member: g.UserID + "|" + g.CouponID + "|" + g.BatchID})
			}
		}
	})
}

// Owners looks up who holds each coupon id (in one round trip). Ids that
// were never granted are missing from the result.
func (s *Store) Owners(ctx context.Context, coupons []string) (map[string]Owner, error) {
	out := make(map[string]Owner, len(coupons))
	if len(coupons) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make(map[string]*redis.StringCmd, len(coupons))
	for _, c := range coupons {
		if _, ok := cmds[c]; !ok {
			cmds[c] = pipe.Get(ctx, s.ownerKey(c))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("looking up coupon owners: %w", err)
	}
	for c, cmd := range cmds {
		v, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("looking up coupon owners: %w", err)
		}
		user, batch, _ := strings.Cut(v, "|")
		out[c] = Owner{UserID: user, BatchID: batch}
	}
	return out, nil
}

// Operate decides lock, confirm and cancel requests in order (each user's
// in one atomic step that remembers the decision by (app, event)), and
// keeps the lock schedule of the orders partition fenceField: an applied
// lock schedules its release at its deadline, an applied confirm or cancel
// unschedules it. It returns stream.ErrFenced if a newer owner of the
// partition has written.
func (s *Store) Operate(ctx context.Context, fenceField string, epoch int64, now time.Time, in []OpRequest) ([]Decision, error) {
	if len(in) == 0 {
		return nil, nil
	}
	ops := make([]stateOp, len(in))
	for i, r := range in {
		other, disabled := "", ""
		if r.OtherOwner {
			other = "1"
		}
		if r.BatchDisabled {
			disabled = "1"
		}
		deadline := ""
		if r.Kind == schemas.OpLock {
			deadline = ms(r.Deadline)
		}
		ops[i] = stateOp{user: r.UserID, coupon: r.CouponID, memo: s.userKey(r.UserID) + ":op:" + r.AppID + ":" + r.EventID,
			args: [7]string{r.Kind, r.OrderID, other, disabled, deadline, "", ""}}
	}
	out, err := s.runState(ctx, fenceField, epoch, now, ops, nil)
	if err != nil {
		return nil, err
	}
	// Schedule after the decisions, replayed ones too: a crash between the
	// step and here is repaired by the redelivery. Input order is kept, so
	// a replayed cancel never unschedules a later lock by the same order.
	locks := s.schedKey(fenceField, schedLocks)
	pipe := s.rdb.Pipeline()
	n := 0
	for i, d := range out {
		if !d.Applied {
			continue
		}
		member := in[i].UserID + "|" + in[i].CouponID + "|" + in[i].OrderID
		switch in[i].Kind {
		case schemas.OpLock:
			pipe.ZAdd(ctx, locks, redis.Z{Score: float64(d.Coupon.Deadline.UnixMilli()), Member: member})
		default:
			pipe.ZRem(ctx, locks, member)
		}
		n++
	}
	if n > 0 {
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, fmt.Errorf("scheduling lock timeouts: %w", err)
		}
	}
	return out, nil
}

// maxDue bounds the entries of one schedule a Tick fires; the rest wait
// for the next Tick.
const maxDue = 2000

// Due returns the timer entries due at now on the schedules of the owned
// partitions: lock deadlines of coupon.orders partitions, coupon ends and
// reminders of coupon.claims partitions.
func (s *Store) Due(ctx context.Context, owned []stream.Owned, now time.Time) ([]Timer, error) {
	type q struct {
		o    stream.Owned
		kind string
		key  string
		cmd  *redis.ZSliceCmd
	}
	var qs []*q
	pipe := s.rdb.Pipeline()
	for _, o := range owned {
		var kinds []string
		switch o.Topic {
		case TopicOrders:
			kinds = []string{schedLocks}
		case TopicClaims:
			// Reminders first: one due with its coupon's end goes out
			// before the coupon expires.
			kinds = []string{schedRemind, schedExpire}
		}
		for _, k := range kinds {
			key := s.schedKey(o.FenceField(), k)
			qs = append(qs, &q{o: o, kind: k, key: key, cmd: pipe.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{
				Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: maxDue,
			})})
		}
	}
	if len(qs) == 0 {
		return nil, nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("reading due timers: %w", err)
	}
	var out []Timer
	for _, q := range qs {
		for _, z := range q.cmd.Val() {
			member, _ := z.Member.(string)
			f := strings.Split(member, "|")
			t := Timer{Owner: q.o, Due: time.UnixMilli(int64(z.Score)).UTC(), key: q.key, member: member}
			switch {
			case q.kind == schedLocks && len(f) == 3:
				t.Kind, t.UserID, t.CouponID, t.OrderID = schemas.OpRelease, f[0], f[1], f[2]
			case q.kind == schedExpire && len(f) == 2:
				t.Kind, t.UserID, t.CouponID = schemas.OpExpire, f[0], f[1]
			case q.kind == schedRemind && len(f) == 3:
				t.Kind, t.UserID, t.CouponID, t.BatchID = opRemind, f[0], f[1], f[2]
			default:
				// Not ours to understand: drop it rather than retry forever.
				t.Kind = kindSkip
			}
			out = append(out, t)
		}
	}
	return out, nil
}

// Fire runs the timer steps of due entries: release a lock still held by
// the order with that deadline, expire a coupon still available at its end,
// take the reminder of the (user, batch, day) for a coupon still available.
// Each step is fenced with the epoch of the partition holding the entry and
// remembered (a repeat returns the same decision; a reminder already taken
// by the same coupon is sent again), so a Tick repeated after a crash
// produces the same records.
func (s *Store) Fire(ctx context.Context, now time.Time, timers []Timer) ([]Decision, error) {
	out := make([]Decision, len(timers))
	// One runState per partition: each has its own fence field and epoch.
	type group struct {
		o   stream.Owned
		idx []int
	}
	var groups []*group
	byField := map[string]*group{}
	for i, t := range timers {
		if t.Kind == kindSkip {
			out[i] = Decision{Kind: kindSkip}
			continue
		}
		f := t.Owner.FenceField()
		g := byField[f]
		if g == nil {
			g = &group{o: t.Owner}
			byField[f] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	for _, g := range groups {
		ops := make([]stateOp, len(g.idx))
		for j, i := range g.idx {
			t := timers[i]
			op := stateOp{user: t.UserID, coupon: t.CouponID}
			switch t.Kind {
			case schemas.OpRelease:
				op.args = [7]string{schemas.OpRelease, t.OrderID, ms(t.Due)}
			case schemas.OpExpire:
				op.args = [7]string{schemas.OpExpire}
			case opRemind:
				op.aux = s.reminderKey(t.UserID, t.BatchID, ReminderDay(t.Due))
				op.args = [7]string{opRemind, "", t.CouponID, strconv.FormatInt(int64(reminderTTL/time.Second), 10)}
			}
			ops[j] = op
		}
		ds, err := s.runState(ctx, g.o.FenceField(), g.o.Epoch, now, ops, nil)
		if err != nil {
			return nil, err
		}
		for j, i := range g.idx {
			out[i] = ds[j]
		}
	}
	return out, nil
}

// Unschedule removes fired timer entries, each only if it was not
// scheduled again meanwhile.
func (s *Store) Unschedule(ctx context.Context, timers []Timer) error {
	if len(timers) == 0 {
		return nil
	}
	return s.retryNoScript(ctx, func() error {
		pipe := s.rdb.Pipeline()
		for _, t := range timers {
			pipe.EvalSha(ctx, unscheduleScript.Hash(), []string{t.key}, t.member, t.Due.UnixMilli())
		}
		_, err := pipe.Exec(ctx)
		if err != nil {
			return fmt.Errorf("removing fired timers: %w", err)
		}
		return nil
	})
}

// Reschedule moves timer entries to a later time.
func (s *Store) Reschedule(ctx context.Context, timers []Timer, at []time.Time) error {
	if len(timers) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for i, t := range timers {
		pipe.ZAddXX(ctx, t.key, redis.Z{Score: float64(at[i].UnixMilli()), Member: t.member})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("rescheduling timers: %w", err)
	}
	return nil
}
