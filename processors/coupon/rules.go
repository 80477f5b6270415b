package coupon

import (
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// Precheck applies the rules of a claim that do not depend on counters:
// the batch must exist, be active, and the claim must have occurred inside
// its validity window [ValidFrom, ValidUntil). It returns "" when the claim
// may proceed to the stock and per-user checks, else a rejection reason.
// def is nil when the batch is unknown.
func Precheck(def *schemas.BatchDefined, claimedAt time.Time) string {
	switch {
	case def == nil:
		return schemas.RejectUnknownBatch
	case def.Status == schemas.BatchDisabled:
		return schemas.RejectBatchDisabled
	case claimedAt.Before(def.ValidFrom):
		return schemas.RejectNotStarted
	case !claimedAt.Before(def.ValidUntil):
		return schemas.RejectExpired
	}
	return ""
}

// Counters is the state the atomic step reads.
type Counters struct {
	Granted  int64 // grants of the batch so far
	UserHeld int64 // grants of the batch to this user so far
}

// Decide is the counter rule the Lua script implements atomically, stated in
// Go so that it is table-tested and documented in one place: the per-user
// limit is checked first (it is the more useful reason), then stock.
func Decide(def *schemas.BatchDefined, c Counters) string {
	switch {
	case c.UserHeld >= def.PerUserLimit:
		return schemas.RejectUserLimit
	case c.Granted >= def.TotalStock:
		return schemas.RejectOutOfStock
	}
	return ""
}
