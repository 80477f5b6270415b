package referral

import (
	"errors"
	"strconv"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/schemas"
)

// DefaultMaxChainDepth bounds the walk up an inviter's chain that looks
// for a cycle (see Graph.Bind).
const DefaultMaxChainDepth = 100

// PrecheckBind applies the rules of a click or registration that do not
// depend on state, in this order: the activity must exist, be active, and
// the event must have occurred inside [starts_at, ends_at) and be decided
// before the activity's state is due to expire (stateEnd); the token must
// verify (tokenErr nil) and name this activity; it must not have expired
// when the event occurred; and the inviter it names must not be the
// invitee. It returns "" when the event may proceed to the atomic step,
// else the refusal reason. def is nil when the activity is unknown.
func PrecheckBind(def *schemas.ReferralActivityDefined, link sharelink.Link, tokenErr error, invitee string, at, now, stateEnd time.Time) string {
	if r := precheckActivity(def); r != "" {
		return r
	}
	switch {
	case at.Before(def.StartsAt):
		return schemas.RejectNotStarted
	case !at.Before(def.EndsAt), !now.Before(stateEnd):
		return schemas.RejectEnded
	case tokenErr != nil && !errors.Is(tokenErr, sharelink.ErrExpired), link.ActivityID != def.ActivityID:
		return schemas.RefuseBadToken
	case link.Expired(at):
		return schemas.RefuseExpiredToken
	case link.Inviter == invitee:
		return schemas.RefuseSelfInvite
	}
	return ""
}

// PrecheckQualify applies the rules of a qualifying action that do not
// depend on state: the activity must exist and be active, the action must
// have occurred before its qualify_until (ends_at by default) and the
// activity's state end, the activity must require a qualifying action
// (not_required otherwise), and this one (wrong_action otherwise).
func PrecheckQualify(def *schemas.ReferralActivityDefined, action string, at, now, stateEnd time.Time) string {
	if r := precheckActivity(def); r != "" {
		return r
	}
	switch {
	case !at.Before(def.QualifyEnd()), !now.Before(stateEnd):
		return schemas.RejectEnded
	case def.QualifyingAction == schemas.QualifyNone:
		return schemas.RefuseNotRequired
	case action != def.QualifyingAction:
		return schemas.RefuseWrongAction
	}
	return ""
}

func precheckActivity(def *schemas.ReferralActivityDefined) string {
	switch {
	case def == nil:
		return schemas.RejectUnknownActivity
	case def.Status == schemas.BatchDisabled:
		return schemas.RejectActivityDisabled
	}
	return ""
}

// Graph is the state rule of one activity that step.lua implements
// atomically, stated in Go so that it is table-tested and documented in
// one place (and the script is tested against it on random sequences).
// It is not safe for concurrent use.
//
// Bindings form a forest: each invitee has at most one inviter. An
// invitee counts toward its inviter's rewards ("successful") once bound
// when the activity has no qualifying action, else once qualified.
// Reaching a threshold grants its reward once per inviter, ever, even if
// the thresholds change between revisions.
type Graph struct {
	// MaxDepth bounds the cycle walk; 0 means DefaultMaxChainDepth.
	MaxDepth int

	inviter    map[string]string // invitee -> inviter
	counted    map[string]bool   // invitee -> counts toward the inviter
	successful map[string]int64  // inviter -> invitees counted
	granted    map[string]bool   // inviter + "|" + threshold -> reward granted
}

// NewGraph returns an empty activity.
func NewGraph() *Graph {
	return &Graph{inviter: map[string]string{}, counted: map[string]bool{}, successful: map[string]int64{}, granted: map[string]bool{}}
}

// Step is the outcome of one Bind or Qualify.
type Step struct {
	// Reason is why the event was refused, or "".
	Reason string
	// Inviter is the invitee's inviter after the step: the new one, the
	// one that holds the invitee (already_bound; a qualification), or "".
	Inviter string
	// Counted is true when this step made the invitee count.
	Counted bool
	// Successful is Inviter's count after the step when Counted.
	Successful int64
	// Rewards are the thresholds this step reached, ascending.
	Rewards []schemas.ReferralReward
}

// Bind binds invitee to inviter unless the invitee is already bound (the
// first valid inviter wins) or the binding would close a cycle. A cycle
// needs the invitee to be an ancestor of the inviter; since an invitee
// that can still be bound has no inviter, it is a root, so the binding
// closes a cycle exactly when the inviter's chain ends at the invitee. The
// walk up the chain is bounded by MaxDepth steps: a chain longer than that
// refuses the binding (chain_too_deep) rather than risk a cycle, which
// keeps the script's run time bounded. Self-invites are refused by
// PrecheckBind; Bind refuses them too (as a cycle of length one).
func (g *Graph) Bind(invitee, inviter string, needsQualify bool, rewards []schemas.ReferralReward) Step {
	if cur, ok := g.inviter[invitee]; ok {
		return Step{Reason: schemas.RefuseAlreadyBound, Inviter: cur}
	}
	if r := g.walk(invitee, inviter); r != "" {
		return Step{Reason: r}
	}
	g.inviter[invitee] = inviter
	s := Step{Inviter: inviter}
	if !needsQualify {
		g.count(invitee, inviter, rewards, &s)
	}
	return s
}

// walk returns schemas.RefuseCycle when inviter's chain reaches invitee,
// RefuseChainTooDeep when it is longer than the bound, else "".
func (g *Graph) walk(invitee, inviter string) string {
	depth := g.MaxDepth
	if depth <= 0 {
		depth = DefaultMaxChainDepth
	}
	cur := inviter
	for steps := 0; ; steps++ {
		if cur == invitee {
			return schemas.RefuseCycle
		}
		up, ok := g.inviter[cur]
		if !ok {
			return ""
		}
		if steps == depth {
			return schemas.RefuseChainTooDeep
		}
		cur = up
	}
}

// Qualify makes a bound invitee count toward its inviter, once.
func (g *Graph) Qualify(invitee string, rewards []schemas.ReferralReward) Step {
	inviter, ok := g.inviter[invitee]
	switch {
	case !ok:
		return Step{Reason: schemas.RefuseNotBound}
	case g.counted[invitee]:
		return Step{Reason: schemas.RefuseAlreadyQualified, Inviter: inviter}
	}
	s := Step{Inviter: inviter}
	g.count(invitee, inviter, rewards, &s)
	return s
}

func (g *Graph) count(invitee, inviter string, rewards []schemas.ReferralReward, s *Step) {
	g.counted[invitee] = true
	g.successful[inviter]++
	n := g.successful[inviter]
	s.Counted, s.Successful = true, n
	for _, r := range rewards {
		k := inviter + "|" + strconv.FormatInt(r.Threshold, 10)
		if r.Threshold <= n && !g.granted[k] {
			g.granted[k] = true
			s.Rewards = append(s.Rewards, r)
		}
	}
}

// InviterOf returns invitee's inviter, or "".
func (g *Graph) InviterOf(invitee string) string { return g.inviter[invitee] }

// Successful returns how many invitees count toward inviter.
func (g *Graph) Successful(inviter string) int64 { return g.successful[inviter] }
