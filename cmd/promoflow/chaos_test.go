package main

// The fault suite (docs/chaos.md): real `promoflow broker` and `promoflow
// run` processes and the real Redis, MariaDB and ClickHouse, under steady
// load, through one fault per scenario, each ending with checks that nothing
// was lost or duplicated. It stops and restarts the shared services, so it
// runs only when asked (PROMOFLOW_CHAOS=short|full, see scripts/chaos) and
// alone.

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

// chaosMode sets the load and the length of each fault.
type chaosMode struct {
	name      string
	claimRate float64 // coupon claims per second
	joinRate  float64 // lottery participations per second
	// before and after are the steady load before the fault and after it
	// ends; the load runs through the fault too.
	before, after time.Duration
	outage        time.Duration // MariaDB, ClickHouse and the broker stay down this long
	redisOutage   time.Duration // Redis stays down this long (it is shared: keep it short)
	kills         int           // kill -9 rounds (coupon, lottery, coupon, sinks, ...)
	killEvery     time.Duration
	scaleHold     time.Duration // how long the coupon group runs with 3 instances
	catchUp       time.Duration // bound on catching up after the load stops
}

var chaosModes = map[string]chaosMode{
	"short": {name: "short", claimRate: 200, joinRate: 20, before: 3 * time.Second, after: 4 * time.Second,
		outage: 10 * time.Second, redisOutage: 5 * time.Second, kills: 4, killEvery: 4 * time.Second,
		scaleHold: 5 * time.Second, catchUp: 2 * time.Minute},
	"full": {name: "full", claimRate: 400, joinRate: 40, before: 10 * time.Second, after: 20 * time.Second,
		outage: 30 * time.Second, redisOutage: 10 * time.Second, kills: 4, killEvery: 15 * time.Second,
		scaleHold: 30 * time.Second, catchUp: 5 * time.Minute},
}

// The app every chaos event is published as, and the rules of the batches
// and activities each scenario gets.
const (
	chaosApp        = "chaos"
	chaosHotShare   = 0.4 // share of claims on the hot batch
	chaosHotUsers   = 4000
	chaosNormUsers  = 700
	chaosNormLimit  = 2
	chaosJoinUsers  = 150
	chaosJoinLimit  = 3
	chaosPrizeStock = 30
	chaosDupRate    = 0.10 // share of events published twice
	// Result-id kinds of the lottery processor (unexported there).
	chaosKindEntry  = "lottery.entry"
	chaosKindMember = "gift.member"
)

// chaosScenario is one fault. fault runs while the load runs and returns
// once the fault has ended (processes replaced, services back).
type chaosScenario struct {
	key, title string
	coupons    int // coupon instances when the scenario starts
	fault      func(t *testing.T, ctx context.Context, e *chaosEnv, run *chaosRun)
}

// TestChaos drives real processes through faults under load and proves that
// nothing is lost or duplicated. It skips unless PROMOFLOW_CHAOS is "short"
// (bounded: 10 s outages, a few minutes in all) or "full" (30 s outages).
// It stops and restarts the shared Redis, MariaDB and ClickHouse (always
// restarting what it stopped) and must run alone.
func TestChaos(t *testing.T) {
	modeName := os.Getenv("PROMOFLOW_CHAOS")
	if modeName == "" {
		t.Skip("set PROMOFLOW_CHAOS=short or full to run the fault suite (it stops and restarts the shared services; scripts/chaos)")
	}
	mode, ok := chaosModes[modeName]
	if !ok {
		t.Fatalf("PROMOFLOW_CHAOS=%q: want short or full", modeName)
	}
	chaosLock(t)
	guard := newServiceGuard(t)
	defer guard.restore(t.Logf)

	scenarios := []chaosScenario{
		{key: "kill", title: "kill -9 processes", coupons: 2, fault: faultKill},
		{key: "scale", title: "coupon group 1→3→1", coupons: 1, fault: faultScale},
		{key: "redis", title: "Redis restarted", coupons: 2, fault: faultService(svcRedis)},
		{key: "mariadb", title: "MariaDB stopped", coupons: 2, fault: faultService(svcMariaDB)},
		{key: "clickhouse", title: "ClickHouse stopped", coupons: 2, fault: faultService(svcClickHouse)},
		{key: "broker", title: "Kafka broker restarted", coupons: 2, fault: faultBroker},
		{key: "poison", title: "poison input", coupons: 2, fault: faultPoison},
	}
	e := newChaosEnv(t, mode, guard, scenarios)
	defer e.shutdown()

	var rows []chaosRow
	for _, sc := range scenarios {
		row := chaosRow{scenario: sc.title, recovery: -1}
		// A scenario that stops early (t.Fatal) still leaves its row.
		row.ok = t.Run(sc.key, func(t *testing.T) { e.runScenario(t, sc, &row) })
		if row.ran { // not left out by -run TestChaos/<key>
			rows = append(rows, row)
		}
	}
	// On stdout, so that it shows with or without -v.
	fmt.Print("\n" + chaosTable(mode, rows) + "\n")
}

// chaosLock serialises fault suites on this machine (scripts/test of two
// checkouts, say): two of them stopping the same services would break each
// other. It waits up to 10 minutes for the other run.
func chaosLock(t *testing.T) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "promoflow-chaos.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
	for start, said := time.Now(), false; ; {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return
		}
		if err != syscall.EWOULDBLOCK {
			t.Fatalf("locking %s: %v", f.Name(), err)
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("another fault suite has held %s for 10 minutes", f.Name())
		}
		if !said {
			said = true
			t.Logf("another fault suite is running on this machine; waiting for it (%s)", f.Name())
		}
		time.Sleep(time.Second)
	}
}

// chaosRow is one line of the final table.
type chaosRow struct {
	scenario  string
	in, dups  int // distinct events published, and extra copies
	poison    int
	results   int
	lost      int
	duplicate int
	dlq       int
	recovery  time.Duration // -1: did not recover in time
	fault     time.Duration
	ran, ok   bool
}

func chaosTable(mode chaosMode, rows []chaosRow) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos (%s): outages %s (Redis %s), claims %.0f/s + participations %.0f/s, %.0f%% published twice\n",
		mode.name, mode.outage, mode.redisOutage, mode.claimRate, mode.joinRate, chaosDupRate*100)
	fmt.Fprintf(&b, "| %-28s | %13s | %7s | %7s | %4s | %10s | %4s | %7s | %8s | %-4s |\n",
		"scenario", "events in", "dup in", "results", "lost", "duplicated", "DLQ", "fault", "recovery", "pass")
	fmt.Fprintf(&b, "|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 30), strings.Repeat("-", 15),
		strings.Repeat("-", 9), strings.Repeat("-", 9), strings.Repeat("-", 6), strings.Repeat("-", 12),
		strings.Repeat("-", 6), strings.Repeat("-", 9), strings.Repeat("-", 10), strings.Repeat("-", 6))
	for _, r := range rows {
		in := strconv.Itoa(r.in)
		if r.poison > 0 {
			in += fmt.Sprintf("+%d bad", r.poison)
		}
		rec := "timeout"
		if r.recovery >= 0 {
			rec = fmt.Sprintf("%.1fs", r.recovery.Seconds())
		}
		pass := "ok"
		if !r.ok {
			pass = "FAIL"
		}
		fmt.Fprintf(&b, "| %-28s | %13s | %7d | %7d | %4d | %10d | %4d | %6.1fs | %8s | %-4s |\n",
			r.scenario, in, r.dups, r.results, r.lost, r.duplicate, r.dlq, r.fault.Seconds(), rec, pass)
	}
	return b.String()
}

// ---- the environment ---------------------------------------------------

// chaosEnv is one broker process, the promoflow processes, the real stores
// under names of their own, and the reader of the result topics.
type chaosEnv struct {
	t       *testing.T // the parent test: processes outlive scenarios
	mode    chaosMode
	guard   *serviceGuard
	name    string
	cfgPath string
	brokers []string
	port    int
	dataDir string
	repo    string

	broker  *proc
	coupons []*proc
	lottery *proc
	sinks   *proc
	gen     int // process generation, for names

	rdb   *redis.Client
	mysql *sql.DB
	chMu  sync.Mutex
	ch    chgo.Conn

	tally       *chaosTally
	stopTally   context.CancelFunc
	tallyDone   chan struct{}
	hasVerify   bool
	databases   int
	tablesPerDB int
}

func newChaosEnv(t *testing.T, mode chaosMode, guard *serviceGuard, scenarios []chaosScenario) *chaosEnv {
	t.Helper()
	ctx := testenv.Context(t, 3*time.Minute)
	repo, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	e := &chaosEnv{t: t, mode: mode, guard: guard, name: testenv.Name("pfchaos"), dataDir: filepath.Join(t.TempDir(), "kafka"),
		repo: repo, databases: 2, tablesPerDB: 4}
	bin := promoflowBinary(t)
	if out, err := exec.Command(bin, "help", "verify").CombinedOutput(); err == nil && !bytes.Contains(out, []byte("unknown command")) {
		e.hasVerify = true
	}
	t.Logf("promoflow verify available: %v", e.hasVerify)

	// Stores first, so that the cleanup dropping them runs last.
	e.rdb = redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	if err := e.rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v (run scripts/services)", testenv.RedisAddr(), err)
	}
	e.mysql, err = sql.Open("mysql", testenv.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	e.mysql.SetConnMaxLifetime(10 * time.Second)
	if err := e.mysql.PingContext(ctx); err != nil {
		t.Fatalf("mysql at %s: %v (run scripts/services)", testenv.MySQLDSN(), err)
	}
	if _, err := e.clickhouse(); err != nil {
		t.Fatalf("clickhouse at %s: %v (run scripts/services)", testenv.ClickHouseAddr(), err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		deleteKeys(e.rdb, e.name)
		e.rdb.Close()
		for i := 0; i < e.databases; i++ {
			e.mysql.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s_%d", e.name, i))
		}
		e.mysql.Close()
		if ch, err := e.clickhouse(); err == nil {
			ch.Exec(ctx, "DROP DATABASE IF EXISTS "+e.name)
			ch.Close()
		}
	})

	e.port = freePorts(t, 3)
	for i := 0; i < 3; i++ {
		e.brokers = append(e.brokers, fmt.Sprintf("127.0.0.1:%d", e.port+i))
	}
	e.startBroker(ctx)

	yaml := fmt.Sprintf(`kafka:
  brokers: [%s]
redis:
  addr: %s
  key_prefix: %s
mysql:
  dsn: %q
  database_prefix: %s
  databases: %d
  tables_per_database: %d
clickhouse:
  addr: %s
  database: %s
runtime:
  session_timeout: 6s
  commit_interval: 2s
log:
  format: json
`, strings.Join(e.brokers, ", "), testenv.RedisAddr(), e.name, testenv.MySQLDSN(), e.name, e.databases, e.tablesPerDB,
		testenv.ClickHouseAddr(), e.name)
	e.cfgPath = filepath.Join(t.TempDir(), "promoflow.yaml")
	if err := os.WriteFile(e.cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(ctx, bin, "topics", "apply", "--config", e.cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("promoflow topics apply: %v\n%s", err, out)
	}

	// Every scenario's batches and activities are defined before the
	// processors start, so every instance, old or new, knows them.
	if err := e.defineAll(ctx, scenarios); err != nil {
		t.Fatal(err)
	}

	e.tally = newChaosTally()
	tctx, cancel := context.WithCancel(context.Background())
	e.stopTally, e.tallyDone = cancel, make(chan struct{})
	ready := make(chan struct{})
	go func() {
		defer close(e.tallyDone)
		if err := e.tally.run(tctx, e.brokers, ready); err != nil {
			t.Logf("tally: %v", err)
		}
	}()
	<-ready

	e.setCoupons(2)
	e.lottery = e.start("lottery", stageLottery)
	e.sinks = e.start("sinks", stageMySQL+","+stageClickHouse)

	// Warm up: one claim decided and stored in both sinks proves that
	// every stage has joined its group and created its tables.
	p, err := producers.New(producers.Config{Brokers: e.brokers, AppID: chaosApp})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ClaimCoupon(ctx, "warmup-1", "w1", "WARM"); err != nil {
		t.Fatal(err)
	}
	rid := schemas.ResultID(coupon.ResultKind, chaosApp, "warmup-1")
	waitUntil(t, ctx, "the warm-up claim to be decided and stored", func() bool {
		if _, ok := e.tally.grant(rid); !ok {
			return false
		}
		my, ch, err := e.storeGrants(ctx, []string{"WARM"})
		return err == nil && my.ids[rid] != "" && ch.ids[rid] != ""
	})
	return e
}

// shutdown stops the promoflow processes, then the broker and the reader.
func (e *chaosEnv) shutdown() {
	var wg sync.WaitGroup
	for _, p := range append(append([]*proc(nil), e.coupons...), e.lottery, e.sinks) {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); stopProc(p) }()
	}
	wg.Wait()
	e.stopTally()
	<-e.tallyDone
	if e.broker != nil {
		stopProc(e.broker)
	}
}

func (e *chaosEnv) start(name string, stages string) *proc {
	e.gen++
	return startProc(e.t, fmt.Sprintf("%s-%d", name, e.gen), "run", "--config", e.cfgPath, "--only", stages, "--stats-every", "10s")
}

// setCoupons scales the coupon group to n instances: new ones are started,
// extra ones stopped gracefully (SIGTERM).
func (e *chaosEnv) setCoupons(n int) {
	for len(e.coupons) < n {
		e.coupons = append(e.coupons, e.start("coupon", stageCoupon))
	}
	for len(e.coupons) > n {
		last := e.coupons[len(e.coupons)-1]
		e.coupons = e.coupons[:len(e.coupons)-1]
		stopProc(last)
	}
}

// startBroker starts `promoflow broker` on the env's ports and data dir and
// waits until it serves.
func (e *chaosEnv) startBroker(ctx context.Context) {
	e.t.Helper()
	e.gen++
	e.broker = startProc(e.t, fmt.Sprintf("broker-%d", e.gen), "broker", "--brokers", "3", "--port", strconv.Itoa(e.port),
		"--data-dir", e.dataDir, "--apply-topics=false")
	b := e.broker
	for {
		b.mu.Lock()
		up := strings.Contains(b.log.String(), "serving until interrupted")
		b.mu.Unlock()
		if up {
			return
		}
		select {
		case <-b.done:
			b.mu.Lock()
			defer b.mu.Unlock()
			e.t.Fatalf("promoflow broker exited: %s", b.log.String())
		case <-ctx.Done():
			e.t.Fatalf("promoflow broker did not come up")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func stopProc(p *proc) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// freePorts returns the first of n consecutive free local ports.
func freePorts(t *testing.T, n int) int {
	t.Helper()
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	for try := 0; try < 100; try++ {
		base := 20000 + rng.Intn(30000)
		var ls []net.Listener
		ok := true
		for i := 0; i < n; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				break
			}
			ls = append(ls, l)
		}
		for _, l := range ls {
			l.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatal("no free ports")
	return 0
}

func (e *chaosEnv) clickhouse() (chgo.Conn, error) {
	e.chMu.Lock()
	defer e.chMu.Unlock()
	if e.ch != nil {
		return e.ch, nil
	}
	c, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}, DialTimeout: 3 * time.Second})
	if err != nil {
		return nil, err
	}
	if err := c.Ping(context.Background()); err != nil {
		c.Close()
		return nil, err
	}
	e.ch = c
	return c, nil
}

// chFailed drops the ClickHouse connection after an error, so the next use
// dials again (the server may have restarted).
func (e *chaosEnv) chFailed() {
	e.chMu.Lock()
	defer e.chMu.Unlock()
	if e.ch != nil {
		e.ch.Close()
		e.ch = nil
	}
}

// ---- scenario ids, definitions ----------------------------------------

func hotBatch(key string) string  { return "HOT-" + key }
func normBatch(key string) string { return "NORM-" + key }
func activity(key string) string  { return "ACT-" + key }
func giftActivity(key string) string {
	return "GIFT-" + key
}

// hotStock is the hot batch's stock: about the hot claims of twice the
// warm-up, so that it runs out while the fault goes on.
func (m chaosMode) hotStock() int64 {
	return int64(m.claimRate * chaosHotShare * 2 * m.before.Seconds())
}

// hostileName is a valid but hostile activity and member name (≤200).
const hostileName = `Robert'); DROP TABLE lottery_activity_0; -- "=cmd|' /C calc'!A0" \' \\ 🎁 名字 ‮evil`

func (e *chaosEnv) defineAll(ctx context.Context, scenarios []chaosScenario) error {
	p, err := producers.New(producers.Config{Brokers: e.brokers, AppID: chaosApp})
	if err != nil {
		return err
	}
	defer p.Close()
	now := time.Now()
	defs := []schemas.BatchDefined{{BatchID: "WARM", Revision: 1, TotalStock: 10, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive}}
	var acts []schemas.ActivityDefined
	for _, sc := range scenarios {
		defs = append(defs,
			schemas.BatchDefined{BatchID: hotBatch(sc.key), Name: "hot " + sc.key, Revision: 1, TotalStock: e.mode.hotStock(),
				PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive},
			schemas.BatchDefined{BatchID: normBatch(sc.key), Name: "everyday " + sc.key, Revision: 1, TotalStock: 1_000_000,
				PerUserLimit: chaosNormLimit, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive})
		a := schemas.ActivityDefined{ActivityID: activity(sc.key), Name: "instant win " + sc.key, Revision: 1,
			Kind: schemas.KindInstantWin, JoinFrom: now.Add(-time.Hour), JoinUntil: now.Add(6 * time.Hour),
			PerUserLimit: chaosJoinLimit, Status: schemas.BatchActive,
			Prizes: []schemas.PrizeTier{{TierID: "P1", Name: "100 points", Kind: schemas.PrizePoints, Points: 100,
				Stock: chaosPrizeStock, ProbabilityPPM: 250_000}}}
		if sc.key == "poison" {
			a.Name = hostileName
			acts = append(acts, schemas.ActivityDefined{ActivityID: giftActivity(sc.key), Name: hostileName, Revision: 1,
				Kind: schemas.KindGiftExchange, JoinFrom: now.Add(-time.Hour), JoinUntil: now.Add(6 * time.Hour),
				PerUserLimit: 1, Status: schemas.BatchActive, Prizes: []schemas.PrizeTier{}})
		}
		acts = append(acts, a)
	}
	for _, d := range defs {
		if err := p.DefineBatch(ctx, "def-"+d.BatchID, d); err != nil {
			return fmt.Errorf("defining batch %s: %w", d.BatchID, err)
		}
	}
	for _, a := range acts {
		if err := p.DefineActivity(ctx, "def-"+a.ActivityID, a); err != nil {
			return fmt.Errorf("defining activity %s: %w", a.ActivityID, err)
		}
	}
	return nil
}

// ---- one scenario ------------------------------------------------------

// chaosRun is one scenario in progress.
type chaosRun struct {
	key    string
	load   *chaosLoad
	poison []*kgo.Record // the poison records as produced (with offsets)
	// hostile are valid events carrying hostile strings (poison scenario).
	hostileClaims  map[string]string // event id -> channel
	hostileMembers map[string]schemas.MemberUpdated
}

// runScenario runs one scenario under load and fills its row of the table.
func (e *chaosEnv) runScenario(t *testing.T, sc chaosScenario, row *chaosRow) {
	row.ran = true
	ctx := testenv.Context(t, e.mode.before+e.mode.after+e.mode.catchUp+3*e.mode.outage+time.Duration(e.mode.kills)*e.mode.killEvery+e.mode.scaleHold+3*time.Minute)
	e.setCoupons(sc.coupons)
	deadBefore := e.tally.deadKeys()

	run := &chaosRun{key: sc.key}
	load, err := startChaosLoad(ctx, e, sc.key)
	if err != nil {
		t.Fatal(err)
	}
	run.load = load
	defer load.close()

	sleepCtx(ctx, e.mode.before)
	faultStart := time.Now()
	sc.fault(t, ctx, e, run)
	faultEnd := time.Now()
	row.fault = faultEnd.Sub(faultStart)
	t.Logf("%s: fault from %s to %s (%.1fs)", sc.key, faultStart.Format("15:04:05.000"), faultEnd.Format("15:04:05.000"), row.fault.Seconds())

	// Recovery: the events generated before the fault ended must all be
	// decided and stored in both sinks.
	targets := load.snapshot()
	recovered := make(chan time.Duration, 1)
	go func() {
		rctx, cancel := context.WithTimeout(ctx, e.mode.catchUp+e.mode.after)
		defer cancel()
		if e.waitCaughtUp(rctx, sc.key, targets, nil) {
			recovered <- time.Since(faultEnd)
		} else {
			recovered <- -1
		}
	}()

	sleepCtx(ctx, e.mode.after)
	if err := load.finish(ctx, e.mode.catchUp); err != nil {
		t.Fatalf("publishing: %v", err)
	}
	all := load.snapshot()
	cctx, cancel := context.WithTimeout(ctx, e.mode.catchUp)
	var missing string
	caught := e.waitCaughtUp(cctx, sc.key, all, &missing)
	cancel()
	row.recovery = <-recovered
	if !caught {
		t.Errorf("not caught up %s after the load stopped: %s", e.mode.catchUp, missing)
	}
	if row.recovery < 0 {
		t.Errorf("the results of the events published before the fault ended did not catch up")
	} else {
		t.Logf("%s: recovered %.1fs after the fault ended", sc.key, row.recovery.Seconds())
	}
	if len(run.poison) > 0 {
		waitUntil(t, ctx, "every poison record in the DLQ", func() bool { return e.tally.deadCount()-len(deadBefore) >= len(run.poison) })
		// Give a stray extra dead letter the time to show up.
		sleepCtx(ctx, 2*time.Second)
	}
	e.check(t, ctx, run, row, deadBefore)
	e.checkAlive(t)
	if e.hasVerify {
		vctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		out, err := exec.CommandContext(vctx, promoflowBinary(t), "verify", "--config", e.cfgPath).CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promoflow verify: %v\n%s", err, tail(string(out), 6000))
		} else {
			t.Logf("promoflow verify passed: %s", lastLine(string(out)))
		}
	}
}

// checkAlive fails the scenario for every process that exited by itself:
// the processes must ride out every fault and continue.
func (e *chaosEnv) checkAlive(t *testing.T) {
	for _, p := range append([]*proc{e.broker, e.lottery, e.sinks}, e.coupons...) {
		select {
		case <-p.done:
			p.mu.Lock()
			t.Errorf("%s exited during the scenario: %s", p.name, tail(p.log.String(), 3000))
			p.mu.Unlock()
		default:
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// waitCaughtUp waits until every event of evs has its decision on the
// result topics and its row in MySQL and ClickHouse. missing, if not nil,
// says what was still missing when ctx ended.
func (e *chaosEnv) waitCaughtUp(ctx context.Context, key string, evs []*chaosEvent, missing *string) bool {
	pending := evs
	for {
		var still []*chaosEvent
		for _, ev := range pending {
			if !e.tally.decided(ev) {
				still = append(still, ev)
			}
		}
		pending = still
		why := ""
		if len(pending) == 0 {
			lost, err := e.storeMissing(ctx, key, evs)
			if err == nil && lost == "" {
				return true
			}
			why = lost
			if err != nil {
				why = err.Error()
			}
		} else {
			why = fmt.Sprintf("%d of %d events undecided (e.g. %s)", len(pending), len(evs), pending[0].id)
		}
		select {
		case <-ctx.Done():
			if missing != nil {
				*missing = why
			}
			return false
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// storeMissing says which results of evs MySQL or ClickHouse lack ("" when
// none).
func (e *chaosEnv) storeMissing(ctx context.Context, key string, evs []*chaosEvent) (string, error) {
	my, ch, err := e.storeGrants(ctx, []string{hotBatch(key), normBatch(key)})
	if err != nil {
		return "", err
	}
	mye, che, err := e.storeEntries(ctx, activity(key))
	if err != nil {
		return "", err
	}
	var myMiss, chMiss int
	var example string
	for _, ev := range evs {
		var inMy, inCH bool
		switch ev.kind {
		case evClaim:
			inMy, inCH = my.ids[ev.result] != "", ch.ids[ev.result] != ""
		case evJoin:
			inMy, inCH = mye.ids[ev.result] != "", che.ids[ev.result] != ""
		default:
			continue // checked apart
		}
		if !inMy {
			myMiss++
			example = ev.id
		}
		if !inCH {
			chMiss++
			example = ev.id
		}
	}
	if myMiss+chMiss == 0 {
		return "", nil
	}
	return fmt.Sprintf("%d results missing in MySQL, %d in ClickHouse (e.g. of %s)", myMiss, chMiss, example), nil
}

// ---- the load ----------------------------------------------------------

type evKind int

const (
	evClaim  evKind = iota // coupon claim; result on coupon.grants
	evJoin                 // lottery participation; entry on lottery.results
	evMember               // gift member update; member record on lottery.results
)

// chaosEvent is one distinct event the load published.
type chaosEvent struct {
	id      string
	kind    evKind
	user    string
	target  string // batch or activity
	result  string // the result id its decision carries
	at      time.Time
	payload schemas.Payload
	acked   bool
}

// chaosLoad publishes a scenario's events at a steady rate through the
// producer SDK. An event whose publish fails is published again with the
// same id (at-least-once, as the SDK documents), so every generated event
// must end up decided; a share is published twice on purpose.
type chaosLoad struct {
	e    *chaosEnv
	key  string
	ctx  context.Context
	p    *producers.Producer
	rng  *rand.Rand
	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	events   []*chaosEvent
	retry    []*chaosEvent
	dups     int
	failures int
}

func startChaosLoad(ctx context.Context, e *chaosEnv, key string) (*chaosLoad, error) {
	p, err := producers.New(producers.Config{Brokers: e.brokers, AppID: chaosApp})
	if err != nil {
		return nil, err
	}
	l := &chaosLoad{e: e, key: key, ctx: ctx, p: p, rng: rand.New(rand.NewSource(int64(len(key)) * 7919)),
		stop: make(chan struct{}), done: make(chan struct{})}
	go l.run()
	return l, nil
}

func (l *chaosLoad) run() {
	defer close(l.done)
	start := time.Now()
	var claims, joins int
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	lastRetry := time.Now()
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-tick.C:
		}
		el := time.Since(start).Seconds()
		for float64(claims) < el*l.e.mode.claimRate {
			l.claim(claims)
			claims++
		}
		for float64(joins) < el*l.e.mode.joinRate {
			l.join(joins)
			joins++
		}
		if time.Since(lastRetry) > time.Second {
			l.resend()
			lastRetry = time.Now()
		}
	}
}

func (l *chaosLoad) claim(i int) {
	hot := l.rng.Float64() < chaosHotShare
	c := schemas.ClaimRequested{BatchID: normBatch(l.key), UserID: fmt.Sprintf("n%04d", l.rng.Intn(chaosNormUsers)), Channel: "live"}
	if hot {
		c = schemas.ClaimRequested{BatchID: hotBatch(l.key), UserID: fmt.Sprintf("h%05d", l.rng.Intn(chaosHotUsers)), Channel: "live"}
	}
	id := fmt.Sprintf("%s-c-%06d", l.key, i)
	l.add(&chaosEvent{id: id, kind: evClaim, user: c.UserID, target: c.BatchID,
		result: schemas.ResultID(coupon.ResultKind, chaosApp, id), at: time.Now(), payload: c})
}

func (l *chaosLoad) join(i int) {
	j := schemas.ParticipationRequested{ActivityID: activity(l.key), UserID: fmt.Sprintf("j%03d", l.rng.Intn(chaosJoinUsers)), Channel: "app"}
	id := fmt.Sprintf("%s-j-%06d", l.key, i)
	l.add(&chaosEvent{id: id, kind: evJoin, user: j.UserID, target: j.ActivityID,
		result: schemas.ResultID(chaosKindEntry, chaosApp, id), at: time.Now(), payload: j})
}

// add publishes a new event, and a second copy of a share of them.
func (l *chaosLoad) add(ev *chaosEvent) {
	l.mu.Lock()
	l.events = append(l.events, ev)
	l.mu.Unlock()
	l.publish(ev, false)
	if l.rng.Float64() < chaosDupRate {
		l.publish(ev, true)
	}
}

func (l *chaosLoad) publish(ev *chaosEvent, dup bool) {
	l.p.PublishAsync(l.ctx, ev.id, ev.at, ev.payload, func(err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		switch {
		case err != nil && !dup:
			l.failures++
			l.retry = append(l.retry, ev)
		case err == nil && dup:
			l.dups++
		case err == nil:
			ev.acked = true
		}
	})
}

func (l *chaosLoad) resend() {
	l.mu.Lock()
	evs := l.retry
	l.retry = nil
	l.mu.Unlock()
	for _, ev := range evs {
		l.publish(ev, false)
	}
}

// finish stops generating and waits until every event is acknowledged.
func (l *chaosLoad) finish(ctx context.Context, bound time.Duration) error {
	close(l.stop)
	<-l.done
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	for {
		fctx, fcancel := context.WithTimeout(ctx, 5*time.Second)
		l.p.Flush(fctx)
		fcancel()
		l.mu.Lock()
		unacked := 0
		for _, ev := range l.events {
			if !ev.acked {
				unacked++
			}
		}
		pendingRetry := len(l.retry)
		l.mu.Unlock()
		if unacked == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%d events still unacknowledged (%d to resend)", unacked, pendingRetry)
		}
		l.resend()
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

func (l *chaosLoad) close() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	<-l.done
	l.p.Close()
}

// snapshot returns the events generated so far.
func (l *chaosLoad) snapshot() []*chaosEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*chaosEvent(nil), l.events...)
}

func (l *chaosLoad) counts() (distinct, dups, failures int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.events), l.dups, l.failures
}

// ---- the reader of the result and dead-letter topics --------------------

// chaosResult is the first record seen of one result id.
type chaosResult struct {
	value                  []byte
	typ                    string
	target, user           string // batch or activity, and user
	status, reason, extra  string // extra: outcome of an entry, tier of an award
	records                int    // records seen with this id, replays included
	conflicts              int    // records whose bytes differ from the first
	latestName, latestNote string // gift members: the latest record's strings
}

// chaosDead is one dead letter, by the source record it points at.
type chaosDead struct {
	reason, detail, stage string
	copies                int
}

// chaosTally reads coupon.grants, lottery.results and the DLQ from the
// start, for the whole test.
type chaosTally struct {
	mu      sync.Mutex
	results map[string]*chaosResult
	names   map[string]string // activity id -> name committed
	dead    map[string]*chaosDead
	records int
}

func newChaosTally() *chaosTally {
	return &chaosTally{results: map[string]*chaosResult{}, names: map[string]string{}, dead: map[string]*chaosDead{}}
}

func (t *chaosTally) run(ctx context.Context, brokers []string, ready chan<- struct{}) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(coupon.TopicGrants, lottery.TopicResults, "promoflow.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		close(ready)
		return err
	}
	defer cl.Close()
	close(ready)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		t.mu.Lock()
		fs.EachRecord(t.add)
		t.mu.Unlock()
	}
}

func chaosHeader(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func (t *chaosTally) add(r *kgo.Record) {
	t.records++
	if r.Topic == "promoflow.dlq" {
		src := chaosHeader(r, stream.HeaderDLQSourceTopic) + "/" + chaosHeader(r, stream.HeaderDLQSourcePartition) + "/" + chaosHeader(r, stream.HeaderDLQSourceOffset)
		d := t.dead[src]
		if d == nil {
			d = &chaosDead{reason: chaosHeader(r, stream.HeaderDLQReason), detail: chaosHeader(r, stream.HeaderDLQDetail), stage: chaosHeader(r, stream.HeaderDLQStage)}
			t.dead[src] = d
		}
		d.copies++
		return
	}
	var env schemas.Envelope
	if json.Unmarshal(r.Value, &env) != nil {
		return
	}
	var id string
	res := &chaosResult{value: append([]byte(nil), r.Value...), typ: env.Type}
	switch env.Type {
	case schemas.TypeCouponGrantDecided:
		var g schemas.GrantDecided
		if env.DecodePayload(&g) != nil {
			return
		}
		id, res.target, res.user, res.status, res.reason = g.ResultID, g.BatchID, g.UserID, g.Status, g.Reason
	case schemas.TypeLotteryEntryRecorded:
		var en schemas.EntryRecorded
		if env.DecodePayload(&en) != nil {
			return
		}
		id, res.target, res.user, res.status, res.reason, res.extra = en.ResultID, en.ActivityID, en.UserID, en.Status, en.Reason, en.Outcome
	case schemas.TypeLotteryPrizeAwarded:
		var a schemas.PrizeAwarded
		if env.DecodePayload(&a) != nil {
			return
		}
		id, res.target, res.user, res.extra = a.ResultID, a.ActivityID, a.UserID, a.TierID
	case schemas.TypeGiftMemberRecorded:
		var m schemas.MemberRecorded
		if env.DecodePayload(&m) != nil {
			return
		}
		id, res.target, res.user, res.status = m.ResultID, m.ActivityID, m.UserID, m.Status
		// A member's record changes with every edit: keep the latest.
		if prev := t.results[id]; prev != nil {
			prev.records++
			prev.latestName, prev.latestNote = m.Name, m.Note
			return
		}
		res.latestName, res.latestNote = m.Name, m.Note
	case schemas.TypeLotteryActivityCommitted:
		var a schemas.ActivityCommitted
		if env.DecodePayload(&a) == nil {
			t.names[a.ActivityID] = a.Name
		}
		return
	default:
		return
	}
	if prev := t.results[id]; prev != nil {
		prev.records++
		if !bytes.Equal(prev.value, r.Value) {
			prev.conflicts++
		}
		return
	}
	res.records = 1
	t.results[id] = res
}

func (t *chaosTally) grant(id string) (chaosResult, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.results[id]
	if r == nil {
		return chaosResult{}, false
	}
	return *r, true
}

func (t *chaosTally) decided(ev *chaosEvent) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.results[ev.result]
	if r == nil {
		return false
	}
	if ev.kind == evMember {
		m := ev.payload.(schemas.MemberUpdated)
		return r.latestName == m.Name && r.latestNote == m.Note
	}
	return true
}

// deadKeys returns the source positions of the dead letters read so far.
func (t *chaosTally) deadKeys() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]bool, len(t.dead))
	for k := range t.dead {
		out[k] = true
	}
	return out
}

func (t *chaosTally) deadCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.dead)
}

// forTargets returns copies of the results of the given batches or
// activities.
func (t *chaosTally) forTargets(targets ...string) map[string]chaosResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]chaosResult{}
	for id, r := range t.results {
		for _, tg := range targets {
			if r.target == tg {
				out[id] = *r
			}
		}
	}
	return out
}

// ---- the stores --------------------------------------------------------

// storeRows are the rows of one table family in one store: result id ->
// status (or outcome), and the row count before collapsing.
type storeRows struct {
	ids   map[string]string
	users map[string]string // result id -> user
	rows  int
}

func (e *chaosEnv) shardTables(prefix string) []string {
	var out []string
	for db := 0; db < e.databases; db++ {
		for tb := 0; tb < e.tablesPerDB; tb++ {
			out = append(out, fmt.Sprintf("`%s_%d`.`%s_%d`", e.name, db, prefix, tb))
		}
	}
	return out
}

// mysqlRows reads result_id and two more columns from every shard table of
// prefix whose column col is one of vals.
func (e *chaosEnv) mysqlRows(ctx context.Context, prefix, cols, col string, vals []string) ([][3]string, error) {
	var out [][3]string
	ph := strings.TrimSuffix(strings.Repeat("?,", len(vals)), ",")
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	for _, tb := range e.shardTables(prefix) {
		rs, err := e.mysql.QueryContext(ctx, "SELECT result_id, "+cols+" FROM "+tb+" WHERE "+col+" IN ("+ph+")", args...)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", tb, err)
		}
		for rs.Next() {
			var r [3]string
			if err := rs.Scan(&r[0], &r[1], &r[2]); err != nil {
				rs.Close()
				return nil, err
			}
			out = append(out, r)
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// chRows is mysqlRows for a ClickHouse table, read with FINAL.
func (e *chaosEnv) chRows(ctx context.Context, table, cols, col string, vals []string) ([][3]string, error) {
	ch, err := e.clickhouse()
	if err != nil {
		return nil, err
	}
	quoted := make([]string, len(vals))
	for i, v := range vals {
		quoted[i] = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	}
	rs, err := ch.Query(ctx, "SELECT result_id, "+cols+" FROM `"+e.name+"`.`"+table+"` FINAL WHERE "+col+" IN ("+strings.Join(quoted, ",")+")")
	if err != nil {
		e.chFailed()
		return nil, fmt.Errorf("reading clickhouse %s: %w", table, err)
	}
	defer rs.Close()
	var out [][3]string
	for rs.Next() {
		var r [3]string
		if err := rs.Scan(&r[0], &r[1], &r[2]); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

func toStoreRows(rows [][3]string) storeRows {
	s := storeRows{ids: map[string]string{}, users: map[string]string{}, rows: len(rows)}
	for _, r := range rows {
		s.ids[r[0]] = r[1]
		s.users[r[0]] = r[2]
	}
	return s
}

// storeGrants reads the coupon grants of batches from MySQL and ClickHouse.
func (e *chaosEnv) storeGrants(ctx context.Context, batches []string) (my, ch storeRows, err error) {
	r, err := e.mysqlRows(ctx, "coupon_grant", "status, user_id", "batch_id", batches)
	if err != nil {
		return
	}
	my = toStoreRows(r)
	r, err = e.chRows(ctx, "coupon_grants", "status, user_id", "batch_id", batches)
	if err != nil {
		return
	}
	ch = toStoreRows(r)
	return
}

// storeEntries reads the lottery entries of an activity (status:outcome).
func (e *chaosEnv) storeEntries(ctx context.Context, act string) (my, ch storeRows, err error) {
	r, err := e.mysqlRows(ctx, "lottery_entry", "CONCAT(status, ':', outcome), user_id", "activity_id", []string{act})
	if err != nil {
		return
	}
	my = toStoreRows(r)
	r, err = e.chRows(ctx, "lottery_entries", "concat(status, ':', outcome), user_id", "activity_id", []string{act})
	if err != nil {
		return
	}
	ch = toStoreRows(r)
	return
}

// storeAwards reads the prize awards of an activity (tier).
func (e *chaosEnv) storeAwards(ctx context.Context, act string) (my, ch storeRows, err error) {
	r, err := e.mysqlRows(ctx, "lottery_award", "tier_id, user_id", "activity_id", []string{act})
	if err != nil {
		return
	}
	my = toStoreRows(r)
	r, err = e.chRows(ctx, "lottery_awards", "tier_id, user_id", "activity_id", []string{act})
	if err != nil {
		return
	}
	ch = toStoreRows(r)
	return
}

// ---- the checks ----------------------------------------------------------

func (e *chaosEnv) check(t *testing.T, ctx context.Context, run *chaosRun, row *chaosRow, deadBefore map[string]bool) {
	key := run.key
	evs := run.load.snapshot()
	distinct, dups, failures := run.load.counts()
	row.in, row.dups = distinct, dups
	row.poison = len(run.poison)
	want := map[string]*chaosEvent{}
	for _, ev := range evs {
		want[ev.result] = ev
	}

	grants := e.tally.forTargets(hotBatch(key), normBatch(key))
	entries := map[string]chaosResult{}
	awards := map[string]chaosResult{}
	for id, r := range e.tally.forTargets(activity(key)) {
		switch r.typ {
		case schemas.TypeLotteryEntryRecorded:
			entries[id] = r
		case schemas.TypeLotteryPrizeAwarded:
			awards[id] = r
		}
	}
	members := e.tally.forTargets(giftActivity(key))

	// Every event has exactly one decision; no decision without an event.
	decided := map[string]chaosResult{}
	for id, r := range grants {
		decided[id] = r
	}
	for id, r := range entries {
		decided[id] = r
	}
	for id, r := range members {
		decided[id] = r
	}
	var lostIDs []string
	for id, ev := range want {
		if _, ok := decided[id]; !ok {
			lostIDs = append(lostIDs, ev.id)
		} else if ev.kind == evMember && !e.tally.decided(ev) {
			lostIDs = append(lostIDs, ev.id)
		}
	}
	for id, r := range decided {
		if want[id] == nil {
			t.Errorf("a decision (%s, %s for user %s) answers no published event", r.typ, id, r.user)
		}
	}
	row.lost = len(lostIDs)
	row.results = len(decided)
	if row.lost > 0 {
		sort.Strings(lostIDs)
		t.Errorf("%d events lost (no decision), e.g. %v", row.lost, lostIDs[:min(5, len(lostIDs))])
	}

	// Duplicates: a result re-emitted with other content, or more grants
	// (wins, accepted entries) for one user than the rules allow.
	records, conflicts := 0, 0
	for _, r := range grants {
		records += r.records
		conflicts += r.conflicts
	}
	for _, r := range entries {
		records += r.records
		conflicts += r.conflicts
	}
	for _, r := range awards {
		conflicts += r.conflicts
	}
	if conflicts > 0 {
		t.Errorf("%d result records differ from the first record of their result id", conflicts)
	}
	over := 0
	perUser := map[string]int{}
	claimsByUser := map[string]map[string]bool{} // batch|user -> claims
	var hotGranted, normGranted int64
	hotUsers := map[string]bool{}
	for _, ev := range evs {
		if ev.kind == evClaim {
			k := ev.target + "|" + ev.user
			if claimsByUser[k] == nil {
				claimsByUser[k] = map[string]bool{}
			}
			claimsByUser[k][ev.id] = true
			if ev.target == hotBatch(key) {
				hotUsers[ev.user] = true
			}
		}
	}
	for _, r := range grants {
		if r.status != schemas.StatusGranted {
			continue
		}
		perUser[r.target+"|"+r.user]++
		if r.target == hotBatch(key) {
			hotGranted++
		} else {
			normGranted++
		}
	}
	var wantNorm int64
	for k, claims := range claimsByUser {
		limit := 1
		if strings.HasPrefix(k, normBatch(key)+"|") {
			limit = chaosNormLimit
			wantNorm += int64(min(limit, len(claims)))
		}
		if perUser[k] > limit {
			over += perUser[k] - limit
		}
	}
	stock := e.mode.hotStock()
	if hotGranted > stock {
		t.Errorf("hot batch: %d granted, stock %d", hotGranted, stock)
	}
	if wantHot := min(stock, int64(len(hotUsers))); hotGranted != wantHot {
		t.Errorf("hot batch: %d granted, want min(stock %d, users %d) = %d", hotGranted, stock, len(hotUsers), wantHot)
	}
	if normGranted != wantNorm {
		t.Errorf("everyday batch: %d granted, want Σ min(%d, claims per user) = %d", normGranted, chaosNormLimit, wantNorm)
	}
	// Lottery: accepted tries per user ≤ the limit, one win per user,
	// wins ≤ the prize stock, one award per win.
	accepted, won := map[string]int{}, map[string]int{}
	wins := 0
	for _, r := range entries {
		if r.status == schemas.EntryAccepted {
			accepted[r.user]++
		}
		if r.extra == schemas.OutcomeWon {
			won[r.user]++
			wins++
		}
	}
	for _, n := range accepted {
		over += max(0, n-chaosJoinLimit)
	}
	for _, n := range won {
		over += max(0, n-1)
	}
	if wins > chaosPrizeStock || len(awards) != wins {
		t.Errorf("lottery: %d wins, %d awards, prize stock %d", wins, len(awards), chaosPrizeStock)
	}
	if over > 0 {
		t.Errorf("%d grants, accepted entries or wins beyond a per-user limit", over)
	}
	row.duplicate = conflicts + over

	// Redis holds the same stock counters.
	st := coupon.NewStore(e.rdb, coupon.WithKeyPrefix(e.name))
	for _, b := range []struct {
		batch string
		n     int64
	}{{hotBatch(key), hotGranted}, {normBatch(key), normGranted}} {
		if n, err := st.Granted(ctx, b.batch); err != nil || n != b.n {
			t.Errorf("redis counter of %s: %d (%v), the decisions grant %d", b.batch, n, err, b.n)
		}
	}

	// MySQL and ClickHouse hold exactly one row per result, with the
	// decided status.
	my, ch, err := e.storeGrants(ctx, []string{hotBatch(key), normBatch(key)})
	if err != nil {
		t.Fatalf("reading the grants back: %v", err)
	}
	e.compareStore(t, "coupon grants", grants, my, ch, func(r chaosResult) string { return r.status })
	mye, che, err := e.storeEntries(ctx, activity(key))
	if err != nil {
		t.Fatalf("reading the entries back: %v", err)
	}
	e.compareStore(t, "lottery entries", entries, mye, che, func(r chaosResult) string { return r.status + ":" + r.extra })
	mya, cha, err := e.storeAwards(ctx, activity(key))
	if err != nil {
		t.Fatalf("reading the awards back: %v", err)
	}
	e.compareStore(t, "lottery awards", awards, mya, cha, func(r chaosResult) string { return r.extra })
	if n, err := e.chCount(ctx, "coupon_grants", "batch_id", []string{hotBatch(key), normBatch(key)}); err != nil || n.rows != n.distinct || n.rows != uint64(len(grants)) {
		t.Errorf("clickhouse coupon_grants FINAL: count %d, distinct %d (%v); want %d", n.rows, n.distinct, err, len(grants))
	}

	// The DLQ holds exactly the poison records, each once, with a reason.
	e.checkDead(t, run, row, deadBefore)
	if len(run.hostileClaims) > 0 || len(run.hostileMembers) > 0 {
		e.checkHostile(t, ctx, run)
	}
	// Records beyond one per result and one per published copy were
	// decided again after a redelivery (and replayed the same bytes).
	replays := records - len(grants) - len(entries) - dups
	if key == "kill" && replays <= 0 {
		t.Errorf("no redelivery after the kills was observed (%d result records, %d results, %d copies)", records, row.results, dups)
	}
	t.Logf("%s: %d events (+%d copies, %d publishes retried), %d results (%d result records read: %d replayed after redelivery), hot %d/%d granted, everyday %d granted, %d wins; DLQ +%d",
		key, distinct, dups, failures, row.results, records, replays, hotGranted, stock, normGranted, wins, row.dlq)
}

// compareStore checks that each store holds one row per result of want
// and nothing else, with the same value.
func (e *chaosEnv) compareStore(t *testing.T, what string, want map[string]chaosResult, my, ch storeRows, val func(chaosResult) string) {
	t.Helper()
	for _, s := range []struct {
		name string
		rows storeRows
	}{{"mysql", my}, {"clickhouse", ch}} {
		if s.rows.rows != len(s.rows.ids) {
			t.Errorf("%s %s: %d rows for %d results", s.name, what, s.rows.rows, len(s.rows.ids))
		}
		missing, extra, differ := 0, 0, 0
		for id, r := range want {
			v, ok := s.rows.ids[id]
			switch {
			case !ok:
				missing++
			case v != val(r):
				differ++
			}
		}
		for id := range s.rows.ids {
			if _, ok := want[id]; !ok {
				extra++
			}
		}
		if missing+extra+differ > 0 {
			t.Errorf("%s %s: %d results missing, %d rows without a result, %d rows differ from the decision (of %d)",
				s.name, what, missing, extra, differ, len(want))
		}
	}
}

type chCounts struct{ rows, distinct uint64 }

func (e *chaosEnv) chCount(ctx context.Context, table, col string, vals []string) (chCounts, error) {
	var n chCounts
	ch, err := e.clickhouse()
	if err != nil {
		return n, err
	}
	quoted := make([]string, len(vals))
	for i, v := range vals {
		quoted[i] = "'" + v + "'"
	}
	err = ch.QueryRow(ctx, "SELECT count(), uniqExact(result_id) FROM `"+e.name+"`.`"+table+"` FINAL WHERE "+col+" IN ("+strings.Join(quoted, ",")+")").Scan(&n.rows, &n.distinct)
	if err != nil {
		e.chFailed()
	}
	return n, err
}

// checkDead checks the dead letters that appeared during the scenario: the
// poison records, each with a reason, and nothing else.
func (e *chaosEnv) checkDead(t *testing.T, run *chaosRun, row *chaosRow, deadBefore map[string]bool) {
	e.tally.mu.Lock()
	defer e.tally.mu.Unlock()
	row.dlq = len(e.tally.dead) - len(deadBefore)
	want := map[string]*kgo.Record{}
	for _, r := range run.poison {
		want[fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)] = r
	}
	byReason := map[string]int{}
	for src, r := range want {
		d := e.tally.dead[src]
		if d == nil {
			t.Errorf("poison record %s (%.60q) is not in the DLQ", src, r.Value)
			continue
		}
		if d.reason == "" {
			t.Errorf("dead letter of %s has no reason", src)
		}
		byReason[d.reason]++
	}
	copies := 0
	for src := range want {
		if d := e.tally.dead[src]; d != nil {
			copies += d.copies
		}
	}
	if copies > len(want) {
		t.Logf("%d dead-letter records for %d poison records (redelivered before a commit: the same source position)", copies, len(want))
	}
	if row.dlq != len(want) {
		var extra []string
		for src, d := range e.tally.dead {
			if want[src] == nil && !deadBefore[src] {
				extra = append(extra, src+" "+d.reason+": "+d.detail)
			}
		}
		sort.Strings(extra)
		t.Errorf("the DLQ grew by %d dead letters during the scenario, %d poison records were published; others: %v",
			row.dlq, len(want), extra[:min(len(extra), 10)])
	}
	if len(want) > 0 {
		t.Logf("dead letters by reason: %v", byReason)
	}
}

// checkHostile reads back the valid events carrying hostile strings: each
// string must come back byte for byte from MySQL and ClickHouse.
func (e *chaosEnv) checkHostile(t *testing.T, ctx context.Context, run *chaosRun) {
	ch, err := e.clickhouse()
	if err != nil {
		t.Fatal(err)
	}
	// Claims: the channel is archived in ClickHouse events_raw.
	for id, channel := range run.hostileClaims {
		var payload string
		err := ch.QueryRow(ctx, "SELECT payload FROM `"+e.name+"`.events_raw FINAL WHERE type = 'coupon.claim.requested' AND app_id = '"+chaosApp+"' AND event_id = '"+id+"'").Scan(&payload)
		if err != nil {
			t.Errorf("events_raw of %s: %v", id, err)
			continue
		}
		var c schemas.ClaimRequested
		if err := json.Unmarshal([]byte(payload), &c); err != nil || c.Channel != channel {
			t.Errorf("events_raw of %s: channel %q (%v), published %q", id, c.Channel, err, channel)
		}
	}
	// Gift members: name and note in both stores.
	users := make([]string, 0, len(run.hostileMembers))
	for _, m := range run.hostileMembers {
		users = append(users, m.UserID)
	}
	got := map[string][2]string{}
	for _, tb := range e.shardTables("gift_member") {
		rs, err := e.mysql.QueryContext(ctx, "SELECT user_id, name, note FROM "+tb+" WHERE activity_id = ?", giftActivity(run.key))
		if err != nil {
			t.Fatalf("reading %s: %v", tb, err)
		}
		for rs.Next() {
			var u, n, no string
			rs.Scan(&u, &n, &no)
			got["mysql|"+u] = [2]string{n, no}
		}
		rs.Close()
	}
	rs, err := ch.Query(ctx, "SELECT user_id, name, note FROM `"+e.name+"`.gift_members FINAL WHERE activity_id = '"+giftActivity(run.key)+"'")
	if err != nil {
		t.Fatalf("reading clickhouse gift_members: %v", err)
	}
	for rs.Next() {
		var u, n, no string
		rs.Scan(&u, &n, &no)
		got["clickhouse|"+u] = [2]string{n, no}
	}
	rs.Close()
	for _, m := range run.hostileMembers {
		for _, store := range []string{"mysql", "clickhouse"} {
			g, ok := got[store+"|"+m.UserID]
			if !ok || g[0] != m.Name || g[1] != m.Note {
				t.Errorf("%s gift member %s: name %q note %q, published %q %q", store, m.UserID, g[0], g[1], m.Name, m.Note)
			}
		}
	}
	// The activity's name, committed by the lottery admin stage.
	var myName, chName string
	found := false
	for _, tb := range e.shardTables("lottery_activity") {
		if err := e.mysql.QueryRowContext(ctx, "SELECT name FROM "+tb+" WHERE activity_id = ?", activity(run.key)).Scan(&myName); err == nil {
			found = true
			break
		}
	}
	if !found || myName != hostileName {
		t.Errorf("mysql lottery_activity name %q (found %v), defined %q", myName, found, hostileName)
	}
	if err := ch.QueryRow(ctx, "SELECT name FROM `"+e.name+"`.lottery_activities FINAL WHERE activity_id = '"+activity(run.key)+"'").Scan(&chName); err != nil || chName != hostileName {
		t.Errorf("clickhouse lottery_activities name %q (%v), defined %q", chName, err, hostileName)
	}
	// No poison record reached a table.
	var rawBad uint64
	if err := ch.QueryRow(ctx, "SELECT count() FROM `"+e.name+"`.events_raw WHERE event_id = 'bad-x'").Scan(&rawBad); err != nil || rawBad != 0 {
		t.Errorf("clickhouse events_raw holds %d poison events (%v)", rawBad, err)
	}
	if _, ok := e.tally.grant(schemas.ResultID(coupon.ResultKind, chaosApp, "bad-x")); ok {
		t.Errorf("a poison claim was decided")
	}
	if _, ok := e.tally.grant(schemas.ResultID(chaosKindEntry, chaosApp, "bad-x")); ok {
		t.Errorf("a poison participation was decided")
	}
	// Every shard table is still there.
	for _, prefix := range []string{"coupon_grant", "lottery_activity", "lottery_entry", "gift_member"} {
		for _, tb := range e.shardTables(prefix) {
			var n int
			if err := e.mysql.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+tb).Scan(&n); err != nil {
				t.Errorf("table %s: %v", tb, err)
			}
		}
	}
	t.Logf("%d hostile claims, %d hostile gift members and the hostile activity name read back byte for byte", len(run.hostileClaims), len(run.hostileMembers))
}

// ---- the faults --------------------------------------------------------

// faultKill kills a process with SIGKILL in rounds (coupon, lottery,
// coupon, sinks, ...) and starts a replacement at once; the dead member
// keeps its partitions until its session times out.
func faultKill(t *testing.T, ctx context.Context, e *chaosEnv, _ *chaosRun) {
	victims := []string{"coupon", "lottery", "coupon", "sinks"}
	for i := 0; i < e.mode.kills; i++ {
		if i > 0 {
			sleepCtx(ctx, e.mode.killEvery)
		}
		switch v := victims[i%len(victims)]; v {
		case "coupon":
			slot := (i / 2) % len(e.coupons)
			e.coupons[slot].kill9()
			t.Logf("kill -9 %s", e.coupons[slot].name)
			e.coupons[slot] = e.start("coupon", stageCoupon)
		case "lottery":
			e.lottery.kill9()
			t.Logf("kill -9 %s", e.lottery.name)
			e.lottery = e.start("lottery", stageLottery)
		case "sinks":
			e.sinks.kill9()
			t.Logf("kill -9 %s", e.sinks.name)
			e.sinks = e.start("sinks", stageMySQL+","+stageClickHouse)
		}
	}
}

// faultScale scales the coupon group from 1 to 3 instances and back.
func faultScale(t *testing.T, ctx context.Context, e *chaosEnv, _ *chaosRun) {
	e.setCoupons(3)
	t.Logf("coupon group scaled to 3")
	sleepCtx(ctx, e.mode.scaleHold)
	e.setCoupons(1)
	t.Logf("coupon group scaled back to 1")
}

// faultService stops a shared service, keeps it down, and starts it again
// with scripts/services.
func faultService(s service) func(t *testing.T, ctx context.Context, e *chaosEnv, _ *chaosRun) {
	return func(t *testing.T, ctx context.Context, e *chaosEnv, _ *chaosRun) {
		outage := e.mode.outage
		if s == svcRedis {
			outage = e.mode.redisOutage
		}
		defer e.guard.restore(t.Logf)
		begin := time.Now()
		if err := e.guard.stop(ctx, s, t.Logf); err != nil {
			t.Fatalf("stopping %s: %v", s, err)
		}
		down := time.Now()
		t.Logf("%s stopped (in %.1fs)", s, down.Sub(begin).Seconds())
		// The groups that cannot write while s is down must hold their
		// offsets: after the commits of batches finished before the stop
		// (commit_interval 2s), nothing moves until s is back.
		groups := map[service][]string{
			svcRedis:      {coupon.Group, lottery.Group},
			svcMariaDB:    {"promoflow-sink-mysql"},
			svcClickHouse: {"promoflow-sink-clickhouse"},
		}[s]
		const settle = 3500 * time.Millisecond
		sleepCtx(ctx, settle)
		held := e.groupOffsets(ctx, groups)
		sleepCtx(ctx, outage-settle)
		if now := e.groupOffsets(ctx, groups); !held.equal(now) {
			t.Errorf("offsets committed while %s was down: %v, then %v", s, held, now)
		} else {
			t.Logf("%v held offsets %v through the last %.1fs of the outage", groups, held, (outage - settle).Seconds())
		}
		up := time.Now()
		if err := e.guard.restore(t.Logf); err != nil {
			t.Fatalf("starting %s again: %v", s, err)
		}
		t.Logf("%s started again (down %.1fs, start took %.1fs)", s, up.Sub(down).Seconds(), time.Since(up).Seconds())
	}
}

// groupCommits is the sum of each group's committed offsets.
type groupCommits map[string]int64

func (g groupCommits) equal(o groupCommits) bool {
	if len(g) != len(o) {
		return false
	}
	for k, v := range g {
		if o[k] != v {
			return false
		}
	}
	return true
}

// groupOffsets returns the sum of the committed offsets of each group (-1
// when they cannot be read).
func (e *chaosEnv) groupOffsets(ctx context.Context, groups []string) groupCommits {
	out := groupCommits{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		return out
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, g := range groups {
		rs, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			out[g] = -1
			continue
		}
		var sum int64
		rs.Each(func(o kadm.OffsetResponse) { sum += o.At })
		out[g] = sum
	}
	return out
}

// faultBroker kills the broker process (SIGKILL) and starts it again on the
// same ports and data dir.
func faultBroker(t *testing.T, ctx context.Context, e *chaosEnv, _ *chaosRun) {
	e.broker.kill9()
	t.Logf("kill -9 %s", e.broker.name)
	sleepCtx(ctx, e.mode.outage)
	e.startBroker(ctx)
	t.Logf("broker started again on the same ports and data dir")
}

// hostileChannels are valid claim channels (≤64 characters) that attack a
// SQL statement, a CSV export or a naive decoder.
var hostileChannels = []string{
	`x'); DROP TABLE coupon_grant_0; --`,
	`" OR "1"="1`,
	`\'; SELECT SLEEP(5); -- \\`,
	`=HYPERLINK("http://evil.example","click")`,
	`+SUM(1,2)`,
	`-2+3+cmd|' /C calc'!A0`,
	`@SUM(A1:A9)`,
	"\t=1+1",
	"\r\n=cmd\n",
	"a\x00b NUL",
	`😀 𝕏 ß 中文 עברית ‮RTL`,
	`${jndi:ldap://x} %s %n {{.}}`,
	`<script>alert(1)</script>`,
	`'; DROP DATABASE x; --`,
}

// faultPoison publishes poison records to every partition of the claims and
// lottery requests topics, and valid events with hostile strings, in the
// middle of the load.
func faultPoison(t *testing.T, ctx context.Context, e *chaosEnv, run *chaosRun) {
	now := time.Now().UTC()
	env := func(topic string, mut func(m map[string]any)) []byte {
		m := map[string]any{
			"event_id": "bad-x", "type": schemas.TypeCouponClaimRequested, "version": 1, "app_id": chaosApp,
			"occurred_at": now.Format(time.RFC3339Nano), "key": "u1",
			"payload": map[string]any{"batch_id": normBatch(run.key), "user_id": "u1"},
		}
		if topic == lottery.TopicRequests {
			m["type"] = schemas.TypeLotteryParticipationRequested
			m["key"] = activity(run.key)
			m["payload"] = map[string]any{"activity_id": activity(run.key), "user_id": "u1"}
		}
		mut(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pl := func(m map[string]any) map[string]any { return m["payload"].(map[string]any) }
	deep := strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	otherType := map[string]string{coupon.TopicClaims: schemas.TypeLotteryParticipationRequested, lottery.TopicRequests: schemas.TypeCouponClaimRequested}
	var recs []*kgo.Record
	for _, topic := range []string{coupon.TopicClaims, lottery.TopicRequests} {
		key := "u1"
		if topic == lottery.TopicRequests {
			key = activity(run.key)
		}
		vals := [][]byte{
			[]byte(`{"event_id": "x", "type": `), // truncated JSON
			[]byte("not json at all"),
			{},
			[]byte("null"),
			{0xff, 0xfe, '{', '}'}, // invalid UTF-8 outside a string
			// invalid UTF-8 inside a string of an otherwise valid event
			bytes.Replace(env(topic, func(m map[string]any) { pl(m)["channel"] = "XXXX" }), []byte("XXXX"), []byte{0xff, 0xfe, 0xc3, 0x28}, 1),
			// a raw NUL byte inside a string
			bytes.Replace(env(topic, func(m map[string]any) { pl(m)["channel"] = "XXXX" }), []byte("XXXX"), []byte{'a', 0, 'b'}, 1),
			env(topic, func(m map[string]any) { m["version"] = 99 }), // unknown schema version
			env(topic, func(m map[string]any) { m["version"] = 2 }),
			env(topic, func(m map[string]any) { delete(m, "event_id") }), // missing fields
			env(topic, func(m map[string]any) { delete(m, "occurred_at") }),
			env(topic, func(m map[string]any) { delete(pl(m), "user_id") }),
			env(topic, func(m map[string]any) { delete(m, "payload") }),
			env(topic, func(m map[string]any) { m["type"] = "coupon.claim.teleported" }), // unknown types
			env(topic, func(m map[string]any) { m["type"] = "lottery.participation.exploded" }),
			env(topic, func(m map[string]any) { m["type"] = otherType[topic] }),                                              // a type the topic does not carry
			env(topic, func(m map[string]any) { m["key"] = "someone-else" }),                                                 // key mismatch
			env(topic, func(m map[string]any) { pl(m)["user_id"] = "u1'); DROP TABLE coupon_grant_0; --" }),                  // SQL injection (invalid id)
			env(topic, func(m map[string]any) { pl(m)["user_id"] = "=cmd|' /C calc'!A0" }),                                   // CSV injection (invalid id)
			env(topic, func(m map[string]any) { pl(m)["channel"] = strings.Repeat("A", 100<<10) }),                           // oversized field
			env(topic, func(m map[string]any) { pl(m)["channel"] = strings.Repeat("B", 600<<10) }),                           // oversized record (> the DLQ's 256 KiB)
			bytes.Replace(env(topic, func(m map[string]any) { pl(m)["extra"] = "XXXX" }), []byte(`"XXXX"`), []byte(deep), 1), // 100,000-deep nesting
			env(topic, func(m map[string]any) { m["occurred_at"] = "yesterday" }),
			env(topic, func(m map[string]any) { m["app_id"] = "App With Spaces" }),
		}
		for i, v := range vals {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 12), Key: []byte(key), Value: v})
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("producing poison records: %v", err)
	}
	run.poison = recs

	// Valid events with hostile strings, through the SDK like any app.
	p, err := producers.New(producers.Config{Brokers: e.brokers, AppID: chaosApp})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	run.hostileClaims = map[string]string{}
	run.hostileMembers = map[string]schemas.MemberUpdated{}
	for i, ch := range hostileChannels {
		id := fmt.Sprintf("%s-hostile-c-%02d", run.key, i)
		c := schemas.ClaimRequested{BatchID: normBatch(run.key), UserID: fmt.Sprintf("x%02d", i), Channel: ch}
		at := time.Now()
		if err := p.Publish(ctx, id, at, c); err != nil {
			t.Fatalf("publishing hostile claim %d: %v", i, err)
		}
		run.hostileClaims[id] = ch
		run.load.mu.Lock()
		run.load.events = append(run.load.events, &chaosEvent{id: id, kind: evClaim, user: c.UserID, target: c.BatchID,
			result: schemas.ResultID(coupon.ResultKind, chaosApp, id), at: at, payload: c, acked: true})
		run.load.mu.Unlock()

		m := schemas.MemberUpdated{ActivityID: giftActivity(run.key), UserID: fmt.Sprintf("g%02d", i), Action: schemas.MemberUpdate,
			Name: ch, Note: ch + " | " + hostileName}
		mid := fmt.Sprintf("%s-hostile-m-%02d", run.key, i)
		if err := p.Publish(ctx, mid, at, m); err != nil {
			t.Fatalf("publishing hostile member %d: %v", i, err)
		}
		run.hostileMembers[mid] = m
		run.load.mu.Lock()
		run.load.events = append(run.load.events, &chaosEvent{id: mid, kind: evMember, user: m.UserID, target: m.ActivityID,
			result: schemas.ResultID(chaosKindMember, m.ActivityID, m.UserID), at: at, payload: m, acked: true})
		run.load.mu.Unlock()
	}
	t.Logf("published %d poison records over every partition and %d valid events with hostile strings", len(recs), 2*len(hostileChannels))
}

// ---- the shared services -------------------------------------------------

type service string

const (
	svcRedis      service = "redis"
	svcMariaDB    service = "mariadb"
	svcClickHouse service = "clickhouse"
)

// serviceGuard stops shared services and makes sure that every service it
// stopped is started again: at the end of each fault, when the test ends
// (pass, fail or t.Fatal), on SIGINT/SIGTERM, and before the test binary's
// own deadline.
type serviceGuard struct {
	repo     string
	mu       sync.Mutex
	stopped  map[service]bool
	pids     map[service]int // the server process each stop ended
	rdbFile  string          // a dump written by our SHUTDOWN SAVE, removed once Redis is back
	stopSigs func()
}

func newServiceGuard(t *testing.T) *serviceGuard {
	repo, _ := filepath.Abs(filepath.Join("..", ".."))
	g := &serviceGuard{repo: repo, stopped: map[service]bool{}, pids: map[service]int{}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			fmt.Fprintf(os.Stderr, "chaos: %v: starting the stopped services again before exiting\n", s)
			g.restore(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
			os.Exit(2)
		case <-quit:
		}
	}()
	var timer *time.Timer
	if dl, ok := t.Deadline(); ok {
		// The test binary panics at its deadline without running cleanups.
		timer = time.AfterFunc(time.Until(dl)-90*time.Second, func() {
			fmt.Fprintln(os.Stderr, "chaos: the test deadline is near: starting the stopped services again")
			g.restore(func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) })
		})
	}
	g.stopSigs = func() {
		signal.Stop(sigs)
		close(quit)
		if timer != nil {
			timer.Stop()
		}
	}
	t.Cleanup(func() {
		g.restore(t.Logf)
		g.stopSigs()
	})
	return g
}

// stopWait bounds how long a server may take to exit after its shutdown
// command: MariaDB waits for connections stuck in the server (another
// test's, say) and ClickHouse for its queries.
const stopWait = 3 * time.Minute

// stop stops s through its own client (Redis SHUTDOWN SAVE, so its data
// survives the restart as it would with persistence on; MariaDB SHUTDOWN;
// ClickHouse SYSTEM SHUTDOWN) and waits until its process has exited.
func (g *serviceGuard) stop(ctx context.Context, s service, logf func(string, ...any)) error {
	port := map[service]string{svcRedis: testenv.RedisAddr(), svcMariaDB: "127.0.0.1:3306", svcClickHouse: testenv.ClickHouseAddr()}[s]
	_, p, _ := net.SplitHostPort(port)
	portN, _ := strconv.Atoi(p)
	pid := listenerPID(portN)
	g.mu.Lock()
	g.stopped[s] = true
	g.pids[s] = pid
	g.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, stopWait)
	defer cancel()
	var before string // MariaDB's connections before the shutdown, for a slow stop
	switch s {
	case svcRedis:
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), MaxRetries: -1})
		defer rdb.Close()
		if cfg, err := rdb.ConfigGet(sctx, "*").Result(); err == nil && cfg["dir"] != "" {
			f := filepath.Join(cfg["dir"], cfg["dbfilename"])
			if _, err := os.Stat(f); os.IsNotExist(err) {
				g.mu.Lock()
				g.rdbFile = f
				g.mu.Unlock()
			}
		}
		rdb.ShutdownSave(sctx) // the connection closes: no reply
	case svcMariaDB:
		db, err := sql.Open("mysql", testenv.MySQLDSN())
		if err != nil {
			return err
		}
		defer db.Close()
		before = mysqlProcessList(sctx, db)
		db.ExecContext(sctx, "SHUTDOWN")
	case svcClickHouse:
		c, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}})
		if err != nil {
			return err
		}
		defer c.Close()
		c.Exec(sctx, "SYSTEM SHUTDOWN")
	}
	// Wait for the process to exit (start-stop-daemon --oknodo would
	// otherwise take the exiting one for a running server).
	start, warned := time.Now(), false
	for {
		gone := pid == 0 || syscall.Kill(pid, 0) != nil
		if gone {
			if c, err := net.DialTimeout("tcp", port, time.Second); err == nil {
				c.Close()
			} else {
				return nil
			}
		}
		if !warned && time.Since(start) > 20*time.Second {
			warned = true
			logf("%s (pid %d) is slow to stop; waiting up to %s. Connections before the shutdown:\n%s", s, pid, stopWait, before)
		}
		select {
		case <-sctx.Done():
			return fmt.Errorf("%s (pid %d) did not stop within %s", s, pid, stopWait)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// mysqlProcessList describes the server's other connections.
func mysqlProcessList(ctx context.Context, db *sql.DB) string {
	rs, err := db.QueryContext(ctx, "SELECT id, user, host, IFNULL(db, ''), command, time, IFNULL(state, ''), LEFT(IFNULL(info, ''), 120) FROM information_schema.processlist WHERE id <> CONNECTION_ID()")
	if err != nil {
		return err.Error()
	}
	defer rs.Close()
	var b strings.Builder
	for rs.Next() {
		var id, tm int64
		var user, host, dbName, cmd, state, info string
		if rs.Scan(&id, &user, &host, &dbName, &cmd, &tm, &state, &info) == nil {
			fmt.Fprintf(&b, "  %d %s@%s db=%s %s %ds %s %q\n", id, user, host, dbName, cmd, tm, state, info)
		}
	}
	return b.String()
}

// restore starts every stopped service with scripts/services, retrying.
func (g *serviceGuard) restore(logf func(string, ...any)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []string
	for _, s := range []service{svcRedis, svcMariaDB, svcClickHouse} {
		if !g.stopped[s] {
			continue
		}
		// A server still shutting down would be taken for a running one.
		if pid := g.pids[s]; pid != 0 {
			for start := time.Now(); syscall.Kill(pid, 0) == nil && time.Since(start) < 2*stopWait; {
				time.Sleep(200 * time.Millisecond)
			}
			if syscall.Kill(pid, 0) == nil {
				logf("%s: the old server (pid %d) is still exiting; starting anyway", s, pid)
			}
		}
		var err error
		for try := 0; try < 3; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			cmd := exec.CommandContext(ctx, "bash", filepath.Join(g.repo, "scripts", "services"), string(s))
			cmd.Env = append(os.Environ(), "PROMOFLOW_SKIP_INSTALL=1")
			var out []byte
			out, err = cmd.CombinedOutput()
			cancel()
			if err == nil {
				logf("%s", strings.TrimSpace(string(out)))
				break
			}
			logf("starting %s: %v\n%s", s, err, out)
			time.Sleep(2 * time.Second)
		}
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", s, err))
			continue
		}
		delete(g.stopped, s)
		if s == svcRedis && g.rdbFile != "" {
			// Redis loaded the dump at start; do not leave it to be
			// loaded again by a later, unrelated start.
			os.Remove(g.rdbFile)
			g.rdbFile = ""
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("starting services again: %s", strings.Join(errs, "; "))
	}
	return nil
}

// listenerPID returns the process listening on a local TCP port, or 0, by
// reading /proc (the services are not our children).
func listenerPID(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 10 || fs[3] != "0A" { // LISTEN
				continue
			}
			i := strings.LastIndex(fs[1], ":")
			if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
		fh.Close()
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(filepath.Join("/proc", d.Name(), "fd"))
		if err != nil {
			continue
		}
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join("/proc", d.Name(), "fd", fd.Name())); err == nil && inodes[l] {
				return pid
			}
		}
	}
	return 0
}
