package sinks

import (
	"context"
	"time"
)

// Campaign kinds, as the campaign page and its API name them.
const (
	// CampaignCouponBatch is a coupon batch (coupon.batch.defined).
	CampaignCouponBatch = "coupon_batch"
	// CampaignLottery is a lottery activity (lottery.activity.defined):
	// a draw, an instant win or a gift exchange.
	CampaignLottery = "lottery"
)

// CampaignReader reads the live figures of one campaign from the system of
// record, for the campaign page (`promoflow serve`). Each figure is an
// aggregate over every shard: a campaign's rows are spread by user.
type CampaignReader interface {
	// BatchCounts counts a coupon batch's claim decisions and redemptions.
	// An unknown batch counts zero.
	BatchCounts(ctx context.Context, batchID string) (BatchCounts, error)
	// AwardCounts counts an activity's prizes awarded per tier (draw and
	// instant-win awards alike). It is never nil.
	AwardCounts(ctx context.Context, activityID string) (map[string]int64, error)
}

// BatchCounts counts one coupon batch's results.
type BatchCounts struct {
	// Claims counts the claim and issue decisions (coupon.grant.decided),
	// one per claim event however often it was delivered.
	Claims int64 `json:"claims"`
	// Grants and Rejected count the decisions by status.
	Grants   int64 `json:"grants"`
	Rejected int64 `json:"rejected"`
	// RejectedBy counts rejected decisions by reason; it is never nil.
	RejectedBy map[string]int64 `json:"rejected_by"`
	// Redemptions counts the batch's coupons that are used: confirmed by
	// an order.
	Redemptions int64 `json:"redemptions"`
}

// ThroughputReader counts a campaign's decisions per time bucket, for the
// campaign page's throughput chart. It is a reporting read: the store may
// lag the decisions by its sink's batching.
type ThroughputReader interface {
	// Throughput returns the non-empty buckets of q in time order; the
	// result is never nil.
	Throughput(ctx context.Context, q ThroughputQuery) ([]ThroughputBucket, error)
}

// ThroughputQuery selects a campaign's decisions in [From, To), counted in
// buckets of Bucket aligned on the Unix epoch. Stores keep times to the
// millisecond, and compare From and To to the millisecond.
type ThroughputQuery struct {
	// Kind is CampaignCouponBatch (grant decisions, by decided_at) or
	// CampaignLottery (entries, by recorded_at).
	Kind string
	// ID is the batch or activity id.
	ID       string
	From, To time.Time
	// Bucket is the width of a bucket, a whole number of milliseconds, at
	// least one.
	Bucket time.Duration
}

// ThroughputBucket counts the decisions of one bucket.
type ThroughputBucket struct {
	// Start is the bucket's start, in UTC.
	Start time.Time `json:"start"`
	// Accepted counts grants (coupons) or accepted entries (lotteries);
	// Rejected the rejections.
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
}

// BucketStart returns the start of the bucket of width bucket that t falls
// in, buckets being aligned on the Unix epoch, as every ThroughputReader
// aligns them.
func BucketStart(t time.Time, bucket time.Duration) time.Time {
	ms := bucket.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	at := t.UnixMilli()
	start := at - at%ms
	if at < 0 && at%ms != 0 {
		start -= ms
	}
	return time.UnixMilli(start).UTC()
}
