package sharelink

import "errors"

// ErrMalformed is wrapped by the error of a token that is not a canonical
// version-1 token: bad base64, a wrong length, an unknown version, a field
// that breaks its pattern, or trailing bytes.
var ErrMalformed = errors.New("malformed share-link token")

// ErrUnknownKey is wrapped when a token names a key id the keyring does
// not hold (never issued here, or a key retired by rotation).
var ErrUnknownKey = errors.New("share-link token signed with an unknown key")

// ErrBadSignature is wrapped when a token's MAC does not match its
// contents under the named key: forged or altered.
var ErrBadSignature = errors.New("share-link token signature does not match")

// ErrExpired is wrapped by Resolve when a valid token's expiry has passed.
var ErrExpired = errors.New("share-link token expired")

// ErrBadKey is wrapped by NewKeyring for a key it refuses.
var ErrBadKey = errors.New("bad share-link key")

// Forged reports whether err says a token was not made by any key this
// keyring holds (malformed, unknown key, bad signature), as opposed to
// expired.
func Forged(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrBadSignature)
}
