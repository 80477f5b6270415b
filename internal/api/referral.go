package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/processors/referral"
	"github.com/promoflow/promoflow/schemas"
)

// MinLinkTTL is the shortest link a caller may ask for.
const MinLinkTTL = time.Minute

// ShareLinks configures the share-link routes (docs/referrals.md). A
// Server without it does not serve them.
type ShareLinks struct {
	// Keys signs new links and verifies tokens. Required.
	Keys *sharelink.Keyring
	// Activities is the cache of referral activities. Required.
	Activities *referral.Activities
	// URL returns the URL of a link's token; nil returns the token.
	URL func(token string) string
}

// ShareLinkRequest is the body of POST /v1/share-links.
type ShareLinkRequest struct {
	ActivityID string `json:"activity_id"`
	Inviter    string `json:"inviter"`
	// TTL is how long the link binds: seconds (a number) or a duration
	// ("72h"); at most, and by default, the activity's link_ttl_seconds.
	TTL json.RawMessage `json:"ttl,omitempty"`
}

// ShareLink answers POST /v1/share-links and GET /v1/share-links/{token}.
type ShareLink = sharelink.Issued

// linkError is a refused share-link request: the message and a reason
// code (the refusal reasons of referral.bound where they apply).
type linkError struct {
	Error  string `json:"error"`
	Reason string `json:"reason"`
}

func refuseLink(w http.ResponseWriter, reason, format string, args ...any) {
	writeJSON(w, http.StatusBadRequest, linkError{Error: fmt.Sprintf(format, args...), Reason: reason})
}

// routeShareLinks registers the share-link routes when configured.
func (s *Server) routeShareLinks() {
	if s.cfg.ShareLinks == nil {
		return
	}
	s.mux.HandleFunc("POST /v1/share-links", s.createShareLink)
	s.mux.HandleFunc("GET /v1/share-links/{token}", s.resolveShareLink)
}

// createShareLink signs a link to an active activity for an inviter.
func (s *Server) createShareLink(w http.ResponseWriter, r *http.Request) {
	sl := s.cfg.ShareLinks
	var req ShareLinkRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		refuseLink(w, "bad_request", "decoding the request: %v", err)
		return
	}
	if dec.More() {
		refuseLink(w, "bad_request", "decoding the request: more than one JSON value")
		return
	}
	def := sl.Activities.Get(req.ActivityID)
	now := s.cfg.Now()
	switch {
	case def == nil:
		refuseLink(w, schemas.RejectUnknownActivity, "no referral activity %.70q", req.ActivityID)
		return
	case def.Status == schemas.BatchDisabled:
		refuseLink(w, schemas.RejectActivityDisabled, "referral activity %s is disabled", def.ActivityID)
		return
	case !now.Before(def.EndsAt):
		refuseLink(w, schemas.RejectEnded, "referral activity %s ended at %s", def.ActivityID, def.EndsAt.UTC().Format(time.RFC3339))
		return
	}
	ttl, err := parseTTL(req.TTL, def.LinkTTL())
	if err != nil {
		refuseLink(w, "bad_ttl", "%v", err)
		return
	}
	exp := now.Add(ttl)
	if exp.After(def.EndsAt) {
		// A link cannot bind after the activity ends; say so in its expiry.
		exp = def.EndsAt
	}
	// Round up: a token carries whole seconds and must not expire early.
	if exp.Truncate(time.Second).Before(exp) {
		exp = exp.Truncate(time.Second).Add(time.Second)
	}
	tok, err := sl.Keys.Sign(def.ActivityID, req.Inviter, exp)
	switch {
	case errors.Is(err, sharelink.ErrBadKey):
		s.cfg.Logger.Error("signing a share link", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, apiError{Error: "no share-link key is configured"})
		return
	case err != nil:
		refuseLink(w, "bad_request", "%v", err)
		return
	}
	l, _ := sl.Keys.Verify(tok)
	writeJSON(w, http.StatusOK, s.shareLink(tok, l))
}

func (s *Server) shareLink(tok string, l sharelink.Link) ShareLink {
	out := ShareLink{Token: tok, URL: tok, ActivityID: l.ActivityID, Inviter: l.Inviter, ExpiresAt: l.ExpiresAt, KeyID: l.KeyID}
	if u := s.cfg.ShareLinks.URL; u != nil {
		out.URL = u(tok)
	}
	return out
}

// parseTTL reads a requested ttl: absent (max), whole seconds, or a Go
// duration string; it is capped by max and must be at least MinLinkTTL.
func parseTTL(raw json.RawMessage, max time.Duration) (time.Duration, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return max, nil
	}
	var d time.Duration
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("ttl %.40q: %v", s, err)
		}
	} else {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("ttl %.40s: want whole seconds or a duration such as \"72h\"", raw)
		}
		d = time.Duration(min(n, int64(max/time.Second)+1)) * time.Second // capped before it could overflow
	}
	if d < MinLinkTTL {
		return 0, fmt.Errorf("ttl %s: at least %s", d, MinLinkTTL)
	}
	return min(d, max), nil
}

// resolveShareLink verifies a token and says what it names.
func (s *Server) resolveShareLink(w http.ResponseWriter, r *http.Request) {
	sl := s.cfg.ShareLinks
	tok := r.PathValue("token")
	l, err := sl.Keys.Resolve(tok, s.cfg.Now())
	switch {
	case errors.Is(err, sharelink.ErrExpired):
		refuseLink(w, schemas.RefuseExpiredToken, "the link expired at %s", l.ExpiresAt.Format(time.RFC3339))
		return
	case err != nil:
		refuseLink(w, schemas.RefuseBadToken, "the link is not valid")
		return
	}
	def := sl.Activities.Get(l.ActivityID)
	switch {
	case def == nil:
		refuseLink(w, schemas.RejectUnknownActivity, "no referral activity %s", l.ActivityID)
		return
	case def.Status == schemas.BatchDisabled:
		refuseLink(w, schemas.RejectActivityDisabled, "referral activity %s is disabled", l.ActivityID)
		return
	}
	writeJSON(w, http.StatusOK, s.shareLink(tok, l))
}
