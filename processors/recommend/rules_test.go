package recommend

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// mustRules parses a rules file for a test.
func mustRules(t testing.TB, y string) *Rules {
	t.Helper()
	r, err := ParseRules("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("parsing rules: %v", err)
	}
	return r
}

func TestDefaultRules(t *testing.T) {
	r := DefaultRules()
	if r.HalfLife != 72*time.Hour || r.Window != 30*24*time.Hour || r.TopN != 3 || r.AutoGrant.Enabled {
		t.Errorf("default rules = %+v", r)
	}
	if len(r.Actions) != 4 || r.Actions[schemas.ActionOrder].Weight != 10 || !r.Actions[schemas.ActionOrder].PerQuantity {
		t.Errorf("default actions = %+v", r.Actions)
	}
	if len(r.Filters) != 2 || !r.Filters[0].Ignore {
		t.Errorf("default filters = %+v", r.Filters)
	}
	if !strings.HasPrefix(r.Revision, "r-") || len(r.Revision) != 14 {
		t.Errorf("revision %q, want r- and 12 hex digits", r.Revision)
	}
}

// TestParseRulesDefaults: a minimal file takes every documented default.
func TestParseRulesDefaults(t *testing.T) {
	r := mustRules(t, "version: 1\nactions:\n  order: {weight: 2}\n")
	want := Rules{
		HalfLife: defaultHalfLife, Window: defaultWindow, MaxEntries: 200, MaxEvents: 10000, TopN: 3,
		MinAffinity: 0.05, MinScore: 1, UnscopedAffinity: 0.5, DefaultPrice: 10000, LowStock: 100, LowTime: 24 * time.Hour,
	}
	got := *r
	if got.HalfLife != want.HalfLife || got.Window != want.Window || got.MaxEntries != want.MaxEntries || got.MaxEvents != want.MaxEvents ||
		got.TopN != want.TopN || got.MinAffinity != want.MinAffinity || got.MinScore != want.MinScore || got.UnscopedAffinity != want.UnscopedAffinity ||
		got.DefaultPrice != want.DefaultPrice || got.LowStock != want.LowStock || got.LowTime != want.LowTime || got.MinInterval != 0 {
		t.Errorf("defaults = %+v", got)
	}
	if len(r.PriceBands) != len(defaultBands) || r.AutoGrant.Round != "1" || r.AutoGrant.Enabled {
		t.Errorf("bands %v, auto grant %+v", r.PriceBands, r.AutoGrant)
	}
	// An explicit 0 is not the default.
	r = mustRules(t, "version: 1\nactions: {browse: {weight: 1}}\nscoring: {unscoped_affinity: 0, min_affinity: 0, min_score: 0, low_time: 0s}\n")
	if r.UnscopedAffinity != 0 || r.MinAffinity != 0 || r.MinScore != 0 || r.LowTime != 0 {
		t.Errorf("explicit zeros became %+v", r)
	}
}

// TestParseRulesErrors: every mistake is reported with its line and field,
// all of them at once.
func TestParseRulesErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"the file is empty"}},
		{"not yaml", "version: [1\n", []string{"test.yaml"}},
		{"unknown field", "version: 1\nactions: {order: {weight: 1}}\nscoring:\n  topn: 3\n", []string{"test.yaml:4: field topn not found"}},
		{"wrong type", "version: 1\nactions: {order: {weight: heavy}}\n", []string{"test.yaml:2:", "cannot unmarshal !!str `heavy`"}},
		{"no version", "actions: {order: {weight: 1}}\n", []string{"version: required"}},
		{"future version", "version: 2\nactions: {order: {weight: 1}}\n", []string{"test.yaml:1: version: unsupported version 2"}},
		{"no actions", "version: 1\n", []string{"actions: required"}},
		{"unknown action", "version: 1\nactions:\n  like: {weight: 1}\n", []string{"test.yaml:3: actions.like: unknown action \"like\""}},
		{"zero weight", "version: 1\nactions:\n  browse:\n    weight: 0\n", []string{"test.yaml:4: actions.browse.weight: must be greater than 0"}},
		{"missing weight", "version: 1\nactions:\n  browse: {per_quantity: false}\n", []string{"actions.browse.weight: required"}},
		{"per_quantity on review", "version: 1\nactions:\n  review: {weight: 1, per_quantity: true}\n", []string{"actions.review.per_quantity: only cart and order"}},
		{"min_rating on order", "version: 1\nactions:\n  order: {weight: 1, min_rating: 3}\n", []string{"actions.order.min_rating: is for review only"}},
		{"bad duration", "version: 1\nactions: {order: {weight: 1}}\nprofile:\n  half_life: 3 days\n", []string{"test.yaml:4: profile.half_life: \"3 days\" is not a duration"}},
		{"half life over window", "version: 1\nactions: {order: {weight: 1}}\nprofile: {half_life: 40d, window: 30d}\n", []string{"profile.half_life: 960h0m0s is longer than profile.window"}},
		{"bands", "version: 1\nactions: {order: {weight: 1}}\nprofile:\n  price_bands: [100, 50]\n", []string{"profile.price_bands[0]: the first band must start at 0"}},
		{"bands decrease", "version: 1\nactions: {order: {weight: 1}}\nprofile:\n  price_bands: [0, 50, 50]\n", []string{"profile.price_bands[2]: bounds must increase"}},
		{"filter without effect", "version: 1\nactions: {order: {weight: 1}}\nfilters:\n  - name: x\n    match: {brands: [acme]}\n", []string{"test.yaml:4: filters[0]: required: ignore: true"}},
		{"filter both effects", "version: 1\nactions: {order: {weight: 1}}\nfilters:\n  - {match: {brands: [acme]}, ignore: true, multiply: 2}\n", []string{"filters[0]: give ignore: true or multiply, not both"}},
		{"filter matching everything", "version: 1\nactions: {order: {weight: 1}}\nfilters:\n  - {match: {}, multiply: 2}\n", []string{"filters[0].match: required: at least one condition"}},
		{"negative multiply", "version: 1\nactions: {order: {weight: 1}}\nfilters:\n  - match: {brands: [acme]}\n  - match: {brands: [b]}\n    multiply: -2\n", []string{"test.yaml:4: filters[0]: required", "test.yaml:6: filters[1].multiply: must be greater than 0"}},
		{"filter bad values", "version: 1\nactions: {order: {weight: 1}}\nfilters:\n  - match:\n      actions: [order, buy]\n      categories: [phone, phone]\n      apps: [Shop]\n    ignore: true\n",
			[]string{"test.yaml:5: filters[0].match.actions[1]: unknown action \"buy\"", "filters[0].match.categories[1]: \"phone\" is listed twice", "filters[0].match.apps[0]: \"Shop\" is not a valid app id"}},
		{"filter prices", "version: 1\nactions: {order: {weight: 1}}\nfilters:\n  - {match: {min_price: 500, max_price: 100}, ignore: true}\n", []string{"filters[0].match: min_price 500 and max_price 100"}},
		{"filter ratings", "version: 1\nactions: {order: {weight: 1}}\nfilters:\n  - {match: {min_rating: 9}, ignore: true}\n", []string{"filters[0].match.min_rating: must be 1 to 5"}},
		{"scoring ranges", "version: 1\nactions: {order: {weight: 1}}\nscoring:\n  top_n: 0\n  min_affinity: 1.5\n  low_stock: 0\n  min_interval: -1s\n",
			[]string{"test.yaml:4: scoring.top_n: must be between 1 and 20", "test.yaml:5: scoring.min_affinity: must be between 0 and 1", "test.yaml:6: scoring.low_stock", "test.yaml:7: scoring.min_interval: must be positive"}},
		{"auto grant", "version: 1\nactions: {order: {weight: 1}}\nauto_grant:\n  enabled: true\n  round: \"two words\"\n  batches: [\"B 1\"]\n",
			[]string{"test.yaml:5: auto_grant.round: \"two words\" is not a valid round", "test.yaml:6: auto_grant.batches[0]: \"B 1\" is not a valid batch id"}},
		{"two documents", "version: 1\nactions: {order: {weight: 1}}\n---\nversion: 1\n", []string{"test.yaml:3: more than one YAML document"}},
		{"too large", "version: 1\n#" + strings.Repeat("x", MaxRulesBytes), []string{"more than 1048576"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules("test.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalidRules) {
				t.Errorf("error %v does not wrap ErrInvalidRules", err)
			}
			var re *RulesError
			if !errors.As(err, &re) || len(re.Problems) == 0 {
				t.Errorf("error %T is not a *RulesError with problems", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "recommend.") || strings.Contains(err.Error(), "File") {
				t.Errorf("error names Go types:\n%v", err)
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "72h": 72 * time.Hour, "1h30m": 90 * time.Minute, "0d": 0} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1.5d", "-1d", "3 days", "99999999d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

func TestRevisionFollowsContent(t *testing.T) {
	a := mustRules(t, "version: 1\nactions: {order: {weight: 1}}\n")
	b := mustRules(t, "version: 1\nactions: {order: {weight: 1}}\n")
	c := mustRules(t, "version: 1\nactions: {order: {weight: 2}}\n")
	if a.Revision != b.Revision || a.Revision == c.Revision {
		t.Errorf("revisions %s %s %s: same bytes must give the same revision, other bytes another", a.Revision, b.Revision, c.Revision)
	}
}

// TestWeigh is the table of what an event counts for under one rules file.
func TestWeigh(t *testing.T) {
	r := mustRules(t, `
version: 1
profile: {window: 10d}
actions:
  browse: {weight: 1}
  cart: {weight: 3}
  order: {weight: 10, per_quantity: true}
  review: {weight: 4, min_rating: 4}
filters:
  - name: gift cards
    match: {categories: [gift-card]}
    ignore: true
  - name: phones from the app count double
    match: {categories: [phone], apps: [app]}
    multiply: 2
  - name: acme orders triple
    match: {actions: [order], brands: [acme]}
    multiply: 3
  - name: cheap browsing
    match: {actions: [browse], max_price: 500}
    ignore: true
  - name: expensive items count half
    match: {min_price: 100000}
    multiply: 0.5
  - name: one-star reviews of anything
    match: {max_rating: 1}
    ignore: true
`)
	now := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	ev := func(action, cat, brand string, price, qty, rating int64) schemas.BehaviourRecorded {
		return schemas.BehaviourRecorded{UserID: "u", Action: action, Category: cat, Brand: brand, Price: price, Quantity: qty, Rating: rating}
	}
	cases := []struct {
		name   string
		app    string
		ago    time.Duration
		ev     schemas.BehaviourRecorded
		weight float64
		skip   string
	}{
		{"browse", "web", time.Hour, ev("browse", "tv", "", 0, 0, 0), 1, ""},
		{"cart ignores quantity without per_quantity", "web", 0, ev("cart", "tv", "", 1000, 5, 0), 3, ""},
		{"order per quantity", "web", 0, ev("order", "tv", "", 1000, 4, 0), 40, ""},
		{"order quantity capped at 100", "web", 0, ev("order", "tv", "", 1000, 5000, 0), 1000, ""},
		{"review at the min rating", "web", 0, ev("review", "tv", "", 0, 0, 4), 4, ""},
		{"review below the min rating", "web", 0, ev("review", "tv", "", 0, 0, 3), 0, SkipRating},
		{"review without a rating", "web", 0, ev("review", "tv", "", 0, 0, 0), 0, SkipRating},
		{"one-star review filtered", "web", 0, ev("browse", "tv", "", 0, 0, 1), 0, SkipFilter},
		{"gift card ignored", "web", 0, ev("order", "gift-card", "acme", 1000, 1, 0), 0, SkipFilter},
		{"phone from the app doubles", "app", 0, ev("cart", "phone", "", 1000, 1, 0), 6, ""},
		{"phone from the web does not", "web", 0, ev("cart", "phone", "", 1000, 1, 0), 3, ""},
		{"filters compound", "app", 0, ev("order", "phone", "acme", 1000, 2, 0), 10 * 2 * 2 * 3, ""},
		{"cheap browse ignored", "web", 0, ev("browse", "tv", "", 300, 0, 0), 0, SkipFilter},
		{"browse without a price is not cheap", "web", 0, ev("browse", "tv", "", 0, 0, 0), 1, ""},
		{"expensive counts half", "web", 0, ev("cart", "tv", "", 100000, 1, 0), 1.5, ""},
		{"at the window's edge", "web", 10 * 24 * time.Hour, ev("browse", "tv", "", 0, 0, 0), 1, ""},
		{"older than the window", "web", 10*24*time.Hour + time.Millisecond, ev("browse", "tv", "", 0, 0, 0), 0, SkipOld},
		{"from the future (clock skew)", "web", -time.Minute, ev("browse", "tv", "", 0, 0, 0), 1, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w, skip := r.Weigh(tc.app, now.Add(-tc.ago), &tc.ev, now)
			if w != tc.weight || skip != tc.skip {
				t.Errorf("Weigh = %g, %q; want %g, %q", w, skip, tc.weight, tc.skip)
			}
		})
	}
	// An action left out of the rules does not count.
	r2 := mustRules(t, "version: 1\nactions: {order: {weight: 1}}\n")
	e := ev("browse", "tv", "", 0, 0, 0)
	if w, skip := r2.Weigh("web", now, &e, now); w != 0 || skip != SkipAction {
		t.Errorf("browse without a browse action = %g, %q", w, skip)
	}
}

func TestFieldsAndBands(t *testing.T) {
	r := mustRules(t, "version: 1\nactions: {order: {weight: 1}}\nprofile: {price_bands: [0, 1000, 5000]}\nscoring: {default_price: 700}\n")
	cases := []struct {
		ev   schemas.BehaviourRecorded
		want string
	}{
		{schemas.BehaviourRecorded{Category: "tv"}, "c:tv"},
		{schemas.BehaviourRecorded{Category: "tv", Brand: "acme", Model: "x1", Price: 999}, "c:tv b:acme m:x1 p:0"},
		{schemas.BehaviourRecorded{Category: "tv", Price: 1000}, "c:tv p:1"},
		{schemas.BehaviourRecorded{Category: "tv", Model: "x", Price: 4999}, "c:tv m:x p:1"},
		{schemas.BehaviourRecorded{Category: "tv", Price: 1 << 40}, "c:tv p:2"},
	}
	for _, tc := range cases {
		if got := strings.Join(r.Fields(&tc.ev), " "); got != tc.want {
			t.Errorf("Fields(%+v) = %q, want %q", tc.ev, got, tc.want)
		}
	}
	for band, want := range []int64{500, 3000, 7500} {
		if got := r.bandPrice(band); got != want {
			t.Errorf("bandPrice(%d) = %d, want %d", band, got, want)
		}
	}
	one := mustRules(t, "version: 1\nactions: {order: {weight: 1}}\nprofile: {price_bands: [0]}\nscoring: {default_price: 700}\n")
	if got := one.bandPrice(0); got != 700 {
		t.Errorf("the only band, from 0, stands for %d, want the default price 700", got)
	}
}
