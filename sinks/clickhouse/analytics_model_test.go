package clickhouse_test

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/clickhouse"
)

// analyticsModel is what the reports should say about a set of events,
// computed in Go from the events themselves (deduplicated by result id,
// the highest revision of a definition winning), independently of the
// views' SQL.
type analyticsModel struct {
	tz         *time.Location
	decisions  []schemas.GrantDecided
	ops        []schemas.StateChanged
	batches    map[string]schemas.BatchDefined
	activities map[string]schemas.ActivityCommitted
	entries    []schemas.EntryRecorded
	awards     []schemas.PrizeAwarded
	draws      map[string]schemas.DrawCompleted
	recs       []schemas.RecommendationMade
}

func decode[T any](tb testing.TB, env *schemas.Envelope) T {
	tb.Helper()
	var v T
	if err := env.DecodePayload(&v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// newAnalyticsModel reduces events (in any order, with duplicates) to one
// of each result. tz is the server's time zone, which days are cut in.
func newAnalyticsModel(tb testing.TB, tz *time.Location, events []*schemas.Envelope) *analyticsModel {
	m := &analyticsModel{tz: tz, batches: map[string]schemas.BatchDefined{}, activities: map[string]schemas.ActivityCommitted{},
		draws: map[string]schemas.DrawCompleted{}}
	decisions := map[string]schemas.GrantDecided{}
	ops := map[string]schemas.StateChanged{}
	entries := map[string]schemas.EntryRecorded{}
	awards := map[string]schemas.PrizeAwarded{}
	recs := map[string]schemas.RecommendationMade{}
	for _, env := range events {
		switch env.Type {
		case schemas.TypeCouponGrantDecided:
			g := decode[schemas.GrantDecided](tb, env)
			decisions[g.ResultID] = g
		case schemas.TypeCouponStateChanged:
			c := decode[schemas.StateChanged](tb, env)
			ops[c.ResultID] = c
		case schemas.TypeCouponBatchDefined:
			b := decode[schemas.BatchDefined](tb, env)
			if old, ok := m.batches[b.BatchID]; !ok || b.Revision > old.Revision {
				m.batches[b.BatchID] = b
			}
		case schemas.TypeLotteryActivityCommitted:
			a := decode[schemas.ActivityCommitted](tb, env)
			if old, ok := m.activities[a.ActivityID]; !ok || a.Revision > old.Revision {
				m.activities[a.ActivityID] = a
			}
		case schemas.TypeLotteryEntryRecorded:
			e := decode[schemas.EntryRecorded](tb, env)
			entries[e.ResultID] = e
		case schemas.TypeLotteryPrizeAwarded:
			p := decode[schemas.PrizeAwarded](tb, env)
			awards[p.ResultID] = p
		case schemas.TypeLotteryDrawCompleted:
			d := decode[schemas.DrawCompleted](tb, env)
			m.draws[d.ActivityID] = d
		case schemas.TypeRecommendationMade:
			r := decode[schemas.RecommendationMade](tb, env)
			recs[r.RecommendationID] = r
		}
	}
	m.decisions = values(decisions)
	m.ops = values(ops)
	m.entries = values(entries)
	m.awards = values(awards)
	m.recs = values(recs)
	return m
}

func values[T any](m map[string]T) []T {
	out := make([]T, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// in reports whether t falls in p's window.
func in(p clickhouse.Params, t time.Time) bool {
	ms := t.UnixMilli()
	return (p.Since.IsZero() || ms >= p.Since.UnixMilli()) && (p.Until.IsZero() || ms < p.Until.UnixMilli())
}

func limit(p clickhouse.Params, rows [][]string) [][]string {
	n := p.Limit
	if n == 0 {
		n = clickhouse.DefaultLimit
	}
	if n > 0 && len(rows) > n {
		return rows[:n]
	}
	return rows
}

func itoa[T int | int64 | uint64](v T) string { return fmt.Sprint(v) }

func ratio(a, b int) string {
	if b == 0 {
		return clickhouse.FormatRate(0)
	}
	return clickhouse.FormatRate(float64(a) / float64(b))
}

// expected is a report's columns and rows.
type expected struct {
	columns []string
	rows    [][]string
}

// expect returns what report name should return for p.
func (m *analyticsModel) expect(name string, p clickhouse.Params) expected {
	switch name {
	case "top-claimed", "top-redeemed", "funnel":
		return m.funnel(name, p)
	case "active-users":
		return m.users(p)
	case "draw-stats":
		return m.drawStats(p)
	case "draw-rejections":
		return m.rejections(p)
	case "draw-winners":
		return m.winners(p)
	case "budget-burn":
		return m.budget(p)
	case "recommendation-conversion":
		return m.recommendations(p)
	}
	panic("no model of report " + name)
}

type funnelRow struct {
	batch                                     string
	claims, grants, rejections                int
	locked, redeemed, expired                 map[string]bool
	grantRate, lockRate, redeemRate, convRate string
}

func (m *analyticsModel) funnel(name string, p clickhouse.Params) expected {
	rows := map[string]*funnelRow{}
	row := func(batch string) *funnelRow {
		if rows[batch] == nil {
			rows[batch] = &funnelRow{batch: batch, locked: map[string]bool{}, redeemed: map[string]bool{}, expired: map[string]bool{}}
		}
		return rows[batch]
	}
	keep := func(batch string, at time.Time) bool { return (p.Batch == "" || batch == p.Batch) && in(p, at) }
	for _, g := range m.decisions {
		if !keep(g.BatchID, g.DecidedAt) {
			continue
		}
		r := row(g.BatchID)
		r.claims++
		if g.Status == schemas.StatusGranted {
			r.grants++
		} else {
			r.rejections++
		}
	}
	for _, c := range m.ops {
		if !keep(c.BatchID, c.ChangedAt) {
			continue
		}
		r := row(c.BatchID)
		if c.Status != schemas.OpApplied {
			continue
		}
		switch c.Op {
		case schemas.OpLock:
			r.locked[c.CouponID] = true
		case schemas.OpConfirm:
			r.redeemed[c.CouponID] = true
		case schemas.OpExpire:
			r.expired[c.CouponID] = true
		}
	}
	list := values(rows)
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		switch name {
		case "top-claimed":
			if a.claims != b.claims {
				return a.claims > b.claims
			}
		case "top-redeemed":
			if len(a.redeemed) != len(b.redeemed) {
				return len(a.redeemed) > len(b.redeemed)
			}
		}
		return a.batch < b.batch
	})
	e := expected{columns: []string{"batch_id", "claims", "grants", "rejections", "locked", "redeemed", "expired",
		"grant_rate", "lock_rate", "redeem_rate", "conversion"}}
	for _, r := range list {
		l, u := len(r.locked), len(r.redeemed)
		e.rows = append(e.rows, []string{r.batch, itoa(r.claims), itoa(r.grants), itoa(r.rejections), itoa(l), itoa(u),
			itoa(len(r.expired)), ratio(r.grants, r.claims), ratio(l, r.grants), ratio(u, l), ratio(u, r.grants)})
	}
	e.rows = limit(p, e.rows)
	return e
}

func (m *analyticsModel) users(p clickhouse.Params) expected {
	type userRow struct {
		user                                 string
		claims, grants, participations, wins int
		redeemed                             map[string]bool
	}
	rows := map[string]*userRow{}
	row := func(user string) *userRow {
		if rows[user] == nil {
			rows[user] = &userRow{user: user, redeemed: map[string]bool{}}
		}
		return rows[user]
	}
	for _, g := range m.decisions {
		if in(p, g.DecidedAt) {
			r := row(g.UserID)
			r.claims++
			if g.Status == schemas.StatusGranted {
				r.grants++
			}
		}
	}
	for _, c := range m.ops {
		if in(p, c.ChangedAt) {
			r := row(c.UserID)
			if c.Op == schemas.OpConfirm && c.Status == schemas.OpApplied {
				r.redeemed[c.CouponID] = true
			}
		}
	}
	for _, e := range m.entries {
		if in(p, e.RecordedAt) {
			row(e.UserID).participations++
		}
	}
	for _, a := range m.awards {
		if in(p, a.AwardedAt) {
			row(a.UserID).wins++
		}
	}
	list := values(rows)
	actions := func(r *userRow) int { return r.claims + len(r.redeemed) + r.participations }
	sort.Slice(list, func(i, j int) bool {
		if a, b := actions(list[i]), actions(list[j]); a != b {
			return a > b
		}
		return list[i].user < list[j].user
	})
	e := expected{columns: []string{"user_id", "claims", "grants", "redemptions", "participations", "wins", "actions"}}
	for _, r := range list {
		e.rows = append(e.rows, []string{r.user, itoa(r.claims), itoa(r.grants), itoa(len(r.redeemed)), itoa(r.participations),
			itoa(r.wins), itoa(actions(r))})
	}
	e.rows = limit(p, e.rows)
	return e
}

// counts returns "key=n …" sorted bytewise, as the view's arraySort does.
func counts(m map[string]int) string {
	var parts []string
	for k, n := range m {
		parts = append(parts, k+"="+strconv.Itoa(n))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (m *analyticsModel) drawStats(p clickhouse.Params) expected {
	type statRow struct {
		a                     schemas.ActivityCommitted
		participants, winners map[string]bool
		entries, rejected     int
		reasons               map[string]int
		tiers                 map[string]map[string]bool
	}
	rows := map[string]*statRow{}
	for id, a := range m.activities {
		if p.Activity == "" || id == p.Activity {
			rows[id] = &statRow{a: a, participants: map[string]bool{}, winners: map[string]bool{}, reasons: map[string]int{},
				tiers: map[string]map[string]bool{}}
		}
	}
	for _, e := range m.entries {
		r := rows[e.ActivityID]
		if r == nil {
			continue
		}
		r.entries++
		switch e.Status {
		case schemas.EntryAccepted:
			r.participants[e.UserID] = true
		case schemas.EntryRejected:
			r.rejected++
			r.reasons[e.Reason]++
		}
	}
	for _, aw := range m.awards {
		r := rows[aw.ActivityID]
		if r == nil {
			continue
		}
		r.winners[aw.UserID] = true
		if r.tiers[aw.TierID] == nil {
			r.tiers[aw.TierID] = map[string]bool{}
		}
		r.tiers[aw.TierID][aw.UserID] = true
	}
	list := values(rows)
	sort.Slice(list, func(i, j int) bool {
		if a, b := len(list[i].participants), len(list[j].participants); a != b {
			return a > b
		}
		return list[i].a.ActivityID < list[j].a.ActivityID
	})
	e := expected{columns: []string{"activity_id", "name", "kind", "participants", "entries", "rejected_entries", "rejections",
		"winners", "tier_winners", "draw_time", "time_to_draw_s", "draw_delay_ms"}}
	for _, r := range list {
		tiers := map[string]int{}
		for t, users := range r.tiers {
			tiers[t] = len(users)
		}
		drawTime, toDraw, delay := "", int64(0), int64(0)
		if d, ok := m.draws[r.a.ActivityID]; ok {
			drawTime = d.DrawnAt.In(m.tz).Format(time.DateTime)
			toDraw = (d.DrawnAt.UnixMilli() - r.a.JoinFrom.UnixMilli()) / 1000
			if r.a.DrawAt != nil {
				delay = d.DrawnAt.UnixMilli() - r.a.DrawAt.UnixMilli()
			}
		}
		e.rows = append(e.rows, []string{r.a.ActivityID, r.a.Name, r.a.Kind, itoa(len(r.participants)), itoa(r.entries),
			itoa(r.rejected), counts(r.reasons), itoa(len(r.winners)), counts(tiers), drawTime, itoa(toDraw), itoa(delay)})
	}
	e.rows = limit(p, e.rows)
	return e
}

func (m *analyticsModel) rejections(p clickhouse.Params) expected {
	type key struct{ activity, reason string }
	entries := map[key]int{}
	users := map[key]map[string]bool{}
	for _, e := range m.entries {
		if e.Status != schemas.EntryRejected || (p.Activity != "" && e.ActivityID != p.Activity) || !in(p, e.RecordedAt) {
			continue
		}
		k := key{e.ActivityID, e.Reason}
		entries[k]++
		if users[k] == nil {
			users[k] = map[string]bool{}
		}
		users[k][e.UserID] = true
	}
	keys := make([]key, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.activity, b.activity), -cmp.Compare(entries[a], entries[b]), cmp.Compare(a.reason, b.reason))
	})
	e := expected{columns: []string{"activity_id", "reason", "rejected_entries", "users"}}
	for _, k := range keys {
		e.rows = append(e.rows, []string{k.activity, k.reason, itoa(entries[k]), itoa(len(users[k]))})
	}
	e.rows = limit(p, e.rows)
	return e
}

func (m *analyticsModel) winners(p clickhouse.Params) expected {
	type key struct{ activity, tier, kind string }
	users := map[key]map[string]bool{}
	points := map[key]int64{}
	for _, a := range m.awards {
		if (p.Activity != "" && a.ActivityID != p.Activity) || !in(p, a.AwardedAt) {
			continue
		}
		k := key{a.ActivityID, a.TierID, a.PrizeKind}
		if users[k] == nil {
			users[k] = map[string]bool{}
		}
		users[k][a.UserID] = true
		points[k] += a.Points
	}
	keys := make([]key, 0, len(users))
	for k := range users {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.activity, b.activity), cmp.Compare(a.tier, b.tier)) })
	e := expected{columns: []string{"activity_id", "tier_id", "prize_kind", "winners", "points_awarded"}}
	for _, k := range keys {
		e.rows = append(e.rows, []string{k.activity, k.tier, k.kind, itoa(len(users[k])), itoa(points[k])})
	}
	e.rows = limit(p, e.rows)
	return e
}

// grantValue and redeemValue price coupons as docs/analytics.md says.
func grantValue(b schemas.BatchDefined) int64 {
	switch b.DiscountType {
	case schemas.DiscountFixed, schemas.DiscountPriceIncrease:
		return b.Amount
	case schemas.DiscountPercent:
		return b.Cap
	}
	return 0
}

func redeemValue(b schemas.BatchDefined, order int64) int64 {
	switch b.DiscountType {
	case schemas.DiscountFixed:
		if order > 0 {
			return min(b.Amount, order)
		}
		return b.Amount
	case schemas.DiscountPriceIncrease:
		return b.Amount
	case schemas.DiscountPercent:
		if order == 0 {
			return b.Cap
		}
		v := order * b.Percent / 100
		if b.Cap > 0 {
			v = min(v, b.Cap)
		}
		return v
	}
	return 0
}

func (m *analyticsModel) budget(p clickhouse.Params) expected {
	bucket := func(t time.Time) time.Time {
		t = t.In(m.tz).Truncate(time.Second)
		if p.Bucket == clickhouse.BucketHour {
			return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, m.tz)
		}
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, m.tz)
	}
	type key struct {
		batch string
		at    time.Time
	}
	type sums struct{ grants, granted, redemptions, redeemed int64 }
	rows := map[key]*sums{}
	row := func(batch string, at time.Time) *sums {
		k := key{batch, bucket(at)}
		if rows[k] == nil {
			rows[k] = &sums{}
		}
		return rows[k]
	}
	keep := func(batch string, at time.Time) bool { return (p.Batch == "" || batch == p.Batch) && in(p, at) }
	for _, g := range m.decisions {
		if g.Status == schemas.StatusGranted && keep(g.BatchID, g.DecidedAt) {
			r := row(g.BatchID, g.DecidedAt)
			r.grants++
			r.granted += grantValue(m.batches[g.BatchID])
		}
	}
	// A redemption is a coupon's first applied confirm, priced with the
	// confirm's order amount, or else its last applied lock's.
	type life struct {
		batch         string
		confirm, lock *schemas.StateChanged
	}
	coupons := map[string]*life{}
	for i := range m.ops {
		c := &m.ops[i]
		if c.Status != schemas.OpApplied {
			continue
		}
		l := coupons[c.CouponID]
		if l == nil {
			l = &life{batch: c.BatchID}
			coupons[c.CouponID] = l
		}
		switch c.Op {
		case schemas.OpConfirm:
			if l.confirm == nil || c.ChangedAt.Before(l.confirm.ChangedAt) {
				l.confirm = c
			}
		case schemas.OpLock:
			if l.lock == nil || c.ChangedAt.After(l.lock.ChangedAt) {
				l.lock = c
			}
		}
	}
	for _, l := range coupons {
		if l.confirm == nil || !keep(l.batch, l.confirm.ChangedAt) {
			continue
		}
		order := l.confirm.OrderAmount
		if order == 0 && l.lock != nil {
			order = l.lock.OrderAmount
		}
		r := row(l.batch, l.confirm.ChangedAt)
		r.redemptions++
		r.redeemed += redeemValue(m.batches[l.batch], order)
	}
	keys := make([]key, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return cmp.Or(cmp.Compare(a.batch, b.batch), a.at.Compare(b.at)) })
	e := expected{columns: []string{"batch_id", "bucket_start", "grants", "granted_value", "redemptions", "redeemed_value"}}
	for _, k := range keys {
		r := rows[k]
		e.rows = append(e.rows, []string{k.batch, k.at.Format(time.DateTime), itoa(r.grants), itoa(r.granted), itoa(r.redemptions), itoa(r.redeemed)})
	}
	e.rows = limit(p, e.rows)
	return e
}

// recommendations is the recommendation funnel: per batch, the users
// recommended it, and of them those granted a coupon of the batch, and
// those who used one (an applied confirm), after it was first recommended
// to them.
func (m *analyticsModel) recommendations(p clickhouse.Params) expected {
	type pair struct{ batch, user string }
	first := map[pair]time.Time{}
	for _, r := range m.recs {
		k := pair{r.BatchID, r.UserID}
		if t, ok := first[k]; !ok || r.MadeAt.Before(t) {
			first[k] = r.MadeAt
		}
	}
	after := func(k pair, t time.Time) bool {
		f, ok := first[k]
		return ok && t.UnixMilli() >= f.UnixMilli()
	}
	claimed, redeemed := map[pair]bool{}, map[pair]bool{}
	for _, g := range m.decisions {
		if k := (pair{g.BatchID, g.UserID}); g.Status == schemas.StatusGranted && after(k, g.DecidedAt) {
			claimed[k] = true
		}
	}
	for _, c := range m.ops {
		if k := (pair{c.BatchID, c.UserID}); c.Op == schemas.OpConfirm && c.Status == schemas.OpApplied && after(k, c.ChangedAt) {
			redeemed[k] = true
		}
	}
	type row struct {
		batch                          string
		recommended, claimed, redeemed int
	}
	rows := map[string]*row{}
	for k := range first {
		if p.Batch != "" && k.batch != p.Batch {
			continue
		}
		r := rows[k.batch]
		if r == nil {
			r = &row{batch: k.batch}
			rows[k.batch] = r
		}
		r.recommended++
		if claimed[k] {
			r.claimed++
		}
		if redeemed[k] {
			r.redeemed++
		}
	}
	list := values(rows)
	slices.SortFunc(list, func(a, b *row) int {
		return cmp.Or(cmp.Compare(b.recommended, a.recommended), strings.Compare(a.batch, b.batch))
	})
	e := expected{columns: []string{"batch_id", "recommended_users", "claimed_users", "redeemed_users", "conversion"}}
	for _, r := range list {
		e.rows = append(e.rows, []string{r.batch, itoa(r.recommended), itoa(r.claimed), itoa(r.redeemed), ratio(r.redeemed, r.recommended)})
	}
	e.rows = limit(p, e.rows)
	return e
}
