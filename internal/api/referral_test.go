package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/referral"
	"github.com/promoflow/promoflow/schemas"
)

var linkSecret = []byte("0123456789abcdef0123456789abcdef")

// linkServer serves share links for activity "spring" (links of at most
// 7 days, ending in 30 days), "off" (disabled) and "over" (ended).
func linkServer(t testing.TB) (*Server, *sharelink.Keyring) {
	t.Helper()
	keys, err := sharelink.NewKeyring("k1", sharelink.Key{ID: "k1", Secret: linkSecret})
	if err != nil {
		t.Fatal(err)
	}
	acts := referral.NewActivities()
	for _, a := range []struct {
		id, status string
		ends       time.Time
	}{{"spring", schemas.BatchActive, now.Add(30 * 24 * time.Hour)}, {"off", schemas.BatchDisabled, now.Add(time.Hour)}, {"over", schemas.BatchActive, now}, {"soon", schemas.BatchActive, now.Add(time.Hour + 500*time.Millisecond)}} {
		acts.Put(&schemas.ReferralActivityDefined{ActivityID: a.id, Revision: 1, Status: a.status, StartsAt: now.Add(-time.Hour), EndsAt: a.ends,
			QualifyingAction: schemas.QualifyNone, LinkTTLSeconds: 7 * 86400})
	}
	s, err := New(Config{Coupons: &fakeCoupons{}, Batches: coupon.NewBatches(), Now: func() time.Time { return now },
		ShareLinks: &ShareLinks{Keys: keys, Activities: acts, URL: func(tok string) string { return "https://shop.example/r/" + tok }}})
	if err != nil {
		t.Fatal(err)
	}
	return s, keys
}

func serve(s *Server, method, path, body string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return rec
}

func TestCreateAndResolveShareLink(t *testing.T) {
	s, keys := linkServer(t)
	for _, c := range []struct {
		name, body string
		ttl        time.Duration
	}{
		{"default ttl", `{"activity_id":"spring","inviter":"alice"}`, 7 * 24 * time.Hour},
		{"seconds", `{"activity_id":"spring","inviter":"alice","ttl":3600}`, time.Hour},
		{"duration", `{"activity_id":"spring","inviter":"alice","ttl":"90m"}`, 90 * time.Minute},
		{"capped by the activity", `{"activity_id":"spring","inviter":"alice","ttl":"720h"}`, 7 * 24 * time.Hour},
		{"huge seconds capped", `{"activity_id":"spring","inviter":"alice","ttl":9223372036854775807}`, 7 * 24 * time.Hour},
		{"capped by the activity's end, rounded up", `{"activity_id":"soon","inviter":"alice"}`, time.Hour + time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(s, http.MethodPost, "/v1/share-links", c.body)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var got ShareLink
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.ExpiresAt.Sub(now) != c.ttl || got.Inviter != "alice" || got.KeyID != "k1" || got.URL != "https://shop.example/r/"+got.Token {
				t.Errorf("got %+v, want expiry in %s", got, c.ttl)
			}
			l, err := keys.Verify(got.Token)
			if err != nil || l.ActivityID != got.ActivityID || l.Inviter != "alice" || !l.ExpiresAt.Equal(got.ExpiresAt) {
				t.Fatalf("the token does not verify to what was answered: %+v, %v", l, err)
			}
			res := serve(s, http.MethodGet, "/v1/share-links/"+got.Token, "")
			var resolved ShareLink
			if res.Code != http.StatusOK || json.Unmarshal(res.Body.Bytes(), &resolved) != nil || resolved != got {
				t.Errorf("resolving: %d %s, want %+v", res.Code, res.Body, got)
			}
		})
	}
}

func TestShareLinkRefusals(t *testing.T) {
	s, keys := linkServer(t)
	attacker, _ := sharelink.NewKeyring("k1", sharelink.Key{ID: "k1", Secret: bytes.Repeat([]byte("x"), 32)})
	forged, _ := attacker.Sign("spring", "mallory", now.Add(time.Hour))
	expired, _ := keys.Sign("spring", "alice", now)
	unknown, _ := keys.Sign("nowhere", "alice", now.Add(time.Hour))
	disabled, _ := keys.Sign("off", "alice", now.Add(time.Hour))
	tampered := []byte(forged)
	tampered[10] ^= 1
	for _, c := range []struct {
		name, method, path, body, reason string
		code                             int
	}{
		{"unknown activity", "POST", "/v1/share-links", `{"activity_id":"nowhere","inviter":"alice"}`, schemas.RejectUnknownActivity, 400},
		{"disabled activity", "POST", "/v1/share-links", `{"activity_id":"off","inviter":"alice"}`, schemas.RejectActivityDisabled, 400},
		{"ended activity", "POST", "/v1/share-links", `{"activity_id":"over","inviter":"alice"}`, schemas.RejectEnded, 400},
		{"bad inviter", "POST", "/v1/share-links", `{"activity_id":"spring","inviter":"a b"}`, "bad_request", 400},
		{"missing inviter", "POST", "/v1/share-links", `{"activity_id":"spring"}`, "bad_request", 400},
		{"unknown field", "POST", "/v1/share-links", `{"activity_id":"spring","inviter":"a","by":"x"}`, "bad_request", 400},
		{"two values", "POST", "/v1/share-links", `{"activity_id":"spring","inviter":"a"}{}`, "bad_request", 400},
		{"not json", "POST", "/v1/share-links", `activity=spring`, "bad_request", 400},
		{"huge body", "POST", "/v1/share-links", `{"activity_id":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, "bad_request", 400},
		{"short ttl", "POST", "/v1/share-links", `{"activity_id":"spring","inviter":"a","ttl":"10s"}`, "bad_ttl", 400},
		{"negative ttl", "POST", "/v1/share-links", `{"activity_id":"spring","inviter":"a","ttl":-5}`, "bad_ttl", 400},
		{"bad ttl", "POST", "/v1/share-links", `{"activity_id":"spring","inviter":"a","ttl":"soon"}`, "bad_ttl", 400},
		{"fractional ttl", "POST", "/v1/share-links", `{"activity_id":"spring","inviter":"a","ttl":1.5}`, "bad_ttl", 400},
		{"forged", "GET", "/v1/share-links/" + forged, "", schemas.RefuseBadToken, 400},
		{"tampered", "GET", "/v1/share-links/" + string(tampered), "", schemas.RefuseBadToken, 400},
		{"garbage", "GET", "/v1/share-links/not-a-token", "", schemas.RefuseBadToken, 400},
		{"expired", "GET", "/v1/share-links/" + expired, "", schemas.RefuseExpiredToken, 400},
		{"token of an unknown activity", "GET", "/v1/share-links/" + unknown, "", schemas.RejectUnknownActivity, 400},
		{"token of a disabled activity", "GET", "/v1/share-links/" + disabled, "", schemas.RejectActivityDisabled, 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := serve(s, c.method, c.path, c.body)
			var e linkError
			if rec.Code != c.code || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Reason != c.reason || e.Error == "" {
				t.Errorf("%d %s, want %d with reason %s", rec.Code, rec.Body, c.code, c.reason)
			}
		})
	}
}

func TestShareLinksNeedConfigAndKeys(t *testing.T) {
	s, _ := testServer(t, time.Second)
	if rec := serve(s, http.MethodPost, "/v1/share-links", `{"activity_id":"spring","inviter":"a"}`); rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("share links served without ShareLinks: %d", rec.Code)
	}
	empty, _ := sharelink.NewKeyring("")
	acts := referral.NewActivities()
	acts.Put(&schemas.ReferralActivityDefined{ActivityID: "spring", Revision: 1, Status: schemas.BatchActive, StartsAt: now.Add(-time.Hour),
		EndsAt: now.Add(time.Hour), QualifyingAction: schemas.QualifyNone, LinkTTLSeconds: 3600})
	s2, err := New(Config{Coupons: &fakeCoupons{}, Batches: coupon.NewBatches(), Now: func() time.Time { return now },
		ShareLinks: &ShareLinks{Keys: empty, Activities: acts}})
	if err != nil {
		t.Fatal(err)
	}
	if rec := serve(s2, http.MethodPost, "/v1/share-links", `{"activity_id":"spring","inviter":"a"}`); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("signing without keys: %d %s, want 503", rec.Code, rec.Body)
	}
}

// FuzzShareLinkRequest sends arbitrary bodies and paths: the handlers never
// panic, answer 200 only with a token that verifies to what they said, and
// refuse everything else with 400 and a reason.
func FuzzShareLinkRequest(f *testing.F) {
	s, keys := linkServer(f)
	tok, _ := keys.Sign("spring", "alice", now.Add(time.Hour))
	f.Add(`{"activity_id":"spring","inviter":"alice"}`, tok)
	f.Add(`{"activity_id":"spring","inviter":"alice","ttl":"1h"}`, tok[:20])
	f.Add(`{"activity_id":"spring","inviter":"alice","ttl":3600}`, "")
	f.Add(`{"activity_id":"spring","inviter":"alice","ttl":null}`, "%2F..%2F")
	f.Add(`[]`, strings.Repeat("A", 400))
	f.Fuzz(func(t *testing.T, body, token string) {
		for _, req := range []*http.Request{
			httptest.NewRequest(http.MethodPost, "/v1/share-links", strings.NewReader(body)),
			{Method: http.MethodGet, URL: mustURL("/v1/share-links/x"), Header: http.Header{}},
		} {
			if req.Method == http.MethodGet {
				req.SetPathValue("token", token)
				rec := httptest.NewRecorder()
				s.resolveShareLink(rec, req)
				check(t, keys, rec)
				continue
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			check(t, keys, rec)
		}
	})
}

func check(t *testing.T, keys *sharelink.Keyring, rec *httptest.ResponseRecorder) {
	t.Helper()
	switch rec.Code {
	case http.StatusOK:
		var got ShareLink
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("200 with %s: %v", rec.Body, err)
		}
		l, err := keys.Resolve(got.Token, now)
		if err != nil || l.ActivityID != got.ActivityID || l.Inviter != got.Inviter || !l.ExpiresAt.Equal(got.ExpiresAt) {
			t.Fatalf("200 with a link %+v that resolves to %+v, %v", got, l, err)
		}
	case http.StatusBadRequest:
		var e linkError
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Reason == "" {
			t.Fatalf("400 without a reason: %s", rec.Body)
		}
	default:
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
