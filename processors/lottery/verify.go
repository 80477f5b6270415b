package lottery

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/promoflow/promoflow/processors/lottery/fair"
	"github.com/promoflow/promoflow/schemas"
)

// Check is one step of a draw's verification.
type Check struct {
	// Name says what was checked.
	Name string
	// OK is false when the check failed; Warn marks a failure that does not
	// make the draw wrong, only less convincing (a late commitment).
	OK, Warn bool
	// Detail explains the result.
	Detail string
}

// Verification is the result of Verify.
type Verification struct {
	Checks []Check
	// Recomputed are the awards recomputed from the seed, the sorted
	// participants and the prizes drawn.
	Recomputed []fair.Award
}

// OK reports whether every check that is not a warning passed.
func (v *Verification) OK() bool {
	for _, c := range v.Checks {
		if !c.OK && !c.Warn {
			return false
		}
	}
	return true
}

func (v *Verification) add(name string, ok bool, warn bool, format string, args ...any) {
	v.Checks = append(v.Checks, Check{Name: name, OK: ok, Warn: warn && !ok, Detail: fmt.Sprintf(format, args...)})
}

// Verify recomputes a draw from stored data, as anyone holding the results
// can: the revealed seed must hash to the commitment published before the
// draw, the participants must match the digest the draw recorded, and the
// winners must be exactly fair.Draw(seed, activity, sorted participants,
// prizes drawn). participants are the users with an accepted entry, in any
// order; awards the activity's stored prizes (instant wins are ignored).
func Verify(c *schemas.ActivityCommitted, d *schemas.DrawCompleted, participants []string, awards []schemas.PrizeAwarded) (*Verification, error) {
	v := &Verification{}
	seed, err := hex.DecodeString(d.Seed)
	if err != nil || len(seed) != 32 {
		return nil, fmt.Errorf("verifying draw of %s: the revealed seed %q is not 32 bytes of hex", d.ActivityID, d.Seed)
	}
	h := fair.SeedHash(seed)
	v.add("seed commitment", h == c.SeedHash && h == d.SeedHash, false,
		"sha256(revealed seed) = %s; committed %s at %s", h, c.SeedHash, c.CommittedAt.Format("2006-01-02T15:04:05.000Z07:00"))
	v.add("commitment before joining", !c.CommittedAt.After(c.JoinFrom), true,
		"committed at %s, joining opened at %s", c.CommittedAt.Format("2006-01-02T15:04:05Z07:00"), c.JoinFrom.Format("2006-01-02T15:04:05Z07:00"))
	sorted := fair.Normalize(participants)
	digest := fair.Digest(sorted)
	v.add("participants", digest == d.ParticipantsDigest && int64(len(sorted)) == d.Participants, false,
		"%d stored participants, digest %s; the draw recorded %d, digest %s", len(sorted), digest, d.Participants, d.ParticipantsDigest)
	tiers, err := ParsePrizes(d.Prizes)
	if err != nil {
		return nil, fmt.Errorf("verifying draw of %s: %w", d.ActivityID, err)
	}
	v.add("prizes drawn", d.Prizes == c.Prizes, true, "drawn %q; latest definition %q", d.Prizes, c.Prizes)
	v.Recomputed = fair.Draw(seed, d.ActivityID, sorted, tiers)
	stored := map[string]schemas.PrizeAwarded{}
	var dups []string
	for _, a := range awards {
		if a.ActivityID != d.ActivityID || a.Source != "draw" {
			continue
		}
		if _, ok := stored[a.UserID]; ok {
			dups = append(dups, a.UserID)
		}
		stored[a.UserID] = a
	}
	nStored := len(stored)
	var diffs []string
	for _, w := range v.Recomputed {
		a, ok := stored[w.UserID]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s (rank %d, %s) is missing", w.UserID, w.Rank, w.TierID))
		case a.TierID != w.TierID || a.Rank != w.Rank:
			diffs = append(diffs, fmt.Sprintf("%s stored as rank %d %s, recomputed rank %d %s", w.UserID, a.Rank, a.TierID, w.Rank, w.TierID))
		}
		delete(stored, w.UserID)
	}
	for u, a := range stored {
		diffs = append(diffs, fmt.Sprintf("%s (rank %d, %s) is not a recomputed winner", u, a.Rank, a.TierID))
	}
	detail := fmt.Sprintf("%d winners recomputed, %d stored (the draw recorded %d)", len(v.Recomputed), nStored, d.Winners)
	for _, u := range dups {
		diffs = append(diffs, u+" is stored twice")
	}
	if len(diffs) > 0 {
		if len(diffs) > 10 {
			diffs = append(diffs[:10], fmt.Sprintf("and %d more", len(diffs)-10))
		}
		detail += ": " + strings.Join(diffs, "; ")
	}
	v.add("winners", len(diffs) == 0 && len(dups) == 0 && int64(len(v.Recomputed)) == d.Winners, false, "%s", detail)
	return v, nil
}

// ParsePrizes reads FormatPrizes' "tier_id:stock,..." back.
func ParsePrizes(s string) ([]fair.Tier, error) {
	if s == "" {
		return nil, nil
	}
	var out []fair.Tier
	for _, part := range strings.Split(s, ",") {
		id, n, ok := strings.Cut(part, ":")
		stock, err := strconv.ParseInt(n, 10, 64)
		if !ok || id == "" || err != nil || stock < 0 {
			return nil, fmt.Errorf("parsing prizes %q: %q is not tier_id:stock", s, part)
		}
		out = append(out, fair.Tier{ID: id, Stock: stock})
	}
	return out, nil
}
