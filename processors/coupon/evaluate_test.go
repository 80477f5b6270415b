package coupon

import (
	"fmt"
	"math"
	"math/big"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

var (
	evalNow   = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)
	heldFrom  = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	heldUntil = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
)

// held is an available coupon of batch B1 valid [heldFrom, heldUntil).
func held(id string, mut ...func(*Held)) Held {
	h := Held{CouponID: id, BatchID: "B1", State: schemas.CouponAvailable, ValidFrom: heldFrom, ExpiresAt: heldUntil}
	for _, m := range mut {
		m(&h)
	}
	return h
}

func cart(items ...Item) Cart { return Cart{Items: items} }

func phone(amount int64) Item {
	return Item{SKU: "p", Category: "phones", Brand: "acme", Model: "x1", Amount: amount}
}

func fixed(amount, threshold int64, mut ...func(*schemas.BatchDefined)) *schemas.BatchDefined {
	return batch(func(b *schemas.BatchDefined) {
		b.DiscountType, b.Amount, b.Threshold = schemas.DiscountFixed, amount, threshold
		for _, m := range mut {
			m(b)
		}
	})
}

func pct(p, cap, threshold int64) *schemas.BatchDefined {
	return batch(func(b *schemas.BatchDefined) {
		b.DiscountType, b.Percent, b.Cap, b.Threshold = schemas.DiscountPercent, p, cap, threshold
	})
}

func TestEvaluate(t *testing.T) {
	scope := func(cats, brands, models []string) *schemas.BatchDefined {
		return fixed(100, 0, func(b *schemas.BatchDefined) { b.Categories, b.Brands, b.Models = cats, brands, models })
	}
	mixed := cart(
		Item{SKU: "1", Category: "phones", Brand: "acme", Model: "x1", Amount: 1000},
		Item{SKU: "2", Category: "phones", Brand: "other", Model: "o9", Amount: 200},
		Item{SKU: "3", Category: "tablets", Brand: "acme", Model: "t5", Amount: 30},
		Item{SKU: "4", Category: "cases", Brand: "other", Model: "x1", Amount: 4},
	)
	list := func(s ...string) []string { return s }
	type want struct {
		usable          bool
		reason          string
		kind            string
		discount, bonus int64
		scope           int64
	}
	cases := []struct {
		name string
		def  *schemas.BatchDefined
		c    Held
		cart Cart
		now  time.Time
		want want
	}{
		{"unknown batch", nil, held("c"), cart(phone(1000)), evalNow, want{reason: "unknown_batch"}},
		{"disabled batch", fixed(100, 0, func(b *schemas.BatchDefined) { b.Status = schemas.BatchDisabled }), held("c"), cart(phone(1000)), evalNow,
			want{reason: "batch_disabled", kind: "fixed", scope: 1000}},
		{"disabled wins over locked", fixed(100, 0, func(b *schemas.BatchDefined) { b.Status = schemas.BatchDisabled }), held("c", func(h *Held) { h.State = schemas.CouponLocked }), cart(phone(1000)), evalNow,
			want{reason: "batch_disabled", kind: "fixed", scope: 1000}},
		{"locked", fixed(100, 0), held("c", func(h *Held) { h.State = schemas.CouponLocked }), cart(phone(1000)), evalNow, want{reason: "locked", kind: "fixed", scope: 1000}},
		{"used", fixed(100, 0), held("c", func(h *Held) { h.State = schemas.CouponUsed }), cart(phone(1000)), evalNow, want{reason: "used", kind: "fixed", scope: 1000}},
		{"expired state inside the window", fixed(100, 0), held("c", func(h *Held) { h.State = schemas.CouponExpired }), cart(phone(1000)), evalNow, want{reason: "expired", kind: "fixed", scope: 1000}},
		{"unknown state", fixed(100, 0), held("c", func(h *Held) { h.State = "" }), cart(phone(1000)), evalNow, want{reason: "unknown_state", kind: "fixed", scope: 1000}},

		{"1ns before valid_from", fixed(100, 0), held("c"), cart(phone(1000)), heldFrom.Add(-1), want{reason: "not_yet_valid", kind: "fixed", scope: 1000}},
		{"exactly at valid_from", fixed(100, 0), held("c"), cart(phone(1000)), heldFrom, want{usable: true, kind: "fixed", discount: 100, scope: 1000}},
		{"1ns before expiry", fixed(100, 0), held("c"), cart(phone(1000)), heldUntil.Add(-1), want{usable: true, kind: "fixed", discount: 100, scope: 1000}},
		{"exactly at expiry", fixed(100, 0), held("c"), cart(phone(1000)), heldUntil, want{reason: "expired", kind: "fixed", scope: 1000}},
		{"after expiry", fixed(100, 0), held("c"), cart(phone(1000)), heldUntil.Add(time.Hour), want{reason: "expired", kind: "fixed", scope: 1000}},
		{"the coupon's window, not the batch's", fixed(100, 0), held("c", func(h *Held) { h.ExpiresAt = evalNow }), cart(phone(1000)), evalNow, want{reason: "expired", kind: "fixed", scope: 1000}},

		{"exactly at the threshold", fixed(500, 10000), held("c"), cart(phone(6000), phone(4000)), evalNow, want{usable: true, kind: "fixed", discount: 500, scope: 10000}},
		{"one below the threshold", fixed(500, 10000), held("c"), cart(phone(6000), phone(3999)), evalNow, want{reason: "below_threshold", kind: "fixed", scope: 9999}},
		{"threshold counts in-scope items only", fixed(500, 10000, func(b *schemas.BatchDefined) { b.Categories = list("phones") }), held("c"),
			cart(phone(9999), Item{Category: "tablets", Amount: 50000}), evalNow, want{reason: "below_threshold", kind: "fixed", scope: 9999}},
		{"threshold 0 with a free in-scope item", fixed(500, 0), held("c"), cart(phone(0)), evalNow, want{usable: true, kind: "fixed", discount: 0, scope: 0}},

		{"fixed below scope amount", fixed(500, 0), held("c"), cart(phone(501)), evalNow, want{usable: true, kind: "fixed", discount: 500, scope: 501}},
		{"fixed equal to scope amount", fixed(500, 0), held("c"), cart(phone(500)), evalNow, want{usable: true, kind: "fixed", discount: 500, scope: 500}},
		{"fixed larger than scope amount", fixed(500, 0), held("c"), cart(phone(300)), evalNow, want{usable: true, kind: "fixed", discount: 300, scope: 300}},
		{"negative line counts as 0", fixed(500, 0), held("c"), cart(phone(300), phone(-1000)), evalNow, want{usable: true, kind: "fixed", discount: 300, scope: 300}},

		{"percent rounds down", pct(10, 0, 0), held("c"), cart(phone(12349)), evalNow, want{usable: true, kind: "percent", discount: 1234, scope: 12349}},
		{"percent cap not reached", pct(10, 2000, 0), held("c"), cart(phone(19999)), evalNow, want{usable: true, kind: "percent", discount: 1999, scope: 19999}},
		{"percent exactly at the cap", pct(10, 2000, 0), held("c"), cart(phone(20000)), evalNow, want{usable: true, kind: "percent", discount: 2000, scope: 20000}},
		{"percent cap reached", pct(10, 2000, 0), held("c"), cart(phone(30000)), evalNow, want{usable: true, kind: "percent", discount: 2000, scope: 30000}},
		{"percent without cap", pct(10, 0, 0), held("c"), cart(phone(30000)), evalNow, want{usable: true, kind: "percent", discount: 3000, scope: 30000}},
		{"percent 100", pct(100, 0, 0), held("c"), cart(phone(777)), evalNow, want{usable: true, kind: "percent", discount: 777, scope: 777}},
		{"percent 1 of 99 is 0", pct(1, 0, 0), held("c"), cart(phone(99)), evalNow, want{usable: true, kind: "percent", discount: 0, scope: 99}},
		{"percent of 1e11 lines", pct(37, 0, 0), held("c"), cart(phone(1e11), phone(1e11)), evalNow, want{usable: true, kind: "percent", discount: 74e9, scope: 2e11}},
		{"percent of a saturated sum", pct(50, 0, 0), held("c"), cart(phone(math.MaxInt64), phone(math.MaxInt64)), evalNow,
			want{usable: true, kind: "percent", discount: math.MaxInt64 / 2, scope: math.MaxInt64}},
		{"percent below threshold", pct(10, 0, 5000), held("c"), cart(phone(4999)), evalNow, want{reason: "below_threshold", kind: "percent", scope: 4999}},

		{"price_increase", batch(func(b *schemas.BatchDefined) { b.DiscountType, b.Amount = schemas.DiscountPriceIncrease, 3000 }), held("c"), cart(phone(100)), evalNow,
			want{usable: true, kind: "price_increase", bonus: 3000, scope: 100}},
		{"price_increase below threshold", batch(func(b *schemas.BatchDefined) {
			b.DiscountType, b.Amount, b.Threshold = schemas.DiscountPriceIncrease, 3000, 101
		}), held("c"), cart(phone(100)), evalNow,
			want{reason: "below_threshold", kind: "price_increase", scope: 100}},

		{"any scope", scope(nil, nil, nil), held("c"), mixed, evalNow, want{usable: true, kind: "fixed", discount: 100, scope: 1234}},
		{"category", scope(list("phones"), nil, nil), held("c"), mixed, evalNow, want{usable: true, kind: "fixed", discount: 100, scope: 1200}},
		{"two categories", scope(list("phones", "tablets"), nil, nil), held("c"), mixed, evalNow, want{usable: true, kind: "fixed", discount: 100, scope: 1230}},
		{"brand", scope(nil, list("acme"), nil), held("c"), mixed, evalNow, want{usable: true, kind: "fixed", discount: 100, scope: 1030}},
		{"model", scope(nil, nil, list("x1")), held("c"), mixed, evalNow, want{usable: true, kind: "fixed", discount: 100, scope: 1004}},
		{"category and brand", scope(list("phones"), list("acme"), nil), held("c"), mixed, evalNow, want{usable: true, kind: "fixed", discount: 100, scope: 1000}},
		{"brand and model", scope(nil, list("other"), list("x1")), held("c"), mixed, evalNow, want{usable: true, kind: "fixed", discount: 4, scope: 4}},
		{"category, brand and model", scope(list("phones", "cases"), list("acme", "other"), list("o9")), held("c"), mixed, evalNow,
			want{usable: true, kind: "fixed", discount: 100, scope: 200}},
		{"category and brand matching different items", scope(list("tablets"), list("other"), nil), held("c"), mixed, evalNow,
			want{reason: "out_of_scope", kind: "fixed"}},
		{"no matching category", scope(list("laptops"), nil, nil), held("c"), mixed, evalNow, want{reason: "out_of_scope", kind: "fixed"}},
		{"empty cart", scope(nil, nil, nil), held("c"), cart(), evalNow, want{reason: "out_of_scope", kind: "fixed"}},
		{"scope is case-sensitive", scope(list("Phones"), nil, nil), held("c"), mixed, evalNow, want{reason: "out_of_scope", kind: "fixed"}},

		{"v1 usable with no discount", batch(nil), held("c"), mixed, evalNow, want{usable: true, scope: 1234}},
		{"v1 on an empty cart", batch(nil), held("c"), cart(), evalNow, want{usable: true}},
		{"v1 at expiry", batch(nil), held("c"), mixed, heldUntil, want{reason: "expired", scope: 1234}},
		{"v1 used", batch(nil), held("c", func(h *Held) { h.State = schemas.CouponUsed }), mixed, evalNow, want{reason: "used", scope: 1234}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Evaluate(c.def, c.c, c.cart, c.now)
			w := Evaluation{CouponID: c.c.CouponID, BatchID: c.c.BatchID, Usable: c.want.usable, Kind: c.want.kind,
				Discount: c.want.discount, Bonus: c.want.bonus, ScopeAmount: c.want.scope, Reason: c.want.reason}
			if got != w {
				t.Fatalf("Evaluate =\n %+v, want\n %+v", got, w)
			}
		})
	}
}

// group puts a batch into an exclusion group.
func group(g string) func(*schemas.BatchDefined) {
	return func(b *schemas.BatchDefined) { b.ExclusionGroup = g }
}

type short struct {
	id       string
	usable   bool
	discount int64
	bonus    int64
	reason   string
	by       string
}

func shorten(evs []Evaluation) []short {
	out := make([]short, len(evs))
	for i, e := range evs {
		out[i] = short{e.CouponID, e.Usable, e.Discount, e.Bonus, e.Reason, e.ExcludedBy}
	}
	return out
}

func TestUsable(t *testing.T) {
	defs := map[string]*schemas.BatchDefined{
		"F500":  fixed(500, 0, group("welcome")),
		"F1000": fixed(1000, 0, group("welcome")),
		"P10":   pct(10, 0, 0), // 700 on the cart below
		"P10G": batch(func(b *schemas.BatchDefined) {
			b.DiscountType, b.Percent, b.ExclusionGroup = schemas.DiscountPercent, 10, "welcome"
		}),
		"F700": fixed(700, 0, group("welcome")),
		"F300": fixed(300, 0, group("other")),
		"INC": batch(func(b *schemas.BatchDefined) {
			b.DiscountType, b.Amount, b.ExclusionGroup = schemas.DiscountPriceIncrease, 900, "other"
		}),
		"TH": fixed(5000, 100000, group("welcome")), // below threshold
		"V1": batch(nil),
	}
	for id, d := range defs {
		d.BatchID = id
	}
	lookup := func(id string) *schemas.BatchDefined { return defs[id] }
	c := cart(phone(7000))
	of := func(id, batch string, mut ...func(*Held)) Held {
		return held(id, append([]func(*Held){func(h *Held) { h.BatchID = batch }}, mut...)...)
	}
	expiring := func(d time.Duration) func(*Held) { return func(h *Held) { h.ExpiresAt = heldUntil.Add(d) } }
	cases := []struct {
		name string
		held []Held
		want []short
	}{
		{"none", nil, []short{}},
		{"three in a group: the most value wins", []Held{of("a", "F500"), of("b", "F1000"), of("c", "F700")}, []short{
			{"b", true, 1000, 0, "", ""},
			{"a", false, 0, 0, "excluded", "b"},
			{"c", false, 0, 0, "excluded", "b"},
		}},
		{"a coupon that is not usable does not compete", []Held{of("a", "F500"), of("b", "F1000", func(h *Held) { h.State = schemas.CouponLocked }), of("c", "F700"), of("d", "TH")}, []short{
			{"c", true, 700, 0, "", ""},
			{"a", false, 0, 0, "excluded", "c"},
			{"b", false, 0, 0, "locked", ""},
			{"d", false, 0, 0, "below_threshold", ""},
		}},
		{"tie on value: earliest expiry wins", []Held{of("a", "F700", expiring(time.Hour)), of("b", "P10G"), of("c", "F700", expiring(-time.Hour))}, []short{
			{"c", true, 700, 0, "", ""},
			{"a", false, 0, 0, "excluded", "c"},
			{"b", false, 0, 0, "excluded", "c"},
		}},
		{"tie on value and expiry: smallest coupon id wins", []Held{of("z", "F700"), of("m", "P10G"), of("q", "F700")}, []short{
			{"m", true, 700, 0, "", ""},
			{"q", false, 0, 0, "excluded", "m"},
			{"z", false, 0, 0, "excluded", "m"},
		}},
		{"groups are independent; bonus counts as value", []Held{of("a", "F500"), of("b", "F300"), of("c", "INC"), of("d", "F1000"), of("e", "P10")}, []short{
			{"d", true, 1000, 0, "", ""},
			{"c", true, 0, 900, "", ""},
			{"e", true, 700, 0, "", ""},
			{"a", false, 0, 0, "excluded", "d"},
			{"b", false, 0, 0, "excluded", "c"},
		}},
		{"v1 and unknown batches", []Held{of("v", "V1"), of("u", "NOPE"), of("a", "F500"), of("x", "V1", func(h *Held) { h.State = schemas.CouponExpired })}, []short{
			{"a", true, 500, 0, "", ""},
			{"v", true, 0, 0, "", ""},
			{"u", false, 0, 0, "unknown_batch", ""},
			{"x", false, 0, 0, "expired", ""},
		}},
		{"usable ties outside groups: earliest expiry, then coupon id", []Held{of("b", "P10"), of("a", "P10"), of("c", "P10", expiring(-time.Minute))}, []short{
			{"c", true, 700, 0, "", ""},
			{"a", true, 700, 0, "", ""},
			{"b", true, 700, 0, "", ""},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Usable(lookup, tc.held, c, evalNow)
			if fmt.Sprint(shorten(got)) != fmt.Sprint(tc.want) {
				t.Fatalf("Usable =\n %+v, want\n %+v", shorten(got), tc.want)
			}
		})
	}
	if got := Usable(nil, []Held{of("a", "F500")}, c, evalNow); len(got) != 1 || got[0].Reason != ReasonUnknownBatch {
		t.Fatalf("Usable without defs = %+v", got)
	}
}

// FuzzEvaluate: random batches (valid or not) and carts never make Evaluate
// or Usable panic; a discount is never negative nor larger than the in-scope
// amount; the percent discount equals exact arithmetic; an exclusion group
// keeps at most one usable coupon.
func FuzzEvaluate(f *testing.F) {
	f.Add(uint8(0), int64(500), int64(0), int64(0), int64(0), int64(1000), int64(200), int64(30), uint8(0), int64(0), uint8(0))
	f.Add(uint8(1), int64(0), int64(10), int64(2000), int64(10000), int64(1e11), int64(1e11), int64(-5), uint8(7), int64(1), uint8(1))
	f.Add(uint8(2), int64(3000), int64(0), int64(0), int64(1), int64(0), int64(0), int64(0), uint8(0xff), int64(-1), uint8(2))
	f.Add(uint8(1), int64(0), int64(100), int64(0), int64(0), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), uint8(0), int64(0), uint8(0))
	f.Add(uint8(3), int64(-7), int64(250), int64(-1), int64(-9), int64(math.MinInt64), int64(1), int64(2), uint8(0x2a), int64(math.MaxInt64), uint8(4))
	kinds := []string{schemas.DiscountFixed, schemas.DiscountPercent, schemas.DiscountPriceIncrease, "", "bogus"}
	states := []string{schemas.CouponAvailable, schemas.CouponLocked, schemas.CouponUsed, schemas.CouponExpired, "?"}
	f.Fuzz(func(t *testing.T, kind uint8, amount, percent, cap, threshold, a1, a2, a3 int64, scope uint8, nowOff int64, state uint8) {
		def := batch(func(b *schemas.BatchDefined) {
			b.DiscountType = kinds[int(kind)%len(kinds)]
			b.Amount, b.Percent, b.Cap, b.Threshold = amount, percent, cap, threshold
			if scope&1 != 0 {
				b.Categories = []string{"phones"}
			}
			if scope&2 != 0 {
				b.Brands = []string{"acme", "other"}
			}
			if scope&4 != 0 {
				b.Models = []string{"x1"}
			}
			if scope&8 != 0 {
				b.Status = schemas.BatchDisabled
			}
			if scope&16 != 0 {
				b.ExclusionGroup = "g"
			}
		})
		items := Cart{Items: []Item{
			{Category: "phones", Brand: "acme", Model: "x1", Amount: a1},
			{Category: "phones", Brand: "other", Model: "o9", Amount: a2},
			{Category: "tablets", Brand: "acme", Model: "x1", Amount: a3},
		}[:1+int(scope>>5)%3]}
		c := held("c", func(h *Held) { h.State = states[int(state)%len(states)] })
		now := evalNow.Add(time.Duration(nowOff))
		e := Evaluate(def, c, items, now)
		if e.Discount < 0 || e.Bonus < 0 || e.ScopeAmount < 0 || e.Discount > e.ScopeAmount {
			t.Fatalf("Evaluate = %+v", e)
		}
		if e.Usable != (e.Reason == "") || (!e.Usable && (e.Discount != 0 || e.Bonus != 0)) {
			t.Fatalf("usable and reason disagree: %+v", e)
		}
		if e.Usable && def.DiscountType == schemas.DiscountPercent && percent >= 0 && percent <= 100 {
			want := new(big.Int).Mul(big.NewInt(e.ScopeAmount), big.NewInt(percent))
			want.Quo(want, big.NewInt(100))
			if cap > 0 && want.Cmp(big.NewInt(cap)) > 0 {
				want.SetInt64(cap)
			}
			if want.Cmp(big.NewInt(e.Discount)) != 0 {
				t.Fatalf("percent %d of %d (cap %d) = %d, want %s", percent, e.ScopeAmount, cap, e.Discount, want)
			}
		}
		others := []Held{c, held("d", func(h *Held) { h.ExpiresAt = heldUntil.Add(time.Duration(nowOff)) }), held("e")}
		evs := Usable(func(string) *schemas.BatchDefined { return def }, others, items, now)
		if len(evs) != len(others) {
			t.Fatalf("Usable returned %d evaluations for %d coupons", len(evs), len(others))
		}
		usable := 0
		for i, ev := range evs {
			if ev.Discount < 0 || ev.Bonus < 0 || ev.Discount > ev.ScopeAmount {
				t.Fatalf("Usable evaluation %+v", ev)
			}
			if ev.Usable {
				usable++
				if i > 0 && !evs[i-1].Usable {
					t.Fatalf("a usable coupon sorted after an unusable one: %+v", evs)
				}
			}
		}
		if def.ExclusionGroup != "" && usable > 1 {
			t.Fatalf("%d usable coupons in one exclusion group: %+v", usable, evs)
		}
	})
}
