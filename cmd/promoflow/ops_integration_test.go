package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/promoflow/promoflow/internal/health"
	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

// scrape reads base/metrics over HTTP.
func scrape(t *testing.T, base string) metrics.Snapshot {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	s, err := metrics.ParseText(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readyz asks base/readyz.
func readyz(t *testing.T, base string) (int, health.Report) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	defer resp.Body.Close()
	var rep health.Report
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		t.Fatalf("decoding /readyz: %v", err)
	}
	return resp.StatusCode, rep
}

// tcpProxy forwards connections to a target until cut: then the address
// refuses connections (and those open are closed) until restore. It stands
// for a store that becomes unreachable without stopping the shared server.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{t: t, target: target}
	p.listen("127.0.0.1:0")
	t.Cleanup(p.cut)
	return p
}

func (p *tcpProxy) listen(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln, p.addr = ln, ln.Addr().String()
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) restore() { p.listen(p.addr) }

// TestIntegrationRunMetricsAndReadiness runs every stage of `promoflow run`
// on kfake with the real Redis, MariaDB and ClickHouse, and reads its
// /metrics and /readyz over HTTP: not ready while starting, ready once every
// stage is assigned; 100 claims for a batch of stock 30 and 10 hostile
// records move the counters by exactly what was decided (30 granted, 70
// out of stock, 10 dead letters, 100 grant rows in the sinks); with Redis
// unreachable the process is not ready and Redis errors are counted, and
// it is ready again once Redis is back.
func TestIntegrationRunMetricsAndReadiness(t *testing.T) {
	e := newStressEnv(t, 1)
	ctx := testenv.Context(t, 3*time.Minute)
	proxy := startProxy(t, testenv.RedisAddr())
	cfg := *e.cfg
	cfg.Redis.Addr = proxy.addr
	cfg.Metrics.Listen = "127.0.0.1:0"
	cfg.Log.Level = "warn"

	runID := testenv.Name("m")
	batch := "STOCK30-" + runID
	p, err := producers.New(producers.Config{Brokers: e.brokers, AppID: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	now := time.Now()
	if err := p.DefineBatch(ctx, "def-"+batch, schemas.BatchDefined{BatchID: batch, Name: "Thirty", Revision: 1, TotalStock: 30, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive}); err != nil {
		t.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runStages(runCtx, &cfg, allStages, 0, func(a net.Addr) { addrc <- a }) }()
	t.Cleanup(func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop")
		}
	})
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("run stopped: %v", err)
	}

	// Starting: the listener answers before the stages are connected.
	resp, err := http.Get(base + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz while starting: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, rep := readyz(t, base); code != http.StatusServiceUnavailable || len(rep.Failing()) == 0 {
		t.Fatalf("readyz while starting: %d %+v", code, rep)
	}
	waitUntil(t, ctx, "ready", func() bool { code, _ := readyz(t, base); return code == http.StatusOK })
	_, rep := readyz(t, base)
	for _, name := range []string{"stage coupon", "stage coupon-admin", "stage lottery", "stage sink-mysql", "stage sink-clickhouse", "redis", "mysql", "clickhouse"} {
		if c, ok := rep.Checks[name]; !ok || !c.OK {
			t.Errorf("readyz check %q: %+v (report %+v)", name, c, rep)
		}
	}

	// 100 users claim once each; 10 hostile records.
	for i := 0; i < 100; i++ {
		p.PublishAsync(ctx, fmt.Sprintf("c-%s-%d", runID, i), time.Now(), schemas.ClaimRequested{BatchID: batch, UserID: fmt.Sprintf("u%03d", i)}, func(err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	hostile := hostileRecords(runID)
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, hostile...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	want := float64(100 + len(hostile))
	var s metrics.Snapshot
	waitUntil(t, ctx, "every claim counted in by the coupon stage and every grant by the MySQL sink", func() bool {
		s = scrape(t, base)
		return s.Value("promoflow_events_in_total", "stage", stageCoupon, "topic", coupon.TopicClaims) == want &&
			s.Value("promoflow_events_in_total", "stage", stageMySQL, "topic", coupon.TopicGrants) == 100 &&
			s.Value("promoflow_events_in_total", "stage", stageClickHouse, "topic", coupon.TopicClaims) == want
	})
	checks := []struct {
		what   string
		name   string
		labels []string
		want   float64
	}{
		{"granted", "promoflow_decisions_total", []string{"stage", stageCoupon, "decision", coupon.DecisionGrant, "outcome", schemas.StatusGranted}, 30},
		{"out of stock", "promoflow_decisions_total", []string{"stage", stageCoupon, "decision", coupon.DecisionGrant, "outcome", schemas.StatusRejected, "reason", schemas.RejectOutOfStock}, 70},
		{"all decisions", "promoflow_decisions_total", []string{"stage", stageCoupon}, 100},
		{"grant records out", "promoflow_records_out_total", []string{"stage", stageCoupon, "topic", coupon.TopicGrants}, 100},
		{"state records out (one per coupon granted)", "promoflow_records_out_total", []string{"stage", stageCoupon, "topic", coupon.TopicStates}, 30},
		{"dead letters", "promoflow_dead_letters_total", []string{"stage", stageCoupon, "topic", coupon.TopicClaims}, float64(len(hostile))},
		{"dead letters of other stages", "promoflow_dead_letters_total", []string{"stage", stageClickHouse}, 0},
		{"records the archive skipped", "promoflow_records_skipped_total", []string{"stage", stageClickHouse, "topic", coupon.TopicClaims}, float64(len(hostile))},
		{"end-to-end samples of the coupon stage", "promoflow_end_to_end_latency_seconds", []string{"stage", stageCoupon}, want},
		{"coupon lag", "promoflow_consumer_lag_records", []string{"stage", stageCoupon, "topic", coupon.TopicClaims}, 0},
		{"redis errors", "promoflow_store_errors_total", []string{"store", "redis"}, 0},
		{"sink write errors", "promoflow_sink_flush_errors_total", nil, 0},
	}
	for _, c := range checks {
		if got := s.Value(c.name, c.labels...); got != c.want {
			t.Errorf("%s: %s%v = %v, want %v", c.what, c.name, c.labels, got, c.want)
		}
	}
	if got := s.Sum("promoflow_sink_batch_events", "stage", stageMySQL); got < 130 {
		t.Errorf("the MySQL sink wrote batches of %v events in all, want at least 130 (grants and states)", got)
	}
	if got := s.Value("promoflow_partitions_assigned", "stage", stageCoupon); got != 24 {
		t.Errorf("the coupon stage owns %v partitions, want 24 (claims and orders)", got)
	}
	rows, granted, _, err := e.mysqlGrants(ctx, batch)
	if err != nil || rows != 100 || granted != 30 {
		t.Errorf("MySQL holds %d grant rows, %d granted (%v); want 100 and 30, as the metrics say", rows, granted, err)
	}

	// Redis unreachable: not ready, errors counted; back: ready.
	proxy.cut()
	waitUntil(t, ctx, "not ready without Redis", func() bool {
		code, rep := readyz(t, base)
		return code == http.StatusServiceUnavailable && !rep.Checks["redis"].OK && strings.Contains(rep.Checks["redis"].Detail, "redis unreachable")
	})
	if got := scrape(t, base).Value("promoflow_store_errors_total", "store", "redis"); got == 0 {
		t.Error("no Redis error counted while Redis was unreachable")
	}
	proxy.restore()
	waitUntil(t, ctx, "ready again with Redis back", func() bool { code, _ := readyz(t, base); return code == http.StatusOK })
}

// TestIntegrationServeAndGatewayMetrics checks that serve and gateway
// serve /metrics next to their API, counting requests by route pattern (no
// user id in the labels) and status code.
func TestIntegrationServeAndGatewayMetrics(t *testing.T) {
	clearConfigEnv(t)
	brokers, _ := testenv.KafkaWithTopics(t)
	prefix := testenv.Name("pfserve")
	path := writeConfig(t, fmt.Sprintf("kafka:\n  brokers: [%s]\nmysql:\n  dsn: %q\n  database_prefix: %s\n  databases: 1\n  tables_per_database: 1\n"+
		"gateway:\n  addr: 127.0.0.1:0\n  apps:\n    - app_id: shop\n      key_env: PF_TEST_GATEWAY_KEY\n",
		strings.Join(brokers, ","), testenv.MySQLDSN(), prefix))
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	db := openMySQL(t)
	t.Cleanup(func() { db.Exec("DROP DATABASE IF EXISTS " + prefix + "_0") })
	ctx, stop := context.WithCancel(testenv.Context(t, 2*time.Minute))
	defer stop()

	start := func(name string, run func(listening func(net.Addr)) error) string {
		addrc := make(chan net.Addr, 1)
		done := make(chan error, 1)
		go func() { done <- run(func(a net.Addr) { addrc <- a }) }()
		t.Cleanup(func() {
			stop()
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("%s: %v", name, err)
			}
		})
		select {
		case a := <-addrc:
			return "http://" + a.String()
		case err := <-done:
			t.Fatalf("%s did not start: %v", name, err)
		case <-time.After(time.Minute):
			t.Fatalf("%s did not start", name)
		}
		return ""
	}
	api := start("serve", func(l func(net.Addr)) error { return runServe(ctx, cfg, "127.0.0.1:0", time.Second, l) })
	gw := start("gateway", func(l func(net.Addr)) error {
		return runGateway(ctx, cfg, func(k string) string {
			if k == "PF_TEST_GATEWAY_KEY" {
				return gatewayTestKey
			}
			return ""
		}, l)
	})

	get := func(url string, method string) int {
		req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitUntil(t, ctx, "serve ready", func() bool { return get(api+"/readyz", "GET") == http.StatusOK })
	for _, u := range []string{"u-7001", "u-7002", "bad user!"} {
		get(api+"/v1/users/"+strings.ReplaceAll(u, " ", "%20")+"/coupons", "GET")
	}
	s := scrape(t, api)
	route := "GET /v1/users/{user}/coupons"
	if got := s.Value("promoflow_http_requests_total", "server", "api", "route", route, "code", "200"); got != 2 {
		t.Errorf("serve: %v requests 200 on %s, want 2 (series %v)", got, route, s.Series("promoflow_http_requests_total"))
	}
	if got := s.Value("promoflow_http_requests_total", "server", "api", "route", route, "code", "400"); got != 1 {
		t.Errorf("serve: %v requests 400, want 1", got)
	}
	if got := s.Value("promoflow_http_request_duration_seconds", "server", "api", "route", route); got != 3 {
		t.Errorf("serve: %v latencies, want 3", got)
	}
	for _, ls := range s.Series("promoflow_http_requests_total") {
		if strings.Contains(ls["route"], "u-700") {
			t.Errorf("a user id in a route label: %v", ls)
		}
	}

	if code := get(gw+"/v1/events", "POST"); code != http.StatusUnauthorized {
		t.Fatalf("unsigned gateway request: %d", code)
	}
	waitUntil(t, ctx, "gateway ready", func() bool { return get(gw+"/readyz", "GET") == http.StatusOK })
	s = scrape(t, gw)
	if got := s.Value("promoflow_http_requests_total", "server", "gateway", "route", "POST /v1/events", "code", "401"); got != 1 {
		t.Errorf("gateway: %v requests 401, want 1 (series %v)", got, s.Series("promoflow_http_requests_total"))
	}
	if got := s.Value("promoflow_http_requests_total", "server", "gateway", "route", "GET /readyz", "code", "200"); got < 1 {
		t.Errorf("gateway: readiness probes not counted (series %v)", s.Series("promoflow_http_requests_total"))
	}
}

// TestIntegrationRunLogsAreStructuredAndKeepSecrets runs the promoflow
// binary's coupon stage against a kfake cluster that requires SCRAM, with
// the Kafka password from the environment and passwords for MySQL and
// ClickHouse in the file, with --log-format json --log-level debug. Every
// line it logs is JSON; each dead letter's line names the stage, topic,
// partition, offset, reason and campaign; and no password appears in the
// logs, /metrics or /readyz.
func TestIntegrationRunLogsAreStructuredAndKeepSecrets(t *testing.T) {
	const secret = "S3cret-Kafka-Pa55"
	const fileSecret = "F1le-Secret-Pa55"
	_, brokers := testenv.Kafka(t, 1, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "admin", secret))
	sasl := kgo.SASL(scram.Auth{User: "admin", Pass: secret}.AsSha256Mechanism())
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), sasl)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(t, 2*time.Minute)
	topo, _ := topology.Load()
	if _, err := applyTopics(ctx, kadm.NewClient(cl), topo, io.Discard); err != nil {
		t.Fatal(err)
	}
	prefix := testenv.Name("pflogs")
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	t.Cleanup(func() { deleteKeys(rdb, prefix); rdb.Close() })
	path := writeConfig(t, fmt.Sprintf(`kafka:
  brokers: [%s]
  sasl: {mechanism: scram-sha-256, username: admin}
redis:
  addr: %s
  key_prefix: %s
mysql:
  dsn: "root:%s@tcp(127.0.0.1:1)/"
clickhouse:
  password: %s
`, strings.Join(brokers, ","), testenv.RedisAddr(), prefix, fileSecret, fileSecret))
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_KAFKA_SASL_PASSWORD", secret)
	p := startProc(t, "coupon", "run", "--only", stageCoupon, "--config", path, "--log-format", "json", "--log-level", "debug")
	logs := func() string {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.log.String()
	}
	var base string
	waitUntil(t, ctx, "the metrics address", func() bool {
		if i := strings.Index(logs(), "metrics and health on http://"); i >= 0 {
			base = strings.Fields(logs()[i+len("metrics and health on "):])[0]
			return true
		}
		return false
	})
	waitUntil(t, ctx, "ready", func() bool { code, _ := readyz(t, base); return code == http.StatusOK })

	hostile := hostileRecords(prefix)
	if err := cl.ProduceSync(ctx, hostile...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "every hostile record dead-lettered", func() bool {
		return scrape(t, base).Value("promoflow_dead_letters_total", "stage", stageCoupon) == float64(len(hostile))
	})
	_, rep := readyz(t, base)
	repJSON, _ := json.Marshal(rep)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	stopProc(p)

	out := logs()
	for _, where := range []struct{ name, text string }{{"the logs", out}, {"/readyz", string(repJSON)}, {"/metrics", string(exposition)}} {
		for _, s := range []string{secret, fileSecret} {
			if strings.Contains(where.text, s) {
				t.Errorf("%s show the password %s", where.name, s)
			}
		}
	}
	var dead, assigned int
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, "metrics and health on ") {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("a log line is not JSON: %q", line)
			continue
		}
		switch m["msg"] {
		case "record dead-lettered":
			dead++
			for _, k := range []string{"stage", "group", "topic", "partition", "offset", "reason"} {
				if m[k] == nil {
					t.Errorf("dead-letter line without %s: %s", k, line)
				}
			}
			if m["event_id"] != nil && m["batch_id"] == nil {
				t.Errorf("an envelope's dead-letter line without its campaign: %s", line)
			}
		case "partitions assigned":
			assigned++
			if m["stage"] == nil {
				t.Errorf("assignment line without the stage: %s", line)
			}
		}
	}
	if dead != len(hostile) || assigned == 0 {
		t.Errorf("%d dead-letter lines (want %d), %d assignment lines:\n%s", dead, len(hostile), assigned, tail(out, 4000))
	}
}
