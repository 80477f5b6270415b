package coupon

import (
	"fmt"
	"time"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Batches is the in-process cache of batch definitions, fed by a
// stream.View of the coupon admin topic. The highest revision of a batch
// wins, whichever version (v1 or v2) carried it; older or equal revisions
// arriving later are ignored, so re-applying the topic is harmless.
type Batches struct {
	*stream.Latest[schemas.BatchDefined]
}

// NewBatches returns an empty cache.
func NewBatches() *Batches {
	return &Batches{stream.NewLatest(
		func(b *schemas.BatchDefined) string { return b.BatchID },
		func(b *schemas.BatchDefined) int64 { return b.Revision },
	)}
}

// Apply takes one admin event (coupon.batch.defined v1 or v2). It is the
// View's apply function.
func (b *Batches) Apply(env *schemas.Envelope) error {
	def, err := DecodeBatch(env)
	if err != nil {
		return err
	}
	b.Put(def)
	return nil
}

// DecodeBatch decodes a coupon.batch.defined event of version 1 or 2 and
// checks it with CheckBatch. Both versions decode into BatchDefined; a v1
// definition has no usage rules, a v2 definition must name its
// discount_type. Every error wraps schemas.ErrInvalid.
func DecodeBatch(env *schemas.Envelope) (*schemas.BatchDefined, error) {
	if env.Type != schemas.TypeCouponBatchDefined {
		return nil, fmt.Errorf("applying %s to coupon batches: %w", env.Type, schemas.ErrInvalid)
	}
	var def schemas.BatchDefined
	if err := env.DecodePayload(&def); err != nil {
		return nil, err
	}
	switch env.Version {
	case 1:
		// The v1 schema forbids the rule fields; this guards envelopes that
		// were built rather than decoded.
		if hasRules(&def) {
			return nil, fmt.Errorf("batch %s revision %d: a v1 definition carries no usage rules: %w", def.BatchID, def.Revision, schemas.ErrInvalid)
		}
	case 2:
		if def.DiscountType == "" {
			return nil, fmt.Errorf("batch %s revision %d: a v2 definition needs discount_type: %w", def.BatchID, def.Revision, schemas.ErrInvalid)
		}
	default:
		return nil, fmt.Errorf("applying %s v%d to coupon batches: unsupported version: %w", env.Type, env.Version, schemas.ErrInvalid)
	}
	if err := CheckBatch(&def); err != nil {
		return nil, err
	}
	return &def, nil
}

// hasRules reports whether def sets any field that exists in v2 only.
func hasRules(def *schemas.BatchDefined) bool {
	return def.ValidityDays != 0 || len(def.Categories) > 0 || len(def.Brands) > 0 || len(def.Models) > 0 ||
		def.Threshold != 0 || def.DiscountType != "" || def.Amount != 0 || def.Percent != 0 || def.Cap != 0 ||
		def.ExclusionGroup != "" || def.RemindDaysBefore != 0
}

// maxDays is the largest number of days a time.Duration holds.
const maxDays = int64(1<<63-1) / int64(24*time.Hour)

// CheckBatch applies the rules of a batch definition that its schema cannot
// express. A definition that breaks one is never cached; the admin stage
// dead-letters it. Every error wraps schemas.ErrInvalid.
//
// A definition that sets any usage rule is a v2 definition and needs a
// discount_type; fixed and price_increase need amount > 0 and no percent;
// percent needs 1 <= percent <= 100 and no amount; cap is for percent only;
// remind_days_before must be shorter than the coupon's validity (validity_days,
// or the fixed window); categories, brands and models hold no duplicates.
func CheckBatch(def *schemas.BatchDefined) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("batch %s revision %d: %s: %w", def.BatchID, def.Revision, fmt.Sprintf(format, args...), schemas.ErrInvalid)
	}
	if !def.ValidUntil.After(def.ValidFrom) {
		return bad("valid_until must be after valid_from")
	}
	switch def.DiscountType {
	case "":
		if hasRules(def) {
			return bad("usage rules (v2) need discount_type")
		}
		return nil
	case schemas.DiscountFixed, schemas.DiscountPriceIncrease:
		if def.Amount <= 0 {
			return bad("discount_type %s needs amount > 0, got %d", def.DiscountType, def.Amount)
		}
		if def.Percent != 0 {
			return bad("discount_type %s takes no percent", def.DiscountType)
		}
	case schemas.DiscountPercent:
		if def.Percent < 1 || def.Percent > 100 {
			return bad("discount_type percent needs 1 <= percent <= 100, got %d", def.Percent)
		}
		if def.Amount != 0 {
			return bad("discount_type percent takes no amount")
		}
	default:
		return bad("unknown discount_type %q", def.DiscountType)
	}
	if def.Cap != 0 && def.DiscountType != schemas.DiscountPercent {
		return bad("cap is for discount_type percent only, not %s", def.DiscountType)
	}
	if r := def.RemindDaysBefore; r > 0 {
		if def.ValidityDays > 0 {
			if r >= def.ValidityDays {
				return bad("remind_days_before (%d) must be less than validity_days (%d)", r, def.ValidityDays)
			}
		} else if window := def.ValidUntil.Sub(def.ValidFrom); r >= maxDays || time.Duration(r)*24*time.Hour >= window {
			return bad("remind_days_before (%d days) must be shorter than the window %s .. %s", r,
				def.ValidFrom.Format(time.RFC3339), def.ValidUntil.Format(time.RFC3339))
		}
	}
	for _, l := range []struct {
		field string
		vals  []string
	}{{"categories", def.Categories}, {"brands", def.Brands}, {"models", def.Models}} {
		if d, ok := duplicate(l.vals); ok {
			return bad("%s lists %q twice", l.field, d)
		}
	}
	return nil
}

// duplicate returns a value that occurs more than once in vals.
func duplicate(vals []string) (string, bool) {
	if len(vals) < 2 {
		return "", false
	}
	seen := make(map[string]struct{}, len(vals))
	for _, v := range vals {
		if _, ok := seen[v]; ok {
			return v, true
		}
		seen[v] = struct{}{}
	}
	return "", false
}
