package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	_ "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/processors/coupon"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// promoflowBinary builds the command once per test run (without -race, as
// ops would run it) so tests can run and kill -9 real processes.
func promoflowBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "promoflow-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "promoflow")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building promoflow: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// proc is a promoflow process started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	mu   *sync.Mutex
	done chan struct{}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, log: &bytes.Buffer{}, mu: &sync.Mutex{}, done: make(chan struct{})}
	p.cmd = exec.Command(promoflowBinary(t), args...)
	// Several processes run at once: each takes a free port for /metrics.
	p.cmd.Env = append(os.Environ(), "PROMOFLOW_METRICS_LISTEN=127.0.0.1:0")
	p.cmd.Stdout = lockedWriter{p.mu, p.log}
	p.cmd.Stderr = lockedWriter{p.mu, p.log}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("---- log of %s ----\n%s", p.name, tail(p.log.String(), 4000))
			p.mu.Unlock()
		}
	})
	return p
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// stressEnv is a kfake cluster and real stores isolated for one test.
type stressEnv struct {
	brokers    []string
	cfgPath    string
	cfg        *Config
	rdb        *redis.Client
	mysqlDB    *sql.DB
	clickhouse chgo.Conn
}

func newStressEnv(t *testing.T, brokers int) *stressEnv {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	_, addrs := testenv.Kafka(t, brokers)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	topo, _ := topology.Load()
	if _, err := applyTopics(ctx, kadm.NewClient(cl), topo, io.Discard); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	name := testenv.Name("pfstress")
	dsn := testenv.MySQLDSN()
	yaml := fmt.Sprintf(`kafka:
  brokers: [%s]
redis:
  addr: %s
  key_prefix: %s
mysql:
  dsn: %q
  database_prefix: %s
  databases: 2
  tables_per_database: 4
clickhouse:
  addr: %s
  database: %s
runtime:
  session_timeout: 6s
  commit_interval: 2s
log:
  format: json
`, strings.Join(addrs, ", "), testenv.RedisAddr(), name, dsn, name, testenv.ClickHouseAddr(), name)
	path := filepath.Join(t.TempDir(), "promoflow.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	e := &stressEnv{brokers: addrs, cfgPath: path, cfg: cfg}
	e.rdb = redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	if err := e.rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis: %v", err)
	}
	e.mysqlDB, err = sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	e.clickhouse, err = chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		deleteKeys(e.rdb, name)
		e.rdb.Close()
		for i := 0; i < 2; i++ {
			e.mysqlDB.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s_%d", name, i))
		}
		e.mysqlDB.Close()
		e.clickhouse.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
		e.clickhouse.Close()
	})
	return e
}

// mysqlGrants returns rows, granted rows and the most coupons one user holds
// in the batch, over every shard.
func (e *stressEnv) mysqlGrants(ctx context.Context, batch string) (rows, granted, maxPerUser int64, err error) {
	perUser := map[string]int64{}
	for db := 0; db < e.cfg.MySQL.Databases; db++ {
		for tb := 0; tb < e.cfg.MySQL.TablesPerDatabase; tb++ {
			table := fmt.Sprintf("%s_%d.coupon_grant_%d", e.cfg.MySQL.DatabasePrefix, db, tb)
			var n int64
			if err = e.mysqlDB.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&n); err != nil {
				return
			}
			rows += n
			rs, qerr := e.mysqlDB.QueryContext(ctx, "SELECT user_id, COUNT(*) FROM "+table+" WHERE batch_id = ? AND status = 'granted' GROUP BY user_id", batch)
			if qerr != nil {
				err = qerr
				return
			}
			for rs.Next() {
				var u string
				var c int64
				rs.Scan(&u, &c)
				perUser[u] += c
				granted += c
			}
			rs.Close()
		}
	}
	for _, c := range perUser {
		maxPerUser = max(maxPerUser, c)
	}
	return
}

func (e *stressEnv) clickhouseGrants(ctx context.Context) (rows, granted uint64, err error) {
	row := e.clickhouse.QueryRow(ctx, "SELECT count(), countIf(status = 'granted') FROM "+e.cfg.ClickHouse.Database+".coupon_grants FINAL")
	err = row.Scan(&rows, &granted)
	return
}

// TestIntegrationStressClaims: 20,000 claims for one batch with stock 1,000
// from 4 concurrent producers, 10% duplicated, hostile records mixed in,
// while a processor instance is killed with SIGKILL mid-stream and replaced.
// Exactly 1,000 grants, nobody over the per-user limit, one row per result
// in MySQL and ClickHouse, every hostile record in the DLQ.
func TestIntegrationStressClaims(t *testing.T) {
	if testing.Short() {
		t.Skip("stress test")
	}
	e := newStressEnv(t, 3)
	ctx := testenv.Context(t, 4*time.Minute)
	s := scenario{RunID: testenv.Name("s"), Claims: 20_000, Users: 15_000, HotStock: 1_000, HotShare: 1,
		DupRate: 0.10, Malformed: true, Producers: 4, AppID: "stress", Rate: 2_000}
	if err := publishBatches(ctx, e.brokers, s); err != nil {
		t.Fatal(err)
	}
	a := startProc(t, "coupon-a", "run", "--config", e.cfgPath, "--only", stageCoupon)
	startProc(t, "coupon-b", "run", "--config", e.cfgPath, "--only", stageCoupon)
	startProc(t, "sinks", "run", "--config", e.cfgPath, "--only", stageMySQL+","+stageClickHouse)

	tl := newTally(s.hotBatch())
	ready := make(chan struct{})
	go tl.run(ctx, e.brokers, ready)
	<-ready
	var pub published
	genDone := make(chan error, 1)
	go func() { genDone <- generate(ctx, e.brokers, s, &pub) }()

	// Kill one processor with SIGKILL once a quarter of the claims are
	// decided, and start a replacement.
	waitUntil(t, ctx, "a quarter of the claims decided", func() bool { return tl.snapshot().results >= int64(s.Claims/4) })
	a.kill9()
	t.Logf("killed coupon-a after %d decisions", tl.snapshot().results)
	startProc(t, "coupon-c", "run", "--config", e.cfgPath, "--only", stageCoupon)
	if err := <-genDone; err != nil {
		t.Fatal(err)
	}

	var rows, granted, maxPerUser int64
	var chRows, chGranted uint64
	waitUntil(t, ctx, "every claim decided and written to both sinks", func() bool {
		snap := tl.snapshot()
		var err error
		rows, granted, maxPerUser, err = e.mysqlGrants(ctx, s.hotBatch())
		if err != nil {
			return false
		}
		chRows, chGranted, err = e.clickhouseGrants(ctx)
		return err == nil && snap.results == int64(s.Claims) && snap.deadN >= pub.hostile.Load() && rows == int64(s.Claims) && chRows == uint64(s.Claims)
	})
	snap := tl.snapshot()
	if snap.granted != 1000 || snap.hotGrants != 1000 {
		t.Errorf("decisions grant %d coupons, want exactly the stock 1000", snap.granted)
	}
	if n, _ := coupon.NewStore(e.rdb, coupon.WithKeyPrefix(e.cfg.Redis.KeyPrefix)).Granted(ctx, s.hotBatch()); n != 1000 {
		t.Errorf("redis stock counter %d, want 1000", n)
	}
	if granted != 1000 || maxPerUser > 1 {
		t.Errorf("mysql: %d granted rows (want 1000), a user holds %d (limit 1)", granted, maxPerUser)
	}
	if rows != int64(s.Claims) || chRows != uint64(s.Claims) || chGranted != 1000 {
		t.Errorf("rows: mysql %d, clickhouse %d (granted %d); want %d and 1000", rows, chRows, chGranted, s.Claims)
	}
	if snap.conflicts > 0 {
		t.Errorf("%d replayed decisions differ from the first decision of their claim", snap.conflicts)
	}
	// Offsets are committed every 2s, so the killed instance's last
	// decisions were redelivered to its successors and decided again.
	if snap.records <= snap.results+pub.dups.Load() {
		t.Errorf("no redelivery after the kill was observed (%d records, %d results, %d duplicates)", snap.records, snap.results, pub.dups.Load())
	}
	if snap.deadN != pub.hostile.Load() {
		t.Errorf("DLQ holds %d records, %d hostile records were published", snap.deadN, pub.hostile.Load())
	}
	if pub.dups.Load() < int64(s.Claims)/20 {
		t.Errorf("only %d duplicates were published", pub.dups.Load())
	}
	t.Logf("published %d claims + %d duplicates + %d hostile; %d grant records for %d results, %d granted; DLQ %v",
		pub.claims.Load(), pub.dups.Load(), pub.hostile.Load(), snap.records, snap.results, snap.granted, snap.deadBy)
}

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s", what)
		case <-time.After(250 * time.Millisecond):
		}
	}
}
