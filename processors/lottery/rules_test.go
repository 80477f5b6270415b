package lottery

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

var t0 = time.Date(2026, 12, 24, 18, 0, 0, 0, time.UTC)

func activity(mod func(*schemas.ActivityDefined)) *schemas.ActivityDefined {
	drawAt := t0.Add(2 * time.Hour)
	a := &schemas.ActivityDefined{
		ActivityID: "xmas", Revision: 1, Kind: schemas.KindDraw, JoinFrom: t0, JoinUntil: t0.Add(2 * time.Hour), DrawAt: &drawAt,
		PerUserLimit: 1, Status: schemas.BatchActive,
		Prizes: []schemas.PrizeTier{{TierID: "gold", Kind: schemas.PrizeGoods, Stock: 1}, {TierID: "cpn", Kind: schemas.PrizeCoupon, BatchID: "B1", Stock: 10}},
	}
	if mod != nil {
		mod(a)
	}
	return a
}

func TestPrecheck(t *testing.T) {
	gift := activity(func(a *schemas.ActivityDefined) { a.Kind, a.Prizes, a.DrawAt = schemas.KindGiftExchange, nil, nil })
	cases := []struct {
		name       string
		def        *schemas.ActivityDefined
		at         time.Time
		entry, snd string
	}{
		{"unknown activity", nil, t0, schemas.RejectUnknownActivity, schemas.RejectUnknownActivity},
		{"disabled", activity(func(a *schemas.ActivityDefined) { a.Status = schemas.BatchDisabled }), t0, schemas.RejectActivityDisabled, schemas.RejectActivityDisabled},
		{"a millisecond before the window", activity(nil), t0.Add(-time.Millisecond), schemas.RejectNotStarted, schemas.RejectNotStarted},
		{"exactly at join_from", activity(nil), t0, "", schemas.RejectWrongKind},
		{"a nanosecond before join_until", activity(nil), t0.Add(2*time.Hour - 1), "", schemas.RejectWrongKind},
		{"exactly at join_until", activity(nil), t0.Add(2 * time.Hour), schemas.RejectEnded, schemas.RejectEnded},
		{"gift exchange inside the window", gift, t0.Add(time.Minute), schemas.RejectWrongKind, ""},
		{"gift exchange ended", gift, t0.Add(3 * time.Hour), schemas.RejectEnded, schemas.RejectEnded},
	}
	for _, c := range cases {
		if got := PrecheckEntry(c.def, c.at); got != c.entry {
			t.Errorf("%s: PrecheckEntry = %q, want %q", c.name, got, c.entry)
		}
		if got := PrecheckSend(c.def, c.at); got != c.snd {
			t.Errorf("%s: PrecheckSend = %q, want %q", c.name, got, c.snd)
		}
	}
}

func TestDecideEntry(t *testing.T) {
	draw := activity(func(a *schemas.ActivityDefined) { a.PerUserLimit = 2 })
	instant := activity(func(a *schemas.ActivityDefined) { a.Kind, a.DrawAt, a.PerUserLimit = schemas.KindInstantWin, nil, 3 })
	cases := []struct {
		name string
		def  *schemas.ActivityDefined
		s    EntryState
		want string
	}{
		{"first join", draw, EntryState{}, ""},
		{"below the limit", draw, EntryState{Joined: 1}, ""},
		{"at the limit", draw, EntryState{Joined: 2}, schemas.RejectLimitReached},
		{"closed wins over the limit", draw, EntryState{Closed: true, Joined: 5}, schemas.RejectDrawClosed},
		{"a draw ignores won", draw, EntryState{Won: true}, ""},
		{"instant: already won", instant, EntryState{Joined: 1, Won: true}, schemas.RejectAlreadyWon},
		{"instant: the limit before already won", instant, EntryState{Joined: 3, Won: true}, schemas.RejectLimitReached},
	}
	for _, c := range cases {
		if got := DecideEntry(c.def, c.s); got != c.want {
			t.Errorf("%s: DecideEntry = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestCheckActivity(t *testing.T) {
	cases := []struct {
		name string
		mod  func(*schemas.ActivityDefined)
		want string // "" = valid
	}{
		{"valid draw", nil, ""},
		{"manual draw without draw_at", func(a *schemas.ActivityDefined) { a.DrawAt = nil }, ""},
		{"window backwards", func(a *schemas.ActivityDefined) { a.JoinUntil = a.JoinFrom }, "join_until must be after join_from"},
		{"draw before the window ends", func(a *schemas.ActivityDefined) { d := a.JoinUntil.Add(-time.Second); a.DrawAt = &d }, "draw_at must not be before join_until"},
		{"draw_at on instant-win", func(a *schemas.ActivityDefined) { a.Kind = schemas.KindInstantWin; a.Prizes[0].ProbabilityPPM = 1 }, "draw_at is only for kind draw"},
		{"no prizes", func(a *schemas.ActivityDefined) { a.Prizes = nil }, "at least one prize tier"},
		{"repeated tier", func(a *schemas.ActivityDefined) { a.Prizes[1].TierID = "gold"; a.Prizes[1].BatchID = "B" }, `tier_id "gold" is repeated`},
		{"coupon without batch", func(a *schemas.ActivityDefined) { a.Prizes[1].BatchID = "" }, "needs batch_id"},
		{"batch on goods", func(a *schemas.ActivityDefined) { a.Prizes[0].BatchID = "B" }, "only for coupon prizes"},
		{"odds on a draw", func(a *schemas.ActivityDefined) { a.Prizes[0].ProbabilityPPM = 5 }, "only for instant_win"},
		{"instant-win without odds", func(a *schemas.ActivityDefined) { a.Kind, a.DrawAt = schemas.KindInstantWin, nil }, "positive probability_ppm"},
		{"instant-win odds over one", func(a *schemas.ActivityDefined) {
			a.Kind, a.DrawAt = schemas.KindInstantWin, nil
			a.Prizes[0].ProbabilityPPM, a.Prizes[1].ProbabilityPPM = 600_000, 400_001
		}, "more than 1000000"},
		{"instant-win odds exactly one", func(a *schemas.ActivityDefined) {
			a.Kind, a.DrawAt = schemas.KindInstantWin, nil
			a.Prizes[0].ProbabilityPPM, a.Prizes[1].ProbabilityPPM = 600_000, 400_000
		}, ""},
		{"gift exchange with prizes", func(a *schemas.ActivityDefined) { a.Kind, a.DrawAt = schemas.KindGiftExchange, nil }, "no prize tiers"},
		{"gift exchange", func(a *schemas.ActivityDefined) { a.Kind, a.DrawAt, a.Prizes = schemas.KindGiftExchange, nil, nil }, ""},
	}
	for _, c := range cases {
		err := CheckActivity(activity(c.mod))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: err = %v, want %q", c.name, err, c.want)
		}
	}
}

func TestActivitiesKeepTheHighestRevisionAndListDueDraws(t *testing.T) {
	acts := NewActivities()
	a2 := activity(func(a *schemas.ActivityDefined) { a.Revision = 2 })
	if !acts.Put(a2) || acts.Put(activity(nil)) {
		t.Fatal("a lower revision replaced a higher one")
	}
	manual := activity(func(a *schemas.ActivityDefined) { a.ActivityID, a.DrawAt = "manual", nil })
	off := activity(func(a *schemas.ActivityDefined) { a.ActivityID, a.Status = "off", schemas.BatchDisabled })
	acts.Put(manual)
	acts.Put(off)
	if due := acts.DueDraws(a2.DrawAt.Add(-time.Millisecond)); len(due) != 0 {
		t.Fatalf("due before draw_at: %v", due)
	}
	due := acts.DueDraws(*a2.DrawAt)
	if len(due) != 1 || due[0].ActivityID != "xmas" || due[0].Revision != 2 {
		t.Fatalf("due at draw_at = %v, want xmas revision 2 only (not the manual or the disabled one)", due)
	}
}

// TestIntegrationEntryScriptMatchesDecideEntry runs entry.lua on random
// sequences of participations and checks every decision against
// DecideEntry applied to a model of the state.
func TestIntegrationEntryScriptMatchesDecideEntry(t *testing.T) {
	s, _ := giftStore(t)
	ctx := testenv.Context(t, time.Minute)
	rng := rand.New(rand.NewPCG(3, 4))
	for round := range 40 {
		def := activity(func(a *schemas.ActivityDefined) {
			a.ActivityID = fmt.Sprintf("model-%d", round)
			a.PerUserLimit = int64(1 + rng.IntN(3))
			if round%2 == 1 {
				a.Kind, a.DrawAt = schemas.KindInstantWin, nil
				a.Prizes[0].ProbabilityPPM, a.Prizes[1].ProbabilityPPM = 300_000, 300_000
			}
		})
		joined := map[string]int64{}
		won := map[string]bool{}
		left := map[string]int64{"gold": 1, "cpn": 10}
		closed := false
		for step := range 6 {
			if def.Kind == schemas.KindDraw && step == 4 {
				if _, err := s.drawOp(ctx, def, "t/0", 0, "close", nil); err != nil {
					t.Fatal(err)
				}
				closed = true
			}
			var in []EntryInput
			for i := range 1 + rng.IntN(30) {
				roll := int64(-1)
				if def.Kind == schemas.KindInstantWin {
					roll = rng.Int64N(1_000_000)
				}
				in = append(in, EntryInput{AppID: "a", EventID: fmt.Sprintf("%d-%d", step, i), UserID: fmt.Sprintf("u%d", rng.IntN(8)), Roll: roll})
			}
			outs, err := s.Enter(ctx, def, "t/0", 0, t0, in)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range outs {
				u := in[i].UserID
				want := DecideEntry(def, EntryState{Closed: closed, Joined: joined[u], Won: won[u]})
				if o.Reason != want || o.Accepted != (want == "") {
					t.Fatalf("round %d step %d: %s got %+v, DecideEntry says %q", round, step, u, o, want)
				}
				if !o.Accepted {
					continue
				}
				joined[u]++
				if o.Tier != "" {
					if won[u] || left[o.Tier] <= 0 {
						t.Fatalf("round %d: %s won %s (won before %v, left %d)", round, u, o.Tier, won[u], left[o.Tier])
					}
					won[u] = true
					left[o.Tier]--
				}
			}
		}
	}
}

func TestActivitiesAll(t *testing.T) {
	a := NewActivities()
	for _, id := range []string{"b", "a", "c"} {
		a.Put(&schemas.ActivityDefined{ActivityID: id, Revision: 1})
	}
	a.Put(&schemas.ActivityDefined{ActivityID: "b", Revision: 3})
	var got []string
	for _, def := range a.All() {
		got = append(got, fmt.Sprintf("%s/%d", def.ActivityID, def.Revision))
	}
	if strings.Join(got, " ") != "a/1 b/3 c/1" {
		t.Errorf("All() = %v", got)
	}
}
