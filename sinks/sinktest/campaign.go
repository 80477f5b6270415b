package sinktest

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// CampaignSink is a sink that reads campaign figures back, as the system of
// record does.
type CampaignSink interface {
	Sink
	sinks.CampaignReader
}

// ThroughputSink is a sink that counts campaign decisions per time bucket,
// as the reporting store does.
type ThroughputSink interface {
	Sink
	sinks.ThroughputReader
}

// campaignData is what the campaign suites write: grant decisions of two
// batches, coupon operations, lottery entries and awards of two
// activities, each result written twice (the second time as a
// redelivery), and the figures a store must read back, counted here as
// the data was made rather than from the store.
type campaignData struct {
	events []*schemas.Envelope
	counts map[string]sinks.BatchCounts // by batch
	awards map[string]map[string]int64  // by activity, tier
	// decisions are the grants and entries with their time, for the
	// throughput suite.
	decisions []decision
}

type decision struct {
	kind, id string
	at       time.Time
	accepted bool
}

// The campaigns of the suites; unknownCampaign has no results.
const (
	campaignBatch    = "camp-batch-a"
	otherBatch       = "camp-batch-b"
	campaignActivity = "camp-draw-a"
	otherActivity    = "camp-draw-b"
	unknownCampaign  = "camp-none"
)

// throughputStart is when the suites' decisions begin: each follows the one
// before by 700 ms and 1 µs (which stores drop).
var throughputStart = Epoch.Add(-2 * time.Hour).Truncate(time.Second)

func newCampaignData(tb testing.TB) *campaignData {
	tb.Helper()
	d := &campaignData{counts: map[string]sinks.BatchCounts{}, awards: map[string]map[string]int64{}}
	for _, b := range []string{campaignBatch, otherBatch, unknownCampaign} {
		d.counts[b] = sinks.BatchCounts{RejectedBy: map[string]int64{}}
	}
	for _, a := range []string{campaignActivity, otherActivity, unknownCampaign} {
		d.awards[a] = map[string]int64{}
	}
	at := func(i int) time.Time {
		return throughputStart.Add(time.Duration(i)*700*time.Millisecond + time.Duration(i)*time.Microsecond)
	}
	// 60 claim decisions, two in three on the campaign's batch; a third
	// of them rejected, for each reason in turn.
	for i := range 60 {
		batch := campaignBatch
		if i%3 == 2 {
			batch = otherBatch
		}
		claim := fmt.Sprintf("camp-claim-%d", i)
		g := schemas.GrantDecided{
			ResultID: schemas.ResultID(ResultKind, "app-camp", claim), ClaimEventID: claim, BatchID: batch,
			UserID: fmt.Sprintf("camp-user-%d", i), ClaimedAt: at(i).Add(-time.Millisecond), DecidedAt: at(i),
		}
		c := d.counts[batch]
		c.Claims++
		if i%3 == 1 {
			g.Status, g.Reason = schemas.StatusRejected, rejections[(i/3)%len(rejections)]
			c.Rejected++
			c.RejectedBy[g.Reason]++
		} else {
			g.Status, g.CouponID, g.GrantSeq = schemas.StatusGranted, g.ResultID, int64(i+1)
			c.Grants++
		}
		d.counts[batch] = c
		d.events = append(d.events, Grant(tb, "app-camp", g))
		d.decisions = append(d.decisions, decision{sinks.CampaignCouponBatch, batch, g.DecidedAt.UTC().Truncate(time.Millisecond), g.Status == schemas.StatusGranted})
	}
	// Coupons of the campaign's batch: 7 used (granted, locked,
	// confirmed), 4 locked, 3 available; the operations arrive newest
	// first, so only the seq says which state is the latest. One used
	// coupon of the other batch.
	for i := range 15 {
		batch, steps := campaignBatch, 1
		switch {
		case i < 7:
			steps = 3
		case i < 11:
			steps = 2
		case i == 14:
			batch, steps = otherBatch, 3
		}
		if steps == 3 {
			c := d.counts[batch]
			c.Redemptions++
			d.counts[batch] = c
		}
		user, coupon := fmt.Sprintf("camp-holder-%d", i), fmt.Sprintf("camp-coupon-%d", i)
		ops := []struct{ op, state string }{
			{schemas.OpGrant, schemas.CouponAvailable}, {schemas.OpLock, schemas.CouponLocked}, {schemas.OpConfirm, schemas.CouponUsed},
		}
		for seq := steps; seq >= 1; seq-- {
			o := ops[seq-1]
			changed := at(i).Add(time.Duration(seq) * time.Minute)
			sc := schemas.StateChanged{
				ResultID: schemas.ResultID(schemas.TypeCouponStateChanged, "app-camp", fmt.Sprintf("%s-%d", coupon, seq)),
				CouponID: coupon, UserID: user, BatchID: batch, Op: o.op, Status: schemas.OpApplied, State: o.state, Seq: int64(seq),
				SourceEventID: fmt.Sprintf("camp-request-%d-%d", i, seq), ValidFrom: throughputStart,
				ExpiresAt: throughputStart.Add(30 * 24 * time.Hour), ChangedAt: changed,
			}
			if o.op != schemas.OpGrant {
				sc.OrderID, sc.OrderAmount = "camp-order-"+coupon, 1000
			}
			if o.op == schemas.OpLock {
				deadline := changed.Add(15 * time.Minute)
				sc.LockDeadline = &deadline
			}
			d.events = append(d.events, Result(tb, "app-camp", changed, sc))
		}
	}
	// 40 entries, three in four on the campaign's activity, one in five
	// rejected; awards in three tiers of it and one of the other.
	for i := range 40 {
		activity := campaignActivity
		if i%4 == 3 {
			activity = otherActivity
		}
		event := fmt.Sprintf("camp-entry-%d", i)
		e := schemas.EntryRecorded{
			ResultID: schemas.ResultID(schemas.TypeLotteryEntryRecorded, "app-camp", event), EntryEventID: event,
			ActivityID: activity, UserID: fmt.Sprintf("camp-player-%d", i), Status: schemas.EntryAccepted, Roll: -1,
			OccurredAt: at(i).Add(-time.Second), RecordedAt: at(i),
		}
		if i%5 == 4 {
			e.Status, e.Reason = schemas.EntryRejected, schemas.RejectLimitReached
		}
		d.events = append(d.events, Result(tb, "app-camp", e.RecordedAt, e))
		d.decisions = append(d.decisions, decision{sinks.CampaignLottery, activity, e.RecordedAt.UTC().Truncate(time.Millisecond), e.Status == schemas.EntryAccepted})
	}
	for i, tier := range []string{"gold", "silver", "silver", "bronze", "bronze", "bronze", "gold"} {
		activity := campaignActivity
		if i == 6 {
			activity = otherActivity
		}
		key := fmt.Sprintf("%s/camp-player-%d", activity, i)
		p := schemas.PrizeAwarded{
			ResultID: schemas.ResultID(schemas.TypeLotteryPrizeAwarded, "app-camp", key), ActivityID: activity,
			UserID: fmt.Sprintf("camp-player-%d", i), TierID: tier, PrizeKind: schemas.PrizeGoods, Source: "draw",
			SourceID: schemas.ResultID("source", "app-camp", key), Rank: int64(i + 1), AwardedAt: at(50),
		}
		d.awards[activity][tier]++
		d.events = append(d.events, Result(tb, "app-camp", p.AwardedAt, p))
	}
	return d
}

// writeCampaignData writes d's events twice, the second time as a
// redelivery would bring them.
func writeCampaignData(t *testing.T, ctx context.Context, s Sink, d *campaignData) {
	t.Helper()
	write(t, ctx, s, d.events)
	write(t, ctx, s, redecode(t, d.events))
}

// RunCampaignReader runs the read suite of [sinks.CampaignReader]. newSink
// returns a new sink over an empty store and arranges with t.Cleanup for
// the store to be removed; the suite closes the sink.
func RunCampaignReader(t *testing.T, newSink func(t *testing.T) CampaignSink) {
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	s := newSink(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing sink: %v", err)
		}
	})
	d := newCampaignData(t)
	writeCampaignData(t, ctx, s, d)
	t.Run("BatchCounts", func(t *testing.T) {
		for _, batch := range []string{campaignBatch, otherBatch, unknownCampaign} {
			got, err := s.BatchCounts(ctx, batch)
			if err != nil {
				t.Fatalf("BatchCounts(%s): %v", batch, err)
			}
			if got.RejectedBy == nil {
				t.Errorf("BatchCounts(%s).RejectedBy is nil", batch)
			}
			if w, g := jsonOf(d.counts[batch]), jsonOf(got); w != g {
				t.Errorf("BatchCounts(%s) = %s, want %s", batch, g, w)
			}
		}
	})
	t.Run("AwardCounts", func(t *testing.T) {
		for _, activity := range []string{campaignActivity, otherActivity, unknownCampaign} {
			got, err := s.AwardCounts(ctx, activity)
			if err != nil {
				t.Fatalf("AwardCounts(%s): %v", activity, err)
			}
			if got == nil {
				t.Errorf("AwardCounts(%s) is nil", activity)
			}
			if !maps.Equal(got, d.awards[activity]) {
				t.Errorf("AwardCounts(%s) = %v, want %v", activity, got, d.awards[activity])
			}
		}
	})
}

// RunThroughputReader runs the read suite of [sinks.ThroughputReader], like
// RunCampaignReader.
func RunThroughputReader(t *testing.T, newSink func(t *testing.T) ThroughputSink) {
	ctx, cancel := context.WithTimeout(t.Context(), caseTimeout)
	defer cancel()
	s := newSink(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing sink: %v", err)
		}
	})
	d := newCampaignData(t)
	writeCampaignData(t, ctx, s, d)
	queries := []sinks.ThroughputQuery{
		// Everything, in one-second buckets.
		{Kind: sinks.CampaignCouponBatch, ID: campaignBatch, From: throughputStart, To: throughputStart.Add(time.Minute), Bucket: time.Second},
		// A range whose bounds fall inside buckets, exactly on a
		// decision's stored time at both ends: From inclusive, To
		// exclusive.
		{Kind: sinks.CampaignCouponBatch, ID: campaignBatch, From: throughputStart.Add(7 * 700 * time.Millisecond), To: throughputStart.Add(30 * 700 * time.Millisecond), Bucket: 5 * time.Second},
		{Kind: sinks.CampaignCouponBatch, ID: otherBatch, From: throughputStart, To: throughputStart.Add(time.Minute), Bucket: 10 * time.Second},
		{Kind: sinks.CampaignLottery, ID: campaignActivity, From: throughputStart, To: throughputStart.Add(time.Minute), Bucket: 3 * time.Second},
		{Kind: sinks.CampaignLottery, ID: otherActivity, From: throughputStart.Add(-time.Hour), To: throughputStart.Add(time.Hour), Bucket: time.Minute},
		{Kind: sinks.CampaignCouponBatch, ID: unknownCampaign, From: throughputStart, To: throughputStart.Add(time.Minute), Bucket: time.Second},
		// Before the decisions.
		{Kind: sinks.CampaignCouponBatch, ID: campaignBatch, From: throughputStart.Add(-time.Hour), To: throughputStart, Bucket: time.Second},
	}
	for _, q := range queries {
		t.Run(fmt.Sprintf("%s/%s/%s", q.Kind, q.ID, q.Bucket), func(t *testing.T) {
			got, err := s.Throughput(ctx, q)
			if err != nil {
				t.Fatalf("Throughput(%+v): %v", q, err)
			}
			if w, g := jsonOf(d.buckets(q)), jsonOf(got); w != g {
				t.Errorf("Throughput(%+v)\n got %s\nwant %s", q, g, w)
			}
		})
	}
	t.Run("UnknownKind", func(t *testing.T) {
		if _, err := s.Throughput(ctx, sinks.ThroughputQuery{Kind: "nonsense", ID: campaignBatch, From: throughputStart,
			To: throughputStart.Add(time.Minute), Bucket: time.Second}); err == nil {
			t.Error("Throughput of an unknown campaign kind succeeded")
		}
	})
}

// buckets returns the non-empty buckets q should read, in time order.
func (d *campaignData) buckets(q sinks.ThroughputQuery) []sinks.ThroughputBucket {
	m := map[time.Time]*sinks.ThroughputBucket{}
	for _, dc := range d.decisions {
		if dc.kind != q.Kind || dc.id != q.ID || dc.at.Before(q.From) || !dc.at.Before(q.To) {
			continue
		}
		start := sinks.BucketStart(dc.at, q.Bucket)
		if m[start] == nil {
			m[start] = &sinks.ThroughputBucket{Start: start}
		}
		if dc.accepted {
			m[start].Accepted++
		} else {
			m[start].Rejected++
		}
	}
	out := []sinks.ThroughputBucket{}
	for _, k := range slices.SortedFunc(maps.Keys(m), time.Time.Compare) {
		out = append(out, *m[k])
	}
	return out
}
