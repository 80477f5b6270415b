package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// lotteryEnv runs the lottery stage and both sinks against kfake and the
// real Redis, MariaDB and ClickHouse, each isolated for the test.
type lotteryEnv struct {
	cfg     *Config
	brokers []string
	cfgFile string
}

func startLotteryEnv(t *testing.T) *lotteryEnv {
	t.Helper()
	brokers, _ := testenv.KafkaWithTopics(t)
	name := testenv.Name("lt")
	body := fmt.Sprintf(`kafka:
  brokers: [%s]
redis:
  addr: %q
  key_prefix: %q
mysql:
  dsn: %q
  database_prefix: %q
  databases: 2
  tables_per_database: 2
clickhouse:
  addr: %q
  database: %q
runtime:
  session_timeout: 6s
log:
  level: error
`, strings.Join(brokers, ","), testenv.RedisAddr(), name, testenv.MySQLDSN(), name, testenv.ClickHouseAddr(), name)
	path := filepath.Join(t.TempDir(), "promoflow.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
		deleteKeys(rdb, name)
		rdb.Close()
		if db, err := sql.Open("mysql", testenv.MySQLDSN()); err == nil {
			for i := range 2 {
				db.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS `%s_%d`", name, i))
			}
			db.Close()
		}
		if conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}}); err == nil {
			conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+name+"`")
			conn.Close()
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	p, err := buildPipeline(testenv.Context(t, time.Minute), cfg, []string{stageLottery, stageMySQL, stageClickHouse}, parts{log: quietLogger(os.Stderr, 8)})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("pipeline: %v", err)
		}
	})
	return &lotteryEnv{cfg: cfg, brokers: brokers, cfgFile: path}
}

func (e *lotteryEnv) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := runMain(append(args, "--config", e.cfgFile), &out, &errOut)
	return code, out.String() + errOut.String()
}

// TestIntegrationLotteryCampaignFromTheCLI runs a campaign as docs/lottery.md
// tells an operator to: define it, let users join, draw, read the status and
// verify the draw; then it tampers with a stored winner and verify fails.
func TestIntegrationLotteryCampaignFromTheCLI(t *testing.T) {
	e := startLotteryEnv(t)
	ctx := testenv.Context(t, 3*time.Minute)
	now := time.Now().UTC()
	def := fmt.Sprintf(`activity_id: cli-draw
name: CLI draw
revision: 1
kind: draw
join_from: %s
join_until: %s
per_user_limit: 1
status: active
prizes:
  - {tier_id: gold, kind: goods, stock: 2}
  - {tier_id: silver, kind: points, points: 100, stock: 20}
`, now.Add(-time.Second).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	file := filepath.Join(t.TempDir(), "activity.yaml")
	if err := os.WriteFile(file, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(t, "lottery", "define", "--file", file, "--wait"); code != 0 {
		t.Fatalf("lottery define exited %d:\n%s", code, out)
	}

	// A definition that breaks the rules is dead-lettered once by the admin
	// stage and never cached.
	bad := schemas.ActivityDefined{ActivityID: "cli-bad", Revision: 1, Kind: schemas.KindDraw, JoinFrom: now, JoinUntil: now.Add(-time.Hour),
		PerUserLimit: 1, Status: schemas.BatchActive, Prizes: []schemas.PrizeTier{{TierID: "p", Kind: schemas.PrizeGoods, Stock: 1}}}
	pr, err := producers.New(producers.Config{Brokers: e.brokers, AppID: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.Publish(ctx, "bad-def", now, bad); err != nil {
		t.Fatal(err)
	}
	const users = 500
	for i := range users {
		if err := pr.Publish(ctx, fmt.Sprintf("j%d", i), time.Now(), schemas.ParticipationRequested{ActivityID: "cli-draw", UserID: fmt.Sprintf("u%03d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if code, out := e.run(t, "lottery", "draw", "cli-draw", "--wait", "--by", "test"); code != 0 || !strings.Contains(out, "500 participants, 22 winners") {
		t.Fatalf("lottery draw exited %d:\n%s", code, out)
	}
	dead := consumeDLQ(t, e.brokers, 1)
	if r := header(dead[0], stream.HeaderDLQReason); r != "invalid_activity" || header(dead[0], stream.HeaderDLQStage) != "lottery-admin" {
		t.Fatalf("dead letter reason %q stage %q, want invalid_activity from lottery-admin", r, header(dead[0], stream.HeaderDLQStage))
	}

	sink, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		awards, err := sink.Awards(ctx, "cli-draw")
		if err != nil {
			t.Fatal(err)
		}
		n, err := sink.EntryCounts(ctx, "cli-draw")
		if err != nil {
			t.Fatal(err)
		}
		if len(awards) == 22 && n.Accepted == users {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MySQL holds %d awards and %d entries, want 22 and %d", len(awards), n.Accepted, users)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var out bytes.Buffer
	if err := lotteryStatus(ctx, sink, "cli-draw", false, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"500 accepted", "manual", "awarded gold", "awarded silver"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := lotteryVerify(ctx, sink, "cli-draw", false, &out); err != nil {
		t.Fatalf("verify: %v\n%s", err, out.String())
	}
	if code, out := e.run(t, "draw", "verify", "cli-draw"); code != 0 || !strings.Contains(out, "verified: 22 winners recomputed from 500 participants") {
		t.Fatalf("draw verify exited %d:\n%s", code, out)
	}

	// ClickHouse has the draw statistics.
	conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var participants, awards uint64
	q := "SELECT participants, awards FROM `" + e.cfg.ClickHouse.Database + "`.lottery_draw_stats WHERE activity_id = 'cli-draw'"
	for {
		err := conn.QueryRow(ctx, q).Scan(&participants, &awards)
		if err == nil && participants == users && awards == 22 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lottery_draw_stats: %d participants, %d awards, err %v", participants, awards, err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Someone upgrades a silver winner to gold in the system of record.
	db, err := sql.Open("mysql", testenv.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var changed int64
	for d := range 2 {
		for tb := range 2 {
			res, err := db.ExecContext(ctx, fmt.Sprintf("UPDATE `%s_%d`.lottery_award_%d SET tier_id = 'gold' WHERE activity_id = 'cli-draw' AND tier_id = 'silver' LIMIT 1", e.cfg.MySQL.DatabasePrefix, d, tb))
			if err != nil {
				t.Fatal(err)
			}
			n, _ := res.RowsAffected()
			changed += n
			if changed > 0 {
				break
			}
		}
		if changed > 0 {
			break
		}
	}
	if changed != 1 {
		t.Fatalf("tampered with %d rows", changed)
	}
	if code, out := e.run(t, "draw", "verify", "cli-draw"); code != 1 || !strings.Contains(out, "FAIL  winners") {
		t.Fatalf("verify of a tampered draw exited %d:\n%s", code, out)
	}
}

func consumeDLQ(t *testing.T, brokers []string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("promoflow.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(t, time.Minute)
	var out []*kgo.Record
	for len(out) < n {
		if ctx.Err() != nil {
			t.Fatalf("%d dead letters, want %d", len(out), n)
		}
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestIntegrationGiftExchangeFromTheCLI runs a gift exchange as an admin
// would: define it, import the members in one transaction, let members
// send (each send published twice), list the results and the members who
// have not drawn yet, and edit members.
func TestIntegrationGiftExchangeFromTheCLI(t *testing.T) {
	e := startLotteryEnv(t)
	ctx := testenv.Context(t, 3*time.Minute)
	now := time.Now().UTC()
	def := fmt.Sprintf(`{"activity_id":"xmas-gifts","revision":1,"kind":"gift_exchange","join_from":%q,"join_until":%q,"per_user_limit":1,"status":"active","prizes":[]}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	dir := t.TempDir()
	defFile := filepath.Join(dir, "gift.json")
	if err := os.WriteFile(defFile, []byte(def), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(t, "lottery", "define", "--file", defFile, "--wait"); code != 0 {
		t.Fatalf("define: %d\n%s", code, out)
	}
	const members = 300
	var csv strings.Builder
	csv.WriteString("user_id,name,note\n")
	for i := range members {
		fmt.Fprintf(&csv, "staff-%03d,Staff %d,\"Floor %d, desk %d\"\n", i, i, i%5, i)
	}
	usersFile := filepath.Join(dir, "staff.csv")
	if err := os.WriteFile(usersFile, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := e.run(t, "gift", "import", "xmas-gifts", "--file", usersFile, "--quiet"); code != 0 {
		t.Fatalf("import: %d\n%s", code, out)
	}

	pr, err := producers.New(producers.Config{Brokers: e.brokers, AppID: "office"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	// Wait until the import is applied (members recorded), then 200 send.
	sink, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	waitFor(t, "the members", func() bool {
		m, err := sink.GiftMembers(ctx, sinks.MemberFilter{ActivityID: "xmas-gifts"})
		return err == nil && len(m) == members
	})
	const senders = 200
	for i := range senders {
		for range 2 { // every press delivered twice
			if err := pr.SendGift(ctx, fmt.Sprintf("send-%d", i), "xmas-gifts", fmt.Sprintf("staff-%03d", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var matches []schemas.MatchDecided
	waitFor(t, "the matches", func() bool {
		matches, err = sink.GiftMatches(ctx, sinks.GiftFilter{ActivityID: "xmas-gifts"})
		return err == nil && len(matches) == senders
	})
	received := map[string]string{}
	for _, m := range matches {
		if m.Status != schemas.MatchMatched || m.ReceiverID == m.SenderID || m.ReceiverID == "" {
			t.Fatalf("match %+v", m)
		}
		if prev, ok := received[m.ReceiverID]; ok {
			t.Fatalf("%s received from %s and %s", m.ReceiverID, prev, m.SenderID)
		}
		received[m.ReceiverID] = m.SenderID
	}
	pending, err := sink.GiftMembers(ctx, sinks.MemberFilter{ActivityID: "xmas-gifts", Pending: true})
	if err != nil || len(pending) != members-senders {
		t.Fatalf("%d members pending, want %d: %v", len(pending), members-senders, err)
	}
	if code, out := e.run(t, "gift", "members", "xmas-gifts", "--pending", "--limit", "3"); code != 0 || !strings.Contains(out, "staff-200") {
		t.Fatalf("members --pending: %d\n%s", code, out)
	}
	if code, out := e.run(t, "gift", "results", "xmas-gifts", "--sender", "staff-007"); code != 0 || !strings.Contains(out, received2(received, "staff-007")) {
		t.Fatalf("results --sender: %d\n%s", code, out)
	}
	// Editing: a pending member's name; removing a member who already sent
	// is refused and dead-lettered.
	if code, out := e.run(t, "gift", "edit", "xmas-gifts", "--user", "staff-250", "--name", "Ann B."); code != 0 {
		t.Fatalf("edit: %d\n%s", code, out)
	}
	if code, out := e.run(t, "gift", "edit", "xmas-gifts", "--user", "staff-001", "--remove"); code != 0 {
		t.Fatalf("edit --remove: %d\n%s", code, out)
	}
	waitFor(t, "the edit", func() bool {
		m, err := sink.GiftMembers(ctx, sinks.MemberFilter{ActivityID: "xmas-gifts", UserID: "staff-250"})
		return err == nil && len(m) == 1 && m[0].Name == "Ann B." && m[0].Note == "Floor 0, desk 250"
	})
	dead := consumeDLQ(t, e.brokers, 1)
	if r := header(dead[0], stream.HeaderDLQReason); r != "member_locked" {
		t.Fatalf("removing a member who sent: dead-lettered %q, want member_locked", r)
	}
}

// received2 returns the receiver of sender's gift.
func received2(received map[string]string, sender string) string {
	for r, s := range received {
		if s == sender {
			return r
		}
	}
	return "?"
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
