package verify

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
)

// checkInvariants runs check 3 on the system of record.
func checkInvariants(ctx context.Context, my Record, defs *definitions, sc scope, prog *progress, c *Check) error {
	if defs == nil {
		c.info("stock, per-user limits and tier stock are not checked: Kafka is skipped, so the definitions are unknown")
	} else if defs.refused > 0 {
		c.info("definitions the processors refuse (never used): %d", defs.refused)
	}
	if batch, in := sc.batchFilter(); in {
		prog.line("checking the coupon invariants")
		if err := couponInvariants(ctx, my, defs, batch, c); err != nil {
			return err
		}
	}
	if activity, in := sc.activityFilter(); in {
		prog.line("checking the lottery and gift-exchange invariants")
		if err := awardInvariants(ctx, my, defs, activity, prog, c); err != nil {
			return err
		}
		if err := giftInvariants(ctx, my, activity, prog, c); err != nil {
			return err
		}
		if err := referralInvariants(ctx, my, activity, prog, c); err != nil {
			return err
		}
	}
	return nil
}

// couponInvariants checks grants ≤ stock, grants per user ≤ the per-user
// limit, and that no coupon was used twice.
func couponInvariants(ctx context.Context, my Record, defs *definitions, batch string, c *Check) error {
	shards := my.IDStreams()
	granted := map[string]int64{}
	for i := range shards {
		if err := my.GrantedPerBatch(ctx, i, batch, func(b string, n int64) error {
			granted[b] += n
			return nil
		}); err != nil {
			return fmt.Errorf("counting grants in %s: %w", my.ShardName(i), err)
		}
	}
	var total, overStock, undefined int64
	for _, b := range sortedKeys(granted) {
		n := granted[b]
		total += n
		if defs == nil {
			continue
		}
		def := defs.batches[b]
		switch {
		case def == nil:
			undefined++
			c.breach(1, fmt.Sprintf("batch %s: %d granted, but coupon.admin defines no such batch", safe(b), n))
		case n > def.TotalStock:
			overStock++
			c.breach(1, fmt.Sprintf("batch %s: %d granted, stock %d (revision %d)", safe(b), n, def.TotalStock, def.Revision))
		}
	}
	c.Counts["coupon.batches"] = int64(len(granted))
	c.Counts["coupon.granted"] = total
	c.Counts["coupon.batches_over_stock"] = overStock
	c.Counts["coupon.batches_undefined"] = undefined
	line := fmt.Sprintf("coupon stock: %d granted in %s", total, plural(len(granted), "batch", "batches"))
	if defs != nil {
		line += fmt.Sprintf(", %d over stock, %d without a definition", overStock, undefined)
	}
	c.summary("%s", line)

	if defs != nil {
		// Each shard groups by (user, batch) above the smallest limit in
		// scope; the rows above their own batch's limit are breaches.
		over := int64(0)
		limitOf := func(b string) int64 {
			if def := defs.batches[b]; def != nil && def.PerUserLimit > 0 {
				return def.PerUserLimit
			}
			return 1
		}
		for b := range granted {
			if l := limitOf(b); over == 0 || l < over {
				over = l
			}
		}
		var pairs int64
		if over > 0 {
			for i := range shards {
				if err := my.GrantsPerUserOver(ctx, i, batch, over, func(user, b string, n int64) error {
					if l := limitOf(b); n > l {
						pairs++
						c.breach(1, fmt.Sprintf("user %s holds %d grants of batch %s, limit %d (%s)", safe(user), n, safe(b), l, my.ShardName(i)))
					}
					return nil
				}); err != nil {
					return fmt.Errorf("counting grants per user in %s: %w", my.ShardName(i), err)
				}
			}
		}
		c.Counts["coupon.users_over_limit"] = pairs
		c.summary("per-user limits: %d (user, batch) pairs over the limit", pairs)
	}

	var usedTwice int64
	for i := range shards {
		if err := my.ConfirmsPerCouponOver(ctx, i, batch, func(coupon string, n int64) error {
			usedTwice++
			c.breach(1, fmt.Sprintf("coupon %s confirmed (used) %d times (%s)", safe(coupon), n, my.ShardName(i)))
			return nil
		}); err != nil {
			return fmt.Errorf("counting confirms in %s: %w", my.ShardName(i), err)
		}
	}
	c.Counts["coupon.used_more_than_once"] = usedTwice
	c.summary("coupons used more than once: %d", usedTwice)
	return nil
}

// activityIDs returns the activities of table in every shard (only
// activity, when narrowed to it), sorted.
func activityIDs(ctx context.Context, my Record, table, activity string) ([]string, error) {
	set := map[string]bool{}
	for i := range my.IDStreams() {
		if err := my.ActivityIDs(ctx, i, table, func(a string) error {
			if activity == "" || a == activity {
				set[a] = true
			}
			return nil
		}); err != nil {
			return nil, fmt.Errorf("listing the activities of %s in %s: %w", table, my.ShardName(i), err)
		}
	}
	return sortedKeys(set), nil
}

// userCursors returns a cursor per shard over q's rows.
func userCursors(my Record, q UserQuery) []*cursor[UserRow] {
	out := make([]*cursor[UserRow], my.IDStreams())
	for i := range out {
		out[i] = newCursor(PageSize, func(ctx context.Context, after *UserRow, limit int) ([]UserRow, error) {
			q := q
			q.Limit = limit
			if after != nil {
				q.AfterKey, q.AfterID = after.Key, after.ResultID
			}
			return my.SortedUsers(ctx, i, q)
		})
	}
	return out
}

func cmpUserRows(a, b UserRow) int {
	return cmp.Or(strings.Compare(a.Key, b.Key), strings.Compare(a.ResultID, b.ResultID))
}

// repeatedUsers merges q's rows of every shard in (key, result id) order
// and calls repeated with each key held by more than one row, and each
// (nil: none) with every row. Memory is one page per shard.
func repeatedUsers(ctx context.Context, my Record, q UserQuery, each func(UserRow), repeated func(key string, n int)) error {
	g := newGrouper(newMerger(cmpUserRows, userCursors(my, q)...), func(a, b UserRow) bool { return a.Key == b.Key })
	for {
		grp, ok, err := g.next(ctx, func(r UserRow, _ int) {
			if each != nil {
				each(r)
			}
		})
		if err != nil || !ok {
			return err
		}
		if grp.n > 1 {
			repeated(grp.first.Key, grp.n)
		}
	}
}

// awardInvariants checks one award per user and activity, and awards per
// tier ≤ the tier's stock.
func awardInvariants(ctx context.Context, my Record, defs *definitions, activity string, prog *progress, c *Check) error {
	type at struct{ activity, tier string }
	perTier := map[at]int64{}
	for i := range my.IDStreams() {
		if err := my.AwardsPerTier(ctx, i, activity, func(a, t string, n int64) error {
			perTier[at{a, t}] += n
			return nil
		}); err != nil {
			return fmt.Errorf("counting awards in %s: %w", my.ShardName(i), err)
		}
	}
	keys := make([]at, 0, len(perTier))
	for k := range perTier {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b at) int {
		return cmp.Or(strings.Compare(a.activity, b.activity), strings.Compare(a.tier, b.tier))
	})
	var awards, overStock, undefined int64
	for _, k := range keys {
		n := perTier[k]
		awards += n
		if defs == nil {
			continue
		}
		def := defs.activities[k.activity]
		if def == nil {
			undefined++
			c.breach(1, fmt.Sprintf("activity %s tier %s: %d awarded, but lottery.admin defines no such activity", safe(k.activity), safe(k.tier), n))
			continue
		}
		tier := def.Tier(k.tier)
		switch {
		case tier == nil:
			undefined++
			c.breach(1, fmt.Sprintf("activity %s: %d awarded of tier %s, which revision %d does not define", safe(k.activity), n, safe(k.tier), def.Revision))
		case n > tier.Stock:
			overStock++
			c.breach(1, fmt.Sprintf("activity %s tier %s: %d awarded, stock %d (revision %d)", safe(k.activity), safe(k.tier), n, tier.Stock, def.Revision))
		}
	}
	acts, err := activityIDs(ctx, my, "lottery_award", activity)
	if err != nil {
		return err
	}
	var twice int64
	for j, a := range acts {
		prog.tick("checking awards: activity %d/%d", j+1, len(acts))
		if err := repeatedUsers(ctx, my, UserQuery{Table: "lottery_award", Column: "user_id", ActivityID: a}, nil, func(user string, n int) {
			twice++
			c.breach(1, fmt.Sprintf("activity %s: user %s holds %d awards", safe(a), safe(user), n))
		}); err != nil {
			return fmt.Errorf("reading the awards of %s: %w", a, err)
		}
	}
	c.Counts["lottery.awards"] = awards
	c.Counts["lottery.tiers_over_stock"] = overStock
	c.Counts["lottery.tiers_undefined"] = undefined
	c.Counts["lottery.users_with_several_awards"] = twice
	line := fmt.Sprintf("lottery awards: %d in %s (%s)", awards, plural(len(acts), "activity", "activities"), plural(len(keys), "tier", "tiers"))
	if defs != nil {
		line += fmt.Sprintf(", %d tiers over stock, %d without a definition", overStock, undefined)
	}
	c.summary("%s; users with more than one award in an activity: %d", line, twice)
	return nil
}

// giftInvariants checks that in each gift exchange every member sent at
// most once, received at most once, and never to themselves. Sends are
// routed by sender, so receivers are merged across shards per activity.
func giftInvariants(ctx context.Context, my Record, activity string, prog *progress, c *Check) error {
	acts, err := activityIDs(ctx, my, "gift_match", activity)
	if err != nil {
		return err
	}
	var senders, receivers, self, matches int64
	for j, a := range acts {
		prog.tick("checking gift exchanges: activity %d/%d", j+1, len(acts))
		if err := repeatedUsers(ctx, my, UserQuery{Table: "gift_match", Column: "sender_id", ActivityID: a},
			func(UserRow) { matches++ },
			func(user string, n int) {
				senders++
				c.breach(1, fmt.Sprintf("gift exchange %s: %s sent %d gifts", safe(a), safe(user), n))
			}); err != nil {
			return fmt.Errorf("reading the senders of %s: %w", a, err)
		}
		if err := repeatedUsers(ctx, my, UserQuery{Table: "gift_match", Column: "receiver_id", ActivityID: a},
			func(r UserRow) {
				if r.Key == r.Other {
					self++
					c.breach(1, fmt.Sprintf("gift exchange %s: %s was matched with themselves (result %s)", safe(a), safe(r.Key), safe(r.ResultID)))
				}
			},
			func(user string, n int) {
				receivers++
				c.breach(1, fmt.Sprintf("gift exchange %s: %s received %d gifts", safe(a), safe(user), n))
			}); err != nil {
			return fmt.Errorf("reading the receivers of %s: %w", a, err)
		}
	}
	c.Counts["gift.activities"] = int64(len(acts))
	c.Counts["gift.matches"] = matches
	c.Counts["gift.senders_more_than_once"] = senders
	c.Counts["gift.receivers_more_than_once"] = receivers
	c.Counts["gift.matched_to_self"] = self
	c.summary("gift exchanges: %d matches in %s; senders matched more than once %d, receivers more than once %d, matched to themselves %d",
		matches, plural(len(acts), "activity", "activities"), senders, receivers, self)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// plural formats n with the noun that fits it.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
