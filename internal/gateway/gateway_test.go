package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

var (
	shopKey = []byte("shop-secret-0123456789abcdef0123456789abcdef")
	liveKey = []byte("live-secret-0123456789abcdef0123456789abcdef")
	// start is the gateway's clock in these tests. Envelopes are dated in
	// the past of the real clock, which schemas.Decode checks against.
	start      = time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	occurredAt = time.Date(2025, 11, 11, 12, 0, 3, 0, time.UTC)
)

// fakePublisher records what the gateway publishes; fail, if set, decides
// per event whether Kafka "fails" it.
type fakePublisher struct {
	mu   sync.Mutex
	sent []string
	fail func(raw []byte) error
}

func (f *fakePublisher) PublishRaw(_ context.Context, raw []byte) error {
	if f.fail != nil {
		if err := f.fail(raw); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, string(raw))
	return nil
}

func (f *fakePublisher) published() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.sent...)
}

type fixture struct {
	t    *testing.T
	s    *Server
	shop *fakePublisher
	live *fakePublisher
	log  *bytes.Buffer
	now  time.Time
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{t: t, shop: &fakePublisher{}, live: &fakePublisher{}, log: &bytes.Buffer{}, now: start}
	cfg := Config{
		Apps: []App{
			{ID: "shop", Key: shopKey, Publisher: f.shop},
			{ID: "live-room", Key: liveKey, Publisher: f.live},
		},
		Logger: slog.New(slog.NewTextHandler(f.log, nil)),
		Now:    func() time.Time { return f.now },
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	return f
}

// request builds a request signed by app with key at the fixture's clock.
func (f *fixture) request(method, target, contentType, body, app string, key []byte) *http.Request {
	f.t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if err := Sign(req, app, key, f.now); err != nil {
		f.t.Fatal(err)
	}
	return req
}

func (f *fixture) serve(req *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	f.s.Handler().ServeHTTP(rec, req)
	return rec
}

// post signs body as the shop app and sends it.
func (f *fixture) post(target, contentType, body string) *httptest.ResponseRecorder {
	f.t.Helper()
	return f.serve(f.request(http.MethodPost, target, contentType, body, "shop", shopKey))
}

func decode(t *testing.T, rec *httptest.ResponseRecorder) Response {
	t.Helper()
	var r Response
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("decoding %d %s: %v", rec.Code, rec.Body, err)
	}
	return r
}

// envelope encodes an envelope for p as an app in any language would.
func envelope(t testing.TB, eventID, appID string, p schemas.Payload) string {
	t.Helper()
	env, err := schemas.New(eventID, appID, occurredAt, p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func claim(t testing.TB, eventID, appID, user string) string {
	return envelope(t, eventID, appID, schemas.ClaimRequested{BatchID: "b-1", UserID: user})
}

func TestAuthentication(t *testing.T) {
	body := claim(t, "claim-1", "shop", "u1")
	cases := []struct {
		name   string
		req    func(f *fixture) *http.Request
		code   int
		reason string // logged
	}{
		{"good", func(f *fixture) *http.Request {
			return f.request("POST", "/v1/events", "application/json", body, "shop", shopKey)
		}, http.StatusAccepted, ""},
		{"signed with another app's key", func(f *fixture) *http.Request {
			return f.request("POST", "/v1/events", "", body, "shop", liveKey)
		}, http.StatusUnauthorized, "bad_signature"},
		{"unknown app", func(f *fixture) *http.Request {
			return f.request("POST", "/v1/events", "", body, "nobody", shopKey)
		}, http.StatusUnauthorized, "unknown_app"},
		{"body tampered with", func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			return withBody(req, strings.Replace(body, `"u1"`, `"u2"`, 2))
		}, http.StatusUnauthorized, "bad_signature"},
		{"path tampered with", func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events", "", "["+body+"]", "shop", shopKey)
			return moved(req, "/v1/events:batch")
		}, http.StatusUnauthorized, "bad_signature"},
		{"query tampered with", func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events:batch?atomic=false", "", "["+body+"]", "shop", shopKey)
			return moved(req, "/v1/events:batch?atomic=true")
		}, http.StatusUnauthorized, "bad_signature"},
		{"signature truncated", func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			req.Header.Set(HeaderSignature, req.Header.Get(HeaderSignature)[:62])
			return req
		}, http.StatusUnauthorized, "bad_signature"},
		{"signature not hex", func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			req.Header.Set(HeaderSignature, strings.Repeat("zz", 32))
			return req
		}, http.StatusUnauthorized, "bad_signature"},
		{"uppercase hex signature", func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			req.Header.Set(HeaderSignature, strings.ToUpper(req.Header.Get(HeaderSignature)))
			return req
		}, http.StatusAccepted, ""},
		{"timestamp 4m old", func(f *fixture) *http.Request {
			f.now = start.Add(-4 * time.Minute)
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			f.now = start
			return req
		}, http.StatusAccepted, ""},
		{"timestamp 6m old", func(f *fixture) *http.Request {
			f.now = start.Add(-6 * time.Minute)
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			f.now = start
			return req
		}, http.StatusUnauthorized, "clock_skew"},
		{"timestamp 6m ahead", func(f *fixture) *http.Request {
			f.now = start.Add(6 * time.Minute)
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			f.now = start
			return req
		}, http.StatusUnauthorized, "clock_skew"},
		{"timestamp not unix seconds", func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			req.Header.Set(HeaderTimestamp, "-"+req.Header.Get(HeaderTimestamp))
			return req
		}, http.StatusUnauthorized, "bad_timestamp"},
	}
	for _, h := range []string{HeaderApp, HeaderTimestamp, HeaderSignature} {
		cases = append(cases, struct {
			name   string
			req    func(f *fixture) *http.Request
			code   int
			reason string
		}{"missing " + h, func(f *fixture) *http.Request {
			req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
			req.Header.Del(h)
			return req
		}, http.StatusUnauthorized, "missing_headers"})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			req := tc.req(f)
			sig := req.Header.Get(HeaderSignature)
			rec := f.serve(req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			sent := f.shop.published()
			if tc.code == http.StatusAccepted {
				if len(sent) != 1 || sent[0] != body {
					t.Fatalf("published %q, want the body as sent", sent)
				}
				return
			}
			if len(sent) != 0 {
				t.Fatalf("a refused request published %q", sent)
			}
			if tc.reason == "bad_signature" || tc.reason == "unknown_app" {
				// The client is not told which of the two it was.
				if !strings.Contains(rec.Body.String(), "unknown app or bad signature") {
					t.Errorf("body %s", rec.Body)
				}
			}
			logged := f.log.String()
			if !strings.Contains(logged, "reason="+tc.reason) || strings.Count(logged, "\n") != 1 {
				t.Errorf("want one log line with reason=%s, got:\n%s", tc.reason, logged)
			}
			for _, secret := range []string{string(shopKey), string(liveKey), sig} {
				if secret != "" && (strings.Contains(logged, secret) || strings.Contains(rec.Body.String(), secret)) {
					t.Errorf("a key or signature leaked into the log or response")
				}
			}
		})
	}
}

func withBody(req *http.Request, body string) *http.Request {
	r2 := httptest.NewRequest(req.Method, req.URL.RequestURI(), strings.NewReader(body))
	r2.Header = req.Header.Clone()
	return r2
}

func moved(req *http.Request, target string) *http.Request {
	r2 := httptest.NewRequest(req.Method, target, req.Body)
	r2.Header = req.Header.Clone()
	return r2
}

func TestReplayIsRefused(t *testing.T) {
	f := newFixture(t, nil)
	body := claim(t, "claim-1", "shop", "u1")
	req := f.request("POST", "/v1/events", "", body, "shop", shopKey)
	again := withBody(req, body)
	if rec := f.serve(req); rec.Code != http.StatusAccepted {
		t.Fatalf("first: %d %s", rec.Code, rec.Body)
	}
	f.now = start.Add(4 * time.Minute) // still inside the window
	rec := f.serve(again)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "already used") {
		t.Fatalf("replay: %d %s", rec.Code, rec.Body)
	}
	// A retry of the same event, signed anew, goes through; the processors
	// deduplicate it by event_id.
	if rec := f.post("/v1/events", "", body); rec.Code != http.StatusAccepted {
		t.Fatalf("re-signed retry: %d %s", rec.Code, rec.Body)
	}
	if n := len(f.shop.published()); n != 2 {
		t.Fatalf("published %d times, want 2", n)
	}
	// The replay of the first signature after the window is refused by the
	// clock, and the cache has forgotten it.
	f.now = start.Add(5*time.Minute + time.Second)
	if rec := f.serve(withBody(req, body)); rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), "clock") {
		t.Fatalf("replay after the window: %d %s", rec.Code, rec.Body)
	}
	f.post("/v1/events", "", claim(t, "claim-2", "shop", "u1"))
	if n := f.s.apps["shop"].replay.len(); n != 2 {
		t.Errorf("replay cache holds %d signatures, want 2: the first has expired, the retry (signed at +4m) and the last have not", n)
	}
}

func TestReplayCacheIsBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.ReplayCacheSize = 2 })
	for i := range 2 {
		if rec := f.post("/v1/events", "", claim(t, fmt.Sprint("c", i), "shop", "u1")); rec.Code != http.StatusAccepted {
			t.Fatalf("%d: %d %s", i, rec.Code, rec.Body)
		}
	}
	rec := f.post("/v1/events", "", claim(t, "c2", "shop", "u1"))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "300" {
		t.Fatalf("cache full: %d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	// Another app has its own cache.
	if rec := f.serve(f.request("POST", "/v1/events", "", claim(t, "c0", "live-room", "u1"), "live-room", liveKey)); rec.Code != http.StatusAccepted {
		t.Fatalf("other app: %d %s", rec.Code, rec.Body)
	}
	f.now = start.Add(5*time.Minute + time.Second)
	if rec := f.post("/v1/events", "", claim(t, "c2", "shop", "u1")); rec.Code != http.StatusAccepted {
		t.Fatalf("after the window: %d %s", rec.Code, rec.Body)
	}
}

func TestEnvelopeOfAnotherApp(t *testing.T) {
	f := newFixture(t, nil)
	mine, theirs := claim(t, "c1", "shop", "u1"), claim(t, "c2", "live-room", "u1")
	for _, rec := range []*httptest.ResponseRecorder{
		f.post("/v1/events", "", theirs),
		f.post("/v1/events:batch", "", "["+mine+","+theirs+"]"),
		f.post("/v1/events:batch", "application/x-ndjson", mine+"\n"+theirs+"\n"),
	} {
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `may only publish envelopes with app_id \"shop\"`) {
			t.Errorf("%d %s", rec.Code, rec.Body)
		}
	}
	if sent := f.shop.published(); len(sent) != 0 {
		t.Fatalf("published %q", sent)
	}
	if !strings.Contains(f.log.String(), "reason=wrong_app") {
		t.Errorf("log: %s", f.log)
	}
}

func TestBatchResultsPerEvent(t *testing.T) {
	f := newFixture(t, nil)
	good1 := claim(t, "c1", "shop", "u1")
	good2 := envelope(t, "lock-1", "shop", schemas.LockRequested{UserID: "u2", CouponID: "0123456789abcdef0123456789abcdef", OrderID: "o-1"})
	mismatch := strings.Replace(claim(t, "c3", "shop", "u3"), `"key":"u3"`, `"key":"u9"`, 1)
	badPayload := strings.Replace(claim(t, "c4", "shop", "u4"), `"batch_id":"b-1",`, ``, 1)
	unknown := strings.Replace(claim(t, "c5", "shop", "u5"), `"version":1`, `"version":99`, 1)
	huge := strings.Replace(claim(t, "c6", "shop", "u6"), `"b-1"`, `"`+strings.Repeat("b", schemas.DefaultMaxBytes)+`"`, 1)
	body := "[" + strings.Join([]string{good1, mismatch, badPayload, good2, unknown, huge, `"not an object"`}, ",\n ") + "]"

	rec := f.post("/v1/events:batch", "application/json", body)
	if rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	resp := decode(t, rec)
	want := []struct {
		id, status, topic string
		reason            schemas.Reason
	}{
		{"c1", StatusAccepted, "coupon.claims", ""},
		{"c3", StatusRejected, "", schemas.ReasonKeyMismatch},
		{"c4", StatusRejected, "", schemas.ReasonInvalidPayload},
		{"lock-1", StatusAccepted, "coupon.orders", ""},
		{"c5", StatusRejected, "", schemas.ReasonUnknownType},
		{"c6", StatusRejected, "", schemas.ReasonTooLarge},
		{"", StatusRejected, "", schemas.ReasonInvalidEnvelope},
	}
	if resp.Accepted != 2 || resp.Rejected != 5 || len(resp.Results) != len(want) {
		t.Fatalf("response %+v", resp)
	}
	for i, w := range want {
		r := resp.Results[i]
		if r.Index != i || r.EventID != w.id || r.Status != w.status || r.Topic != w.topic || r.Reason != w.reason {
			t.Errorf("result %d = %+v, want %+v", i, r, w)
		}
		if r.Status == StatusRejected && r.Detail == "" {
			t.Errorf("result %d has no detail", i)
		}
	}
	if sent := f.shop.published(); len(sent) != 2 || !contains(sent, good1) || !contains(sent, good2) {
		t.Fatalf("published %d events, want the two valid ones as sent", len(sent))
	}
	if !strings.Contains(f.log.String(), "reason=events_rejected") || !strings.Contains(f.log.String(), "rejected=5") {
		t.Errorf("log: %s", f.log)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestJSONLinesBatch(t *testing.T) {
	f := newFixture(t, nil)
	body := claim(t, "c1", "shop", "u1") + "\r\n\n" + `{"event_id":` + "\n" + claim(t, "c2", "shop", "u2")
	rec := f.post("/v1/events:batch", "application/x-ndjson; charset=utf-8", body)
	resp := decode(t, rec)
	if rec.Code != http.StatusOK || resp.Accepted != 2 || resp.Rejected != 1 {
		t.Fatalf("%d %+v", rec.Code, resp)
	}
	lines := []int{1, 3, 4}
	for i, r := range resp.Results {
		if r.Line != lines[i] {
			t.Errorf("result %d on line %d, want %d", i, r.Line, lines[i])
		}
	}
	if r := resp.Results[1]; r.Reason != schemas.ReasonMalformed {
		t.Errorf("malformed line: %+v", r)
	}
}

func TestAtomicBatch(t *testing.T) {
	f := newFixture(t, nil)
	good := claim(t, "c1", "shop", "u1")
	bad := strings.Replace(claim(t, "c2", "shop", "u2"), `"key":"u2"`, `"key":"u3"`, 1)
	rec := f.post("/v1/events:batch?atomic=true", "", "["+good+","+bad+"]")
	resp := decode(t, rec)
	if rec.Code != http.StatusUnprocessableEntity || resp.Accepted != 0 || resp.Rejected != 2 {
		t.Fatalf("%d %+v", rec.Code, resp)
	}
	if r := resp.Results[0]; r.Reason != ReasonBatchRejected || r.EventID != "c1" {
		t.Errorf("valid event of a refused atomic batch: %+v", r)
	}
	if r := resp.Results[1]; r.Reason != schemas.ReasonKeyMismatch {
		t.Errorf("invalid event: %+v", r)
	}
	if sent := f.shop.published(); len(sent) != 0 {
		t.Fatalf("an atomic batch with an invalid event published %d events", len(sent))
	}
	rec = f.post("/v1/events:batch?atomic=true", "", "["+good+","+claim(t, "c3", "shop", "u3")+"]")
	if resp := decode(t, rec); rec.Code != http.StatusOK || resp.Accepted != 2 {
		t.Fatalf("valid atomic batch: %d %+v", rec.Code, resp)
	}
}

func TestSendFailures(t *testing.T) {
	f := newFixture(t, nil)
	internal := errors.New("producing to coupon.claims: dial tcp 10.1.2.3:9092: connection refused")
	f.shop.fail = func(raw []byte) error {
		if bytes.Contains(raw, []byte(`"key":"u-down"`)) {
			return internal
		}
		return nil
	}
	body := "[" + strings.Join([]string{
		claim(t, "c1", "shop", "u-down"),
		claim(t, "c2", "shop", "u-up"),
		envelope(t, "lock-1", "shop", schemas.LockRequested{UserID: "u-down", CouponID: "0123456789abcdef0123456789abcdef", OrderID: "o"}),
	}, ",") + "]"
	rec := f.post("/v1/events:batch", "", body)
	resp := decode(t, rec)
	if rec.Code != http.StatusOK || resp.Accepted != 1 {
		t.Fatalf("%d %+v", rec.Code, resp)
	}
	for _, i := range []int{0, 2} {
		if r := resp.Results[i]; r.Status != StatusRejected || r.Reason != producers.ReasonSendFailed {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if !strings.Contains(resp.Results[2].Detail, "earlier event with the same key") {
		t.Errorf("a later event of a failed key: %+v", resp.Results[2])
	}
	if strings.Contains(rec.Body.String(), "10.1.2.3") || !strings.Contains(f.log.String(), "10.1.2.3") {
		t.Errorf("internals must be logged, not returned: body %s", rec.Body)
	}
	// One event that Kafka does not take: 503, so that clients retry.
	rec = f.post("/v1/events", "", claim(t, "c4", "shop", "u-down"))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("single failed event: %d %s", rec.Code, rec.Body)
	}
	rec = f.post("/v1/events:batch", "", "["+claim(t, "c5", "shop", "u-down")+"]")
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("batch with nothing acknowledged: %d %s", rec.Code, rec.Body)
	}
}

func TestSingleEventRejected(t *testing.T) {
	f := newFixture(t, nil)
	rec := f.post("/v1/events", "", `{"event_id":"x"}`)
	resp := decode(t, rec)
	if rec.Code != http.StatusUnprocessableEntity || resp.Rejected != 1 || resp.Results[0].Reason != schemas.ReasonInvalidEnvelope || resp.Results[0].EventID != "x" {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
}

func TestEventsOfOneKeyKeepTheirOrder(t *testing.T) {
	f := newFixture(t, nil)
	var events, want []string
	for i := range 100 {
		user := fmt.Sprint("u", i%3)
		e := claim(t, fmt.Sprint("c", i), "shop", user)
		events = append(events, e)
		if user == "u1" {
			want = append(want, e)
		}
	}
	if rec := f.post("/v1/events:batch", "", "["+strings.Join(events, ",")+"]"); rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	var got []string
	for _, s := range f.shop.published() {
		if strings.Contains(s, `"key":"u1"`) {
			got = append(got, s)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events of key u1 published out of order")
	}
}

func TestLimits(t *testing.T) {
	t.Run("body size", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.MaxBody = 4 << 10 })
		big := "[" + strings.Repeat(claim(t, "c1", "shop", "u1")+",", 40) + claim(t, "c1", "shop", "u1") + "]"
		rec := f.post("/v1/events:batch", "", big)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		// Without a Content-Length the limit holds while reading.
		req := f.request("POST", "/v1/events:batch", "", big, "shop", shopKey)
		req.ContentLength = -1
		if rec := f.serve(req); rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked: %d %s", rec.Code, rec.Body)
		}
		if len(f.shop.published()) != 0 {
			t.Fatal("published from an oversized body")
		}
	})
	t.Run("batch count", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.MaxBatch = 3 })
		four := []string{claim(t, "c1", "shop", "u1"), claim(t, "c2", "shop", "u1"), claim(t, "c3", "shop", "u1"), claim(t, "c4", "shop", "u1")}
		for _, rec := range []*httptest.ResponseRecorder{
			f.post("/v1/events:batch", "", "["+strings.Join(four, ",")+"]"),
			f.post("/v1/events:batch", "application/x-ndjson", strings.Join(four, "\n")),
		} {
			if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "more than 3 events") {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		}
		if rec := f.post("/v1/events:batch", "", "["+strings.Join(four[:3], ",")+"]"); rec.Code != http.StatusOK {
			t.Fatalf("a full batch: %d %s", rec.Code, rec.Body)
		}
	})
	t.Run("rate", func(t *testing.T) {
		f := newFixture(t, func(c *Config) { c.RatePerApp, c.BurstPerApp, c.MaxBatch = 2, 5, 5 })
		batch := func(n int, id string) string {
			var es []string
			for i := range n {
				es = append(es, claim(t, fmt.Sprint(id, i), "shop", "u1"))
			}
			return "[" + strings.Join(es, ",") + "]"
		}
		if rec := f.post("/v1/events:batch", "", batch(5, "a")); rec.Code != http.StatusOK {
			t.Fatalf("burst: %d %s", rec.Code, rec.Body)
		}
		rec := f.post("/v1/events:batch", "", batch(3, "b"))
		if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" {
			t.Fatalf("over the rate: %d Retry-After %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
		}
		// Another app has its own bucket.
		if rec := f.serve(f.request("POST", "/v1/events", "", claim(t, "l1", "live-room", "u1"), "live-room", liveKey)); rec.Code != http.StatusAccepted {
			t.Fatalf("other app: %d %s", rec.Code, rec.Body)
		}
		f.now = f.now.Add(1500 * time.Millisecond) // 3 tokens
		if rec := f.post("/v1/events:batch", "", batch(3, "c")); rec.Code != http.StatusOK {
			t.Fatalf("after Retry-After: %d %s", rec.Code, rec.Body)
		}
		if n := len(f.shop.published()); n != 8 {
			t.Fatalf("published %d, want 8", n)
		}
		if !strings.Contains(f.log.String(), "reason=rate_limited") {
			t.Errorf("log: %s", f.log)
		}
	})
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, nil)
	one := claim(t, "c1", "shop", "u1")
	cases := []struct {
		name, target, contentType, body string
		code                            int
		want                            string
	}{
		{"text/plain", "/v1/events", "text/plain", one, http.StatusUnsupportedMediaType, "want application/json"},
		{"ndjson to the single endpoint", "/v1/events", "application/x-ndjson", one, http.StatusUnsupportedMediaType, "Content-Type"},
		{"unknown query parameter", "/v1/events:batch?atomc=true", "", "[" + one + "]", http.StatusBadRequest, "unexpected query parameter"},
		{"query on the single endpoint", "/v1/events?atomic=true", "", one, http.StatusBadRequest, "unexpected query parameter"},
		{"bad atomic", "/v1/events:batch?atomic=yes", "", "[" + one + "]", http.StatusBadRequest, "want true or false"},
		{"object instead of array", "/v1/events:batch", "", one, http.StatusBadRequest, "does not start with ["},
		{"broken array", "/v1/events:batch", "", "[" + one + ",", http.StatusBadRequest, "not a JSON array"},
		{"data after the array", "/v1/events:batch", "", "[" + one + "] []", http.StatusBadRequest, "after the closing"},
		{"empty array", "/v1/events:batch", "", "[]", http.StatusBadRequest, "no event"},
		{"blank lines only", "/v1/events:batch", "application/x-ndjson", "\n \r\n", http.StatusBadRequest, "no event"},
		{"empty single", "/v1/events", "", " \n", http.StatusBadRequest, "empty"},
	}
	for _, tc := range cases {
		f.now = f.now.Add(time.Second) // a new signature for the same body
		rec := f.post(tc.target, tc.contentType, tc.body)
		if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, rec.Code, rec.Body, tc.code, tc.want)
		}
	}
	if n := len(f.shop.published()); n != 0 {
		t.Errorf("bad requests published %d events", n)
	}
	rec := f.serve(httptest.NewRequest(http.MethodGet, "/v1/events", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/events: %d", rec.Code)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	var down error
	f := newFixture(t, func(c *Config) {
		c.Ready = func(context.Context) error { return down }
	})
	for _, p := range []string{"/healthz", "/readyz"} {
		if rec := f.serve(httptest.NewRequest(http.MethodGet, p, nil)); rec.Code != http.StatusOK {
			t.Errorf("%s: %d", p, rec.Code)
		}
	}
	down = errors.New("dial tcp 10.9.9.9:9092: i/o timeout")
	rec := f.serve(httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "10.9.9.9") {
		t.Fatalf("%d %s: want 503 without internals", rec.Code, rec.Body)
	}
	if rec := f.serve(httptest.NewRequest(http.MethodGet, "/healthz", nil)); rec.Code != http.StatusOK {
		t.Errorf("healthz while Kafka is down: %d", rec.Code)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	p := &fakePublisher{}
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no apps", Config{}, "no apps"},
		{"short key", Config{Apps: []App{{ID: "shop", Key: []byte("0123456789abcdef0123456789abcde"), Publisher: p}}}, "shorter than 32 bytes"},
		{"bad app id", Config{Apps: []App{{ID: "Shop!", Key: shopKey, Publisher: p}}}, "does not match"},
		{"twice", Config{Apps: []App{{ID: "shop", Key: shopKey, Publisher: p}, {ID: "shop", Key: liveKey, Publisher: p}}}, "listed twice"},
		{"shared key", Config{Apps: []App{{ID: "shop", Key: shopKey, Publisher: p}, {ID: "live", Key: shopKey, Publisher: p}}}, "share a key"},
		{"no publisher", Config{Apps: []App{{ID: "shop", Key: shopKey}}}, "no publisher"},
		{"burst below batch", Config{Apps: []App{{ID: "shop", Key: shopKey, Publisher: p}}, MaxBatch: 500, BurstPerApp: 100}, "burst 100"},
		{"negative", Config{Apps: []App{{ID: "shop", Key: shopKey, Publisher: p}}, MaxSkew: -time.Second}, "negative"},
	}
	for _, tc := range cases {
		_, err := New(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), string(shopKey)) {
			t.Errorf("%s: the error shows the key", tc.name)
		}
	}
}

func TestHTTPServerHasTimeouts(t *testing.T) {
	f := newFixture(t, nil)
	hs := f.s.HTTPServer("127.0.0.1:0")
	if hs.ReadHeaderTimeout <= 0 || hs.ReadTimeout <= 0 || hs.IdleTimeout <= 0 || hs.MaxHeaderBytes <= 0 ||
		hs.WriteTimeout <= hs.ReadTimeout+DefaultPublishTimeout {
		t.Fatalf("timeouts %+v", hs)
	}
}

func TestSign(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://gw.example/v1/events:batch?atomic=true", strings.NewReader("[1]"))
	if err := Sign(req, "shop", shopKey, start); err != nil {
		t.Fatal(err)
	}
	want := Signature(shopKey, "POST", "/v1/events:batch?atomic=true", fmt.Sprint(start.Unix()), []byte("[1]"))
	if req.Header.Get(HeaderSignature) != want || req.Header.Get(HeaderApp) != "shop" || req.Header.Get(HeaderTimestamp) != fmt.Sprint(start.Unix()) {
		t.Fatalf("headers %v", req.Header)
	}
	for range 2 { // the body is still there, and GetBody can replay it
		b := new(bytes.Buffer)
		_, _ = b.ReadFrom(req.Body)
		if b.String() != "[1]" {
			t.Fatalf("body after Sign: %q", b)
		}
		req.Body, _ = req.GetBody()
	}
	if err := Sign(req, "shop", []byte("short"), start); !errors.Is(err, ErrKeyTooShort) {
		t.Fatalf("short key: %v", err)
	}
	get, _ := http.NewRequest(http.MethodGet, "http://gw.example/readyz", nil)
	if err := Sign(get, "shop", shopKey, start); err != nil || !verifySignature(shopKey, "GET", "/readyz", fmt.Sprint(start.Unix()), nil, get.Header.Get(HeaderSignature)) {
		t.Fatalf("signing a request without a body: %v", err)
	}
}

// TestSignatureTestVector pins the scheme with the example docs/gateway.md
// gives implementers in other languages.
func TestSignatureTestVector(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	body := []byte(`[{"event_id":"e-1"}]`)
	got := Signature(key, "POST", "/v1/events:batch?atomic=true", "1762862400", body)
	const want = "0246b51ca2b40f98d6324f03d1c1d3b9fb1080d45f79d221ebdeb2e08a21db8e"
	if got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
	if s := string(stringToSign("POST", "/v1/events:batch?atomic=true", "1762862400", body)); !strings.HasSuffix(s, "\n1762862400\n"+"dedd7f89dca06ae08df4446caa9dbb5604f8a47fe73c0980d1ef8d27fd2cf276") {
		t.Fatalf("string to sign %q", s)
	}
	doc := readDoc(t)
	for _, v := range []string{want, "dedd7f89dca06ae08df4446caa9dbb5604f8a47fe73c0980d1ef8d27fd2cf276"} {
		if !strings.Contains(doc, v) {
			t.Errorf("docs/gateway.md does not give %s", v)
		}
	}
}
