package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"sync"
	"time"

	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// Limits on a validation request.
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 64 << 10
	// MaxItems bounds the lines of a cart.
	MaxItems = 200
	// MaxAmount bounds one line's amount (minor units).
	MaxAmount = 100_000_000_000
)

// userIDPattern is the schemas' user id pattern.
var userIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// Config configures a Server.
type Config struct {
	// Coupons reads users' coupons (the MySQL sink). Required.
	Coupons sinks.CouponReader
	// Batches is the cache of batch definitions. Required.
	Batches *coupon.Batches
	// CacheTTL is how long a user's coupons are served from memory,
	// overriding the default of 1s; negative disables the cache.
	CacheTTL time.Duration
	// CacheSize bounds the users cached, overriding the default of 100,000.
	CacheSize int
	// Inbox serves users' station-message inboxes (inbox.go); without it
	// the inbox routes answer 503. Optional.
	Inbox sinks.Inbox
	// Recommendations reads users' recommended coupons (the recommendation
	// processor's Redis store); nil answers GET
	// /v1/users/{user}/recommendations with 503.
	Recommendations RecommendationReader
	// Ready reports whether the server may take traffic (the batch cache
	// caught up, the store reachable); nil means always.
	Ready func(ctx context.Context) error
	// Logger overrides slog.Default().
	Logger *slog.Logger
	// Now overrides time.Now (tests).
	Now func() time.Time
	// Campaigns are the sources of the campaign page and its API
	// (campaigns.go); every one is optional.
	Campaigns CampaignSources
	// ShareLinks, when set, serves the share-link routes (referral.go).
	ShareLinks *ShareLinks
	// Crowds reads crowds (the MySQL crowd store) for the crowd routes
	// (crowds.go); without it they answer 503. Optional.
	Crowds sinks.CrowdReader
}

// Server serves the API. It is safe for concurrent use.
type Server struct {
	cfg   Config
	mux   *http.ServeMux
	cache *userCache
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Coupons == nil || cfg.Batches == nil {
		return nil, errors.New("api: Coupons and Batches are required")
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = time.Second
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 100_000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), cache: newUserCache(cfg.CacheTTL, cfg.CacheSize)}
	s.mux.HandleFunc("POST /v1/users/{user}/coupons/usable", s.usable)
	s.mux.HandleFunc("GET /v1/users/{user}/coupons", s.coupons)
	s.mux.HandleFunc("GET /v1/users/{user}/recommendations", s.recommendations)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.campaignRoutes()
	s.routeShareLinks()
	s.inboxRoutes()
	s.crowdRoutes()
	return s, nil
}

// Handler returns the API's handler.
func (s *Server) Handler() http.Handler { return s.mux }

// CartItem is one line of a cart in a request.
type CartItem struct {
	SKU      string `json:"sku"`
	Category string `json:"category"`
	Brand    string `json:"brand"`
	Model    string `json:"model"`
	Amount   int64  `json:"amount"`
}

// UsableRequest is the body of POST /v1/users/{user}/coupons/usable.
type UsableRequest struct {
	Items []CartItem `json:"items"`
}

// CouponResult is one coupon in a validation response.
type CouponResult struct {
	CouponID    string    `json:"coupon_id"`
	BatchID     string    `json:"batch_id"`
	BatchName   string    `json:"batch_name,omitempty"`
	Usable      bool      `json:"usable"`
	Kind        string    `json:"kind,omitempty"`
	Discount    int64     `json:"discount"`
	Bonus       int64     `json:"bonus"`
	ScopeAmount int64     `json:"scope_amount"`
	Reason      string    `json:"reason,omitempty"`
	ExcludedBy  string    `json:"excluded_by,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// UsableResponse answers POST /v1/users/{user}/coupons/usable: the usable
// coupons, best first, and the others with the reason they do not apply.
type UsableResponse struct {
	UserID      string         `json:"user_id"`
	EvaluatedAt time.Time      `json:"evaluated_at"`
	Usable      []CouponResult `json:"usable"`
	Unusable    []CouponResult `json:"unusable"`
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeJSON(w, http.StatusBadRequest, apiError{Error: fmt.Sprintf(format, args...)})
}

func (s *Server) user(w http.ResponseWriter, r *http.Request) (string, bool) {
	u := r.PathValue("user")
	if !userIDPattern.MatchString(u) {
		badRequest(w, "user id %.64q does not match %s", u, userIDPattern)
		return "", false
	}
	return u, true
}

// decodeCart reads and checks a validation request.
func decodeCart(r *http.Request) (coupon.Cart, error) {
	var req UsableRequest
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return coupon.Cart{}, fmt.Errorf("request body larger than %d bytes", MaxBodyBytes)
		}
		return coupon.Cart{}, fmt.Errorf("decoding the cart: %v", err)
	}
	if dec.More() {
		return coupon.Cart{}, errors.New("decoding the cart: more than one JSON value")
	}
	if len(req.Items) == 0 || len(req.Items) > MaxItems {
		return coupon.Cart{}, fmt.Errorf("a cart needs 1 to %d items, got %d", MaxItems, len(req.Items))
	}
	cart := coupon.Cart{Items: make([]coupon.Item, len(req.Items))}
	for i, it := range req.Items {
		if it.Amount < 0 || it.Amount > MaxAmount {
			return coupon.Cart{}, fmt.Errorf("items[%d].amount %d is outside [0, %d]", i, it.Amount, int64(MaxAmount))
		}
		for name, v := range map[string]string{"sku": it.SKU, "category": it.Category, "brand": it.Brand, "model": it.Model} {
			if len(v) > 64 {
				return coupon.Cart{}, fmt.Errorf("items[%d].%s is longer than 64 bytes", i, name)
			}
		}
		cart.Items[i] = coupon.Item{SKU: it.SKU, Category: it.Category, Brand: it.Brand, Model: it.Model, Amount: it.Amount}
	}
	return cart, nil
}

func (s *Server) held(ctx context.Context, user string) ([]coupon.Held, error) {
	if h, ok := s.cache.get(user, s.cfg.Now()); ok {
		return h, nil
	}
	rows, err := s.cfg.Coupons.UserCoupons(ctx, user)
	if err != nil {
		return nil, err
	}
	held := make([]coupon.Held, len(rows))
	for i, r := range rows {
		held[i] = coupon.Held{CouponID: r.CouponID, BatchID: r.BatchID, State: r.State, ValidFrom: r.ValidFrom, ExpiresAt: r.ExpiresAt}
	}
	s.cache.put(user, held, s.cfg.Now())
	return held, nil
}

func (s *Server) usable(w http.ResponseWriter, r *http.Request) {
	user, ok := s.user(w, r)
	if !ok {
		return
	}
	cart, err := decodeCart(r)
	if err != nil {
		badRequest(w, "%v", err)
		return
	}
	held, err := s.held(r.Context(), user)
	if err != nil {
		s.cfg.Logger.Error("reading coupons", "user", user, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the coupon store is unavailable"})
		return
	}
	now := s.cfg.Now()
	evals := coupon.Usable(s.cfg.Batches.Get, held, cart, now)
	expires := make(map[string]time.Time, len(held))
	for _, h := range held {
		expires[h.CouponID] = h.ExpiresAt
	}
	resp := UsableResponse{UserID: user, EvaluatedAt: now.UTC(), Usable: []CouponResult{}, Unusable: []CouponResult{}}
	for _, e := range evals {
		cr := CouponResult{CouponID: e.CouponID, BatchID: e.BatchID, Usable: e.Usable, Kind: e.Kind, Discount: e.Discount, Bonus: e.Bonus,
			ScopeAmount: e.ScopeAmount, Reason: e.Reason, ExcludedBy: e.ExcludedBy, ExpiresAt: expires[e.CouponID].UTC()}
		if def := s.cfg.Batches.Get(e.BatchID); def != nil {
			cr.BatchName = def.Name
		}
		if e.Usable {
			resp.Usable = append(resp.Usable, cr)
		} else {
			resp.Unusable = append(resp.Unusable, cr)
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

// CouponsResponse answers GET /v1/users/{user}/coupons.
type CouponsResponse struct {
	UserID  string            `json:"user_id"`
	Coupons []sinks.CouponRow `json:"coupons"`
}

func (s *Server) coupons(w http.ResponseWriter, r *http.Request) {
	user, ok := s.user(w, r)
	if !ok {
		return
	}
	var states []string
	if st := r.URL.Query().Get("state"); st != "" {
		switch st {
		case schemas.CouponAvailable, schemas.CouponLocked, schemas.CouponUsed, schemas.CouponExpired:
			states = []string{st}
		default:
			badRequest(w, "state must be available, locked, used or expired")
			return
		}
	}
	rows, err := s.cfg.Coupons.UserCoupons(r.Context(), user, states...)
	if err != nil {
		s.cfg.Logger.Error("reading coupons", "user", user, "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "the coupon store is unavailable"})
		return
	}
	if rows == nil {
		rows = []sinks.CouponRow{}
	}
	writeJSON(w, http.StatusOK, CouponsResponse{UserID: user, Coupons: rows})
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// userCache keeps users' coupons for a short time: a checkout asks several
// times within a second. Entries are bounded; when full, expired entries
// go first, then arbitrary ones.
type userCache struct {
	ttl  time.Duration
	size int
	mu   sync.Mutex
	m    map[string]cached
}

type cached struct {
	held []coupon.Held
	at   time.Time
}

func newUserCache(ttl time.Duration, size int) *userCache {
	return &userCache{ttl: ttl, size: size, m: map[string]cached{}}
}

func (c *userCache) get(user string, now time.Time) ([]coupon.Held, bool) {
	if c.ttl < 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[user]
	if !ok || now.Sub(e.at) >= c.ttl {
		return nil, false
	}
	return e.held, true
}

func (c *userCache) put(user string, held []coupon.Held, now time.Time) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.size {
		for k, e := range c.m {
			if now.Sub(e.at) >= c.ttl {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.size {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[user] = cached{held: held, at: now}
}
