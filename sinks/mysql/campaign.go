package mysql

import (
	"context"
	"database/sql"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.CampaignReader = (*Sink)(nil)

// BatchCounts counts the batch's decisions in every shard's coupon_grant
// table through its (batch_id, status) index, and its used coupons in every
// shard's coupon table. The coupon tables have no batch index (they are
// read by user), so the redemption count reads them whole: the campaign
// page asks at most once a second per campaign (its API caches), which a
// deployment with very large coupon tables should keep in mind.
func (s *Sink) BatchCounts(ctx context.Context, batchID string) (sinks.BatchCounts, error) {
	type group struct {
		status, reason string
		n              int64
	}
	groups, err := query(ctx, s, couponGrants.what, s.everyShard(),
		"SELECT status, reason, COUNT(*) FROM coupon_grant_%[1]d WHERE batch_id = ? GROUP BY status, reason",
		[]any{batchID}, func(rows *sql.Rows) (group, error) {
			var g group
			err := rows.Scan(&g.status, &g.reason, &g.n)
			return g, err
		})
	if err != nil {
		return sinks.BatchCounts{}, err
	}
	used, err := query(ctx, s, coupons.what, s.everyShard(),
		"SELECT COUNT(*) FROM coupon_%[1]d WHERE batch_id = ? AND state = '"+schemas.CouponUsed+"'",
		[]any{batchID}, scanOne[int64])
	if err != nil {
		return sinks.BatchCounts{}, err
	}
	c := sinks.BatchCounts{RejectedBy: map[string]int64{}}
	for _, g := range groups {
		c.Claims += g.n
		switch g.status {
		case schemas.StatusGranted:
			c.Grants += g.n
		case schemas.StatusRejected:
			c.Rejected += g.n
			c.RejectedBy[g.reason] += g.n
		}
	}
	for _, n := range used {
		c.Redemptions += n
	}
	return c, nil
}

// AwardCounts counts the activity's awards per tier in every shard's
// lottery_award table, through its (activity_id, tier_id) index alone.
func (s *Sink) AwardCounts(ctx context.Context, activityID string) (map[string]int64, error) {
	type tier struct {
		id string
		n  int64
	}
	tiers, err := query(ctx, s, lotteryAwards.what, s.everyShard(),
		"SELECT tier_id, COUNT(*) FROM lottery_award_%[1]d WHERE activity_id = ? GROUP BY tier_id",
		[]any{activityID}, func(rows *sql.Rows) (tier, error) {
			var t tier
			err := rows.Scan(&t.id, &t.n)
			return t, err
		})
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, t := range tiers {
		out[t.id] += t.n
	}
	return out, nil
}
