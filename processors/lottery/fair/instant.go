package fair

import (
	"fmt"
	"strconv"
	"strings"
)

// instantDomain separates instant-win streams from draws. A change to the
// instant-win rules needs a new domain, never an edit of this one.
const instantDomain = "promoflow-instant-v1"

// OddsScale is the denominator of instant-win probabilities: odds are in
// parts per million, and a roll is uniform in [0, OddsScale).
const OddsScale = 1_000_000

// Roll returns the roll of one instant-win participation, uniform in
// [0, OddsScale): NewStream("promoflow-instant-v1", seed, []byte(activityID),
// []byte(appID), []byte(eventID)).Intn(OddsScale). A redelivered event gets
// the same roll.
func Roll(seed []byte, activityID, appID, eventID string) int64 {
	s := NewStream(instantDomain, seed, []byte(activityID), []byte(appID), []byte(eventID))
	return int64(s.Intn(OddsScale))
}

// Odds is one tier's probability of an instant win, in parts per million,
// with the stock it has left.
type Odds struct {
	TierID    string
	PPM       int64
	Remaining int64
}

// Effective returns the odds in force, as a new slice in the same order:
// a tier whose Remaining <= 0 gets PPM 0 and the others keep theirs. The
// share of an exhausted tier goes to "no prize"; nothing is silently
// redistributed to the tiers still in stock. (Pick's ranges after an
// exhausted tier move down, keeping their sizes, so which rolls win a tier
// may change while its probability does not.)
func Effective(tiers []Odds) []Odds {
	out := make([]Odds, len(tiers))
	for i, t := range tiers {
		if t.Remaining <= 0 {
			t.PPM = 0
		}
		out[i] = t
	}
	return out
}

// Pick returns the index of the tier that roll wins against effective odds,
// or -1 for no prize. The tiers cover consecutive ranges in the given order:
// roll < ppm0 wins tier 0, roll < ppm0+ppm1 wins tier 1, and so on. A
// negative PPM counts as 0, and a roll outside [0, OddsScale), which Roll
// never returns, wins nothing.
func Pick(roll int64, effective []Odds) int {
	if roll < 0 || roll >= OddsScale {
		return -1
	}
	var cum int64
	for i, t := range effective {
		// Clamping keeps cum below 2*OddsScale: no overflow, and a ppm above
		// OddsScale already covers every roll.
		cum += min(max(t.PPM, 0), OddsScale)
		if roll < cum {
			return i
		}
	}
	return -1
}

// FormatOdds renders effective odds for a result record as
// "tierA:100000,tierB:0" with the tier order kept; no odds render as "".
// Tier ids must be non-empty and contain neither ',' nor ':' for ParseOdds
// to read the record back.
func FormatOdds(effective []Odds) string {
	var b strings.Builder
	for i, t := range effective {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(t.TierID)
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(t.PPM, 10))
	}
	return b.String()
}

// ParseOdds reads odds written by FormatOdds; Remaining is not recorded and
// is left 0. It accepts only what FormatOdds writes for valid odds, so
// FormatOdds(ParseOdds(s)) == s whenever it succeeds. It returns an error
// wrapping ErrMalformedOdds when an entry is not "<tier>:<ppm>", a tier id
// is empty, a ppm is not a decimal in [0, OddsScale] without sign or
// leading zeros, or the ppm values add up to more than OddsScale.
func ParseOdds(s string) ([]Odds, error) {
	if s == "" {
		return nil, nil
	}
	entries := strings.Split(s, ",")
	out := make([]Odds, 0, len(entries))
	var sum int64
	for i, e := range entries {
		id, num, ok := strings.Cut(e, ":")
		if !ok {
			return nil, fmt.Errorf("parsing odds entry %d %q: %w: no ':'", i, e, ErrMalformedOdds)
		}
		if id == "" {
			return nil, fmt.Errorf("parsing odds entry %d %q: %w: empty tier id", i, e, ErrMalformedOdds)
		}
		ppm, ok := parsePPM(num)
		if !ok {
			return nil, fmt.Errorf("parsing odds entry %d %q: %w: ppm is not a decimal in [0, %d]", i, e, ErrMalformedOdds, OddsScale)
		}
		if sum += ppm; sum > OddsScale {
			return nil, fmt.Errorf("parsing odds entry %d %q: %w: odds add up to more than %d", i, e, ErrMalformedOdds, OddsScale)
		}
		out = append(out, Odds{TierID: id, PPM: ppm})
	}
	return out, nil
}

// parsePPM reads a canonical decimal (digits only, no leading zero unless
// it is "0") in [0, OddsScale]. strconv.ParseInt would also take "+5" and
// "007", which FormatOdds never writes.
func parsePPM(s string) (int64, bool) {
	if s == "" || len(s) > 7 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= OddsScale
}
