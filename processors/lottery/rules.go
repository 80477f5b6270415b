package lottery

import (
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// PrecheckEntry applies the rules of a participation that do not depend on
// state: the activity must exist, be active, be a draw or an instant-win,
// and the participation must have occurred inside its join window
// [JoinFrom, JoinUntil). It returns "" when the participation may proceed
// to the atomic step, else a rejection reason. def is nil when unknown.
func PrecheckEntry(def *schemas.ActivityDefined, at time.Time) string {
	if r := precheckWindow(def, at); r != "" {
		return r
	}
	if def.Kind == schemas.KindGiftExchange {
		return schemas.RejectWrongKind
	}
	return ""
}

// PrecheckSend is PrecheckEntry for a gift send: the activity must be a
// gift exchange.
func PrecheckSend(def *schemas.ActivityDefined, at time.Time) string {
	if r := precheckWindow(def, at); r != "" {
		return r
	}
	if def.Kind != schemas.KindGiftExchange {
		return schemas.RejectWrongKind
	}
	return ""
}

func precheckWindow(def *schemas.ActivityDefined, at time.Time) string {
	switch {
	case def == nil:
		return schemas.RejectUnknownActivity
	case def.Status == schemas.BatchDisabled:
		return schemas.RejectActivityDisabled
	case at.Before(def.JoinFrom):
		return schemas.RejectNotStarted
	case !at.Before(def.JoinUntil):
		return schemas.RejectEnded
	}
	return ""
}

// EntryState is what the atomic step of a participation reads.
type EntryState struct {
	Closed bool  // the activity was drawn (or its draw has begun)
	Joined int64 // participations of this user accepted so far
	Won    bool  // instant-win: the user already won
}

// DecideEntry is the state rule entry.lua implements atomically, stated in
// Go so that it is table-tested and documented in one place: a drawn
// activity takes no one, then the per-user limit, then one win per user.
func DecideEntry(def *schemas.ActivityDefined, s EntryState) string {
	switch {
	case s.Closed:
		return schemas.RejectDrawClosed
	case s.Joined >= def.PerUserLimit:
		return schemas.RejectLimitReached
	case def.Kind == schemas.KindInstantWin && s.Won:
		return schemas.RejectAlreadyWon
	}
	return ""
}
