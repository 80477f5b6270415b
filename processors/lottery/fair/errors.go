package fair

import "errors"

// ErrMalformedOdds is returned (wrapped) by ParseOdds when a recorded odds
// string is not in the form FormatOdds writes: an entry is not
// "<tier>:<ppm>", a tier id is empty, a ppm is not a canonical decimal in
// [0, OddsScale], or the ppm values add up to more than OddsScale.
var ErrMalformedOdds = errors.New("malformed odds")
