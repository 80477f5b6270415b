package health

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadyzReportsEveryCheck(t *testing.T) {
	var redisDown atomic.Bool
	c := &Checker{CacheFor: -1, Checks: func() []Check {
		return []Check{
			{Name: "stage coupon", Probe: func(context.Context) (string, error) { return "owns 12 partition(s)", nil }},
			{Name: "redis", Probe: func(context.Context) (string, error) {
				if redisDown.Load() {
					return "", errors.New("redis unreachable: connection refused")
				}
				return "", nil
			}},
		}
	}}
	get := func() (int, Report) {
		rec := httptest.NewRecorder()
		c.Readyz(rec, httptest.NewRequest("GET", "/readyz", nil))
		var r Report
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		return rec.Code, r
	}
	code, r := get()
	if code != http.StatusOK || !r.Ready() || r.Checks["stage coupon"].Detail != "owns 12 partition(s)" || len(r.Failing()) != 0 {
		t.Fatalf("all passing: %d %+v", code, r)
	}
	redisDown.Store(true)
	code, r = get()
	if code != http.StatusServiceUnavailable || r.Ready() || r.Checks["redis"].OK || r.Checks["redis"].Detail != "redis unreachable: connection refused" ||
		!r.Checks["stage coupon"].OK || len(r.Failing()) != 1 || r.Failing()[0] != "redis" {
		t.Fatalf("redis down: %d %+v", code, r)
	}
}

func TestReportTimesOutASlowCheck(t *testing.T) {
	c := &Checker{Timeout: 50 * time.Millisecond, Checks: func() []Check {
		return []Check{{Name: "slow", Probe: func(ctx context.Context) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}}}
	}}
	start := time.Now()
	r := c.Report(context.Background())
	if r.Ready() || time.Since(start) > 2*time.Second {
		t.Fatalf("slow check: %+v after %s", r, time.Since(start))
	}
}

func TestReportIsReusedBriefly(t *testing.T) {
	var runs atomic.Int32
	c := &Checker{CacheFor: time.Hour, Checks: func() []Check {
		return []Check{{Name: "x", Probe: func(context.Context) (string, error) { runs.Add(1); return "", nil }}}
	}}
	for i := 0; i < 5; i++ {
		c.Report(context.Background())
	}
	if runs.Load() != 1 {
		t.Fatalf("checks ran %d times within the cache period", runs.Load())
	}
	// No checks at all: ready.
	if r := (&Checker{}).Report(context.Background()); !r.Ready() {
		t.Fatalf("no checks: %+v", r)
	}
}

func TestHealthz(t *testing.T) {
	rec := httptest.NewRecorder()
	Healthz(rec, httptest.NewRequest("GET", "/healthz", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v", rec.Code, rec.Header())
	}
}
