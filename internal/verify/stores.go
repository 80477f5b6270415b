package verify

import (
	"context"
	"fmt"
)

// storeTable is a result table both stores keep, one row per result id.
type storeTable struct {
	// name names it in the report.
	name string
	// mysql and clickhouse are its names in each store.
	mysql, clickhouse string
	// column narrows it to a campaign: batch_id (coupon tables) or
	// activity_id (lottery and gift-exchange tables).
	column string
}

// storeTables are the tables check 2 compares.
var storeTables = []storeTable{
	{"coupon grants", "coupon_grant", "coupon_grants", "batch_id"},
	{"coupon operations", "coupon_op", "coupon_operations", "batch_id"},
	{"lottery entries", "lottery_entry", "lottery_entries", "activity_id"},
	{"lottery awards", "lottery_award", "lottery_awards", "activity_id"},
	{"gift matches", "gift_match", "gift_matches", "activity_id"},
	{"referral bindings", "referral", "referral_bindings", "activity_id"},
	{"referral qualifications", "referral_qualification", "referral_qualifications", "activity_id"},
	{"referral rewards", "referral_reward", "referral_rewards", "activity_id"},
}

// ClickHousePageSize is the page of ClickHouse reads: larger than
// PageSize because each page of a FINAL read merges the rest of its
// range, so few pages per range keep the work linear.
const ClickHousePageSize = 50_000

// idCursors returns a cursor per stream of table in r over [from, to).
func idCursors(r IDReader, table, from, to, column, value string, limit int) []*cursor[string] {
	n := r.IDStreams()
	out := make([]*cursor[string], n)
	for i := range n {
		out[i] = newCursor(limit, func(ctx context.Context, after *string, limit int) ([]string, error) {
			q := IDQuery{From: from, To: to, Column: column, Value: value, Limit: limit}
			if after != nil {
				q.After = *after
			}
			return r.ResultIDs(ctx, table, i, q)
		})
	}
	return out
}

// compareStores runs check 2: range by range of result ids (the buckets,
// merged for small tables and split for large ones), the sorted ids of
// every MySQL shard table, merged, against ClickHouse's.
func compareStores(ctx context.Context, my Record, ch IDReader, sc scope, prog *progress, c *Check) error {
	var totalOnlyMy, totalOnlyCH, totalRepeats int64
	for _, st := range storeTables {
		value, in := sc.batchFilter()
		if st.column == "activity_id" {
			value, in = sc.activityFilter()
		}
		if !in {
			continue
		}
		column := ""
		if value != "" {
			column = st.column
		}
		n := Buckets
		if counter, ok := ch.(IDCounter); ok {
			rows, err := counter.CountIDs(ctx, st.clickhouse)
			if err != nil {
				return fmt.Errorf("counting %s: %w", st.name, err)
			}
			n = rangesFor(rows, ClickHousePageSize)
		}
		var sum diff
		for i, r := range idRanges(n) {
			prog.tick("comparing %s: range %d/%d, %d ids so far", st.name, i+1, n, sum.Left)
			from, to := r[0], r[1]
			left := newIDSide(idCursors(my, st.mysql, from, to, column, value, PageSize)...)
			right := newIDSide(idCursors(ch, st.clickhouse, from, to, column, value, ClickHousePageSize)...)
			d, err := compareIDs(ctx, left, right,
				func(id string) { c.example(st.name + ": only in MySQL: " + safe(id)) },
				func(id string) { c.example(st.name + ": only in ClickHouse: " + safe(id)) },
				func(side int, id string, n int) {
					if side == 0 {
						c.example(fmt.Sprintf("%s: %s is in %d MySQL shard tables", st.name, safe(id), n))
					}
				})
			if err != nil {
				return fmt.Errorf("comparing %s: %w", st.name, err)
			}
			sum.Left += d.Left
			sum.Right += d.Right
			sum.OnlyLeft += d.OnlyLeft
			sum.OnlyRight += d.OnlyRight
			sum.LeftRepeats += d.LeftRepeats
		}
		key := st.mysql
		c.Counts[key+".mysql"] = sum.Left
		c.Counts[key+".clickhouse"] = sum.Right
		c.Counts[key+".only_mysql"] = sum.OnlyLeft
		c.Counts[key+".only_clickhouse"] = sum.OnlyRight
		c.Counts[key+".in_several_shards"] = sum.LeftRepeats
		line := fmt.Sprintf("%s: MySQL %d, ClickHouse %d; only in MySQL %d, only in ClickHouse %d", st.name, sum.Left, sum.Right, sum.OnlyLeft, sum.OnlyRight)
		if sum.LeftRepeats > 0 {
			line += fmt.Sprintf(", in more than one MySQL shard table %d", sum.LeftRepeats)
		}
		c.summary("%s", line)
		totalOnlyMy += sum.OnlyLeft
		totalOnlyCH += sum.OnlyRight
		totalRepeats += sum.LeftRepeats
	}
	if n := totalOnlyMy + totalOnlyCH + totalRepeats; n > 0 {
		c.breach(n, "")
	}
	if !sc.all() {
		c.info("narrowed to campaign %s (%s)", safe(sc.campaign), sc.kindName())
	}
	prog.line("compared MySQL and ClickHouse")
	return nil
}
