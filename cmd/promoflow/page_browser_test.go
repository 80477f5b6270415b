package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/chromedp/chromedp"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/clickhouse"
)

// chromium returns the path of a headless-capable Chromium, skipping t only
// when PROMOFLOW_NO_BROWSER=1. A missing browser is a failure that says how
// to install it: the test command installs it (scripts/services).
func chromium(t *testing.T) string {
	t.Helper()
	if os.Getenv("PROMOFLOW_NO_BROWSER") == "1" {
		t.Skip("PROMOFLOW_NO_BROWSER=1: not testing the campaign page in a browser")
	}
	names := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	if p := os.Getenv("PROMOFLOW_CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	t.Fatalf("the campaign page test needs headless Chromium and found none of %v: install it with "+
		"`apt-get install -y chromium` (bash scripts/services does), point PROMOFLOW_CHROMIUM at a binary, "+
		"or set PROMOFLOW_NO_BROWSER=1 to skip this test", names)
	return ""
}

// browser starts headless Chromium for t, with a fresh profile and every
// background network feature off (the machine's network is closed), and
// returns a tab's context.
func browser(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	bin := chromium(t)
	actx, cancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox, // root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1100),
	)
	t.Cleanup(cancel)
	tab, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	if err := chromedp.Do(tab); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	return tab
}

// readFigures returns every figure the page shows: the data-value of each
// element with a data-testid and a data-value, after checking that its text
// shows the same number.
const readFigures = `(() => {
  const out = {};
  for (const el of document.querySelectorAll("[data-testid][data-value]")) {
    const v = el.getAttribute("data-value");
    const shown = el.textContent.replace(/,/g, "");
    out[el.getAttribute("data-testid")] = (v === "" || shown === v) ? v : "MISMATCH shown " + el.textContent + " for " + v;
  }
  return out;
})()`

// TestIntegrationCampaignPageInBrowser runs the demo's flow against the real
// Redis, MariaDB and ClickHouse and kfake with the campaign page served,
// watches the hot batch's page in headless Chromium while the claims flow,
// and once the run is over (and a few coupons redeemed) requires the page to show what the stores hold,
// counted here straight from MySQL, Redis, ClickHouse and the DLQ topic;
// then the same for the scheduled draw. It leaves screenshots in its temp
// dir (and in $PROMOFLOW_SCREENSHOT_DIR when set).
func TestIntegrationCampaignPageInBrowser(t *testing.T) {
	ctx := testenv.Context(t, 4*time.Minute)
	tab := browser(t, ctx)

	b := make([]byte, 4)
	_, _ = rand.Read(b)
	runID := hex.EncodeToString(b)
	name := "pfpage_" + runID
	cfgPath := filepath.Join(t.TempDir(), "promoflow.yaml")
	yaml := fmt.Sprintf("redis:\n  addr: %q\nmysql:\n  dsn: %q\nclickhouse:\n  addr: %q\n",
		testenv.RedisAddr(), testenv.MySQLDSN(), testenv.ClickHouseAddr())
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dropDemoDatabases(context.Background(), testenv.MySQLDSN(), name)
		if conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}}); err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
			conn.Close()
		}
	})
	s := scenario{RunID: runID, Claims: 3000, Users: 1000, HotStock: 200, HotShare: 0.5, Batches: 2, DupRate: 0.1,
		Malformed: true, Producers: 2, AppID: "demo", Rate: 800, LotteryUsers: 1500, NotifyUsers: 2000}
	hot, draw := s.hotBatch(), "demo-draw-"+runID
	shots := []string{t.TempDir()}
	if d := os.Getenv("PROMOFLOW_SCREENSHOT_DIR"); d != "" {
		shots = append(shots, d)
	}

	// The page is opened before the batches are even defined (it says the
	// campaign is unknown, then finds it); while the claims flow, its claim
	// count is sampled: it must move through values between nothing and
	// the end.
	var (
		mu      sync.Mutex
		seen    []int64
		watchWG sync.WaitGroup
	)
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var out strings.Builder
	opts := demoOptions{database: name, serve: &demoServe{addr: "127.0.0.1:0",
		served: func(url string) {
			if err := chromedp.Do(tab, chromedp.Navigate(url+"#/coupon_batch/"+hot),
				chromedp.WaitVisible(chromedp.CSS(`[data-testid="campaign-view"]`))); err != nil {
				t.Errorf("opening the hot batch's page: %v", err)
				return
			}
			watchWG.Go(func() {
				for watchCtx.Err() == nil {
					if v, err := chromedp.Run(tab, chromedp.AttributeValue(chromedp.CSS(`[data-testid="claims"]`), "data-value")); err == nil && v.Value != "" {
						n, _ := strconv.ParseInt(v.Value, 10, 64)
						mu.Lock()
						seen = append(seen, n)
						mu.Unlock()
					}
					time.Sleep(250 * time.Millisecond)
				}
			})
		},
		after: func(ctx context.Context, run demoRun) error {
			stopWatch()
			watchWG.Wait()
			checkPageAgainstStores(t, ctx, tab, run, name, runID, hot, draw, shots)
			return nil
		},
	}}
	rep, err := runScenario(ctx, cfgPath, s, "never", 3*time.Minute, slog.LevelError, &out, opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rep.breaches) > 0 {
		t.Fatalf("invariants broken: %v\n%s", rep.breaches, out.String())
	}
	if rep.notify == nil || rep.notify.progress.Sent != 2000 || rep.notify.lines != 2000 {
		t.Fatalf("the demo's notification campaign: %+v", rep.notify)
	}
	mu.Lock()
	defer mu.Unlock()
	var between bool
	for i, n := range seen {
		if i > 0 && n < seen[i-1] {
			t.Errorf("the page's claim count went back from %d to %d", seen[i-1], n)
		}
		if n > 0 && n < rep.snap.results {
			between = true
		}
	}
	if !between {
		t.Errorf("the page never showed the claims while they flowed: samples %v (the run ended with %d)", seen, rep.snap.results)
	}
}

// storeFigures reads a campaign's figures from the stores themselves, in
// the page's data-testid names.
type storeFigures map[string]string

// checkPageAgainstStores waits until the hot batch's page and then the
// draw's show exactly what the stores hold, after redeeming a few coupons
// so that the redemption count is not trivially zero.
func checkPageAgainstStores(t *testing.T, ctx context.Context, tab context.Context, run demoRun, name, runID, hot, draw string, shots []string) {
	t.Helper()
	dbs, err := openShards(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, db := range dbs {
			db.Close()
		}
	}()
	redeemed := redeemSome(t, ctx, run.brokers, dbs, hot, 3)

	want := func() storeFigures {
		f := storeFigures{}
		var claims, grants, rejected, used int64
		byReason := map[string]int64{}
		eachShard(t, ctx, dbs, "coupon_grant", func(db *sql.DB, table string) {
			rows, err := db.QueryContext(ctx, "SELECT status, reason, COUNT(*) FROM "+table+" WHERE batch_id = ? GROUP BY status, reason", hot)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var status, reason string
				var n int64
				if err := rows.Scan(&status, &reason, &n); err != nil {
					t.Fatal(err)
				}
				claims += n
				if status == schemas.StatusGranted {
					grants += n
				} else {
					rejected += n
					byReason[reason] += n
				}
			}
		})
		eachShard(t, ctx, dbs, "coupon", func(db *sql.DB, table string) {
			var n int64
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE batch_id = ? AND state = 'used'", hot).Scan(&n); err != nil {
				t.Fatal(err)
			}
			used += n
		})
		f["claims"], f["grants"], f["rejections"], f["redemptions"] = itoa(claims), itoa(grants), itoa(rejected), itoa(used)
		for r, n := range byReason {
			f["rejected-"+r] = itoa(n)
		}
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
		defer rdb.Close()
		taken, err := rdb.Get(ctx, "pfdemo:"+runID+":cpn:{"+hot+"}:granted").Int64()
		if err != nil {
			t.Fatalf("reading the hot batch's stock in Redis: %v", err)
		}
		f["remaining-stock"] = itoa(200 - taken)
		f["dlq"] = itoa(countDLQ(t, ctx, run.brokers))
		f["throughput-total"] = itoa(clickhouseDecisions(t, ctx, name, "coupon_grants", "batch_id", hot))
		return f
	}
	expectPage(t, ctx, tab, "hot batch", want, shots, "campaign-coupon.png")
	if got := want()["redemptions"]; got != itoa(int64(redeemed)) {
		t.Errorf("MySQL holds %s used coupons of %s, %d were redeemed", got, hot, redeemed)
	}

	// The scheduled draw, reached from the list.
	if err := chromedp.Do(tab, chromedp.Navigate(run.url),
		chromedp.Click(chromedp.CSS(`[data-testid="campaign-link-`+draw+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid="tile-participants"]`))); err != nil {
		t.Fatalf("opening the draw from the list: %v", err)
	}
	expectPage(t, ctx, tab, "draw", func() storeFigures {
		f := storeFigures{}
		var participants, entries, rejected, winners int64
		tiers, byReason := map[string]int64{}, map[string]int64{}
		eachShard(t, ctx, dbs, "lottery_entry", func(db *sql.DB, table string) {
			var p, e, r int64
			if err := db.QueryRowContext(ctx, "SELECT COUNT(DISTINCT IF(status = 'accepted', user_id, NULL)), COUNT(*), "+
				"COALESCE(SUM(status = 'rejected'), 0) FROM "+table+" WHERE activity_id = ?", draw).Scan(&p, &e, &r); err != nil {
				t.Fatal(err)
			}
			participants, entries, rejected = participants+p, entries+e, rejected+r
			rows, err := db.QueryContext(ctx, "SELECT reason, COUNT(*) FROM "+table+" WHERE activity_id = ? AND status = 'rejected' GROUP BY reason", draw)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var reason string
				var n int64
				if err := rows.Scan(&reason, &n); err != nil {
					t.Fatal(err)
				}
				byReason[reason] += n
			}
		})
		eachShard(t, ctx, dbs, "lottery_award", func(db *sql.DB, table string) {
			rows, err := db.QueryContext(ctx, "SELECT tier_id, COUNT(*) FROM "+table+" WHERE activity_id = ? GROUP BY tier_id", draw)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var tier string
				var n int64
				if err := rows.Scan(&tier, &n); err != nil {
					t.Fatal(err)
				}
				tiers[tier] += n
				winners += n
			}
		})
		drawn := "upcoming"
		eachShard(t, ctx, dbs, "lottery_draw", func(db *sql.DB, table string) {
			var n int64
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE activity_id = ?", draw).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				drawn = "drawn"
			}
		})
		f["participants"], f["entries"], f["rejections"], f["winners"], f["draw-status"] = itoa(participants), itoa(entries), itoa(rejected), itoa(winners), drawn
		for tier, n := range tiers {
			f["tier-"+tier+"-winners"] = itoa(n)
		}
		for r, n := range byReason {
			f["rejected-"+r] = itoa(n)
		}
		f["dlq"] = itoa(countDLQ(t, ctx, run.brokers))
		f["throughput-total"] = itoa(clickhouseDecisions(t, ctx, name, "lottery_entries", "activity_id", draw))
		return f
	}, shots, "campaign-draw.png")
}

// expectPage waits up to 20s (the page polls every second, the stores lag
// by their sinks) for every figure of want to be on the page, equal, then
// takes a screenshot.
func expectPage(t *testing.T, ctx context.Context, tab context.Context, what string, want func() storeFigures, shots []string, file string) {
	t.Helper()
	var got, w map[string]string
	deadline := time.Now().Add(20 * time.Second)
	for {
		w = want()
		var err error
		if got, err = chromedp.Run(tab, chromedp.Evaluate[map[string]string](readFigures)); err != nil {
			t.Fatalf("reading the %s page: %v", what, err)
		}
		if matches(w, got) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the %s page does not show what the stores hold:\n page   %v\n stores %v", what, got, w)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot of the %s page: %v", what, err)
	}
	for _, dir := range shots {
		p := filepath.Join(dir, file)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Errorf("making %s: %v", dir, err)
			continue
		}
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Errorf("writing %s: %v", p, err)
			continue
		}
		t.Logf("screenshot of the %s page: %s", what, p)
	}
}

// matches reports whether every figure of want is shown as it is, and no
// rejection reason the stores do not have is shown.
func matches(want, got map[string]string) bool {
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if strings.HasPrefix(k, "rejected-") && want[k] == "" {
			return false
		}
	}
	return true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// openShards opens every shard database of the run (<name>_<i>).
func openShards(ctx context.Context, name string) ([]*sql.DB, error) {
	root, err := sql.Open("mysql", testenv.MySQLDSN())
	if err != nil {
		return nil, err
	}
	defer root.Close()
	rows, err := root.QueryContext(ctx, "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?", name+`\_%`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var dbs []*sql.DB
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		db, err := sql.Open("mysql", testenv.MySQLDSN()+n)
		if err != nil {
			return nil, err
		}
		dbs = append(dbs, db)
	}
	if len(dbs) == 0 {
		return nil, fmt.Errorf("no database %s_*", name)
	}
	return dbs, rows.Err()
}

// eachShard calls fn with every table <prefix>_<j> of every database.
func eachShard(t *testing.T, ctx context.Context, dbs []*sql.DB, prefix string, fn func(db *sql.DB, table string)) {
	t.Helper()
	for _, db := range dbs {
		rows, err := db.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name REGEXP ?", "^"+prefix+"_[0-9]+$")
		if err != nil {
			t.Fatal(err)
		}
		var tables []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, n)
		}
		rows.Close()
		if len(tables) == 0 {
			t.Fatalf("no %s_* tables", prefix)
		}
		for _, table := range tables {
			fn(db, table)
		}
	}
}

// countDLQ reads the dead-letter topic from the start and counts its records.
func countDLQ(t *testing.T, ctx context.Context, brokers []string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("promoflow.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var n int64
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		got := 0
		fs.EachRecord(func(*kgo.Record) { got++ })
		n += int64(got)
		if got == 0 {
			return n
		}
	}
}

// clickhouseDecisions counts a campaign's distinct results in ClickHouse.
func clickhouseDecisions(t *testing.T, ctx context.Context, database, table, column, id string) int64 {
	t.Helper()
	conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(result_id) FROM `"+database+"`.`"+table+"` WHERE "+column+" = ?", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return int64(n)
}

// redeemSome locks and confirms n granted coupons of batch through
// coupon.orders, as an order service would, and waits until MySQL has them
// used; it returns n.
func redeemSome(t *testing.T, ctx context.Context, brokers []string, dbs []*sql.DB, batch string, n int) int {
	t.Helper()
	type held struct{ user, coupon string }
	var coupons []held
	eachShard(t, ctx, dbs, "coupon_grant", func(db *sql.DB, table string) {
		if len(coupons) >= n {
			return
		}
		rows, err := db.QueryContext(ctx, "SELECT user_id, coupon_id FROM "+table+" WHERE batch_id = ? AND status = 'granted' ORDER BY result_id LIMIT ?", batch, n-len(coupons))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var h held
			if err := rows.Scan(&h.user, &h.coupon); err != nil {
				t.Fatal(err)
			}
			coupons = append(coupons, h)
		}
	})
	if len(coupons) < n {
		t.Fatalf("only %d granted coupons of %s to redeem", len(coupons), batch)
	}
	p, err := producers.New(producers.Config{Brokers: brokers, AppID: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i, h := range coupons {
		order := fmt.Sprintf("order-%d", i)
		if err := p.Publish(ctx, order+"-lock", time.Now(), schemas.LockRequested{OrderID: order, UserID: h.user, CouponID: h.coupon, OrderAmount: 9900}); err != nil {
			t.Fatal(err)
		}
		if err := p.Publish(ctx, order+"-confirm", time.Now(), schemas.ConfirmRequested{OrderID: order, UserID: h.user, CouponID: h.coupon, OrderAmount: 9900}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var used int64
		eachShard(t, ctx, dbs, "coupon", func(db *sql.DB, table string) {
			var k int64
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table+" WHERE batch_id = ? AND state = 'used'", batch).Scan(&k); err != nil {
				t.Fatal(err)
			}
			used += k
		})
		if used >= int64(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d redeemed coupons reached MySQL in 30s", used, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestIntegrationServeCampaignSources checks what `promoflow serve` wires
// for the campaign page from a configuration: the lottery view, the stock
// in Redis under the processors' prefix, the DLQ count, and a ClickHouse
// that is down when serve starts, which answers once it is up.
func TestIntegrationServeCampaignSources(t *testing.T) {
	ctx := testenv.Context(t, time.Minute)
	brokers, _ := testenv.KafkaWithTopics(t)
	name := testenv.Name("pfserve")
	cfg := &Config{}
	cfg.defaults()
	cfg.Kafka.Brokers = brokers
	cfg.Redis.Addr, cfg.Redis.KeyPrefix = testenv.RedisAddr(), name
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = dead.Addr().String(), "default"
	dead.Close() // nothing listens there now
	src, closeSources, err := cfg.campaignSources(ctx, quietLogger(io.Discard, slog.LevelError))
	if err != nil {
		t.Fatal(err)
	}
	defer closeSources()

	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	defer rdb.Close()
	t.Cleanup(func() { deleteKeys(rdb, name) })
	if err := rdb.Set(ctx, name+":cpn:{B1}:granted", 42, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := src.Stock.Granted(ctx, "B1"); err != nil || n != 42 {
		t.Errorf("stock taken of B1: %d, %v; want 42", n, err)
	}

	p, err := producers.New(producers.Config{Brokers: brokers, AppID: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	now := time.Now()
	def := schemas.ActivityDefined{ActivityID: "A1", Revision: 1, Kind: schemas.KindInstantWin, JoinFrom: now, JoinUntil: now.Add(time.Hour),
		PerUserLimit: 1, Status: schemas.BatchActive, Prizes: []schemas.PrizeTier{{TierID: "t", Kind: schemas.PrizePoints, Points: 1, Stock: 1, ProbabilityPPM: 1000}}}
	if err := p.Publish(ctx, "def-A1", now, def); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Runtime.DLQTopic, Value: []byte("x")}, &kgo.Record{Topic: cfg.Runtime.DLQTopic, Value: []byte("y")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the activity in the lottery view", func() bool { return src.Activities.Get("A1") != nil })
	if n, err := src.DLQ.Count(ctx); err != nil || n != 2 {
		t.Errorf("DLQ count %d, %v; want 2", n, err)
	}

	q := sinks.ThroughputQuery{Kind: sinks.CampaignLottery, ID: "A1", From: now.Add(-time.Minute), To: now, Bucket: time.Second}
	if _, err := src.Throughput.Throughput(ctx, q); err == nil {
		t.Error("throughput from a ClickHouse that is down succeeded")
	}
	// ClickHouse comes up (here: the real one answers at the address).
	name2 := testenv.Name("pfserve")
	lazy := src.Throughput.(*lazyClickHouse)
	lazy.mu.Lock()
	lazy.cfg.Addr, lazy.cfg.Database, lazy.tried = testenv.ClickHouseAddr(), name2, time.Time{}
	lazy.mu.Unlock()
	t.Cleanup(func() {
		if conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}}); err == nil {
			_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+name2+"`")
			conn.Close()
		}
	})
	chs, err := clickhouse.New(ctx, clickhouse.Config{Addr: testenv.ClickHouseAddr(), Database: name2})
	if err != nil {
		t.Fatal(err)
	}
	chs.Close()
	if got, err := src.Throughput.Throughput(ctx, q); err != nil || len(got) != 0 {
		t.Errorf("throughput once ClickHouse is up: %v, %v", got, err)
	}
}
