package sharelink

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	secretA = bytes.Repeat([]byte("a"), 32)
	secretB = []byte("0123456789abcdef0123456789abcdef-b")
)

func ring(t testing.TB, signing string, keys ...Key) *Keyring {
	t.Helper()
	k, err := NewKeyring(signing, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSignVerifyRoundTrip(t *testing.T) {
	k := ring(t, "", Key{"k1", secretA})
	exp := time.Date(2030, 1, 2, 3, 4, 5, 999, time.UTC)
	for _, c := range []struct{ activity, inviter string }{
		{"spring-share", "u42"},
		{"A", "0"},
		{strings.Repeat("a", 64), strings.Repeat("z", 128)},
		{"act:2025.11_x-y", "mail@example.com"},
	} {
		tok, err := k.Sign(c.activity, c.inviter, exp)
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) < MinTokenLen || len(tok) > MaxTokenLen {
			t.Errorf("token of %d characters outside [%d, %d]", len(tok), MinTokenLen, MaxTokenLen)
		}
		l, err := k.Verify(tok)
		if err != nil {
			t.Fatalf("verifying %q: %v", tok, err)
		}
		want := Link{ActivityID: c.activity, Inviter: c.inviter, ExpiresAt: exp.Truncate(time.Second), KeyID: "k1"}
		if l != want {
			t.Errorf("got %+v, want %+v", l, want)
		}
	}
	// The longest token is MaxTokenLen.
	k16 := ring(t, "", Key{strings.Repeat("k", 16), secretA})
	tok, err := k16.Sign(strings.Repeat("a", 64), strings.Repeat("z", 128), time.Unix(1<<40, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) > MaxTokenLen {
		t.Errorf("longest token has %d characters, MaxTokenLen is %d", len(tok), MaxTokenLen)
	}
}

func TestVerifyRefusesForgeries(t *testing.T) {
	k := ring(t, "k1", Key{"k1", secretA}, Key{"k2", secretB})
	exp := time.Now().Add(time.Hour)
	tok, err := k.Sign("act-1", "alice", exp)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	enc := base64.RawURLEncoding.EncodeToString
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return enc(b)
	}
	// A token claiming another inviter, signed by an attacker with their own key.
	attacker := ring(t, "k1", Key{"k1", bytes.Repeat([]byte("x"), 32)})
	forged, _ := attacker.Sign("act-1", "mallory", exp)
	// Same fields re-signed with a key this ring does not hold.
	stranger := ring(t, "k9", Key{"k9", secretA})
	unknown, _ := stranger.Sign("act-1", "alice", exp)
	// The payload with the inviter changed and the old MAC kept.
	swapped := strings.Replace(string(raw), "alice", "alicf", 1)

	for _, c := range []struct {
		name  string
		token string
		want  error
	}{
		{"forged with another secret", forged, ErrBadSignature},
		{"unknown key id", unknown, ErrUnknownKey},
		{"inviter changed", enc([]byte(swapped)), ErrBadSignature},
		{"mac bit flipped", flip(len(raw) - 1), ErrBadSignature},
		{"expiry bit flipped", flip(len(raw) - macLen - 1), ErrBadSignature},
		{"version changed", flip(0), ErrMalformed},
		{"truncated", tok[:len(tok)-4], ErrMalformed},
		{"extra byte", enc(append(append([]byte(nil), raw...), 0)), ErrMalformed},
		{"padding", tok + "==", ErrMalformed},
		{"standard base64", base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{0xff}, 60)), ErrMalformed},
		{"not base64", strings.Repeat("!", 60), ErrMalformed},
		{"empty", "", ErrMalformed},
		{"too long", strings.Repeat("A", MaxTokenLen+1), ErrMalformed},
		{"mac only", enc(bytes.Repeat([]byte{1}, macLen+8)), ErrMalformed},
	} {
		t.Run(c.name, func(t *testing.T) {
			l, err := k.Verify(c.token)
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %+v, %v; want %v", l, err, c.want)
			}
			if !Forged(err) {
				t.Errorf("Forged(%v) = false", err)
			}
		})
	}
}

func TestNonCanonicalEncodingsAreRefused(t *testing.T) {
	k := ring(t, "", Key{"k1", secretA})
	tok, err := k.Sign("act", "bob", time.Unix(1_900_000_000, 0))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	// Non-zero trailing bits in the last character decode to the same bytes
	// in lenient decoders; the strict decoder refuses them.
	if len(raw)%3 != 0 {
		last := tok[len(tok)-1]
		idx := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", last)
		alt := tok[:len(tok)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[idx|1])
		if alt != tok {
			if _, err := k.Verify(alt); err == nil {
				t.Errorf("a token with non-zero trailing bits verified")
			}
		}
	}
	// A non-minimal varint for the same expiry.
	l, payload, _, err := Parse(tok)
	if err != nil {
		t.Fatal(err)
	}
	head := payload[:len(payload)-5] // 1_900_000_000 takes 5 varint bytes
	long := append(append([]byte(nil), head...), payload[len(payload)-5:]...)
	long[len(long)-1] |= 0x80
	long = append(long, 0x00)
	resigned := k.mac("k1", long, long)
	if _, err := k.Verify(base64.RawURLEncoding.EncodeToString(resigned)); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-minimal varint expiry: %v, want ErrMalformed (link %+v)", err, l)
	}
}

func TestResolveExpiry(t *testing.T) {
	k := ring(t, "", Key{"k1", secretA})
	exp := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	tok, _ := k.Sign("a", "u", exp)
	if _, err := k.Resolve(tok, exp.Add(-time.Nanosecond)); err != nil {
		t.Errorf("just before expiry: %v", err)
	}
	l, err := k.Resolve(tok, exp)
	if !errors.Is(err, ErrExpired) || Forged(err) {
		t.Errorf("at expiry: %v, want ErrExpired", err)
	}
	if l.Inviter != "u" {
		t.Errorf("expired link not returned: %+v", l)
	}
}

func TestRotation(t *testing.T) {
	old := ring(t, "", Key{"k1", secretA})
	tok1, _ := old.Sign("a", "u", time.Now().Add(time.Hour))
	rotated := ring(t, "k2", Key{"k1", secretA}, Key{"k2", secretB})
	tok2, _ := rotated.Sign("a", "u", time.Now().Add(time.Hour))
	for _, tok := range []string{tok1, tok2} {
		if _, err := rotated.Verify(tok); err != nil {
			t.Errorf("rotated keyring refuses %q: %v", tok, err)
		}
	}
	if l, _ := rotated.Verify(tok2); l.KeyID != "k2" {
		t.Errorf("new links signed with %q, want k2", l.KeyID)
	}
	retired := ring(t, "", Key{"k2", secretB})
	if _, err := retired.Verify(tok1); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("token of a retired key: %v, want ErrUnknownKey", err)
	}
}

func TestNewKeyringAndSignRefuseBadInput(t *testing.T) {
	for _, c := range []struct {
		name    string
		signing string
		keys    []Key
	}{
		{"short secret", "", []Key{{"k1", []byte("short")}}},
		{"bad id", "", []Key{{"k 1", secretA}}},
		{"long id", "", []Key{{strings.Repeat("k", 17), secretA}}},
		{"duplicate id", "", []Key{{"k1", secretA}, {"k1", secretB}}},
		{"signing key missing", "k2", []Key{{"k1", secretA}}},
		{"signing without keys", "k1", nil},
	} {
		if _, err := NewKeyring(c.signing, c.keys...); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: %v, want ErrBadKey", c.name, err)
		}
	}
	empty := ring(t, "")
	if _, err := empty.Sign("a", "u", time.Now()); !errors.Is(err, ErrBadKey) {
		t.Errorf("signing without keys: %v", err)
	}
	k := ring(t, "", Key{"k1", secretA})
	tok, _ := k.Sign("a", "u", time.Now().Add(time.Hour))
	if _, err := empty.Verify(tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("empty keyring verifies: %v", err)
	}
	for _, c := range []struct{ activity, inviter string }{
		{"", "u"}, {"a", ""}, {"a b", "u"}, {"a", "u|v"}, {strings.Repeat("a", 65), "u"}, {"a", strings.Repeat("u", 129)},
	} {
		if _, err := k.Sign(c.activity, c.inviter, time.Now().Add(time.Hour)); err == nil {
			t.Errorf("Sign(%q, %q) succeeded", c.activity, c.inviter)
		}
	}
	if _, err := k.Sign("a", "u", time.Unix(0, 0)); err == nil {
		t.Errorf("Sign with expiry at the epoch succeeded")
	}
	// The caller's secret may change after NewKeyring without effect.
	s := append([]byte(nil), secretA...)
	k2 := ring(t, "", Key{"k1", s})
	s[0] = 'X'
	if _, err := k2.Verify(tok); err != nil {
		t.Errorf("keyring depends on the caller's secret slice: %v", err)
	}
}

// FuzzVerifyToken feeds arbitrary strings to the parser and verifier: they
// never panic, only canonical tokens parse, and a token accepted by Verify
// is one this keyring signs byte for byte.
func FuzzVerifyToken(f *testing.F) {
	k := ring(f, "k1", Key{"k1", secretA}, Key{"k2", secretB})
	for _, c := range []struct{ a, u string }{{"act-1", "alice"}, {"a", "0"}, {strings.Repeat("a", 64), strings.Repeat("u", 128)}} {
		tok, err := k.Sign(c.a, c.u, time.Unix(1_900_000_000, 0))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
		f.Add(tok[:len(tok)-1])
		f.Add(tok + "A")
	}
	f.Add("")
	f.Add(strings.Repeat("A", 54))
	f.Add(strings.Repeat("_", MaxTokenLen))
	f.Fuzz(func(t *testing.T, tok string) {
		l, payload, mac, err := Parse(tok)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse error %v does not wrap ErrMalformed", err)
			}
			if _, verr := k.Verify(tok); !errors.Is(verr, ErrMalformed) {
				t.Fatalf("Parse refuses (%v) but Verify says %v", err, verr)
			}
			return
		}
		// Canonical: the fields re-encode to the same bytes.
		if got := base64.RawURLEncoding.EncodeToString(append(append([]byte(nil), payload...), mac...)); got != tok {
			t.Fatalf("parsed token %q is not canonical (re-encodes to %q)", tok, got)
		}
		v, err := k.Verify(tok)
		if err != nil {
			if !Forged(err) {
				t.Fatalf("Verify error %v is neither malformed, unknown key nor bad signature", err)
			}
			return
		}
		if v != l {
			t.Fatalf("Verify %+v differs from Parse %+v", v, l)
		}
		k1 := ring(t, v.KeyID, Key{"k1", secretA}, Key{"k2", secretB})
		again, err := k1.Sign(v.ActivityID, v.Inviter, v.ExpiresAt)
		if err != nil || again != tok {
			t.Fatalf("verified token %q re-signs to %q (%v)", tok, again, err)
		}
	})
}
