package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"
)

// Check is one readiness check.
type Check struct {
	// Name identifies the check in the report (kafka, redis, stage coupon).
	Name string
	// Probe returns nil when the check passes, with an optional note for
	// people (e.g. "idle: no partitions assigned"); an error says why not.
	Probe func(ctx context.Context) (note string, err error)
}

// Result is one check's outcome in a Report.
type Result struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

// Report is the body of /readyz.
type Report struct {
	// Status is "ready" or "not ready".
	Status string            `json:"status"`
	Checks map[string]Result `json:"checks"`
}

// Ready reports whether every check passed.
func (r Report) Ready() bool { return r.Status == statusReady }

// Failing returns the names of the checks that failed, sorted.
func (r Report) Failing() []string {
	var out []string
	for n, c := range r.Checks {
		if !c.OK {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

const (
	statusReady    = "ready"
	statusNotReady = "not ready"
)

// Defaults of a Checker.
const (
	// DefaultTimeout bounds each check.
	DefaultTimeout = 3 * time.Second
	// DefaultCacheFor is how long a report is reused.
	DefaultCacheFor = time.Second
)

// Checker runs readiness checks.
type Checker struct {
	// Checks returns the checks to run now; the set may change while the
	// process starts (nil: ready).
	Checks func() []Check
	// Timeout bounds each check, overriding DefaultTimeout.
	Timeout time.Duration
	// CacheFor is how long a report is reused, overriding
	// DefaultCacheFor; negative: never.
	CacheFor time.Duration

	mu   sync.Mutex
	last Report
	at   time.Time
}

// Report runs the checks (or reuses a report younger than CacheFor).
func (c *Checker) Report(ctx context.Context) Report {
	cacheFor := c.CacheFor
	if cacheFor == 0 {
		cacheFor = DefaultCacheFor
	}
	c.mu.Lock()
	defer c.mu.Unlock() // one run at a time: concurrent probes wait and share it
	if cacheFor > 0 && !c.at.IsZero() && time.Since(c.at) < cacheFor {
		return c.last
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var checks []Check
	if c.Checks != nil {
		checks = c.Checks()
	}
	rep := Report{Status: statusReady, Checks: make(map[string]Result, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, ch := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			note, err := ch.Probe(cctx)
			res := Result{OK: err == nil, Detail: note}
			if err != nil {
				res.Detail = err.Error()
			}
			mu.Lock()
			rep.Checks[ch.Name] = res
			if err != nil {
				rep.Status = statusNotReady
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	c.last, c.at = rep, time.Now()
	return rep
}

// Healthz answers 200 while the process is up.
func Healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Readyz answers 200 with the report when every check passes, else 503.
func (c *Checker) Readyz(w http.ResponseWriter, r *http.Request) {
	rep := c.Report(r.Context())
	code := http.StatusOK
	if !rep.Ready() {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
