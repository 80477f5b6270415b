package coupon

import (
	"math"
	"slices"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// Reasons an Evaluation is not usable.
const (
	ReasonUnknownBatch   = schemas.RejectUnknownBatch  // the batch is not in the cache
	ReasonBatchDisabled  = schemas.RejectBatchDisabled // the batch's kill switch is on
	ReasonLocked         = "locked"                    // the coupon is locked for an order
	ReasonUsed           = "used"                      // the coupon was used
	ReasonExpired        = schemas.RejectCouponExpired // the coupon is expired (state or window)
	ReasonNotYetValid    = "not_yet_valid"             // now is before the coupon's ValidFrom
	ReasonOutOfScope     = "out_of_scope"              // no item of the cart is in the batch's scope
	ReasonBelowThreshold = "below_threshold"           // the in-scope amount is below the threshold
	ReasonExcluded       = "excluded"                  // another coupon of its exclusion group wins
	ReasonUnknownState   = "unknown_state"             // the coupon's state is none of the known ones
)

// Item is one line of a cart. Amount is the line's total in minor units; a
// negative Amount counts as 0.
type Item struct {
	SKU, Category, Brand, Model string
	Amount                      int64
}

// Cart is the order being evaluated.
type Cart struct{ Items []Item }

// Held is one coupon a user holds, as the system of record knows it.
type Held struct {
	CouponID, BatchID, State string
	ValidFrom, ExpiresAt     time.Time
}

// Evaluation says whether a coupon applies to a cart and what it gives.
type Evaluation struct {
	CouponID, BatchID string
	Usable            bool
	// Kind is the batch's discount type: schemas.DiscountFixed,
	// DiscountPercent or DiscountPriceIncrease ("" for a v1 batch).
	Kind string
	// Discount is the amount off the order (fixed, percent); 0 when not
	// usable. It never exceeds ScopeAmount.
	Discount int64
	// Bonus is the amount added to a payout (price_increase); 0 otherwise.
	Bonus int64
	// ScopeAmount is the total of the in-scope items (every item for a v1
	// batch); 0 for an unknown batch.
	ScopeAmount int64
	// Reason says why the coupon is not usable (the Reason* constants).
	Reason string
	// ExcludedBy is, with Reason "excluded", the coupon that wins the
	// exclusion group.
	ExcludedBy string
}

// Value is what the coupon gives: Discount + Bonus (saturating).
func (e Evaluation) Value() int64 { return addSat(e.Discount, e.Bonus) }

// Evaluate judges one coupon alone against a cart at now. def is the
// coupon's batch, nil when unknown. The checks run in this order: the batch
// (unknown, disabled), the coupon's state (locked, used, expired: only
// schemas.CouponAvailable is usable), its window [ValidFrom, ExpiresAt)
// (usable at ExpiresAt - 1ns, expired at ExpiresAt), the scope (an item is
// in scope when each non-empty list of categories, brands and models holds
// it), the threshold (reached at exactly Threshold). A v1 batch has no rules:
// its coupon is usable with Discount 0 whenever its state and window allow.
//
// What a usable coupon gives: fixed, min(Amount, ScopeAmount); percent,
// ScopeAmount*Percent/100 rounded down, at most Cap when Cap > 0;
// price_increase, Bonus = Amount.
func Evaluate(def *schemas.BatchDefined, c Held, cart Cart, now time.Time) Evaluation {
	e := Evaluation{CouponID: c.CouponID, BatchID: c.BatchID}
	if def == nil {
		e.Reason = ReasonUnknownBatch
		return e
	}
	e.Kind = def.DiscountType
	v1 := def.DiscountType == ""
	inScope := false
	for _, it := range cart.Items {
		if v1 || scoped(def, it) {
			inScope = true
			e.ScopeAmount = addSat(e.ScopeAmount, max(it.Amount, 0))
		}
	}
	switch {
	case def.Status == schemas.BatchDisabled:
		e.Reason = ReasonBatchDisabled
	case c.State == schemas.CouponAvailable:
	case c.State == schemas.CouponLocked:
		e.Reason = ReasonLocked
	case c.State == schemas.CouponUsed:
		e.Reason = ReasonUsed
	case c.State == schemas.CouponExpired:
		e.Reason = ReasonExpired
	default:
		e.Reason = ReasonUnknownState
	}
	switch {
	case e.Reason != "":
	case now.Before(c.ValidFrom):
		e.Reason = ReasonNotYetValid
	case !now.Before(c.ExpiresAt):
		e.Reason = ReasonExpired
	case v1:
	case !inScope:
		e.Reason = ReasonOutOfScope
	case e.ScopeAmount < def.Threshold:
		e.Reason = ReasonBelowThreshold
	}
	if e.Reason != "" {
		return e
	}
	e.Usable = true
	e.Discount, e.Bonus = Gives(def, e.ScopeAmount)
	return e
}

// Gives returns what a usable coupon of def gives when the in-scope items
// of an order total scopeAmount (the threshold is the caller's to check):
// fixed, Discount min(Amount, scopeAmount); percent, scopeAmount*Percent/100
// rounded down, at most Cap when Cap > 0; price_increase, Bonus Amount; a
// v1 batch, nothing.
func Gives(def *schemas.BatchDefined, scopeAmount int64) (discount, bonus int64) {
	scopeAmount = max(scopeAmount, 0)
	switch def.DiscountType {
	case schemas.DiscountFixed:
		discount = min(max(def.Amount, 0), scopeAmount)
	case schemas.DiscountPercent:
		discount = percentOf(scopeAmount, def.Percent)
		if def.Cap > 0 {
			discount = min(discount, def.Cap)
		}
	case schemas.DiscountPriceIncrease:
		bonus = max(def.Amount, 0)
	}
	return discount, bonus
}

// scoped reports whether it is in def's scope.
func scoped(def *schemas.BatchDefined, it Item) bool {
	return (len(def.Categories) == 0 || slices.Contains(def.Categories, it.Category)) &&
		(len(def.Brands) == 0 || slices.Contains(def.Brands, it.Brand)) &&
		(len(def.Models) == 0 || slices.Contains(def.Models, it.Model))
}

// percentOf returns amount*p/100 rounded down for amount >= 0, with p
// clamped to [0, 100]. It splits amount so that no product exceeds
// amount + 99*100: it cannot overflow for any int64 amount.
func percentOf(amount, p int64) int64 {
	p = min(max(p, 0), 100)
	return amount/100*p + amount%100*p/100
}

// addSat returns a + b for non-negative a and b, saturating at MaxInt64.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Usable judges every held coupon against the cart (Evaluate) and applies
// the exclusion groups: within a group, only the usable coupon giving the
// most value (Discount + Bonus; ties go to the earliest ExpiresAt, then the
// smallest CouponID) stays usable; the group's other usable coupons get
// Reason "excluded", ExcludedBy the winner, and Discount and Bonus 0.
// defs returns a batch or nil when it is unknown.
//
// The result has one Evaluation per held coupon: the usable ones first, by
// value descending (ties as above), then the others by CouponID.
func Usable(defs func(batchID string) *schemas.BatchDefined, held []Held, cart Cart, now time.Time) []Evaluation {
	type judged struct {
		Evaluation
		expires time.Time
		group   string
	}
	all := make([]judged, len(held))
	for i, c := range held {
		var def *schemas.BatchDefined
		if defs != nil {
			def = defs(c.BatchID)
		}
		all[i] = judged{Evaluation: Evaluate(def, c, cart, now), expires: c.ExpiresAt}
		if def != nil {
			all[i].group = def.ExclusionGroup
		}
	}
	// better reports whether a ranks before b among usable coupons.
	better := func(a, b *judged) int {
		if va, vb := a.Value(), b.Value(); va != vb {
			if va > vb {
				return -1
			}
			return 1
		}
		if c := a.expires.Compare(b.expires); c != 0 {
			return c
		}
		return strings.Compare(a.CouponID, b.CouponID)
	}
	winners := map[string]*judged{}
	for i := range all {
		j := &all[i]
		if !j.Usable || j.group == "" {
			continue
		}
		if w, ok := winners[j.group]; !ok || better(j, w) < 0 {
			winners[j.group] = j
		}
	}
	for i := range all {
		j := &all[i]
		if !j.Usable || j.group == "" {
			continue
		}
		if w := winners[j.group]; w != j {
			j.Usable, j.Reason, j.ExcludedBy = false, ReasonExcluded, w.CouponID
			j.Discount, j.Bonus = 0, 0
		}
	}
	slices.SortStableFunc(all, func(a, b judged) int {
		switch {
		case a.Usable && b.Usable:
			return better(&a, &b)
		case a.Usable:
			return -1
		case b.Usable:
			return 1
		}
		return strings.Compare(a.CouponID, b.CouponID)
	})
	out := make([]Evaluation, len(all))
	for i := range all {
		out[i] = all[i].Evaluation
	}
	return out
}
