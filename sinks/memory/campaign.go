package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var (
	_ sinks.CampaignReader   = (*Sink)(nil)
	_ sinks.ThroughputReader = (*Sink)(nil)
)

// BatchCounts counts the batch's decisions and its used coupons, as the
// MySQL sink does.
func (s *Sink) BatchCounts(_ context.Context, batchID string) (sinks.BatchCounts, error) {
	c := sinks.BatchCounts{RejectedBy: map[string]int64{}}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, shard := range s.grants {
		for _, g := range shard {
			if g.BatchID != batchID {
				continue
			}
			c.Claims++
			switch g.Status {
			case schemas.StatusGranted:
				c.Grants++
			case schemas.StatusRejected:
				c.Rejected++
				c.RejectedBy[g.Reason]++
			}
		}
	}
	for _, shard := range s.coupons {
		for _, cp := range shard {
			if cp.BatchID == batchID && cp.State == schemas.CouponUsed {
				c.Redemptions++
			}
		}
	}
	return c, nil
}

// AwardCounts counts the activity's awards per tier.
func (s *Sink) AwardCounts(_ context.Context, activityID string) (map[string]int64, error) {
	out := map[string]int64{}
	each(s, func(p schemas.PrizeAwarded) {
		if p.ActivityID == activityID {
			out[p.TierID]++
		}
	})
	return out, nil
}

// Throughput counts the campaign's decisions per bucket, as the ClickHouse
// sink does: grant decisions by decided_at, lottery entries by
// recorded_at. The memory sink stands in for ClickHouse in the demo.
func (s *Sink) Throughput(_ context.Context, q sinks.ThroughputQuery) ([]sinks.ThroughputBucket, error) {
	buckets := map[time.Time]*sinks.ThroughputBucket{}
	add := func(at time.Time, accepted bool) {
		if at.Before(q.From) || !at.Before(q.To) {
			return
		}
		start := sinks.BucketStart(at, q.Bucket)
		b := buckets[start]
		if b == nil {
			b = &sinks.ThroughputBucket{Start: start}
			buckets[start] = b
		}
		if accepted {
			b.Accepted++
		} else {
			b.Rejected++
		}
	}
	switch q.Kind {
	case sinks.CampaignCouponBatch:
		s.mu.RLock()
		for _, shard := range s.grants {
			for _, g := range shard {
				if g.BatchID == q.ID {
					add(g.DecidedAt, g.Status == schemas.StatusGranted)
				}
			}
		}
		s.mu.RUnlock()
	case sinks.CampaignLottery:
		each(s, func(e schemas.EntryRecorded) {
			if e.ActivityID == q.ID {
				add(e.RecordedAt, e.Status == schemas.EntryAccepted)
			}
		})
	default:
		return nil, fmt.Errorf("reading throughput from memory: unknown campaign kind %q", q.Kind)
	}
	out := make([]sinks.ThroughputBucket, 0, len(buckets))
	for _, b := range buckets {
		out = append(out, *b)
	}
	slices.SortFunc(out, func(a, b sinks.ThroughputBucket) int { return a.Start.Compare(b.Start) })
	return out, nil
}
