package recommend

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

var t0 = time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)

// scoringRules are the rules the scoring tables use: bands [0,10000),
// [10000,50000), [50000,∞) standing for 5000, 30000 and 75000.
const scoringRules = `
version: 1
profile: {half_life: 24h, window: 10d, price_bands: [0, 10000, 50000]}
actions: {browse: {weight: 1}, order: {weight: 10}}
scoring: {min_affinity: 0.1, min_score: 1, unscoped_affinity: 0.5, default_price: 20000, low_stock: 100, low_time: 10h, top_n: 3}
`

// def is an active v2 batch valid around t0, changed by mut.
func def(id string, mut func(*schemas.BatchDefined)) *schemas.BatchDefined {
	d := &schemas.BatchDefined{BatchID: id, Revision: 1, TotalStock: 1000, PerUserLimit: 1, Status: schemas.BatchActive,
		ValidFrom: t0.Add(-24 * time.Hour), ValidUntil: t0.Add(30 * 24 * time.Hour), DiscountType: schemas.DiscountFixed, Amount: 1000}
	if mut != nil {
		mut(d)
	}
	return d
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestDecayAndProfileAt(t *testing.T) {
	r := mustRules(t, scoringRules)
	entry := func(v float64, ago time.Duration) string {
		return fmt.Sprintf("%g|%d", v, t0.Add(-ago).UnixMilli())
	}
	p := r.ProfileAt(map[string]string{
		"c:phone": entry(8, 0),               // fresh
		"c:tv":    entry(8, 24*time.Hour),    // one half-life: 4
		"c:old":   entry(8, 11*24*time.Hour), // beyond the window: forgotten
		"b:acme":  entry(8, 72*time.Hour),    // three half-lives: 1
		"m:x1":    entry(2, -time.Hour),      // from the future: not grown
		"p:1":     entry(3, 0),
		"p:7":     entry(3, 0), // a band the rules no longer have
		"p:zz":    entry(3, 0),
		"c:bad":   "nonsense",
		"c:neg":   "-1|0",
	}, t0)
	want := map[string]float64{"phone": 8, "tv": 4}
	if len(p.Categories) != len(want) || !near(p.Categories["phone"], 8) || !near(p.Categories["tv"], 4) {
		t.Errorf("categories = %v, want %v", p.Categories, want)
	}
	if !near(p.Brands["acme"], 1) || !near(p.Models["x1"], 2) || fmt.Sprint(p.Bands) != "[0 3 0]" {
		t.Errorf("brands %v, models %v, bands %v", p.Brands, p.Models, p.Bands)
	}
}

func TestAffinity(t *testing.T) {
	r := mustRules(t, scoringRules)
	p := &Profile{
		Categories: map[string]float64{"phone": 6, "tv": 3, "food": 1},
		Brands:     map[string]float64{"acme": 3, "zeta": 1},
		Models:     map[string]float64{},
	}
	cases := []struct {
		name  string
		scope func(*schemas.BatchDefined)
		want  float64
	}{
		{"unscoped", nil, 0.5},
		{"one category", func(d *schemas.BatchDefined) { d.Categories = []string{"phone"} }, 0.6},
		{"two categories add", func(d *schemas.BatchDefined) { d.Categories = []string{"phone", "tv"} }, 0.9},
		{"unknown category", func(d *schemas.BatchDefined) { d.Categories = []string{"garden"} }, 0},
		{"category and brand multiply", func(d *schemas.BatchDefined) { d.Categories = []string{"phone"}; d.Brands = []string{"acme"} }, 0.6 * 0.75},
		{"brand only", func(d *schemas.BatchDefined) { d.Brands = []string{"zeta"} }, 0.25},
		{"a model, but the profile knows no models", func(d *schemas.BatchDefined) { d.Models = []string{"x1"} }, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := r.Affinity(p, def("B", tc.scope)); !near(got, tc.want) {
				t.Errorf("Affinity = %g, want %g", got, tc.want)
			}
		})
	}
	empty := &Profile{}
	if got := r.Affinity(empty, def("B", nil)); got != 0 {
		t.Errorf("an empty profile has affinity %g for an unscoped batch, want 0", got)
	}
}

func TestStockAndTimeFactors(t *testing.T) {
	r := mustRules(t, scoringRules) // low_stock 100, low_time 10h
	for _, tc := range []struct {
		remaining int64
		want      float64
	}{{-5, 0}, {0, 0}, {1, 0.01}, {50, 0.5}, {100, 1}, {1 << 40, 1}} {
		if got := r.StockFactor(tc.remaining); !near(got, tc.want) {
			t.Errorf("StockFactor(%d) = %g, want %g", tc.remaining, got, tc.want)
		}
	}
	for _, tc := range []struct {
		left time.Duration
		want float64
	}{{-time.Second, 0}, {0, 0}, {time.Hour, 0.1}, {5 * time.Hour, 0.5}, {10 * time.Hour, 1}, {1000 * time.Hour, 1}} {
		d := def("B", func(d *schemas.BatchDefined) { d.ValidUntil = t0.Add(tc.left) })
		if got := r.TimeFactor(d, t0); !near(got, tc.want) {
			t.Errorf("TimeFactor(%s left) = %g, want %g", tc.left, got, tc.want)
		}
	}
	off := mustRules(t, "version: 1\nactions: {order: {weight: 1}}\nscoring: {low_time: 0s}\n")
	if got := off.TimeFactor(def("B", func(d *schemas.BatchDefined) { d.ValidUntil = t0.Add(time.Minute) }), t0); got != 1 {
		t.Errorf("TimeFactor with low_time 0 = %g, want 1", got)
	}
}

func TestEligible(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*schemas.BatchDefined)
		want bool
	}{
		{"active", nil, true},
		{"disabled", func(d *schemas.BatchDefined) { d.Status = schemas.BatchDisabled }, false},
		{"not started", func(d *schemas.BatchDefined) { d.ValidFrom = t0.Add(time.Nanosecond) }, false},
		{"starts now", func(d *schemas.BatchDefined) { d.ValidFrom = t0 }, true},
		{"ends now", func(d *schemas.BatchDefined) { d.ValidUntil = t0 }, false},
		{"v1 (no discount)", func(d *schemas.BatchDefined) { d.DiscountType = ""; d.Amount = 0 }, false},
	}
	for _, tc := range cases {
		if got := Eligible(def("B", tc.mut), t0); got != tc.want {
			t.Errorf("%s: Eligible = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestExpectedDiscount(t *testing.T) {
	r := mustRules(t, scoringRules) // bands stand for 5000, 30000, 75000; default price 20000
	cheap := &Profile{Categories: map[string]float64{"x": 1}, Bands: []float64{1, 0, 0}}
	mixed := &Profile{Categories: map[string]float64{"x": 1}, Bands: []float64{1, 2, 1}}
	none := &Profile{Categories: map[string]float64{"x": 1}, Bands: []float64{0, 0, 0}}
	cases := []struct {
		name string
		mut  func(*schemas.BatchDefined)
		p    *Profile
		want float64
	}{
		{"fixed, no threshold", nil, mixed, 1000},
		{"fixed above the item price", func(d *schemas.BatchDefined) { d.Amount = 8000 }, cheap, 5000},
		{"threshold cuts cheap bands", func(d *schemas.BatchDefined) { d.Threshold = 20000 }, mixed, 0.75 * 1000},
		{"threshold above every band", func(d *schemas.BatchDefined) { d.Threshold = 100000 }, mixed, 0},
		{"percent", func(d *schemas.BatchDefined) { d.DiscountType = schemas.DiscountPercent; d.Amount = 0; d.Percent = 10 }, mixed, 0.25*500 + 0.5*3000 + 0.25*7500},
		{"percent capped", func(d *schemas.BatchDefined) {
			d.DiscountType = schemas.DiscountPercent
			d.Amount, d.Percent, d.Cap = 0, 10, 2000
		}, mixed, 0.25*500 + 0.5*2000 + 0.25*2000},
		{"price increase", func(d *schemas.BatchDefined) { d.DiscountType = schemas.DiscountPriceIncrease; d.Amount = 700 }, cheap, 700},
		{"no prices: the default price", func(d *schemas.BatchDefined) {
			d.DiscountType = schemas.DiscountPercent
			d.Amount, d.Percent = 0, 5
		}, none, 1000},
		{"no prices, default below the threshold", func(d *schemas.BatchDefined) { d.Threshold = 30000 }, none, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			offers := r.Offers([]*schemas.BatchDefined{def("B", tc.mut)}, []int64{1000}, t0)
			if len(offers) != 1 {
				t.Fatalf("%d offers", len(offers))
			}
			if got := offers[0].ExpectedDiscount(tc.p); !near(got, tc.want) {
				t.Errorf("ExpectedDiscount = %g, want %g", got, tc.want)
			}
		})
	}
}

// TestRank is the table of which batch wins for which profile.
func TestRank(t *testing.T) {
	r := mustRules(t, scoringRules)
	phoneFan := &Profile{Categories: map[string]float64{"phone": 9, "tv": 1}, Brands: map[string]float64{"acme": 9}, Bands: []float64{0, 1, 0}}
	tvFan := &Profile{Categories: map[string]float64{"phone": 1, "tv": 9}, Brands: map[string]float64{}, Bands: []float64{0, 1, 0}}
	phones := func(d *schemas.BatchDefined) { d.Categories = []string{"phone"} }
	tvs := func(d *schemas.BatchDefined) { d.Categories = []string{"tv"} }
	cases := []struct {
		name      string
		p         *Profile
		defs      []*schemas.BatchDefined
		remaining []int64
		want      string // batch:score, best first
	}{
		{"the phone fan gets the phone coupon", phoneFan,
			[]*schemas.BatchDefined{def("PHONE", phones), def("TV", tvs), def("ALL", nil)}, []int64{1000, 1000, 1000},
			"PHONE:900 ALL:500 TV:100"},
		{"the tv fan gets the tv coupon", tvFan,
			[]*schemas.BatchDefined{def("PHONE", phones), def("TV", tvs), def("ALL", nil)}, []int64{1000, 1000, 1000},
			"TV:900 ALL:500 PHONE:100"},
		{"a bigger discount can outweigh affinity", tvFan,
			[]*schemas.BatchDefined{def("PHONE", func(d *schemas.BatchDefined) { phones(d); d.Amount = 20000 }), def("TV", tvs)}, []int64{1000, 1000},
			"PHONE:2000 TV:900"},
		{"almost sold out: pushed less", phoneFan,
			[]*schemas.BatchDefined{def("PHONE", phones), def("ALL", nil)}, []int64{10, 1000},
			"ALL:500 PHONE:90"},
		{"sold out: not recommended", phoneFan,
			[]*schemas.BatchDefined{def("PHONE", phones), def("ALL", nil)}, []int64{0, 1000},
			"ALL:500"},
		{"about to end: pushed less", phoneFan,
			[]*schemas.BatchDefined{def("PHONE", func(d *schemas.BatchDefined) { phones(d); d.ValidUntil = t0.Add(2 * time.Hour) }), def("ALL", nil)}, []int64{1000, 1000},
			"ALL:500 PHONE:180"},
		{"exactly min_affinity ranks", phoneFan, // tv share 0.1 × acme share 1
			[]*schemas.BatchDefined{def("TV", func(d *schemas.BatchDefined) { tvs(d); d.Brands = []string{"acme"} })}, []int64{1000},
			"TV:100"},
		{"one per exclusion group", phoneFan,
			[]*schemas.BatchDefined{def("PHONE", func(d *schemas.BatchDefined) { phones(d); d.ExclusionGroup = "g" }), def("ALL", func(d *schemas.BatchDefined) { d.ExclusionGroup = "g" }), def("TV", tvs)}, []int64{1000, 1000, 1000},
			"PHONE:900 TV:100"},
		{"ties by batch id", phoneFan,
			[]*schemas.BatchDefined{def("B2", phones), def("B1", phones)}, []int64{1000, 1000},
			"B1:900 B2:900"},
		{"below min_score", phoneFan,
			[]*schemas.BatchDefined{def("TINY", func(d *schemas.BatchDefined) { tvs(d); d.Amount = 5 })}, []int64{1000},
			""},
		{"ineligible batches never rank", phoneFan,
			[]*schemas.BatchDefined{def("OFF", func(d *schemas.BatchDefined) { phones(d); d.Status = schemas.BatchDisabled })}, []int64{1000},
			""},
		{"an empty profile gets nothing", &Profile{}, []*schemas.BatchDefined{def("ALL", nil)}, []int64{1000}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, x := range r.Rank(tc.p, r.Offers(tc.defs, tc.remaining, t0)) {
				got = append(got, fmt.Sprintf("%s:%.0f", x.BatchID, x.Score))
			}
			if s := strings.Join(got, " "); s != tc.want {
				t.Errorf("Rank = %q, want %q", s, tc.want)
			}
		})
	}
	// Just below min_affinity, the same batch does not rank.
	strict := mustRules(t, strings.Replace(scoringRules, "min_affinity: 0.1", "min_affinity: 0.11", 1))
	tv := def("TV", func(d *schemas.BatchDefined) { tvs(d); d.Brands = []string{"acme"} })
	if got := strict.Rank(phoneFan, strict.Offers([]*schemas.BatchDefined{tv}, []int64{1000}, t0)); len(got) != 0 {
		t.Errorf("with min_affinity 0.11: %+v", got)
	}
}

func TestNewSetAndAutoGrant(t *testing.T) {
	ranked := []Ranked{{"B1", 12.3456, 0.5, 24.69}, {"B2", 2, 0.25, 8}, {"B3", 1, 0.1, 10}, {"B4", 1, 0.1, 10}}
	r := mustRules(t, scoringRules)
	s := r.NewSet("u1", "shop", "ev-9", t0.Add(1234567*time.Microsecond), ranked)
	if len(s.Items) != 3 || s.Signature() != "B1,B2,B3" || s.GrantRound != "" {
		t.Fatalf("set = %+v", s)
	}
	it := s.Items[0]
	if it.Rank != 1 || it.Score != 12346 || it.Affinity != 500000 || it.ExpectedDiscount != 25 || it.GrantEventID != "" ||
		it.RecommendationID != schemas.ResultID(ResultKind, "shop", "ev-9/1") || !s.MadeAt.Equal(t0.Add(1234*time.Millisecond)) {
		t.Errorf("item 1 = %+v, made at %v", it, s.MadeAt)
	}
	recs, err := s.Records()
	if err != nil || len(recs) != 3 {
		t.Fatalf("records: %d, %v", len(recs), err)
	}
	for i, rec := range recs {
		env, err := schemas.Decode(rec.Value)
		if err != nil {
			t.Fatalf("record %d does not decode: %v", i, err)
		}
		var m schemas.RecommendationMade
		if err := env.DecodePayload(&m); err != nil || rec.Topic != TopicRecommendations || string(rec.Key) != "u1" || m.Rank != int64(i+1) ||
			env.EventID != m.RecommendationID || env.AppID != "shop" || m.RulesRevision != r.Revision || m.TriggerEventID != "ev-9" {
			t.Errorf("record %d = %s %s %+v (%v)", i, rec.Topic, rec.Key, m, err)
		}
	}

	grant := mustRules(t, scoringRules+"auto_grant: {enabled: true, round: r7, min_score: 10}\n")
	s = grant.NewSet("u1", "shop", "ev-9", t0, ranked)
	if s.GrantRound != "r7" || s.Items[0].GrantEventID != GrantEventID("r7", "u1", "B1") || s.Items[1].GrantEventID != "" {
		t.Fatalf("granted set = %+v", s)
	}
	recs, _ = s.Records()
	last := recs[len(recs)-1]
	env, err := schemas.Decode(last.Value)
	if err != nil || last.Topic != "coupon.claims" || env.Type != schemas.TypeCouponIssueRequested || env.AppID != AppID || env.EventID != s.Items[0].GrantEventID {
		t.Fatalf("grant record %s %+v (%v)", last.Topic, env, err)
	}
	var is schemas.IssueRequested
	if err := env.DecodePayload(&is); err != nil || is != (schemas.IssueRequested{BatchID: "B1", UserID: "u1", IssueID: "recommend-r7"}) {
		t.Errorf("issue = %+v (%v)", is, err)
	}
	// Below the rule's min_score, or outside its batches, nothing is granted.
	for _, y := range []string{"auto_grant: {enabled: true, min_score: 13}\n", "auto_grant: {enabled: true, batches: [B2]}\n"} {
		if s := mustRules(t, scoringRules+y).NewSet("u1", "shop", "ev-9", t0, ranked); s.Items[0].GrantEventID != "" {
			t.Errorf("%s granted %+v", y, s.Items[0])
		}
	}
	// The grant's event id depends on the round, the user and the batch only.
	if GrantEventID("1", "u1", "B1") == GrantEventID("2", "u1", "B1") || GrantEventID("1", "u1", "B1") != GrantEventID("1", "u1", "B1") ||
		!strings.HasPrefix(GrantEventID("1", "u", "b"), "recgrant-") {
		t.Error("grant event ids are not derived from (round, user, batch)")
	}
}
