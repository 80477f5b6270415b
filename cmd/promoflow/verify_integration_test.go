package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/verify"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// verifyRun runs `promoflow verify` with the environment's configuration
// and returns its exit status and output.
func verifyRun(t *testing.T, cfgFile string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(append([]string{"verify", "--config", cfgFile, "--quiet"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// verifyReport runs verify --json and decodes its report.
func verifyReport(t *testing.T, cfgFile string) (int, *verify.Report, string) {
	t.Helper()
	code, out, errOut := verifyRun(t, cfgFile, "--json")
	var rep verify.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("verify --json exited %d with no report (%v):\n%s\n%s", code, err, out, errOut)
	}
	return code, &rep, out + errOut
}

func checkOf(rep *verify.Report, id int) *verify.Check {
	for _, c := range rep.Checks {
		if c.ID == id {
			return c
		}
	}
	return &verify.Check{Counts: map[string]int64{}}
}

// TestIntegrationVerifyFindsBreaches runs claims (with duplicates), lottery
// participations, order operations and bad records through the whole
// pipeline against the real Redis, MariaDB and ClickHouse, and checks that
// `promoflow verify` passes; then it breaks the stores and the pipeline one
// way after another and checks that verify reports each breach and exits 1.
func TestIntegrationVerifyFindsBreaches(t *testing.T) {
	e := startCouponEnv(t, stageCoupon, stageLottery, stageMySQL, stageClickHouse)
	ctx := testenv.Context(t, 5*time.Minute)
	body, err := yaml.Marshal(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(t.TempDir(), "promoflow.yaml")
	if err := os.WriteFile(cfgFile, body, 0o600); err != nil {
		t.Fatal(err)
	}
	brokers := e.cfg.Kafka.Brokers
	now := time.Now().UTC()
	pr, err := producers.New(producers.Config{Brokers: brokers, AppID: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	const batch, activity, stock, users = "V-STOCK", "v-instant", 30, 40
	if err := pr.Publish(ctx, "def-batch", now, schemas.BatchDefinedV2{BatchID: batch, Revision: 1, TotalStock: stock, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Status: schemas.BatchActive,
		DiscountType: schemas.DiscountFixed, Amount: 500}); err != nil {
		t.Fatal(err)
	}
	if err := pr.Publish(ctx, "def-activity", now, schemas.ActivityDefined{ActivityID: activity, Revision: 1, Kind: schemas.KindInstantWin,
		JoinFrom: now.Add(-time.Minute), JoinUntil: now.Add(time.Hour), PerUserLimit: 1, Status: schemas.BatchActive,
		Prizes: []schemas.PrizeTier{
			{TierID: "gold", Kind: schemas.PrizeGoods, Stock: 2, ProbabilityPPM: 400_000},
			{TierID: "silver", Kind: schemas.PrizePoints, Points: 100, Stock: 5, ProbabilityPPM: 400_000},
		}}); err != nil {
		t.Fatal(err)
	}
	const gifts, members, senders = "v-gifts", 10, 6
	if err := pr.Publish(ctx, "def-gifts", now, schemas.ActivityDefined{ActivityID: gifts, Revision: 1, Kind: schemas.KindGiftExchange,
		JoinFrom: now.Add(-time.Minute), JoinUntil: now.Add(time.Hour), PerUserLimit: 1, Status: schemas.BatchActive, Prizes: []schemas.PrizeTier{}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the definitions reach the processors' caches
	// The members of the gift exchange, imported in one transaction.
	var csv strings.Builder
	csv.WriteString("user_id,name\n")
	for i := range members {
		fmt.Fprintf(&csv, "gm-%02d,Member %d\n", i, i)
	}
	membersFile := filepath.Join(t.TempDir(), "members.csv")
	if err := os.WriteFile(membersFile, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	var importOut, importErr bytes.Buffer
	if code := runMain([]string{"gift", "import", gifts, "--file", membersFile, "--quiet", "--config", cfgFile}, &importOut, &importErr); code != 0 {
		t.Fatalf("gift import exited %d:\n%s%s", code, importOut.String(), importErr.String())
	}

	for i := range users {
		user := fmt.Sprintf("vu%02d", i)
		if err := pr.ClaimCoupon(ctx, "claim-"+user, user, batch); err != nil {
			t.Fatal(err)
		}
		if i%8 == 0 { // delivered twice: one decision
			if err := pr.ClaimCoupon(ctx, "claim-"+user, user, batch); err != nil {
				t.Fatal(err)
			}
		}
		if i < 20 {
			if err := pr.Join(ctx, "join-"+user, activity, user); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Bad records, straight to the topics: the processors dead-letter them.
	produceSync(t, brokers,
		&kgo.Record{Topic: "coupon.claims", Key: []byte("bad1"), Value: []byte(`{"event_id": "broken", "type": `)},
		&kgo.Record{Topic: "lottery.requests", Key: []byte("bad2"), Value: []byte("\xff\xfe not json")},
	)

	store, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waitFor(t, "the gift exchange's members", func() bool {
		m, err := store.GiftMembers(ctx, sinks.MemberFilter{ActivityID: gifts})
		return err == nil && len(m) == members
	})
	for i := range senders {
		if err := pr.SendGift(ctx, fmt.Sprintf("send-%d", i), gifts, fmt.Sprintf("gm-%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// An order locks and uses one coupon granted.
	var user, couponID string
	waitFor(t, "the grants in MySQL", func() bool {
		for i := range users {
			u := fmt.Sprintf("vu%02d", i)
			rows, err := store.UserCoupons(ctx, u, schemas.CouponAvailable)
			if err == nil && len(rows) == 1 {
				user, couponID = u, rows[0].CouponID
				return true
			}
		}
		return false
	})
	for _, p := range []schemas.Payload{
		schemas.LockRequested{OrderID: "order-1", UserID: user, CouponID: couponID, OrderAmount: 10_000},
		schemas.ConfirmRequested{OrderID: "order-1", UserID: user, CouponID: couponID, OrderAmount: 10_000},
	} {
		if err := pr.Publish(ctx, "op-"+p.EventType(), time.Now(), p); err != nil {
			t.Fatal(err)
		}
	}

	// Everything is decided and written to both stores: verify passes. (It
	// passes on the way too, when both sinks lag alike.)
	var rep *verify.Report
	var out string
	deadline := time.Now().Add(90 * time.Second)
	for {
		var code int
		code, rep, out = verifyReport(t, cfgFile)
		c2 := checkOf(rep, 2)
		if code == 0 && c2.Counts["coupon_op.mysql"] == stock+2 && c2.Counts["coupon_op.clickhouse"] == stock+2 &&
			c2.Counts["coupon_grant.clickhouse"] == users && c2.Counts["lottery_entry.clickhouse"] == 20 &&
			c2.Counts["gift_match.mysql"] == senders && c2.Counts["gift_match.clickhouse"] == senders {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify never passed; last exit %d:\n%s", code, out)
		}
		time.Sleep(time.Second)
	}
	c1, c2, c3, c4 := checkOf(rep, 1), checkOf(rep, 2), checkOf(rep, 3), checkOf(rep, 4)
	// Claims, participations, gift sends, lock and confirm, one bad claim,
	// one bad request; the member imports have no one-to-one decision.
	wantInputs := int64(users + 20 + senders + 2 + 2)
	for name, want := range map[string]int64{
		"inputs": wantInputs, "dead_lettered": 2, "lost": 0, "decided": wantInputs - 2,
		"duplicate_deliveries": 5, "without_identity": 2, "other_requests": members,
	} {
		if got := c1.Counts[name]; got != want {
			t.Errorf("check 1: %s = %d, want %d\n%s", name, got, want, out)
		}
	}
	if c2.Counts["coupon_grant.mysql"] != users || c2.Counts["coupon_grant.clickhouse"] != users || c2.Counts["lottery_entry.mysql"] != 20 ||
		c2.Counts["coupon_op.mysql"] != stock+2 || c2.Counts["coupon_op.clickhouse"] != stock+2 {
		t.Errorf("check 2 counts: %v", c2.Counts)
	}
	if c3.Counts["coupon.granted"] != stock || c3.Counts["lottery.awards"] == 0 || c3.Counts["lottery.awards"] > 7 ||
		c3.Counts["gift.matches"] != senders || c3.Counts["gift.activities"] != 1 {
		t.Errorf("check 3 counts: %v", c3.Counts)
	}
	if c4.Counts["dead_letters"] != 2 || c4.Counts["reason.malformed_json"] != 1 || c4.Counts["reason.invalid_utf8"] != 1 {
		t.Errorf("check 4 counts: %v", c4.Counts)
	}
	code, text, _ := verifyRun(t, cfgFile)
	if code != 0 || !strings.Contains(text, "ok: 4 of 4 checks ran, no breach") {
		t.Fatalf("verify (text) exited %d:\n%s", code, text)
	}
	t.Logf("promoflow verify:\n%s", text)
	if code, text, _ := verifyRun(t, cfgFile, "--campaign", activity); code != 0 || !strings.Contains(text, "campaign v-instant (activity)") ||
		!strings.Contains(text, "inputs 20 (lottery.requests 20)") {
		t.Fatalf("verify --campaign exited %d:\n%s", code, text)
	}

	db, err := sql.Open("mysql", testenv.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	prefix := e.cfg.MySQL.DatabasePrefix
	// (a) A decision vanishes from the system of record: the stores disagree.
	var deleted int64
	for d := range 2 {
		for tb := range 2 {
			if deleted > 0 {
				break
			}
			res, err := db.ExecContext(ctx, fmt.Sprintf("DELETE FROM `%s_%d`.coupon_grant_%d WHERE status = 'rejected' LIMIT 1", prefix, d, tb))
			if err != nil {
				t.Fatal(err)
			}
			deleted, _ = res.RowsAffected()
		}
	}
	if deleted != 1 {
		t.Fatalf("deleted %d rows", deleted)
	}
	code, text, errText := verifyRun(t, cfgFile)
	t.Logf("after a deleted row:\n%s", text)
	if code != 1 || !strings.Contains(text, "2. MySQL and ClickHouse agree row for row") ||
		!strings.Contains(text, fmt.Sprintf("coupon grants: MySQL %d, ClickHouse %d; only in MySQL 0, only in ClickHouse 1", users-1, users)) ||
		!strings.Contains(text, "coupon grants: only in ClickHouse: ") || !strings.Contains(errText, "1 of 4 checks found breaches") {
		t.Fatalf("after a deleted row verify exited %d:\n%s\n%s", code, text, errText)
	}

	// (b) A grant beyond the stock appears in the system of record.
	db0, tb := store.Config().Route("intruder")
	if _, err := db.ExecContext(ctx, fmt.Sprintf("INSERT INTO `%s_%d`.coupon_grant_%d "+
		"(result_id, claim_event_id, app_id, batch_id, user_id, status, reason, coupon_id, grant_seq, claimed_at, decided_at) "+
		"VALUES (?, 'forged', 'shop', ?, 'intruder', 'granted', '', ?, 31, NOW(3), NOW(3))", prefix, db0, tb),
		strings.Repeat("f", 32), batch, strings.Repeat("f", 32)); err != nil {
		t.Fatal(err)
	}
	code, text, _ = verifyRun(t, cfgFile)
	t.Logf("after a forged grant:\n%s", text)
	if code != 1 || !strings.Contains(text, fmt.Sprintf("batch %s: %d granted, stock %d (revision 1)", batch, stock+1, stock)) ||
		!strings.Contains(text, "only in MySQL: ffffffffffffffffffffffffffffffff") {
		t.Fatalf("after a grant beyond the stock verify exited %d:\n%s", code, text)
	}
	if !strings.Contains(text, "3. invariants hold in MySQL") || strings.Count(text, "BREACH") < 3 {
		t.Fatalf("check 3 is not a breach:\n%s", text)
	}

	// (d) Someone edits the gift exchange's results: a second gift to a
	// member who already received one (written in another shard, the
	// forger's), and a member matched with themselves.
	matches, err := store.GiftMatches(ctx, sinks.GiftFilter{ActivityID: gifts})
	if err != nil || len(matches) != senders {
		t.Fatalf("%d matches: %v", len(matches), err)
	}
	taken := matches[0].ReceiverID
	received := map[string]bool{}
	for _, m := range matches {
		received[m.ReceiverID] = true
	}
	// The self-match: someone who has not received (a sender, then, sends
	// twice too). The second gift: from someone who neither sent nor is
	// either of the others.
	self, senderTwice, forger := "", 0, ""
	for i := range members {
		if u := fmt.Sprintf("gm-%02d", i); !received[u] {
			self = u
			if i < senders {
				senderTwice = 1
			}
			break
		}
	}
	for i := senders; i < members; i++ {
		if u := fmt.Sprintf("gm-%02d", i); u != taken && u != self {
			forger = u
			break
		}
	}
	forge := func(id, sender, receiver string) {
		t.Helper()
		d, tb := store.Config().Route(sender)
		if _, err := db.ExecContext(ctx, fmt.Sprintf("INSERT INTO `%s_%d`.gift_match_%d "+
			"(result_id, send_event_id, activity_id, sender_id, receiver_id, status, reason, decided_at, app_id) "+
			"VALUES (?, ?, ?, ?, ?, 'matched', '', NOW(3), 'shop')", prefix, d, tb), id, "forged-"+sender, gifts, sender, receiver); err != nil {
			t.Fatal(err)
		}
	}
	forge(strings.Repeat("e", 32), forger, taken)
	forge(strings.Repeat("d", 32), self, self)
	code, text, _ = verifyRun(t, cfgFile, "--campaign", gifts)
	for _, want := range []string{
		fmt.Sprintf("gift exchange %s: %s received 2 gifts", gifts, taken),
		fmt.Sprintf("gift exchange %s: %s was matched with themselves (result %s)", gifts, self, strings.Repeat("d", 32)),
		fmt.Sprintf("senders matched more than once %d, receivers more than once 1, matched to themselves 1", senderTwice),
		"gift matches: MySQL 8, ClickHouse 6; only in MySQL 2, only in ClickHouse 0",
	} {
		if code != 1 || !strings.Contains(text, want) {
			t.Fatalf("after forged gift matches verify exited %d, want %q:\n%s", code, want, text)
		}
	}
	if strings.Contains(text, "coupon grants:") {
		t.Fatalf("verify --campaign %s read the coupon tables:\n%s", gifts, text)
	}

	// (c) A claim arrives while the processors are stopped: nothing decides
	// it, and verify says it is lost (not yet read by the coupon group).
	e.stages = []string{stageMySQL, stageClickHouse}
	e.restart()
	env, err := schemas.New("claim-late", "shop", time.Now(), schemas.ClaimRequested{BatchID: batch, UserID: "late-user"})
	if err != nil {
		t.Fatal(err)
	}
	value, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	produceSync(t, brokers, &kgo.Record{Topic: "coupon.claims", Key: []byte("late-user"), Value: value})
	code, rep, out = verifyReport(t, cfgFile)
	c1 = checkOf(rep, 1)
	late := schemas.ResultID("coupon.grant", "shop", "claim-late")
	if code != 1 || c1.Status != verify.StatusBreach || c1.Counts["lost"] != 1 || c1.Counts["lost_not_yet_read"] != 1 ||
		len(c1.Examples) != 1 || !strings.Contains(c1.Examples[0], late) || !strings.Contains(c1.Examples[0], "not yet read by promoflow-coupon") {
		t.Fatalf("after a claim nobody decided verify exited %d:\n%s", code, out)
	}
	if c4 := checkOf(rep, 4); c4.Status != verify.StatusOK {
		t.Fatalf("check 4 after (c): %s\n%s", c4.Status, out)
	}
	// The claim is older than the range: left out, check 1 passes again.
	code, text, _ = verifyRun(t, cfgFile, "--until", env.OccurredAt.Add(-2*time.Second).Format(time.RFC3339Nano), "--skip", "mysql")
	if code != 0 || !strings.Contains(text, "1. every input has exactly one decision") || !strings.Contains(text, "lost 0") {
		t.Fatalf("verify --until before the late claim exited %d:\n%s", code, text)
	}
}

func TestVerifyArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "extra"}, "verify takes no arguments"},
		{[]string{"verify", "--since", "yesterday"}, "--since"},
		{[]string{"verify", "--until", "-5m"}, "--until"},
		{[]string{"verify", "--since", "1h", "--until", "2h"}, "--until must be after --since"},
		{[]string{"verify", "--skip", "redis"}, `--skip "redis"`},
		{[]string{"verify", "--memory-buckets", "300"}, "--memory-buckets"},
	} {
		var out, errOut bytes.Buffer
		if code := runMain(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q exited %d:\n%s", tc.args, code, errOut.String())
		}
	}
	now := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"90m":                  now.Add(-90 * time.Minute),
		"2026-11-10T08:00:00Z": time.Date(2026, 11, 10, 8, 0, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v", in, got, err)
		}
	}
}
