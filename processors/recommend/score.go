package recommend

import (
	"cmp"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

// Profile is a user's affinities at one instant: every entry's weight
// decayed to that instant. Bands is indexed by price band.
type Profile struct {
	Categories, Brands, Models map[string]float64
	Bands                      []float64

	// sums caches the totals of Categories, Brands, Models and Bands,
	// computed on first use (a profile is ranked against every offer).
	sums *[4]float64
}

// totals returns the total weight of each dimension.
func (p *Profile) totals() *[4]float64 {
	if p.sums == nil {
		bands := 0.0
		for _, w := range p.Bands {
			bands += w
		}
		p.sums = &[4]float64{total(p.Categories), total(p.Brands), total(p.Models), bands}
	}
	return p.sums
}

// Empty reports whether nothing counts in the profile (every counted event
// has a category).
func (p *Profile) Empty() bool { return p.totals()[0] <= 0 }

func total(m map[string]float64) float64 {
	s := 0.0
	for _, w := range m {
		s += w
	}
	return s
}

// decay returns weight v, last updated at, decayed to now with the
// half-life: v·2^(-(now-at)/halfLife). A future at does not grow it.
func decay(v float64, at, now time.Time, halfLife time.Duration) float64 {
	age := now.Sub(at)
	if age <= 0 {
		return v
	}
	return v * math.Exp2(-float64(age)/float64(halfLife))
}

// Entry is one profile entry as the store keeps it: the weight Value as of
// At (the latest event it holds).
type Entry struct {
	Value float64
	At    time.Time
}

// ParseEntry reads a stored entry, "<value>|<unix ms>".
func ParseEntry(s string) (Entry, bool) {
	v, t, ok := strings.Cut(s, "|")
	if !ok {
		return Entry{}, false
	}
	f, err := strconv.ParseFloat(v, 64)
	ms, err2 := strconv.ParseInt(t, 10, 64)
	if err != nil || err2 != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return Entry{}, false
	}
	return Entry{Value: f, At: time.UnixMilli(ms)}, true
}

// ProfileAt builds the profile of the stored entries (field → entry) at
// now: each weight decayed with the half-life; entries not updated within
// the window, unreadable ones, and bands the rules no longer have are left
// out.
func (r *Rules) ProfileAt(entries map[string]string, now time.Time) Profile {
	p := Profile{Categories: map[string]float64{}, Brands: map[string]float64{}, Models: map[string]float64{}, Bands: make([]float64, len(r.PriceBands))}
	for field, raw := range entries {
		e, ok := ParseEntry(raw)
		if !ok || now.Sub(e.At) > r.Window {
			continue
		}
		w := decay(e.Value, e.At, now, r.HalfLife)
		switch {
		case strings.HasPrefix(field, fieldCategory):
			p.Categories[field[len(fieldCategory):]] += w
		case strings.HasPrefix(field, fieldBrand):
			p.Brands[field[len(fieldBrand):]] += w
		case strings.HasPrefix(field, fieldModel):
			p.Models[field[len(fieldModel):]] += w
		case strings.HasPrefix(field, fieldBand):
			if i, err := strconv.Atoi(field[len(fieldBand):]); err == nil && i >= 0 && i < len(p.Bands) {
				p.Bands[i] += w
			}
		}
	}
	return p
}

// Affinity is how well def's scope matches the profile, in [0, 1]: for each
// of categories, brands and models that def restricts, the share of the
// profile's weight on that dimension that falls on def's values, all
// multiplied. A batch that restricts nothing gets UnscopedAffinity, and
// every batch gets 0 from an empty profile.
func (r *Rules) Affinity(p *Profile, def *schemas.BatchDefined) float64 {
	if p.Empty() {
		return 0
	}
	a, scoped := 1.0, false
	sums := p.totals()
	for i, d := range [3]struct {
		scope   []string
		weights map[string]float64
	}{{def.Categories, p.Categories}, {def.Brands, p.Brands}, {def.Models, p.Models}} {
		if len(d.scope) == 0 {
			continue
		}
		scoped = true
		all := sums[i]
		if all <= 0 {
			return 0
		}
		in := 0.0
		for _, v := range d.scope {
			in += d.weights[v]
		}
		a *= min(in/all, 1)
	}
	if !scoped {
		return r.UnscopedAffinity
	}
	return a
}

// Offer is a batch as a candidate at one instant, the same for every user:
// what a coupon gives at each price band, and the factor of its stock left
// and time left.
type Offer struct {
	Def       *schemas.BatchDefined
	Remaining int64
	// Factor is StockFactor × TimeFactor.
	Factor float64
	// give[i] is what a coupon gives on an item at band i's price (0
	// below the threshold); giveDefault at the default price.
	give        []float64
	giveDefault float64
}

// Eligible reports whether def may be recommended at now: active, its claim
// window [ValidFrom, ValidUntil) open, and with a discount type (a v1 batch
// says nothing of what it gives).
func Eligible(def *schemas.BatchDefined, now time.Time) bool {
	return def.Status == schemas.BatchActive && def.DiscountType != "" &&
		!now.Before(def.ValidFrom) && now.Before(def.ValidUntil)
}

// StockFactor is min(1, remaining/LowStock): a batch about to sell out is
// pushed to fewer users.
func (r *Rules) StockFactor(remaining int64) float64 {
	if remaining <= 0 {
		return 0
	}
	return min(1, float64(remaining)/float64(r.LowStock))
}

// TimeFactor is min(1, time left/LowTime) (1 when LowTime is 0): a batch
// about to end is pushed to fewer users.
func (r *Rules) TimeFactor(def *schemas.BatchDefined, now time.Time) float64 {
	left := def.ValidUntil.Sub(now)
	switch {
	case left <= 0:
		return 0
	case r.LowTime <= 0:
		return 1
	}
	return min(1, float64(left)/float64(r.LowTime))
}

// Offers returns the offers of the eligible batches of defs with stock
// left (remaining[i] is defs[i]'s).
func (r *Rules) Offers(defs []*schemas.BatchDefined, remaining []int64, now time.Time) []Offer {
	out := make([]Offer, 0, len(defs))
	for i, def := range defs {
		if !Eligible(def, now) {
			continue
		}
		f := r.StockFactor(remaining[i]) * r.TimeFactor(def, now)
		if f <= 0 {
			continue
		}
		o := Offer{Def: def, Remaining: remaining[i], Factor: f, give: make([]float64, len(r.PriceBands)), giveDefault: r.gives(def, r.DefaultPrice)}
		for b := range r.PriceBands {
			o.give[b] = r.gives(def, r.bandPrice(b))
		}
		out = append(out, o)
	}
	return out
}

// gives is what a coupon of def gives on an in-scope item of price: nothing
// below the threshold, else its discount or bonus (coupon.Gives).
func (r *Rules) gives(def *schemas.BatchDefined, price int64) float64 {
	if price < def.Threshold {
		return 0
	}
	d, b := coupon.Gives(def, price)
	return float64(d) + float64(b)
}

// ExpectedDiscount is what a coupon of the offer is expected to give the
// user: what it gives at each price band's price, weighed by the profile's
// share of that band (at the default price when the profile has no
// prices).
func (o *Offer) ExpectedDiscount(p *Profile) float64 {
	all := p.totals()[3]
	if all <= 0 {
		return o.giveDefault
	}
	e := 0.0
	for i, w := range p.Bands {
		if i < len(o.give) {
			e += w / all * o.give[i]
		}
	}
	return e
}

// Ranked is one batch worth recommending to a user.
type Ranked struct {
	BatchID string
	// Score is the expected value in minor units: Affinity ×
	// ExpectedDiscount × the offer's stock and time factors.
	Score            float64
	Affinity         float64
	ExpectedDiscount float64
}

// Rank returns the offers worth recommending to the profile, best first
// (score, then batch id): those with at least MinAffinity and a score of
// at least MinScore (and above 0), the best one only of each exclusion
// group, since a user can use only one of a group on an order.
func (r *Rules) Rank(p *Profile, offers []Offer) []Ranked {
	if p.Empty() {
		return nil
	}
	type ranked struct {
		Ranked
		group string
	}
	var all []ranked
	for i := range offers {
		o := &offers[i]
		a := r.Affinity(p, o.Def)
		if a <= 0 || a < r.MinAffinity {
			continue
		}
		ed := o.ExpectedDiscount(p)
		s := a * ed * o.Factor
		if s <= 0 || s < r.MinScore {
			continue
		}
		all = append(all, ranked{Ranked{BatchID: o.Def.BatchID, Score: s, Affinity: a, ExpectedDiscount: ed}, o.Def.ExclusionGroup})
	}
	slices.SortFunc(all, func(a, b ranked) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.BatchID, b.BatchID)
	})
	out := make([]Ranked, 0, len(all))
	groups := map[string]bool{}
	for _, x := range all {
		if x.group != "" {
			if groups[x.group] {
				continue
			}
			groups[x.group] = true
		}
		out = append(out, x.Ranked)
	}
	return out
}
