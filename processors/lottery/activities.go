package lottery

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Activities is the in-process cache of activity definitions, fed by a
// stream.View of the lottery admin topic. The highest revision of an
// activity wins; older or equal revisions arriving later are ignored.
type Activities struct {
	*stream.Latest[schemas.ActivityDefined]
}

// NewActivities returns an empty cache.
func NewActivities() *Activities {
	return &Activities{stream.NewLatest(
		func(a *schemas.ActivityDefined) string { return a.ActivityID },
		func(a *schemas.ActivityDefined) int64 { return a.Revision },
	)}
}

// Apply takes one admin event. It is the View's apply function.
func (a *Activities) Apply(env *schemas.Envelope) error {
	def, err := DecodeActivity(env)
	if err != nil {
		return err
	}
	a.Put(def)
	return nil
}

// DecodeActivity decodes and checks an activity definition.
func DecodeActivity(env *schemas.Envelope) (*schemas.ActivityDefined, error) {
	if env.Type != schemas.TypeLotteryActivityDefined {
		return nil, fmt.Errorf("applying %s to lottery activities: %w", env.Type, schemas.ErrInvalid)
	}
	var def schemas.ActivityDefined
	if err := env.DecodePayload(&def); err != nil {
		return nil, err
	}
	if err := CheckActivity(&def); err != nil {
		return nil, err
	}
	return &def, nil
}

// DueDraws returns the active draw activities whose draw_at is at or before
// now, sorted by draw time.
func (a *Activities) DueDraws(now time.Time) []*schemas.ActivityDefined {
	var due []*schemas.ActivityDefined
	for _, def := range a.All() {
		if def.Kind == schemas.KindDraw && def.Status == schemas.BatchActive && def.DrawAt != nil && !def.DrawAt.After(now) {
			due = append(due, def)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].DrawAt.Equal(*due[j].DrawAt) {
			return due[i].DrawAt.Before(*due[j].DrawAt)
		}
		return due[i].ActivityID < due[j].ActivityID
	})
	return due
}

// CheckActivity applies the rules of an activity definition that its
// schema cannot express. A definition that breaks one is never cached; the
// admin stage dead-letters it with reason invalid_activity.
func CheckActivity(def *schemas.ActivityDefined) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("activity %s revision %d: %s: %w", def.ActivityID, def.Revision, fmt.Sprintf(format, args...), schemas.ErrInvalid)
	}
	if !def.JoinUntil.After(def.JoinFrom) {
		return bad("join_until must be after join_from")
	}
	if def.DrawAt != nil {
		if def.Kind != schemas.KindDraw {
			return bad("draw_at is only for kind draw")
		}
		if def.DrawAt.Before(def.JoinUntil) {
			return bad("draw_at must not be before join_until")
		}
	}
	switch def.Kind {
	case schemas.KindGiftExchange:
		if len(def.Prizes) > 0 {
			return bad("a gift exchange has no prize tiers")
		}
	case schemas.KindDraw, schemas.KindInstantWin:
		if len(def.Prizes) == 0 {
			return bad("at least one prize tier is required")
		}
	}
	seen := map[string]bool{}
	var ppm int64
	for i, t := range def.Prizes {
		if seen[t.TierID] {
			return bad("prizes[%d]: tier_id %q is repeated", i, t.TierID)
		}
		seen[t.TierID] = true
		if t.Kind == schemas.PrizeCoupon && t.BatchID == "" {
			return bad("prizes[%d]: a coupon prize needs batch_id", i)
		}
		if t.Kind != schemas.PrizeCoupon && t.BatchID != "" {
			return bad("prizes[%d]: batch_id is only for coupon prizes", i)
		}
		if t.ProbabilityPPM > 0 && def.Kind != schemas.KindInstantWin {
			return bad("prizes[%d]: probability_ppm is only for instant_win", i)
		}
		ppm += t.ProbabilityPPM
	}
	if def.Kind == schemas.KindInstantWin {
		if ppm == 0 {
			return bad("instant_win needs a positive probability_ppm on some tier")
		}
		if ppm > 1_000_000 {
			return bad("probabilities add up to %d ppm, more than 1000000", ppm)
		}
	}
	return nil
}

// FormatPrizes renders tiers as "tier_id:stock" comma-separated, in hand-out
// order: how commitments and draws record the prizes drawn.
func FormatPrizes(tiers []schemas.PrizeTier) string {
	var b strings.Builder
	for i, t := range tiers {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.TierID)
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(t.Stock, 10))
	}
	return b.String()
}
