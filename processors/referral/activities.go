package referral

import (
	"fmt"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Activities is the in-process cache of referral activity definitions,
// fed by a stream.View of the referral admin topic. The highest revision
// of an activity wins; older or equal revisions arriving later are
// ignored, so re-applying the topic is harmless.
type Activities struct {
	*stream.Latest[schemas.ReferralActivityDefined]
}

// NewActivities returns an empty cache.
func NewActivities() *Activities {
	return &Activities{stream.NewLatest(
		func(a *schemas.ReferralActivityDefined) string { return a.ActivityID },
		func(a *schemas.ReferralActivityDefined) int64 { return a.Revision },
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

// DecodeActivity decodes a referral.activity.defined event and checks it
// with CheckActivity. Every error wraps schemas.ErrInvalid.
func DecodeActivity(env *schemas.Envelope) (*schemas.ReferralActivityDefined, error) {
	if env.Type != schemas.TypeReferralActivityDefined {
		return nil, fmt.Errorf("applying %s to referral activities: %w", env.Type, schemas.ErrInvalid)
	}
	var def schemas.ReferralActivityDefined
	if err := env.DecodePayload(&def); err != nil {
		return nil, err
	}
	if err := CheckActivity(&def); err != nil {
		return nil, err
	}
	return &def, nil
}

// CheckActivity applies the rules of a definition that its schema cannot
// express: ends_at after starts_at, qualify_until not before ends_at, and
// reward thresholds strictly ascending. A definition that breaks one is
// never cached; the admin stage dead-letters it (invalid_activity). Every
// error wraps schemas.ErrInvalid.
func CheckActivity(def *schemas.ReferralActivityDefined) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("referral activity %s revision %d: %s: %w", def.ActivityID, def.Revision, fmt.Sprintf(format, args...), schemas.ErrInvalid)
	}
	if !def.EndsAt.After(def.StartsAt) {
		return bad("ends_at must be after starts_at")
	}
	if def.QualifyUntil != nil && def.QualifyUntil.Before(def.EndsAt) {
		return bad("qualify_until must not be before ends_at")
	}
	for i := 1; i < len(def.Rewards); i++ {
		if def.Rewards[i].Threshold <= def.Rewards[i-1].Threshold {
			return bad("rewards[%d]: threshold %d is not above the previous %d (list thresholds ascending, once each)",
				i, def.Rewards[i].Threshold, def.Rewards[i-1].Threshold)
		}
	}
	return nil
}
