package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var now = time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)

// fakeCoupons is a CouponReader over a fixed list (the handler's logic is
// under test here; the MySQL reader has its own suite in sinks/).
type fakeCoupons struct {
	rows  map[string][]sinks.CouponRow
	calls int
	err   error
}

func (f *fakeCoupons) UserCoupons(_ context.Context, user string, states ...string) ([]sinks.CouponRow, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	var out []sinks.CouponRow
	for _, r := range f.rows[user] {
		if len(states) == 0 || r.State == states[0] {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeCoupons) CouponOps(context.Context, string, string) ([]schemas.StateChanged, error) {
	return nil, nil
}

func testServer(t *testing.T, ttl time.Duration) (*Server, *fakeCoupons) {
	t.Helper()
	b := coupon.NewBatches()
	b.Put(&schemas.BatchDefined{BatchID: "FIX", Name: "50 off phones", Revision: 1, TotalStock: 10, PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour),
		Status: schemas.BatchActive, Categories: []string{"phone"}, Threshold: 10000, DiscountType: schemas.DiscountFixed, Amount: 5000, ExclusionGroup: "g"})
	b.Put(&schemas.BatchDefined{BatchID: "PCT", Revision: 1, TotalStock: 10, PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour),
		Status: schemas.BatchActive, DiscountType: schemas.DiscountPercent, Percent: 10, Cap: 20000, ExclusionGroup: "g"})
	b.Put(&schemas.BatchDefined{BatchID: "BIG", Revision: 1, TotalStock: 10, PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour),
		Status: schemas.BatchActive, Threshold: 1_000_000, DiscountType: schemas.DiscountFixed, Amount: 100})
	f := &fakeCoupons{rows: map[string][]sinks.CouponRow{"u1": {
		{CouponID: "c-fix", UserID: "u1", BatchID: "FIX", State: schemas.CouponAvailable, ValidFrom: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)},
		{CouponID: "c-pct", UserID: "u1", BatchID: "PCT", State: schemas.CouponAvailable, ValidFrom: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)},
		{CouponID: "c-big", UserID: "u1", BatchID: "BIG", State: schemas.CouponAvailable, ValidFrom: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)},
		{CouponID: "c-old", UserID: "u1", BatchID: "FIX", State: schemas.CouponAvailable, ValidFrom: now.Add(-2 * time.Hour), ExpiresAt: now},
		{CouponID: "c-used", UserID: "u1", BatchID: "FIX", State: schemas.CouponUsed, ValidFrom: now.Add(-time.Hour), ExpiresAt: now.Add(time.Hour)},
	}}}
	s, err := New(Config{Coupons: f, Batches: b, CacheTTL: ttl, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	return s, f
}

func post(t *testing.T, s *Server, path, body string) (*httptest.ResponseRecorder, UsableResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)))
	var resp UsableResponse
	if rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatal(err)
		}
	}
	return rec, resp
}

func TestUsable(t *testing.T) {
	s, _ := testServer(t, -1)
	rec, resp := post(t, s, "/v1/users/u1/coupons/usable", `{"items":[{"sku":"p1","category":"phone","brand":"acme","amount":120000},{"sku":"c1","category":"case","amount":3000}]}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	// PCT gives 10% of 123000 = 12300 > FIX's 5000: PCT wins the group.
	if len(resp.Usable) != 1 || resp.Usable[0].CouponID != "c-pct" || resp.Usable[0].Discount != 12300 {
		t.Fatalf("usable = %+v", resp.Usable)
	}
	reasons := map[string]string{}
	for _, u := range resp.Unusable {
		reasons[u.CouponID] = u.Reason
		if u.CouponID == "c-fix" && u.ExcludedBy != "c-pct" {
			t.Errorf("c-fix excluded by %q, want c-pct", u.ExcludedBy)
		}
	}
	want := map[string]string{"c-fix": "excluded", "c-big": "below_threshold", "c-old": "expired", "c-used": "used"}
	for id, r := range want {
		if reasons[id] != r {
			t.Errorf("%s: reason %q, want %q (all: %v)", id, reasons[id], r, reasons)
		}
	}
	if resp.Usable[0].BatchName != "" || resp.Unusable[0].ExpiresAt.IsZero() {
		t.Errorf("names and expiry not filled: %+v", resp)
	}
}

func TestUsableRejectsBadRequests(t *testing.T) {
	s, f := testServer(t, -1)
	big := `{"items":[` + strings.Repeat(`{"amount":1},`, 201) + `{"amount":1}]}`
	cases := map[string]struct{ path, body, want string }{
		"bad user":        {"/v1/users/%27%3Bdrop/coupons/usable", `{"items":[{"amount":1}]}`, "user id"},
		"not json":        {"/v1/users/u1/coupons/usable", `{"items":`, "decoding the cart"},
		"unknown field":   {"/v1/users/u1/coupons/usable", `{"items":[{"amount":1}],"x":1}`, "unknown field"},
		"empty cart":      {"/v1/users/u1/coupons/usable", `{"items":[]}`, "1 to 200 items"},
		"too many items":  {"/v1/users/u1/coupons/usable", big, "1 to 200 items"},
		"negative amount": {"/v1/users/u1/coupons/usable", `{"items":[{"amount":-1}]}`, "outside"},
		"two values":      {"/v1/users/u1/coupons/usable", `{"items":[{"amount":1}]}{}`, "more than one"},
		"oversized":       {"/v1/users/u1/coupons/usable", `{"items":[{"sku":"` + strings.Repeat("x", MaxBodyBytes) + `"}]}`, "larger than"},
		"long category":   {"/v1/users/u1/coupons/usable", `{"items":[{"category":"` + strings.Repeat("x", 65) + `","amount":1}]}`, "longer than 64"},
	}
	for name, c := range cases {
		rec, _ := post(t, s, c.path, c.body)
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want 400 with %q", name, rec.Code, rec.Body, c.want)
		}
	}
	if f.calls != 0 {
		t.Errorf("a bad request reached the store %d times", f.calls)
	}
}

func TestUsableCachesAUserBriefly(t *testing.T) {
	s, f := testServer(t, time.Second)
	body := `{"items":[{"category":"phone","amount":20000}]}`
	for range 3 {
		if rec, _ := post(t, s, "/v1/users/u1/coupons/usable", body); rec.Code != http.StatusOK {
			t.Fatal(rec.Body)
		}
	}
	if f.calls != 1 {
		t.Fatalf("store read %d times for 3 requests within the TTL, want 1", f.calls)
	}
	s.cfg.Now = func() time.Time { return now.Add(time.Second) }
	post(t, s, "/v1/users/u1/coupons/usable", body)
	if f.calls != 2 {
		t.Fatalf("store read %d times after the TTL, want 2", f.calls)
	}
}

func TestStoreDownIs503(t *testing.T) {
	s, f := testServer(t, -1)
	f.err = context.DeadlineExceeded
	rec, _ := post(t, s, "/v1/users/u1/coupons/usable", `{"items":[{"amount":1}]}`)
	if rec.Code != http.StatusServiceUnavailable || bytes.Contains(rec.Body.Bytes(), []byte("deadline")) {
		t.Fatalf("%d %s: want 503 without internals", rec.Code, rec.Body)
	}
}

func TestCouponsAndHealth(t *testing.T) {
	s, _ := testServer(t, -1)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/users/u1/coupons?state=used", nil))
	var resp CouponsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || len(resp.Coupons) != 1 || resp.Coupons[0].CouponID != "c-used" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusOK {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
}

func FuzzUsableRequest(f *testing.F) {
	f.Add(`{"items":[{"sku":"p1","category":"phone","brand":"acme","amount":120000}]}`)
	f.Add(`{"items":[{"amount":-1}]}`)
	f.Add(`{"items":null}`)
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, body string) {
		s, _ := testServer(t, -1)
		rec, resp := post(t, s, "/v1/users/u1/coupons/usable", body)
		switch rec.Code {
		case http.StatusOK:
			for _, u := range resp.Usable {
				if u.Discount < 0 || u.Discount > u.ScopeAmount && u.Kind != schemas.DiscountPriceIncrease {
					t.Fatalf("discount %d for scope %d", u.Discount, u.ScopeAmount)
				}
			}
		case http.StatusBadRequest:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
