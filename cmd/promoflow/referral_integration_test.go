package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/referral"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// TestIntegrationReferralCampaignFromTheCLI runs a share-with-gift campaign
// the way docs/referrals.md tells an operator and an app to, through the
// coupon and referral processors and both sinks against kfake and the real
// Redis, MariaDB and ClickHouse: define the activity, make links, publish
// clicks (one twice, a self-invite, a second inviter, a forged token) and
// qualifications; the inviter's reward is issued as a coupon by the coupon
// processor, once; `referral status` shows it and `promoflow verify` passes.
func TestIntegrationReferralCampaignFromTheCLI(t *testing.T) {
	t.Setenv("PROMOFLOW_TEST_REFERRAL_KEY", "0123456789abcdef0123456789abcdef-test")
	e := startCouponEnv(t, stageCoupon, stageReferral, stageMySQL, stageClickHouse)
	e.cfg.Referral.LinkKeys = []LinkKey{{ID: "k1", SecretEnv: "PROMOFLOW_TEST_REFERRAL_KEY"}}
	e.cfg.Referral.LinkURL = "https://shop.example/r/{token}"
	e.restart()
	ctx := testenv.Context(t, 3*time.Minute)
	body, err := yaml.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "promoflow.yaml")
	if err := os.WriteFile(cfgFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := runMain(append(args, "--config", cfgFile), &out, &errOut); code != 0 {
			t.Fatalf("promoflow %s exited %d:\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
		}
		return out.String()
	}
	now := time.Now().UTC()
	pr, err := producers.New(producers.Config{Brokers: e.cfg.Kafka.Brokers, AppID: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.Publish(ctx, "def-ref-batch", now, schemas.BatchDefinedV2{BatchID: "REF-B2", Revision: 1, TotalStock: 100, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive,
		DiscountType: schemas.DiscountFixed, Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	def := fmt.Sprintf(`activity_id: spring-share
name: Invite friends, get 10 off
revision: 1
status: active
starts_at: %s
ends_at: %s
qualifying_action: order_confirmed
link_ttl_seconds: 86400
rewards:
  - {threshold: 2, batch_id: REF-B2}
`, now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	file := filepath.Join(t.TempDir(), "spring.yaml")
	if err := os.WriteFile(file, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := run("referral", "define", "--file", file); !strings.Contains(out, "published referral.activity.defined spring-share revision 1") {
		t.Fatalf("referral define printed:\n%s", out)
	}
	link := func(inviter string) string {
		var l sharelink.Issued
		if err := json.Unmarshal([]byte(run("referral", "link", "spring-share", "--inviter", inviter, "--ttl", "1h", "--json")), &l); err != nil {
			t.Fatal(err)
		}
		if l.Inviter != inviter || l.URL != "https://shop.example/r/"+l.Token {
			t.Fatalf("link %+v", l)
		}
		return l.Token
	}
	alice, erin := link("alice"), link("erin")
	if out := run("referral", "link", "--resolve", alice); !strings.Contains(out, "inviter    alice") {
		t.Errorf("link --resolve printed:\n%s", out)
	}
	attacker, _ := sharelink.NewKeyring("k1", sharelink.Key{ID: "k1", Secret: bytes.Repeat([]byte("m"), 32)})
	forged, _ := attacker.Sign("spring-share", "mallory", now.Add(time.Hour))
	var resolveOut, resolveErr bytes.Buffer
	if code := runMain([]string{"referral", "link", "--resolve", forged, "--config", cfgFile}, &resolveOut, &resolveErr); code != 1 {
		t.Errorf("link --resolve of a forged token exited %d, want 1", code)
	}

	// The definition reaches the processor's cache before the clicks.
	time.Sleep(time.Second)
	at := time.Now()
	clicks := []struct{ id, invitee, token string }{
		{"c1", "bob", alice}, {"c1", "bob", alice}, // delivered twice
		{"c2", "carol", alice},
		{"c3", "dave", alice},
		{"c4", "bob", erin},              // a second inviter: refused
		{"c5", "alice", alice},           // self-invite
		{"c6", "frank", forged},          // forged
		{"c7", "erin", alice},            // erin is invited by alice
		{"c8", "alice", erin},            // closing a cycle: refused
		{"c9", "grace", "x" + alice[1:]}, // altered
	}
	for _, c := range clicks {
		if err := pr.RecordClick(ctx, c.id, "spring-share", c.invitee, c.token, at); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []struct{ id, invitee string }{{"q1", "bob"}, {"q2", "carol"}, {"q3", "dave"}, {"q1", "bob"}} {
		if err := pr.RecordQualified(ctx, q.id, "spring-share", q.invitee, "order_confirmed", "order-"+q.id, at); err != nil {
			t.Fatal(err)
		}
	}

	store, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rewardID := referral.RewardID("spring-share", "alice", 2)
	waitFor(t, "the reward's coupon granted by the coupon processor", func() bool {
		rows, err := store.UserCoupons(ctx, "alice")
		if err != nil || len(rows) == 0 {
			return false
		}
		c, err := store.ReferralCounts(ctx, "spring-share")
		return err == nil && c.Counted == 3 && c.Clicks == 9
	})
	rows, _ := store.UserCoupons(ctx, "alice")
	if len(rows) != 1 || rows[0].BatchID != "REF-B2" || rows[0].CouponID != schemas.ResultID("coupon.grant", referral.AppID, referral.ClaimEventID(rewardID)) {
		t.Errorf("alice's coupons: %+v, want one of REF-B2 from the reward", rows)
	}
	c, err := store.ReferralCounts(ctx, "spring-share")
	if err != nil {
		t.Fatal(err)
	}
	wantRefused := map[string]int64{schemas.RefuseAlreadyBound: 1, schemas.RefuseSelfInvite: 1, schemas.RefuseBadToken: 2, schemas.RefuseCycle: 1}
	if c.Bound != 4 || c.Rewards != 1 || fmt.Sprint(c.RefusedBy) != fmt.Sprint(wantRefused) {
		t.Errorf("counts %+v, want 4 bound, 1 reward, refused %v", c, wantRefused)
	}
	out := run("referral", "status", "spring-share", "--inviter", "alice", "--invitee", "bob")
	for _, want := range []string{
		"activity spring-share: 9 clicks, 0 registrations; 4 bound, 3 counting toward rewards, 1 rewards",
		"inviter alice: 4 invitees, 3 counting",
		"reward: threshold 2, batch REF-B2, at 2 invitees",
		"invitee bob: invited by alice (click c1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("referral status lacks %q:\n%s", want, out)
		}
	}

	// Both stores hold everything and every invariant holds.
	deadline := time.Now().Add(90 * time.Second)
	for {
		code, rep, vout := verifyReport(t, cfgFile)
		c2, c3 := checkOf(rep, 2), checkOf(rep, 3)
		if code == 0 && c2.Counts["referral.clickhouse"] == 9 && c2.Counts["referral_reward.clickhouse"] == 1 &&
			c2.Counts["referral_qualification.clickhouse"] == 3 && c3.Counts["referral.bound"] == 4 {
			if c3.Counts["referral.invitees_bound_more_than_once"] != 0 || c3.Counts["referral.bound_to_self"] != 0 {
				t.Errorf("verify passed with referral breaches:\n%s", vout)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify never passed; last exit %d:\n%s", code, vout)
		}
		time.Sleep(time.Second)
	}

	// A forged second binding in MySQL is a breach verify reports.
	forgedRow := schemas.ReferralBoundResult{
		ResultID: schemas.ResultID(referral.KindBind, "shop", "forged-row"), SourceEventID: "forged-row", EventKind: schemas.BindClick,
		ActivityID: "spring-share", InviteeID: "bob", InviterID: "erin", Status: schemas.ReferralBound, BoundInviterID: "erin",
		OccurredAt: at, DecidedAt: at,
	}
	env, err := schemas.New(forgedRow.ResultID, "shop", at, forgedRow)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteBatch(context.Background(), []*schemas.Envelope{env}); err != nil {
		t.Fatal(err)
	}
	code, rep, vout := verifyReport(t, cfgFile)
	if code != 1 || checkOf(rep, 3).Counts["referral.invitees_bound_more_than_once"] != 1 ||
		!strings.Contains(vout, "referral spring-share: invitee bob was bound 2 times") {
		t.Errorf("verify after a second binding of bob: exit %d\n%s", code, vout)
	}
}
