package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// lotteryDemo is the lottery part of `promoflow demo`: a scheduled draw
// with duplicated participations and an instant-win activity, checked from
// the system of record and verified as a user would verify it.
type lotteryDemo struct {
	runID string
	// verifyHint tells the user how to verify the draw again afterwards.
	verifyHint string
	users      int     // participants of the draw
	dupRate    float64 // share of participations delivered twice
	tries      int     // instant-win tries
}

type lotteryDemoReport struct {
	drawID, spinID   string
	published        int
	draw             *schemas.DrawCompleted
	perTier          map[string]int
	verified         *lottery.Verification
	instantWins      map[string]int
	instantStock     map[string]int64
	entries, rejects int64
	elapsed          time.Duration
	breaches         []string
	verifyHint       string
}

func (d lotteryDemo) activities(now time.Time) (draw, spin schemas.ActivityDefined) {
	// Joining opens after the seed commitment is published, as it should.
	joinFrom := now.Add(2 * time.Second).Truncate(time.Second)
	drawAt := joinFrom.Add(3 * time.Second)
	draw = schemas.ActivityDefined{
		ActivityID: "demo-draw-" + d.runID, Name: "Demo live-room draw", Revision: 1, Kind: schemas.KindDraw,
		JoinFrom: joinFrom, JoinUntil: drawAt, DrawAt: &drawAt, PerUserLimit: 1, Status: schemas.BatchActive,
		Prizes: []schemas.PrizeTier{
			{TierID: "gold", Name: "Phone", Kind: schemas.PrizeGoods, Stock: 3},
			{TierID: "silver", Name: "500 points", Kind: schemas.PrizePoints, Points: 500, Stock: 30},
			{TierID: "bronze", Name: "50 points", Kind: schemas.PrizePoints, Points: 50, Stock: 300},
		},
	}
	spin = schemas.ActivityDefined{
		ActivityID: "demo-spin-" + d.runID, Name: "Demo instant win", Revision: 1, Kind: schemas.KindInstantWin,
		JoinFrom: joinFrom, JoinUntil: joinFrom.Add(time.Hour), PerUserLimit: 3, Status: schemas.BatchActive,
		Prizes: []schemas.PrizeTier{
			{TierID: "big", Kind: schemas.PrizeGoods, Stock: 10, ProbabilityPPM: 20_000},
			{TierID: "small", Kind: schemas.PrizePoints, Points: 10, Stock: 500, ProbabilityPPM: 200_000},
		},
	}
	return draw, spin
}

// run publishes the activities and participations, waits for the draw to
// fire and reach the system of record, and checks and verifies it.
func (d lotteryDemo) run(ctx context.Context, brokers []string, reader sinks.LotteryReader, timeout time.Duration, out io.Writer) (*lotteryDemoReport, error) {
	start := time.Now()
	draw, spin := d.activities(start)
	rep := &lotteryDemoReport{drawID: draw.ActivityID, spinID: spin.ActivityID, instantWins: map[string]int{}, instantStock: map[string]int64{}, verifyHint: d.verifyHint}
	for _, t := range spin.Prizes {
		rep.instantStock[t.TierID] = t.Stock
	}
	p, err := producers.New(producers.Config{Brokers: brokers, AppID: "demo"})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	for _, def := range []schemas.ActivityDefined{draw, spin} {
		if err := p.Publish(ctx, "def-"+def.ActivityID, time.Now(), def); err != nil {
			return nil, fmt.Errorf("defining activity %s: %w", def.ActivityID, err)
		}
	}
	deadline := time.Now().Add(timeout)
	wait := func(what string, done func() (bool, error)) error {
		for {
			ok, err := done()
			if err != nil && !errors.Is(err, sinks.ErrNotFound) {
				return err
			}
			if ok {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%w waiting for %s", errTimeout, what)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	// Participation opens only once the seed commitment is public.
	if err := wait("the seed commitments", func() (bool, error) {
		for _, id := range []string{draw.ActivityID, spin.ActivityID} {
			if _, err := reader.Activity(ctx, id); err != nil {
				return false, err
			}
		}
		return true, nil
	}); err != nil {
		return nil, err
	}
	if err := wait("joining to open", func() (bool, error) { return !time.Now().Before(draw.JoinFrom), nil }); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "\nLottery: %s draws itself at %s; publishing %d participations (%.0f%% duplicated) and %d instant-win tries on %s...\n",
		draw.ActivityID, draw.DrawAt.Format("15:04:05"), d.users, d.dupRate*100, d.tries, spin.ActivityID)
	rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), 7))
	var (
		mu       sync.Mutex
		firstErr error
	)
	publish := func(id string, pl schemas.Payload) {
		p.PublishAsync(ctx, id, time.Now(), pl, func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
		})
		rep.published++
	}
	for i := range d.users {
		pl := schemas.ParticipationRequested{ActivityID: draw.ActivityID, UserID: fmt.Sprintf("viewer-%06d", i), Channel: "live"}
		id := fmt.Sprintf("join-%s-%d", d.runID, i)
		publish(id, pl)
		if rng.Float64() < d.dupRate {
			publish(id, pl) // the same event again: decided once
		}
	}
	for i := range d.tries {
		publish(fmt.Sprintf("spin-%s-%d", d.runID, i), schemas.ParticipationRequested{ActivityID: spin.ActivityID, UserID: fmt.Sprintf("player-%04d", rng.IntN(d.tries/3+1))})
	}
	if err := p.Flush(ctx); err != nil {
		return nil, err
	}
	mu.Lock()
	err = firstErr
	mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := wait("the draw to reach the system of record", func() (bool, error) {
		dr, err := reader.Draw(ctx, draw.ActivityID)
		if err != nil {
			return false, err
		}
		awards, err := reader.Awards(ctx, draw.ActivityID)
		if err != nil {
			return false, err
		}
		c, err := reader.EntryCounts(ctx, spin.ActivityID)
		if err != nil {
			return false, err
		}
		rep.draw = dr
		return int64(len(awards)) >= dr.Winners && c.Accepted+c.Rejected >= int64(d.tries), nil
	}); err != nil {
		return nil, err
	}
	rep.elapsed = time.Since(start)
	c, err := reader.Activity(ctx, draw.ActivityID)
	if err != nil {
		return nil, err
	}
	users, err := reader.Participants(ctx, draw.ActivityID)
	if err != nil {
		return nil, err
	}
	awards, err := reader.Awards(ctx, draw.ActivityID)
	if err != nil {
		return nil, err
	}
	if rep.verified, err = lottery.Verify(c, rep.draw, users, awards); err != nil {
		return nil, err
	}
	rep.perTier = map[string]int{}
	winners := map[string]bool{}
	for _, a := range awards {
		rep.perTier[a.TierID]++
		if winners[a.UserID] {
			rep.breaches = append(rep.breaches, "user "+a.UserID+" won twice")
		}
		winners[a.UserID] = true
	}
	for _, t := range draw.Prizes {
		if int64(rep.perTier[t.TierID]) != min(t.Stock, int64(d.users)) {
			rep.breaches = append(rep.breaches, fmt.Sprintf("tier %s awarded %d times, stock %d", t.TierID, rep.perTier[t.TierID], t.Stock))
		}
	}
	if rep.draw.Participants != int64(d.users) {
		rep.breaches = append(rep.breaches, fmt.Sprintf("draw saw %d participants, %d joined", rep.draw.Participants, d.users))
	}
	if !rep.verified.OK() {
		rep.breaches = append(rep.breaches, "the draw does not verify")
	}
	spinAwards, err := reader.Awards(ctx, spin.ActivityID)
	if err != nil {
		return nil, err
	}
	for _, a := range spinAwards {
		rep.instantWins[a.TierID]++
	}
	for tier, n := range rep.instantWins {
		if int64(n) > rep.instantStock[tier] {
			rep.breaches = append(rep.breaches, fmt.Sprintf("instant-win tier %s awarded %d times, stock %d", tier, n, rep.instantStock[tier]))
		}
	}
	sc, err := reader.EntryCounts(ctx, spin.ActivityID)
	if err != nil {
		return nil, err
	}
	rep.entries, rep.rejects = sc.Accepted, sc.Rejected
	return rep, nil
}

func (r *lotteryDemoReport) print(w io.Writer) {
	fmt.Fprintf(w, "\nLottery summary\n")
	fmt.Fprintf(w, "  draw             %s (%s at %s): %d participants, %d winners (%s)\n", r.drawID, r.draw.Trigger,
		r.draw.DrawnAt.Format("15:04:05.000"), r.draw.Participants, r.draw.Winners, tierCounts(r.perTier))
	fmt.Fprintf(w, "  seed             %s, committed as sha256 %s\n", r.draw.Seed, r.draw.SeedHash)
	for _, c := range r.verified.Checks {
		mark := "ok"
		if !c.OK {
			mark = "FAILED"
			if c.Warn {
				mark = "warning"
			}
		}
		fmt.Fprintf(w, "  verify %-9s %s: %s\n", mark, c.Name, c.Detail)
	}
	fmt.Fprintf(w, "  instant win      %s: %d tries accepted, %d rejected, wins %s (stock big %d, small %d)\n",
		r.spinID, r.entries, r.rejects, tierCounts(r.instantWins), r.instantStock["big"], r.instantStock["small"])
	fmt.Fprintf(w, "  elapsed          %s for %d participations, including the wait for the draw time\n", r.elapsed.Round(time.Millisecond), r.published)
	if r.verifyHint != "" {
		fmt.Fprintf(w, "  verify it again  %s\n", r.verifyHint)
	}
	if len(r.breaches) == 0 {
		fmt.Fprintf(w, "  invariants       OK: each winner once, awards = stock per tier, instant wins ≤ stock, the draw recomputes from the revealed seed\n")
		return
	}
	for _, b := range r.breaches {
		fmt.Fprintf(w, "  BROKEN           %s\n", b)
	}
}

func tierCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
