package sharelink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"regexp"
	"sort"
	"sync"
	"time"
)

// Version is the token layout this package writes and reads.
const Version = 1

// Limits of the fields, as the schemas state them.
const (
	MaxKeyID    = 16
	MaxActivity = 64
	MaxInviter  = 128
	// MinSecret is the shortest secret a key may have (bytes): as long as
	// the HMAC-SHA256 output, so the key is not the weak part.
	MinSecret = 32
	macLen    = sha256.Size
	// MaxTokenLen is the length of the longest token (340 characters).
	MaxTokenLen = ((4+MaxKeyID+MaxActivity+MaxInviter+binary.MaxVarintLen64+macLen)*4 + 2) / 3
	// MinTokenLen is the length of the shortest token.
	MinTokenLen = ((4+1+1+1+1+macLen)*4 + 2) / 3
)

// macContext separates these MACs from any other use of the same secret.
const macContext = "promoflow-share-link\x00"

var (
	keyIDPattern    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,15}$`)
	activityPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	userPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)
)

// alphabet marks the characters of unpadded base64url.
var alphabet = func() (t [256]bool) {
	for _, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" {
		t[c] = true
	}
	return t
}()

// Link is what a token says.
type Link struct {
	ActivityID string
	Inviter    string
	// ExpiresAt is the first instant the link no longer binds (whole
	// seconds, UTC).
	ExpiresAt time.Time
	// KeyID names the key that signed it.
	KeyID string
}

// Expired reports whether the link has expired at t.
func (l Link) Expired(t time.Time) bool { return !t.Before(l.ExpiresAt) }

// Key is one signing key: an id carried in the tokens it signs, and its
// secret.
type Key struct {
	ID     string
	Secret []byte
}

// Keyring holds the keys that verify tokens and names the one that signs
// new ones. It is safe for concurrent use.
type Keyring struct {
	signing string
	keys    map[string]*sync.Pool // key id -> pool of hash.Hash (HMAC under the key)
}

// NewKeyring returns a keyring of keys that signs with the key named
// signing (the first key when signing is empty). Key ids must match
// [A-Za-z0-9][A-Za-z0-9_-]{0,15} and be distinct; secrets must be at least
// MinSecret bytes. A keyring without keys is valid and refuses every token
// as signed with an unknown key; it cannot sign.
func NewKeyring(signing string, keys ...Key) (*Keyring, error) {
	k := &Keyring{keys: map[string]*sync.Pool{}}
	for _, key := range keys {
		if !keyIDPattern.MatchString(key.ID) {
			return nil, fmt.Errorf("key id %.40q must match %s: %w", key.ID, keyIDPattern, ErrBadKey)
		}
		if _, dup := k.keys[key.ID]; dup {
			return nil, fmt.Errorf("key id %q is listed twice: %w", key.ID, ErrBadKey)
		}
		if len(key.Secret) < MinSecret {
			return nil, fmt.Errorf("key %s: secret of %d bytes, need at least %d: %w", key.ID, len(key.Secret), MinSecret, ErrBadKey)
		}
		secret := append([]byte(nil), key.Secret...)
		k.keys[key.ID] = &sync.Pool{New: func() any { return hmac.New(sha256.New, secret) }}
	}
	if signing == "" && len(keys) > 0 {
		signing = keys[0].ID
	}
	if signing != "" {
		if _, ok := k.keys[signing]; !ok {
			return nil, fmt.Errorf("signing key %q is not among the keys: %w", signing, ErrBadKey)
		}
	}
	k.signing = signing
	return k, nil
}

// SigningKey returns the id of the key new tokens are signed with, or ""
// when the keyring has no keys.
func (k *Keyring) SigningKey() string { return k.signing }

// KeyIDs returns the ids of the keys that verify, sorted.
func (k *Keyring) KeyIDs() []string {
	out := make([]string, 0, len(k.keys))
	for id := range k.keys {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Sign returns the token of a link to activity shared by inviter, valid
// until expires (truncated to the second). It fails on ids that break the
// schemas' patterns, an expiry not after the Unix epoch, or a keyring
// without keys.
func (k *Keyring) Sign(activity, inviter string, expires time.Time) (string, error) {
	if k.signing == "" {
		return "", fmt.Errorf("signing a share link: no key: %w", ErrBadKey)
	}
	if !activityPattern.MatchString(activity) {
		return "", fmt.Errorf("signing a share link: activity id %.70q must match %s", activity, activityPattern)
	}
	if !userPattern.MatchString(inviter) {
		return "", fmt.Errorf("signing a share link: inviter %.130q must match %s", inviter, userPattern)
	}
	sec := expires.Unix()
	if sec <= 0 {
		return "", fmt.Errorf("signing a share link: expiry %s is not after the Unix epoch", expires.UTC().Format(time.RFC3339))
	}
	b := make([]byte, 0, 4+len(k.signing)+len(activity)+len(inviter)+binary.MaxVarintLen64+macLen)
	b = append(b, Version)
	for _, f := range []string{k.signing, activity, inviter} {
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendUvarint(b, uint64(sec))
	b = k.mac(k.signing, b, b)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// mac appends the MAC of payload under key id (which must exist) to dst.
func (k *Keyring) mac(id string, dst, payload []byte) []byte {
	pool := k.keys[id]
	h := pool.Get().(hash.Hash)
	h.Reset()
	h.Write([]byte(macContext))
	h.Write(payload)
	dst = h.Sum(dst)
	pool.Put(h)
	return dst
}

// Verify checks token's form and signature and returns what it says,
// whether or not it has expired. The error wraps ErrMalformed,
// ErrUnknownKey or ErrBadSignature.
func (k *Keyring) Verify(token string) (Link, error) {
	l, payload, mac, err := Parse(token)
	if err != nil {
		return Link{}, err
	}
	if _, ok := k.keys[l.KeyID]; !ok {
		return Link{}, fmt.Errorf("key id %q: %w", l.KeyID, ErrUnknownKey)
	}
	var buf [macLen]byte
	if !hmac.Equal(k.mac(l.KeyID, buf[:0], payload), mac) {
		return Link{}, ErrBadSignature
	}
	return l, nil
}

// Resolve is Verify, then fails with ErrExpired (returning the link too)
// when the link has expired at t.
func (k *Keyring) Resolve(token string, t time.Time) (Link, error) {
	l, err := k.Verify(token)
	if err != nil {
		return Link{}, err
	}
	if l.Expired(t) {
		return l, fmt.Errorf("expired at %s: %w", l.ExpiresAt.Format(time.RFC3339), ErrExpired)
	}
	return l, nil
}

// Parse reads token's fields without checking its signature: payload is
// the signed part and mac the signature. Only Verify may trust what it
// returns. The error wraps ErrMalformed.
func Parse(token string) (l Link, payload, mac []byte, err error) {
	bad := func(format string, args ...any) (Link, []byte, []byte, error) {
		return Link{}, nil, nil, fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrMalformed)
	}
	if len(token) < MinTokenLen || len(token) > MaxTokenLen {
		return bad("%d characters, want %d to %d", len(token), MinTokenLen, MaxTokenLen)
	}
	// The decoder skips \r and \n even when strict; nothing but the
	// alphabet is canonical.
	for i := 0; i < len(token); i++ {
		if !alphabet[token[i]] {
			return bad("not unpadded base64url")
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil {
		return bad("not unpadded base64url")
	}
	if len(raw) < 1+macLen || raw[0] != Version {
		return bad("unknown version")
	}
	payload, mac = raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	rest := payload[1:]
	field := func(max int, pattern *regexp.Regexp) (string, bool) {
		if len(rest) < 1 || int(rest[0]) > max || len(rest) < 1+int(rest[0]) {
			return "", false
		}
		v := string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
		return v, pattern.MatchString(v)
	}
	var ok bool
	if l.KeyID, ok = field(MaxKeyID, keyIDPattern); !ok {
		return bad("bad key id")
	}
	if l.ActivityID, ok = field(MaxActivity, activityPattern); !ok {
		return bad("bad activity id")
	}
	if l.Inviter, ok = field(MaxInviter, userPattern); !ok {
		return bad("bad inviter")
	}
	sec, n := binary.Uvarint(rest)
	if n <= 0 || n != len(rest) || n != len(binary.AppendUvarint(nil, sec)) || sec == 0 || sec > 1<<40 {
		return bad("bad expiry")
	}
	l.ExpiresAt = time.Unix(int64(sec), 0).UTC()
	return l, payload, mac, nil
}

// Issued is a link as the HTTP API hands it out (POST /v1/share-links)
// and resolves it (GET /v1/share-links/{token}): the token, the URL to
// share and what the token says.
type Issued struct {
	Token      string    `json:"token"`
	URL        string    `json:"url,omitempty"`
	ActivityID string    `json:"activity_id"`
	Inviter    string    `json:"inviter"`
	ExpiresAt  time.Time `json:"expires_at"`
	KeyID      string    `json:"key_id"`
}
