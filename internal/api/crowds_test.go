package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	pathpkg "path"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/sinks"
)

// fakeCrowds is an in-memory sinks.CrowdReader for the handler tests (the
// MySQL store has its own integration tests, and cmd/promoflow tests the
// API over it).
type fakeCrowds struct {
	crowds  map[string]sinks.Crowd
	members map[string][]string // sorted
	fail    error
}

func (f *fakeCrowds) Crowd(_ context.Context, id string) (sinks.Crowd, error) {
	if f.fail != nil {
		return sinks.Crowd{}, f.fail
	}
	c, ok := f.crowds[id]
	if !ok {
		return sinks.Crowd{}, fmt.Errorf("crowd %s: %w", id, sinks.ErrNotFound)
	}
	return c, nil
}

func (f *fakeCrowds) Members(ctx context.Context, id, after string, limit int) ([]string, error) {
	if _, err := f.Crowd(ctx, id); err != nil {
		return nil, err
	}
	all := f.members[id]
	i := sort.SearchStrings(all, after)
	if i < len(all) && all[i] == after {
		i++
	}
	return slices.Clone(all[i:min(len(all), i+limit)]), nil
}

func (f *fakeCrowds) IsMember(ctx context.Context, id, user string) (bool, error) {
	if _, err := f.Crowd(ctx, id); err != nil {
		return false, err
	}
	_, ok := slices.BinarySearch(f.members[id], user)
	return ok, nil
}

func newCrowdServer(t *testing.T, crowds sinks.CrowdReader) http.Handler {
	t.Helper()
	cfg := Config{Coupons: &fakeCoupons{}, Batches: coupon.NewBatches()}
	if crowds != nil {
		cfg.Crowds = crowds
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func getCrowd(t *testing.T, h http.Handler, path string, v any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	if v != nil && rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
			t.Fatalf("GET %s: %v in %s", path, err, rec.Body)
		}
	}
	if rec.Code != http.StatusOK && !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("GET %s: %d without an error message: %s", path, rec.Code, rec.Body)
	}
	return rec.Code
}

func TestCrowdMembersPages(t *testing.T) {
	var users []string
	for i := range 2345 {
		users = append(users, fmt.Sprintf("u%05d", i))
	}
	f := &fakeCrowds{
		crowds:  map[string]sinks.Crowd{"vip": {CrowdID: "vip", AppID: "shop", Trigger: sinks.CrowdRoutine, Day: "20261122"}, "empty": {CrowdID: "empty", Trigger: sinks.CrowdManual}},
		members: map[string][]string{"vip": users},
	}
	h := newCrowdServer(t, f)

	var got []string
	after, pages := "", 0
	for {
		var page CrowdMembersResponse
		path := "/v1/crowds/vip/members?limit=1000"
		if after != "" {
			path += "&after=" + after
		}
		if code := getCrowd(t, h, path, &page); code != http.StatusOK {
			t.Fatalf("GET %s: %d", path, code)
		}
		pages++
		if page.Trigger != sinks.CrowdRoutine || page.Day != "20261122" {
			t.Errorf("page without the crowd's locator entry: %+v", page.Crowd)
		}
		got = append(got, page.Members...)
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if pages != 3 || !slices.Equal(got, users) {
		t.Errorf("%d pages, %d members; want 3 pages and every member once in order", pages, len(got))
	}
	// A crowd of exactly one page ends without a next.
	f.members["vip"] = users[:1000]
	var page CrowdMembersResponse
	getCrowd(t, h, "/v1/crowds/vip/members?limit=1000", &page)
	if len(page.Members) != 1000 || page.Next != "" {
		t.Errorf("exactly one page: %d members, next %q", len(page.Members), page.Next)
	}
	var empty CrowdMembersResponse
	if code := getCrowd(t, h, "/v1/crowds/empty/members", &empty); code != http.StatusOK || empty.Members == nil || len(empty.Members) != 0 {
		t.Errorf("empty crowd: %d %+v", code, empty)
	}

	var m CrowdMemberResponse
	if getCrowd(t, h, "/v1/crowds/vip/members/u00042", &m); !m.Member {
		t.Errorf("u00042 is a member: %+v", m)
	}
	if getCrowd(t, h, "/v1/crowds/vip/members/stranger", &m); m.Member || m.UserID != "stranger" {
		t.Errorf("stranger is not a member: %+v", m)
	}
	var c sinks.Crowd
	if getCrowd(t, h, "/v1/crowds/vip", &c); c.AppID != "shop" {
		t.Errorf("crowd: %+v", c)
	}
}

func TestCrowdRoutesRefuse(t *testing.T) {
	f := &fakeCrowds{crowds: map[string]sinks.Crowd{"vip": {CrowdID: "vip"}}}
	h := newCrowdServer(t, f)
	for path, want := range map[string]int{
		"/v1/crowds/nope/members":                            http.StatusNotFound,
		"/v1/crowds/nope/members/u1":                         http.StatusNotFound,
		"/v1/crowds/nope":                                    http.StatusNotFound,
		"/v1/crowds/vip/members?limit=0":                     http.StatusBadRequest,
		"/v1/crowds/vip/members?limit=10001":                 http.StatusBadRequest,
		"/v1/crowds/vip/members?limit=x":                     http.StatusBadRequest,
		"/v1/crowds/vip/members?limit=1&limit=2":             http.StatusBadRequest,
		"/v1/crowds/vip/members?after=%27%20OR%201%3D1":      http.StatusBadRequest,
		"/v1/crowds/%27;DROP/members":                        http.StatusBadRequest,
		"/v1/crowds/vip/members/" + strings.Repeat("u", 200): http.StatusBadRequest,
	} {
		if code := getCrowd(t, h, path, nil); code != want {
			t.Errorf("GET %s: %d, want %d", path, code, want)
		}
	}
	f.fail = errors.New("connection refused")
	if code := getCrowd(t, h, "/v1/crowds/vip/members", nil); code != http.StatusServiceUnavailable {
		t.Errorf("store down: %d, want 503", code)
	}
	if code := getCrowd(t, newCrowdServer(t, nil), "/v1/crowds/vip/members", nil); code != http.StatusServiceUnavailable {
		t.Errorf("no crowd store: %d, want 503", code)
	}
}

// FuzzCrowdRoutes sends hostile crowd ids, user ids and queries: every
// answer is 200, 400 or 404 with JSON (or the router's redirect to the
// cleaned path when a segment is "." or ".."), never a panic or a 5xx, and a
// page never exceeds its limit.
func FuzzCrowdRoutes(f *testing.F) {
	f.Add("vip", "u1", "after=u0&limit=2")
	f.Add("vip", "", "limit=99999999999999999999")
	f.Add("%00", "a@b", "after=%27&limit=-1")
	f.Add("vip", "u1", "after=u1&after=u2")
	f.Add(".", "0", "0") // found by CI: ServeMux answers 307 to /v1/crowds/members/0
	f.Add("..", "u1", "")
	f.Add("", "0", "0")
	users := []string{"a@b", "u0", "u1", "u2", "z_9"}
	h := newCrowdServer(&testing.T{}, &fakeCrowds{crowds: map[string]sinks.Crowd{"vip": {CrowdID: "vip"}}, members: map[string][]string{"vip": users}})
	f.Fuzz(func(t *testing.T, crowd, user, query string) {
		path := "/v1/crowds/" + url.PathEscape(crowd) + "/members"
		if user != "" {
			path += "/" + url.PathEscape(user)
		}
		req, err := http.NewRequest(http.MethodGet, "http://x"+path+"?"+query, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var page CrowdMembersResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
				t.Fatalf("%s: 200 with %v", path, err)
			}
			if len(page.Members) > MaxCrowdLimit {
				t.Fatalf("%s: %d members", path, len(page.Members))
			}
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			// ServeMux redirects a path with "." or ".." segments or an
			// empty segment to its cleaned form; nothing else may redirect.
			if pathpkg.Clean(req.URL.Path) == req.URL.Path {
				t.Fatalf("%s?%s: redirect %d for a clean path", path, query, rec.Code)
			}
		default:
			t.Fatalf("%s?%s: %d %s", path, query, rec.Code, rec.Body)
		}
	})
}
