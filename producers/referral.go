package producers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/schemas"
)

// DefineReferral publishes a referral.activity.defined event creating or
// updating a share-with-gift activity, occurring now. The referral
// processor ignores a revision that is not higher than the one it holds.
// It waits for the acknowledgement.
func (p *Producer) DefineReferral(ctx context.Context, eventID string, a schemas.ReferralActivityDefined) error {
	return p.Publish(ctx, eventID, time.Now(), a)
}

// RecordClick publishes a referral.click.recorded event: inviteeID opened
// the share link whose token is token, in activityID, at. The first valid
// click or registration of an invitee binds them to the token's inviter;
// the decision is a referral.bound result. Use a stable eventID (the click
// id of your app): a retry with it returns the first decision. It waits
// for the acknowledgement.
func (p *Producer) RecordClick(ctx context.Context, eventID, activityID, inviteeID, token string, at time.Time) error {
	return p.Publish(ctx, eventID, at, schemas.ClickRecorded{ActivityID: activityID, InviteeID: inviteeID, Token: token})
}

// RecordRegistration publishes a referral.registered event: inviteeID,
// who came through the link with token, registered (or joined the
// activity) at. It binds like a click. It waits for the acknowledgement.
func (p *Producer) RecordRegistration(ctx context.Context, eventID, activityID, inviteeID, token string, at time.Time) error {
	return p.Publish(ctx, eventID, at, schemas.Registered{ActivityID: activityID, InviteeID: inviteeID, Token: token})
}

// RecordQualified publishes a referral.qualified event: inviteeID
// completed action (the activity's qualifying_action, e.g.
// order_confirmed) at; reference (an order id) is kept for the audit trail
// and may be empty. A bound invitee then counts toward the inviter's
// rewards, once. Publish it after the invitee's registration event (both
// go to referral.events keyed by activity, so their order is kept). It
// waits for the acknowledgement.
func (p *Producer) RecordQualified(ctx context.Context, eventID, activityID, inviteeID, action, reference string, at time.Time) error {
	return p.Publish(ctx, eventID, at, schemas.Qualified{ActivityID: activityID, InviteeID: inviteeID, Action: action, Reference: reference})
}

// ShareLink is a share link as the HTTP API hands it out: the token, the
// URL to share, and what the token says.
type ShareLink = sharelink.Issued

// ShareLinkError is a request the share-link API refused (400): Reason is
// a code such as unknown_activity, activity_disabled, ended, bad_ttl,
// bad_token or expired_token.
type ShareLinkError struct {
	Status  int
	Reason  string
	Message string
}

func (e *ShareLinkError) Error() string {
	return fmt.Sprintf("share-link API: %d %s: %s", e.Status, e.Reason, e.Message)
}

// ShareLinkClient calls the share-link API of `promoflow serve`
// (POST /v1/share-links, GET /v1/share-links/{token}). Apps that hold a
// link key can sign links themselves with a ShareLinkSigner instead. It is
// safe for concurrent use.
type ShareLinkClient struct {
	base string
	hc   *http.Client
}

// NewShareLinkClient returns a client of the API at baseURL (e.g.
// "http://promoflow-api:8080"). hc nil uses a client with a 10s timeout.
func NewShareLinkClient(baseURL string, hc *http.Client) *ShareLinkClient {
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	return &ShareLinkClient{base: strings.TrimRight(baseURL, "/"), hc: hc}
}

// Create asks for a link to activityID shared by inviter, valid for the
// activity's link TTL.
func (c *ShareLinkClient) Create(ctx context.Context, activityID, inviter string) (ShareLink, error) {
	return c.CreateTTL(ctx, activityID, inviter, 0)
}

// CreateTTL is Create with a link valid for ttl (whole seconds; the API
// caps it by the activity's link TTL); 0 asks for the activity's.
func (c *ShareLinkClient) CreateTTL(ctx context.Context, activityID, inviter string, ttl time.Duration) (ShareLink, error) {
	body := map[string]any{"activity_id": activityID, "inviter": inviter}
	if ttl > 0 {
		body["ttl"] = int64(ttl / time.Second)
	}
	b, err := json.Marshal(body)
	if err != nil {
		return ShareLink{}, err
	}
	return c.do(ctx, http.MethodPost, c.base+"/v1/share-links", b)
}

// Resolve asks what token names. A forged, altered or expired token is a
// *ShareLinkError with Reason bad_token or expired_token.
func (c *ShareLinkClient) Resolve(ctx context.Context, token string) (ShareLink, error) {
	return c.do(ctx, http.MethodGet, c.base+"/v1/share-links/"+url.PathEscape(token), nil)
}

func (c *ShareLinkClient) do(ctx context.Context, method, u string, body []byte) (ShareLink, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return ShareLink{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return ShareLink{}, fmt.Errorf("calling the share-link API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return ShareLink{}, fmt.Errorf("reading the share-link API's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return ShareLink{}, &ShareLinkError{Status: resp.StatusCode, Reason: e.Reason, Message: e.Error}
	}
	var l ShareLink
	if err := json.Unmarshal(b, &l); err != nil {
		return ShareLink{}, fmt.Errorf("decoding the share-link API's answer: %w", err)
	}
	if l.Token == "" {
		return ShareLink{}, errors.New("the share-link API answered without a token")
	}
	return l, nil
}

// ShareLinkSigner signs share links locally with a link key, for apps that
// hold one (the same key as referral.link_keys): no call to the API, but
// also no check that the activity exists or of its link TTL.
type ShareLinkSigner struct {
	keys *sharelink.Keyring
}

// NewShareLinkSigner returns a signer with key keyID (1 to 16 of
// [A-Za-z0-9_-]) and its secret (at least 32 bytes).
func NewShareLinkSigner(keyID string, secret []byte) (*ShareLinkSigner, error) {
	k, err := sharelink.NewKeyring(keyID, sharelink.Key{ID: keyID, Secret: secret})
	if err != nil {
		return nil, err
	}
	return &ShareLinkSigner{keys: k}, nil
}

// Sign returns the token of a link to activityID shared by inviter, valid
// until expires (whole seconds).
func (s *ShareLinkSigner) Sign(activityID, inviter string, expires time.Time) (string, error) {
	return s.keys.Sign(activityID, inviter, expires)
}

// Verify checks a token made with the signer's key and returns what it
// says (expired or not).
func (s *ShareLinkSigner) Verify(token string) (ShareLink, error) {
	l, err := s.keys.Verify(token)
	if err != nil {
		return ShareLink{}, err
	}
	return ShareLink{Token: token, ActivityID: l.ActivityID, Inviter: l.Inviter, ExpiresAt: l.ExpiresAt, KeyID: l.KeyID}, nil
}
