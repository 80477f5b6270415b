package producers_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/referral"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

func TestReferralHelpersRouteAndKey(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)
	now := time.Now().UTC().Truncate(time.Second)
	signer, err := producers.NewShareLinkSigner("k1", []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signer.Sign("spring", "alice", now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	def := schemas.ReferralActivityDefined{
		ActivityID: "spring", Revision: 1, Status: schemas.BatchActive, StartsAt: now, EndsAt: now.Add(time.Hour),
		QualifyingAction: "order_confirmed", LinkTTLSeconds: 3600, Rewards: []schemas.ReferralReward{{Threshold: 3, BatchID: "B3"}},
	}
	steps := []struct {
		eventID string
		publish func() error
		topic   string
		want    schemas.Payload
	}{
		{"def-1", func() error { return p.DefineReferral(ctx, "def-1", def) }, "referral.admin", def},
		{"click-1", func() error { return p.RecordClick(ctx, "click-1", "spring", "bob", tok, now) }, "referral.events",
			schemas.ClickRecorded{ActivityID: "spring", InviteeID: "bob", Token: tok}},
		{"reg-1", func() error { return p.RecordRegistration(ctx, "reg-1", "spring", "bob", tok, now) }, "referral.events",
			schemas.Registered{ActivityID: "spring", InviteeID: "bob", Token: tok}},
		{"q-1", func() error { return p.RecordQualified(ctx, "q-1", "spring", "bob", "order_confirmed", "order-9", now) }, "referral.events",
			schemas.Qualified{ActivityID: "spring", InviteeID: "bob", Action: "order_confirmed", Reference: "order-9"}},
	}
	for _, s := range steps {
		if err := s.publish(); err != nil {
			t.Fatalf("publishing %s: %v", s.eventID, err)
		}
	}
	// A click with a token that is not one never leaves the app.
	if err := p.RecordClick(ctx, "click-2", "spring", "bob", "not a token", now); !errors.Is(err, schemas.ErrInvalid) {
		t.Errorf("a click with a malformed token was sent: %v", err)
	}
	recs := consumeAll(t, addrs, "referral.admin", "referral.events")
	if len(recs) != len(steps) {
		t.Fatalf("got %d records, want %d", len(recs), len(steps))
	}
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if s.eventID != env.EventID {
				continue
			}
			if r.Topic != s.topic || string(r.Key) != "spring" || env.Type != s.want.EventType() {
				t.Errorf("%s went to %s keyed %q as %s", s.eventID, r.Topic, r.Key, env.Type)
			}
			got := reflect.New(reflect.TypeOf(s.want))
			if err := env.DecodePayload(got.Interface()); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Elem().Interface(), s.want) {
				t.Errorf("%s carries %+v, want %+v", s.eventID, got.Elem().Interface(), s.want)
			}
		}
	}
}

// TestShareLinkClient runs the client against the real API handler.
func TestShareLinkClient(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	signer, err := producers.NewShareLinkSigner("k1", secret)
	if err != nil {
		t.Fatal(err)
	}
	acts := referral.NewActivities()
	now := time.Now().UTC()
	acts.Put(&schemas.ReferralActivityDefined{ActivityID: "spring", Revision: 1, Status: schemas.BatchActive, StartsAt: now.Add(-time.Hour),
		EndsAt: now.Add(24 * time.Hour), QualifyingAction: schemas.QualifyNone, LinkTTLSeconds: 7200})
	keys := mustKeyring(t, secret)
	srv, err := api.New(api.Config{Coupons: noCoupons{}, Batches: coupon.NewBatches(),
		ShareLinks: &api.ShareLinks{Keys: keys, Activities: acts, URL: func(tok string) string { return "https://s.example/r/" + tok }}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	c := producers.NewShareLinkClient(hs.URL+"/", nil)
	ctx := testenv.Context(t, 10*time.Second)

	l, err := c.Create(ctx, "spring", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(l.ExpiresAt); d < 119*time.Minute || d > 121*time.Minute || l.URL != "https://s.example/r/"+l.Token {
		t.Errorf("link %+v: want a 2h link with its URL", l)
	}
	if v, err := signer.Verify(l.Token); err != nil || v.Inviter != "alice" {
		t.Errorf("the API's token does not verify with the same key: %+v, %v", v, err)
	}
	short, err := c.CreateTTL(ctx, "spring", "alice", 10*time.Minute)
	if err != nil || time.Until(short.ExpiresAt) > 11*time.Minute {
		t.Errorf("CreateTTL: %+v, %v", short, err)
	}
	got, err := c.Resolve(ctx, l.Token)
	if err != nil || got != l {
		t.Errorf("Resolve = %+v, %v; want %+v", got, err, l)
	}
	// A token signed locally with the same key resolves too.
	tok, _ := signer.Sign("spring", "carol", now.Add(time.Hour))
	if got, err := c.Resolve(ctx, tok); err != nil || got.Inviter != "carol" {
		t.Errorf("a locally signed token: %+v, %v", got, err)
	}
	other, _ := producers.NewShareLinkSigner("k1", []byte("another secret of at least 32 bytes!"))
	forged, _ := other.Sign("spring", "mallory", now.Add(time.Hour))
	var se *producers.ShareLinkError
	if _, err := c.Resolve(ctx, forged); !errors.As(err, &se) || se.Reason != schemas.RefuseBadToken || se.Status != 400 {
		t.Errorf("a forged token: %v", err)
	}
	if _, err := c.Create(ctx, "nowhere", "alice"); !errors.As(err, &se) || se.Reason != schemas.RejectUnknownActivity {
		t.Errorf("an unknown activity: %v", err)
	}
}

type noCoupons struct{}

func (noCoupons) UserCoupons(context.Context, string, ...string) ([]sinks.CouponRow, error) {
	return nil, nil
}
func (noCoupons) CouponOps(context.Context, string, string) ([]schemas.StateChanged, error) {
	return nil, nil
}

func mustKeyring(t *testing.T, secret []byte) *sharelink.Keyring {
	t.Helper()
	k, err := sharelink.NewKeyring("k1", sharelink.Key{ID: "k1", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return k
}
