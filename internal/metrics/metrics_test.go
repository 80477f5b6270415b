package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/testenv"
)

func snap(t *testing.T, m *Metrics) Snapshot {
	t.Helper()
	s, err := m.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	s := m.Stage("x", "t")
	if s != nil {
		t.Fatal("a nil Metrics made a Stage")
	}
	// None of these may panic.
	s.In("t", 1)
	s.Out("t")
	s.Skipped("t", 1)
	s.Dead("t", "r")
	s.Decided("d", "o", "r", 1)
	s.Phases(time.Second, time.Second, time.Second)
	s.EndToEnd(time.Now(), time.Now())
	s.Failed("handler")
	s.Tick(true)
	s.Flush("mysql", 1, time.Second, errors.New("x"))
	s.Lag("t", 0, 1)
	s.Rebalance("lost", map[string][]int32{"t": {0}}, 0)
	m.StoreError("redis", "get")
	m.InstrumentRedis(nil)
	h := http.NotFoundHandler()
	if got := m.HTTP("api", h); got == nil {
		t.Fatal("HTTP on nil Metrics returned nil")
	}
}

func TestStageCounts(t *testing.T) {
	m := New()
	s := m.Stage("coupon", "coupon.claims", "coupon.grants")
	s.In("coupon.claims", 5)
	s.In("coupon.orders", 2) // not declared: resolved on the fly
	s.Out("coupon.grants")
	s.Out("coupon.grants")
	s.Dead("coupon.claims", "malformed_json")
	s.Decided("coupon.grant", "rejected", "sold_out", 3)
	s.Decided("coupon.grant", "granted", "", 0) // nothing to count
	s.Failed("fenced")
	s.Tick(false)
	s.Flush("", 10, time.Millisecond, errors.New("down"))
	now := time.Now()
	s.EndToEnd(now, now.Add(-2*time.Second))
	s.Lag("coupon.claims", 3, 40)
	s.Lag("coupon.claims", 4, -1) // clamped
	s.Rebalance("assigned", map[string][]int32{"coupon.claims": {3, 4}}, 2)

	sn := snap(t, m)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"promoflow_events_in_total", []string{"stage", "coupon", "topic", "coupon.claims"}, 5},
		{"promoflow_events_in_total", []string{"topic", "coupon.orders"}, 2},
		{"promoflow_records_out_total", []string{"topic", "coupon.grants"}, 2},
		{"promoflow_dead_letters_total", []string{"reason", "malformed_json"}, 1},
		{"promoflow_decisions_total", []string{"decision", "coupon.grant", "outcome", "rejected", "reason", "sold_out"}, 3},
		{"promoflow_decisions_total", []string{"outcome", "granted"}, 0},
		{"promoflow_batch_failures_total", []string{"cause", "fenced"}, 1},
		{"promoflow_timer_runs_total", []string{"result", "failed"}, 1},
		{"promoflow_sink_flush_errors_total", nil, 1},
		{"promoflow_store_errors_total", nil, 0}, // no store named
		{"promoflow_end_to_end_latency_seconds", nil, 1},
		{"promoflow_consumer_lag_records", []string{"partition", "3"}, 40},
		{"promoflow_consumer_lag_records", []string{"partition", "4"}, 0},
		{"promoflow_partitions_assigned", nil, 2},
		{"promoflow_rebalances_total", []string{"event", "assigned"}, 1},
	} {
		if got := sn.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := sn.Sum("promoflow_end_to_end_latency_seconds"); got < 2 || got > 3 {
		t.Errorf("end-to-end sum %v, want about 2s", got)
	}

	// Revoking a partition forgets its lag series.
	s.Rebalance("revoked", map[string][]int32{"coupon.claims": {3}}, 1)
	sn = snap(t, m)
	if got := sn.Series("promoflow_consumer_lag_records"); len(got) != 1 || got[0]["partition"] != "4" {
		t.Errorf("lag series after revoking partition 3: %v", got)
	}
	if got := sn.Value("promoflow_partitions_assigned", "stage", "coupon"); got != 1 {
		t.Errorf("partitions assigned = %v, want 1", got)
	}
}

// TestHTTPLabelsByRoutePattern checks that requests are counted by the
// mux's pattern, never by their path (which holds user ids), and by code.
func TestHTTPLabelsByRoutePattern(t *testing.T) {
	m := New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/users/{user}/coupons", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("user") == "bad" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		io.WriteString(w, "[]") // no WriteHeader: 200
	})
	srv := httptest.NewServer(m.HTTP("api", mux))
	defer srv.Close()
	for _, p := range []string{"/v1/users/u-123456/coupons", "/v1/users/u-987654/coupons", "/v1/users/bad/coupons", "/nowhere/u-555"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	sn := snap(t, m)
	route := "GET /v1/users/{user}/coupons"
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"server", "api", "route", route, "code", "200"}, 2},
		{[]string{"route", route, "code", "400"}, 1},
		{[]string{"route", RouteUnmatched, "code", "404"}, 1},
	} {
		if got := sn.Value("promoflow_http_requests_total", c.labels...); got != c.want {
			t.Errorf("requests %v = %v, want %v", c.labels, got, c.want)
		}
	}
	if got := sn.Value("promoflow_http_request_duration_seconds", "server", "api"); got != 4 {
		t.Errorf("%v latencies observed, want 4", got)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body := rec.Body.String(); strings.Contains(body, "u-123456") || strings.Contains(body, "u-555") {
		t.Error("a user id from a path reached the metrics")
	}
}

// TestIntegrationRedisHook counts failed Redis commands, and not nil
// replies or script-cache misses, against the real Redis.
func TestIntegrationRedisHook(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	defer rdb.Close()
	ctx := testenv.Context(t, 10*time.Second)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Skipf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	m := New()
	m.InstrumentRedis(rdb)
	key := testenv.Name("pfmetrics") + ":s"
	defer rdb.Del(context.Background(), key)
	if err := rdb.Set(ctx, key, "text", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.Incr(ctx, key).Err(); err == nil {
		t.Fatal("INCR of a string succeeded")
	}
	if err := rdb.Get(ctx, key+":missing").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET of a missing key: %v", err)
	}
	// Script.Run tries EVALSHA, gets NOSCRIPT and loads the script.
	if err := redis.NewScript("return 1 -- "+key).Run(ctx, rdb, []string{key}).Err(); err != nil {
		t.Fatal(err)
	}
	pipe := rdb.Pipeline()
	pipe.Incr(ctx, key)
	if _, err := pipe.Exec(ctx); err == nil {
		t.Fatal("pipelined INCR of a string succeeded")
	}
	sn := snap(t, m)
	if got := sn.Value("promoflow_store_errors_total", "store", "redis", "op", "incr"); got != 1 {
		t.Errorf("incr errors = %v, want 1", got)
	}
	if got := sn.Value("promoflow_store_errors_total", "store", "redis", "op", "pipeline"); got != 1 {
		t.Errorf("pipeline errors = %v, want 1", got)
	}
	if got := sn.Value("promoflow_store_errors_total", "store", "redis"); got != 2 {
		t.Errorf("redis errors = %v, want 2 (a nil reply and NOSCRIPT are not errors): %v", got, sn.Series("promoflow_store_errors_total"))
	}
}

// touchAll makes one series of every vector, so that a gathering shows
// every metric.
func touchAll(m *Metrics) {
	for _, d := range m.defs {
		vals := make([]string, len(d.labels))
		for i := range vals {
			vals[i] = "x"
		}
		switch v := d.vec.(type) {
		case *prometheus.CounterVec:
			v.WithLabelValues(vals...).Inc()
		case *prometheus.GaugeVec:
			v.WithLabelValues(vals...).Set(1)
		case *prometheus.HistogramVec:
			v.WithLabelValues(vals...).Observe(1)
		}
	}
}

// exportedNames returns every series name the registry exports once each
// metric has a series: histograms' _bucket, _sum and _count included.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	m := New()
	touchAll(m)
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	names := map[string]bool{}
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		names[name] = true
	}
	return names
}

func TestEveryDefinitionIsExported(t *testing.T) {
	names := exportedNames(t)
	m := New()
	defs := m.Definitions()
	if len(defs) < 15 {
		t.Fatalf("only %d definitions", len(defs))
	}
	for _, d := range defs {
		want := []string{d.Name}
		if d.Kind == "histogram" {
			want = []string{d.Name + "_bucket", d.Name + "_sum", d.Name + "_count"}
		}
		for _, w := range want {
			if !names[w] {
				t.Errorf("%s is defined but %s is not exported", d.Name, w)
			}
		}
		if !strings.HasPrefix(d.Name, Namespace+"_") {
			t.Errorf("%s does not start with %s_", d.Name, Namespace)
		}
		switch {
		case d.Kind == "counter" && !strings.HasSuffix(d.Name, "_total"):
			t.Errorf("counter %s does not end in _total", d.Name)
		case d.Kind == "histogram" && !regexp.MustCompile(`_(seconds|events)$`).MatchString(d.Name):
			t.Errorf("histogram %s has no unit suffix", d.Name)
		}
		for _, l := range d.Labels {
			if strings.Contains(l, "user") || l == "event_id" || l == "batch_id" || l == "activity_id" {
				t.Errorf("%s has an unbounded label %s", d.Name, l)
			}
		}
	}
	for n := range names {
		if !strings.HasPrefix(n, "promoflow_") && !strings.HasPrefix(n, "go_") && !strings.HasPrefix(n, "process_") && !strings.HasPrefix(n, "promhttp_") {
			t.Errorf("unexpected metric %s", n)
		}
	}
}

// TestOperationsDocListsEveryMetric keeps docs/operations.md in step with
// the definitions: every metric and each of its labels is named there.
func TestOperationsDocListsEveryMetric(t *testing.T) {
	b, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, d := range New().Definitions() {
		i := strings.Index(doc, "`"+d.Name+"`")
		if i < 0 {
			t.Errorf("docs/operations.md does not list %s", d.Name)
			continue
		}
		row := doc[i:]
		if j := strings.IndexByte(row, '\n'); j >= 0 {
			row = row[:j]
		}
		for _, l := range d.Labels {
			if !strings.Contains(row, "`"+l+"`") {
				t.Errorf("docs/operations.md: the row of %s does not name its label %s", d.Name, l)
			}
		}
	}
}

// BenchmarkStageRecord is the metrics' cost per record on the runner's hot
// path: one event in, one record out, one decision (counted per batch of
// 500) and one end-to-end sample.
func BenchmarkStageRecord(b *testing.B) {
	m := New()
	s := m.Stage("coupon", "coupon.claims", "coupon.grants", "promoflow.dlq")
	now := time.Now()
	ts := now.Add(-10 * time.Millisecond)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.Out("coupon.grants")
		s.EndToEnd(now, ts)
		if i%500 == 0 {
			s.In("coupon.claims", 500)
			s.Decided("coupon.grant", "granted", "", 400)
			s.Decided("coupon.grant", "rejected", "sold_out", 100)
			s.Lag("coupon.claims", int32(i%12), 0)
		}
	}
}
