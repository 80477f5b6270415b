package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

// Defaults of the Config fields.
const (
	// DefaultMaxBody bounds a request body: 1 MiB.
	DefaultMaxBody = 1 << 20
	// DefaultMaxBatch bounds the events of one batch request.
	DefaultMaxBatch = 500
	// DefaultMaxSkew is how far a request's timestamp may be from the
	// gateway's clock, either way.
	DefaultMaxSkew = 5 * time.Minute
	// DefaultRatePerApp is each app's sustained limit, in events per second.
	DefaultRatePerApp = 1000
	// DefaultBurstPerApp is how many events an app may send at once.
	DefaultBurstPerApp = 1000
	// DefaultReplayCacheSize bounds the signatures remembered per app.
	DefaultReplayCacheSize = 100_000
	// DefaultPublishTimeout bounds how long a request waits for Kafka.
	DefaultPublishTimeout = 10 * time.Second
)

// maxKeysInFlight bounds the keys of one request published at once; the
// events of one key are published one after the other, in request order.
const maxKeysInFlight = 64

// Server timeouts (see HTTPServer).
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
)

// appIDPattern is the envelope schema's app_id pattern.
var appIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Publisher publishes one JSON envelope and waits for Kafka's
// acknowledgement. *producers.Producer implements it; its PublishRaw
// validates, refuses envelopes of other apps and routes by type.
type Publisher interface {
	PublishRaw(ctx context.Context, data []byte) error
}

// App is an upstream app allowed to publish through the gateway.
type App struct {
	// ID is the app's app_id: the X-Promoflow-App header, and the only
	// app_id its envelopes may carry.
	ID string
	// Key signs the app's requests; at least MinKeyBytes long, and not
	// shared with another app.
	Key []byte
	// Publisher publishes the app's events: a producers.Producer whose
	// AppID is ID.
	Publisher Publisher
}

// Config configures a Server. Zero fields take the defaults.
type Config struct {
	// Apps are the apps allowed to publish. At least one is required.
	Apps []App
	// Topology routes event types to topics, overriding the default of
	// topology.Load(). Pass the file the publishers route by, so that an
	// event no topic carries is rejected before anything is published.
	Topology *topology.File
	// MaxBody bounds a request body in bytes, overriding the default of
	// 1 MiB; a larger body is refused with 413.
	MaxBody int64
	// MaxBatch bounds the events of one request, overriding the default of
	// 500; more is refused with 413.
	MaxBatch int
	// MaxSkew bounds how far X-Promoflow-Timestamp may be from the
	// gateway's clock, either way, overriding the default of 5m. It is also
	// how long a signature is remembered against replays.
	MaxSkew time.Duration
	// RatePerApp is each app's token-bucket rate in events per second,
	// overriding the default of 1000; a request over it is refused with
	// 429 and Retry-After.
	RatePerApp float64
	// BurstPerApp is the bucket's size, overriding the default of 1000
	// (or MaxBatch if larger). It must be at least MaxBatch, so that a full
	// batch can always pass once the bucket has filled.
	BurstPerApp int
	// ReplayCacheSize bounds the signatures remembered per app, overriding
	// the default of 100,000. When it is full of signatures still inside
	// the window, requests are refused with 429 until the oldest expire.
	ReplayCacheSize int
	// PublishTimeout bounds how long a request waits for Kafka to
	// acknowledge its events, overriding the default of 10s.
	PublishTimeout time.Duration
	// Ready reports whether the gateway may take traffic (Kafka is
	// reachable); nil means always.
	Ready func(ctx context.Context) error
	// Logger overrides slog.Default().
	Logger *slog.Logger
	// Now overrides time.Now (tests).
	Now func() time.Time
}

// Server is the gateway's HTTP API. It is safe for concurrent use.
type Server struct {
	cfg  Config
	mux  *http.ServeMux
	apps map[string]*app
}

// app is an App with its limits.
type app struct {
	id     string
	key    []byte
	pub    Publisher
	bucket *bucket
	replay *replayCache
}

// New checks cfg, fills in the defaults and returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.RatePerApp == 0 {
		cfg.RatePerApp = DefaultRatePerApp
	}
	if cfg.BurstPerApp == 0 {
		cfg.BurstPerApp = max(DefaultBurstPerApp, cfg.MaxBatch)
	}
	if cfg.ReplayCacheSize == 0 {
		cfg.ReplayCacheSize = DefaultReplayCacheSize
	}
	if cfg.PublishTimeout == 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Topology == nil {
		f, err := topology.Load()
		if err != nil {
			return nil, fmt.Errorf("loading topology: %w", err)
		}
		cfg.Topology = f
	}
	var errs []error
	switch {
	case cfg.MaxBody < 0 || cfg.MaxBatch < 0 || cfg.MaxSkew < 0 || cfg.RatePerApp < 0 || cfg.BurstPerApp < 0 ||
		cfg.ReplayCacheSize < 0 || cfg.PublishTimeout < 0:
		errs = append(errs, errors.New("negative limit"))
	case cfg.BurstPerApp < cfg.MaxBatch:
		errs = append(errs, fmt.Errorf("burst %d is below the batch limit %d: a full batch could never pass", cfg.BurstPerApp, cfg.MaxBatch))
	}
	if len(cfg.Apps) == 0 {
		errs = append(errs, errors.New("no apps: at least one app with a key is required"))
	}
	apps := map[string]*app{}
	keys := map[[sha256.Size]byte]string{}
	for i, a := range cfg.Apps {
		switch {
		case !appIDPattern.MatchString(a.ID):
			errs = append(errs, fmt.Errorf("apps[%d]: app id %.64q does not match %s", i, a.ID, appIDPattern))
			continue
		case apps[a.ID] != nil:
			errs = append(errs, fmt.Errorf("apps[%d]: app %s is listed twice", i, a.ID))
			continue
		case len(a.Key) < MinKeyBytes:
			errs = append(errs, fmt.Errorf("apps[%d] (%s): %w: it has %d", i, a.ID, ErrKeyTooShort, len(a.Key)))
			continue
		case a.Publisher == nil:
			errs = append(errs, fmt.Errorf("apps[%d] (%s): no publisher", i, a.ID))
			continue
		}
		h := sha256.Sum256(a.Key)
		if other, ok := keys[h]; ok {
			errs = append(errs, fmt.Errorf("apps %s and %s share a key: each app needs its own, or one could sign as the other", other, a.ID))
		}
		keys[h] = a.ID
		apps[a.ID] = &app{
			id:     a.ID,
			key:    append([]byte(nil), a.Key...),
			pub:    a.Publisher,
			bucket: newBucket(cfg.RatePerApp, cfg.BurstPerApp),
			replay: newReplayCache(cfg.ReplayCacheSize),
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("configuring the gateway: %w", err)
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), apps: apps}
	s.mux.HandleFunc("POST /v1/events", s.handle(false))
	s.mux.HandleFunc("POST /v1/events:batch", s.handle(true))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	return s, nil
}

// Handler returns the gateway's handler.
func (s *Server) Handler() http.Handler { return s.mux }

// HTTPServer returns an http.Server serving the gateway on addr with the
// timeouts a public endpoint needs: 5s to send the headers, 30s for the
// whole request, the publish timeout plus 40s for the response, 2m idle,
// 16 KiB of headers.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      readTimeout + s.cfg.PublishTimeout + 10*time.Second,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
	}
}

// Status values of a Result.
const (
	// StatusAccepted: Kafka acknowledged the event.
	StatusAccepted = "accepted"
	// StatusRejected: the event was not published; Reason says why.
	StatusRejected = "rejected"
)

// Result is the outcome of one event of a request.
type Result struct {
	// Index is the event's position in the request, from 0.
	Index int `json:"index"`
	// Line is the event's line in a JSON-lines body, from 1.
	Line int `json:"line,omitempty"`
	// EventID is the event's event_id, when it could be read.
	EventID string `json:"event_id,omitempty"`
	// Status is accepted or rejected.
	Status string `json:"status"`
	// Topic is where an accepted event was published.
	Topic string `json:"topic,omitempty"`
	// Reason is a rejected event's code: a schemas.Reason (too_large,
	// malformed_json, invalid_payload, key_mismatch, ...), no_topic,
	// send_failed (retry with the same event_id) or batch_rejected.
	Reason schemas.Reason `json:"reason,omitempty"`
	// Detail says what was wrong, for people.
	Detail string `json:"detail,omitempty"`
}

// Response is the body of every answer to POST /v1/events and
// /v1/events:batch that got as far as the events.
type Response struct {
	Accepted int      `json:"accepted"`
	Rejected int      `json:"rejected"`
	Results  []Result `json:"results"`
}

// ErrorResponse is the body of a refused request.
type ErrorResponse struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// refuse answers a request that is refused as a whole, and logs it with the
// app (as claimed, if it is unknown) and the reason code: never a header
// value beyond the app, never the body.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, appID string, code int, reason, msg string) {
	s.cfg.Logger.Warn("gateway: request refused", "app", truncate(appID, 64), "reason", reason, "status", code,
		"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	writeJSON(w, code, ErrorResponse{Error: msg})
}

// errAuthFailed is all a client learns of an unknown app or a bad
// signature: which of the two it was is only logged.
const errAuthFailed = "authentication failed: unknown app or bad signature (docs/gateway.md)"

// authenticate checks the request's app, timestamp and signature, reads the
// body and records the signature against replays.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*app, []byte, bool) {
	id, ts, sig := r.Header.Get(HeaderApp), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature)
	if id == "" || ts == "" || sig == "" {
		s.refuse(w, r, id, http.StatusUnauthorized, "missing_headers",
			"authentication required: every request carries X-Promoflow-App, X-Promoflow-Timestamp and X-Promoflow-Signature (docs/gateway.md)")
		return nil, nil, false
	}
	a := s.apps[id]
	if a == nil {
		s.refuse(w, r, id, http.StatusUnauthorized, "unknown_app", errAuthFailed)
		return nil, nil, false
	}
	now := s.cfg.Now()
	unix, ok := parseUnix(ts)
	if !ok {
		s.refuse(w, r, id, http.StatusUnauthorized, "bad_timestamp", "X-Promoflow-Timestamp must be the signing time in unix seconds")
		return nil, nil, false
	}
	signed := time.Unix(unix, 0)
	if d := now.Sub(signed); d > s.cfg.MaxSkew || d < -s.cfg.MaxSkew {
		s.refuse(w, r, id, http.StatusUnauthorized, "clock_skew", fmt.Sprintf(
			"X-Promoflow-Timestamp %d is more than %s from the gateway's clock (%d): synchronise your clock (NTP) and sign again",
			unix, s.cfg.MaxSkew, now.Unix()))
		return nil, nil, false
	}
	if r.ContentLength > s.cfg.MaxBody {
		s.refuse(w, r, id, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBody))
		return nil, nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.refuse(w, r, id, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is larger than %d bytes", s.cfg.MaxBody))
		} else {
			s.refuse(w, r, id, http.StatusBadRequest, "body_unreadable", "the request body could not be read")
		}
		return nil, nil, false
	}
	if !verifySignature(a.key, r.Method, r.URL.RequestURI(), ts, body, sig) {
		s.refuse(w, r, id, http.StatusUnauthorized, "bad_signature", errAuthFailed)
		return nil, nil, false
	}
	var key [sha256.Size]byte
	_, _ = hex.Decode(key[:], []byte(sig)) // verified: 32 bytes of hex
	wait, err := a.replay.add(key, signed.Add(s.cfg.MaxSkew), now)
	switch {
	case errors.Is(err, errReplay):
		s.refuse(w, r, id, http.StatusUnauthorized, "replay",
			"this signature was already used: sign every request, and every retry, anew (same event_id, new timestamp)")
		return nil, nil, false
	case errors.Is(err, errReplayFull):
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
		s.refuse(w, r, id, http.StatusTooManyRequests, "replay_cache_full", fmt.Sprintf(
			"more than %d requests within %s: send fewer, larger batches", s.cfg.ReplayCacheSize, s.cfg.MaxSkew))
		return nil, nil, false
	}
	return a, body, true
}

// parseUnix parses 1 to 12 decimal digits.
func parseUnix(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 12 {
		return 0, false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// handle serves POST /v1/events (batch false: the body is one envelope) and
// POST /v1/events:batch.
func (s *Server) handle(batch bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a, body, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		items, atomic, ok := s.items(w, r, a, body, batch)
		if !ok {
			return
		}
		if ok, wait := a.bucket.take(len(items), s.cfg.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter(wait)))
			s.refuse(w, r, a.id, http.StatusTooManyRequests, "rate_limited", fmt.Sprintf(
				"app %s is over its limit of %g events/s (burst %d): retry after Retry-After seconds, signed anew",
				a.id, s.cfg.RatePerApp, s.cfg.BurstPerApp))
			return
		}
		s.process(w, r, a, items, atomic, batch)
	}
}

// items checks the query and content type and splits the body into events.
func (s *Server) items(w http.ResponseWriter, r *http.Request, a *app, body []byte, batch bool) ([]item, bool, bool) {
	var atomic bool
	for name, vals := range r.URL.Query() {
		if !batch || name != "atomic" || len(vals) != 1 {
			s.refuse(w, r, a.id, http.StatusBadRequest, "bad_query", fmt.Sprintf("unexpected query parameter %.64q (only ?atomic=true, on /v1/events:batch)", name))
			return nil, false, false
		}
		v, err := strconv.ParseBool(vals[0])
		if err != nil {
			s.refuse(w, r, a.id, http.StatusBadRequest, "bad_query", fmt.Sprintf("atomic=%.16q: want true or false", vals[0]))
			return nil, false, false
		}
		atomic = v
	}
	mt := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(ct); err != nil {
			mt = "unparsable"
		}
	}
	ndjson := false
	switch {
	case mt == "" || mt == "application/json":
	case batch && mt == "application/x-ndjson":
		ndjson = true
	default:
		want := "application/json"
		if batch {
			want = "application/json (an array) or application/x-ndjson (one envelope per line)"
		}
		s.refuse(w, r, a.id, http.StatusUnsupportedMediaType, "bad_content_type", fmt.Sprintf("Content-Type %.64q: want %s", mt, want))
		return nil, false, false
	}
	if !batch {
		raw := bytes.TrimSpace(body)
		if len(raw) == 0 {
			s.refuse(w, r, a.id, http.StatusBadRequest, "empty_body", "the body is empty: send one envelope")
			return nil, false, false
		}
		return []item{{raw: raw}}, false, true
	}
	items, err := parseBatch(body, ndjson, s.cfg.MaxBatch)
	switch {
	case errors.Is(err, ErrTooManyEvents):
		s.refuse(w, r, a.id, http.StatusRequestEntityTooLarge, "too_many_events", fmt.Sprintf("more than %d events in one batch: split it", s.cfg.MaxBatch))
		return nil, false, false
	case err != nil:
		s.refuse(w, r, a.id, http.StatusBadRequest, "bad_batch", err.Error())
		return nil, false, false
	}
	return items, atomic, true
}

// pending is a valid event waiting to be published.
type pending struct {
	idx   int
	key   string
	raw   []byte
	topic string
}

// process validates every event, refuses the request if one belongs to
// another app, and publishes the valid events (none if atomic and one is
// invalid).
func (s *Server) process(w http.ResponseWriter, r *http.Request, a *app, items []item, atomic, batch bool) {
	results := make([]Result, len(items))
	var valid []pending
	var foreign []string
	for i, it := range items {
		res := &results[i]
		res.Index, res.Line = i, it.line
		env, err := schemas.Decode(it.raw)
		if err != nil {
			res.EventID = peekEventID(it.raw)
			reject(res, err)
			continue
		}
		res.EventID = env.EventID
		if env.AppID != a.id {
			foreign = append(foreign, fmt.Sprintf("%d (app_id %q)", i, env.AppID))
			continue
		}
		t, err := s.cfg.Topology.TopicFor(env.TypeVersion())
		if err != nil {
			res.Status, res.Reason, res.Detail = StatusRejected, producers.ReasonNoTopic, err.Error()
			continue
		}
		valid = append(valid, pending{idx: i, key: env.Key, raw: it.raw, topic: t.Name})
	}
	if len(foreign) > 0 {
		if len(foreign) > 5 {
			foreign = append(foreign[:5], "…")
		}
		s.refuse(w, r, a.id, http.StatusForbidden, string(producers.ReasonWrongApp), fmt.Sprintf(
			"app %s may only publish envelopes with app_id %q; nothing was published: events %s",
			a.id, a.id, strings.Join(foreign, ", ")))
		return
	}
	if atomic && len(valid) < len(items) {
		for _, p := range valid {
			results[p.idx].Status, results[p.idx].Reason = StatusRejected, ReasonBatchRejected
			results[p.idx].Detail = "valid, but not published: the batch is atomic and another of its events is rejected"
		}
		valid = nil
	}
	sendErr := s.publish(r.Context(), a, valid, results)

	resp := Response{Results: results}
	reasons := map[schemas.Reason]int{}
	failed := 0
	for _, res := range results {
		if res.Status == StatusAccepted {
			resp.Accepted++
			continue
		}
		resp.Rejected++
		reasons[res.Reason]++
		if res.Reason == producers.ReasonSendFailed {
			failed++
		}
	}
	code := http.StatusOK
	switch {
	case !batch && resp.Accepted == 1:
		code = http.StatusAccepted
	case resp.Accepted == 0 && failed > 0:
		code = http.StatusServiceUnavailable
	case !batch || atomic && resp.Rejected > 0:
		code = http.StatusUnprocessableEntity
	}
	if resp.Rejected > 0 {
		args := []any{"app", a.id, "reason", "events_rejected", "status", code, "accepted", resp.Accepted, "rejected", resp.Rejected,
			"reasons", reasons, "path", r.URL.Path, "remote", r.RemoteAddr}
		if sendErr != nil {
			args = append(args, "err", sendErr)
		}
		s.cfg.Logger.Warn("gateway: events rejected", args...)
	}
	writeJSON(w, code, resp)
}

// publish publishes the valid events through the app's publisher and fills
// in their results. Events of one key go one after the other, in request
// order, and stop at the first failure (the rest are not sent, so a retry
// cannot overtake them); different keys go in parallel. Publishing outlives
// a client that disconnects: an event half sent is finished or failed, not
// abandoned. It returns the first publishing error, for the log.
func (s *Server) publish(ctx context.Context, a *app, valid []pending, results []Result) error {
	if len(valid) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.PublishTimeout)
	defer cancel()
	var groups [][]pending
	byKey := map[string]int{}
	for _, p := range valid {
		g, ok := byKey[p.key]
		if !ok {
			g = len(groups)
			byKey[p.key] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], p)
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := make(chan []pending)
	for range min(len(groups), maxKeysInFlight) {
		wg.Go(func() {
			for g := range next {
				var failed error
				for _, p := range g {
					res := &results[p.idx]
					if failed != nil {
						res.Status, res.Reason = StatusRejected, producers.ReasonSendFailed
						res.Detail = "not sent: an earlier event with the same key in this request was not published; send both again with the same event_ids"
						continue
					}
					if err := a.pub.PublishRaw(ctx, p.raw); err != nil {
						failed = err
						reject(res, err)
						mu.Lock()
						if firstErr == nil {
							firstErr = err
						}
						mu.Unlock()
						continue
					}
					res.Status, res.Topic = StatusAccepted, p.topic
				}
			}
		})
	}
	for _, g := range groups {
		next <- g
	}
	close(next)
	wg.Wait()
	return firstErr
}

// reject fills in a rejected result from a validation or publishing error,
// without internals: a publishing error's text (brokers, addresses) is only
// logged.
func reject(res *Result, err error) {
	res.Status = StatusRejected
	var ie *schemas.InvalidError
	switch {
	case errors.As(err, &ie):
		res.Reason, res.Detail = ie.Reason, ie.Detail
	case errors.Is(err, producers.ErrNoTopic):
		res.Reason, res.Detail = producers.ReasonNoTopic, "no single topic in topics.yaml carries the event's type and version"
	case errors.Is(err, producers.ErrWrongApp):
		res.Reason, res.Detail = producers.ReasonWrongApp, "the envelope's app_id is not the app that signed the request"
	default:
		res.Reason = producers.ReasonSendFailed
		res.Detail = "Kafka did not acknowledge the event: send it again with the same event_id"
	}
}

// peekEventID reads the event_id of an event that failed validation, to
// help the client match the result, if it can.
func peekEventID(raw []byte) string {
	var v struct {
		EventID string `json:"event_id"`
	}
	_ = json.Unmarshal(raw, &v)
	return truncate(v.EventID, 128)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			s.cfg.Logger.Warn("gateway: not ready", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": "kafka is unreachable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
