package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/memory"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// grantCounter is implemented by every sink: how many distinct results it
// holds (ClickHouse counts after collapsing replays).
type grantCounter interface {
	CountGrants(ctx context.Context) (int64, error)
}

// component describes one part of the embedded environment for the user.
type component struct{ name, kind, detail string }

// embedded is the environment `promoflow demo` and `promoflow bench` run in:
// an in-process kfake cluster and, per store, the real server when it is
// reachable or an embedded stand-in when it is not (or when asked).
type embedded struct {
	cfg        *Config
	brokers    []string
	parts      parts
	components []component
	counters   map[string]grantCounter // "mysql", "clickhouse"
	cleanup    []func()
}

func (e *embedded) close() {
	for i := len(e.cleanup) - 1; i >= 0; i-- {
		e.cleanup[i]()
	}
}

// startEmbedded starts kfake and chooses each store. standins is "auto"
// (real where reachable), "always" or "never" (fail if a server is down).
// database names the real servers' databases (MySQL's prefix and
// ClickHouse's database), which are reset; "" means promoflow_demo.
func startEmbedded(ctx context.Context, cfg *Config, runID, standins, database string, out io.Writer) (_ *embedded, err error) {
	if database == "" {
		database = "promoflow_demo"
	}
	e := &embedded{cfg: cfg, counters: map[string]grantCounter{}}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	dir, err := os.MkdirTemp("", "promoflow-kfake-")
	if err != nil {
		return nil, err
	}
	e.cleanup = append(e.cleanup, func() { os.RemoveAll(dir) })
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir))
	if err != nil {
		return nil, fmt.Errorf("starting embedded kafka: %w", err)
	}
	e.cleanup = append(e.cleanup, c.Close)
	e.brokers = c.ListenAddrs()
	// kfake here speaks plaintext without SASL, whatever kafka.tls and
	// kafka.sasl say about the configured cluster.
	cfg.Kafka = KafkaConfig{Brokers: e.brokers}
	e.components = append(e.components, component{"Kafka", "embedded", "kfake broker in-process at " + e.brokers[0] + " (data in " + dir + ")"})

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		return nil, err
	}
	topo, err := topology.Load()
	if err != nil {
		return nil, err
	}
	_, err = applyTopics(ctx, kadm.NewClient(cl), topo, io.Discard)
	cl.Close()
	if err != nil {
		return nil, err
	}

	probe := func(name string, try func(context.Context) error) (bool, error) {
		if standins == "always" {
			return false, nil
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		perr := try(pctx)
		if perr == nil {
			return true, nil
		}
		if standins == "never" {
			return false, fmt.Errorf("%s is not reachable and --standins=never: %w", name, perr)
		}
		return false, nil
	}

	// Redis: the real server, with a key prefix of its own for this run.
	rdb := newRedis(cfg.Redis)
	real, err := probe("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	if err != nil {
		return nil, err
	}
	if real {
		cfg.Redis.KeyPrefix = "pfdemo:" + runID
		prefix := cfg.Redis.KeyPrefix
		e.cleanup = append(e.cleanup, func() { deleteKeys(rdb, prefix); rdb.Close() })
		e.components = append(e.components, component{"Redis", "real", cfg.Redis.Addr + " (keys under " + prefix + ":*, removed at exit)"})
	} else {
		rdb.Close()
		m, err := miniredis.Run()
		if err != nil {
			return nil, fmt.Errorf("starting embedded redis stand-in: %w", err)
		}
		e.cleanup = append(e.cleanup, m.Close)
		rdb = redis.NewClient(&redis.Options{Addr: m.Addr()})
		e.cleanup = append(e.cleanup, func() { rdb.Close() })
		e.components = append(e.components, component{"Redis", "stand-in", "miniredis in-process at " + m.Addr() + " (same Lua scripts)"})
	}
	e.parts.rdb = rdb

	// MySQL: the real server, in databases of its own for this run.
	cfg.MySQL.Shards = nil
	cfg.MySQL.DatabasePrefix = database
	real, err = probe("mysql", func(ctx context.Context) error {
		db, err := sql.Open("mysql", cfg.MySQL.DSN)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PingContext(ctx)
	})
	if err != nil {
		return nil, err
	}
	if real {
		if err := dropDemoDatabases(ctx, cfg.MySQL.DSN, cfg.MySQL.DatabasePrefix); err != nil {
			return nil, err
		}
		s, err := mysql.New(ctx, cfg.MySQL)
		if err != nil {
			return nil, fmt.Errorf("starting mysql sink: %w", err)
		}
		e.parts.mysql = s
		e.counters["mysql"] = s
		e.cleanup = append(e.cleanup, func() { s.Close() })
		e.components = append(e.components, component{"MySQL", "real", fmt.Sprintf("%s (%d databases %s_* x %d tables, reset for the demo)", redactDSN(cfg.MySQL.DSN), cfg.MySQL.Databases, cfg.MySQL.DatabasePrefix, cfg.MySQL.TablesPerDatabase)})
	} else {
		mc := memory.FromMySQL(cfg.MySQL)
		s, err := memory.New(ctx, mc)
		if err != nil {
			return nil, err
		}
		e.parts.mysql = s
		e.counters["mysql"] = s
		e.components = append(e.components, component{"MySQL", "stand-in", "in-memory sink with the same shard routing"})
	}

	// ClickHouse: the real server, in a database of its own for this run.
	cfg.ClickHouse.Database = database
	real, err = probe("clickhouse", func(ctx context.Context) error {
		conn, err := chgo.Open(&chgo.Options{Addr: []string{cfg.ClickHouse.Addr}, Auth: chgo.Auth{Username: cfg.ClickHouse.Username, Password: cfg.ClickHouse.Password}, DialTimeout: 2 * time.Second})
		if err != nil {
			return err
		}
		defer conn.Close()
		if err := conn.Ping(ctx); err != nil {
			return err
		}
		return conn.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.ClickHouse.Database)
	})
	if err != nil {
		return nil, err
	}
	if real {
		s, err := clickhouse.New(ctx, cfg.ClickHouse)
		if err != nil {
			return nil, fmt.Errorf("starting clickhouse sink: %w", err)
		}
		e.parts.clickhouse = s
		e.counters["clickhouse"] = s
		e.cleanup = append(e.cleanup, func() { s.Close() })
		e.components = append(e.components, component{"ClickHouse", "real", cfg.ClickHouse.Addr + " (database " + cfg.ClickHouse.Database + ", reset for the demo)"})
	} else {
		s, err := memory.New(ctx, memory.FromMySQL(cfg.MySQL))
		if err != nil {
			return nil, err
		}
		e.parts.clickhouse = s
		e.counters["clickhouse"] = s
		e.components = append(e.components, component{"ClickHouse", "stand-in", "in-memory sink"})
	}
	for _, c := range e.components {
		fmt.Fprintf(out, "  %-10s %-9s %s\n", c.name, c.kind, c.detail)
	}
	return e, nil
}

// redactDSN replaces the password of a go-sql-driver DSN with ***. Like the
// driver, it takes the credentials to end at the last @ before the last /,
// so a password may hold @, : or /.
func redactDSN(dsn string) string {
	creds := dsn
	if i := strings.LastIndex(dsn, "/"); i >= 0 {
		creds = dsn[:i]
	}
	at := strings.LastIndex(creds, "@")
	if at < 0 {
		return dsn
	}
	if j := strings.Index(creds[:at], ":"); j >= 0 {
		return dsn[:j] + ":" + redacted + dsn[at:]
	}
	return dsn
}

func deleteKeys(rdb redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+":*", 5000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			rdb.Unlink(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		rdb.Unlink(ctx, batch...)
	}
}

func dropDemoDatabases(ctx context.Context, dsn, prefix string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?", prefix+"\\_%")
	if err != nil {
		return fmt.Errorf("listing demo databases: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		names = append(names, n)
	}
	rows.Close()
	for _, n := range names {
		if _, err := db.ExecContext(ctx, "DROP DATABASE `"+strings.ReplaceAll(n, "`", "")+"`"); err != nil {
			return fmt.Errorf("dropping %s: %w", n, err)
		}
	}
	return nil
}

// scenario is a burst of claims.
type scenario struct {
	RunID     string
	Claims    int     // distinct claim events
	Users     int     // distinct users
	HotStock  int64   // stock of the hot batch
	HotShare  float64 // share of claims on the hot batch
	Batches   int     // batches besides the hot one
	DupRate   float64 // share of claims published twice
	Malformed bool    // publish a set of hostile records too
	Producers int     // concurrent producers
	AppID     string
	Rate      int // claims/s over all producers; 0 = as fast as possible
	// LotteryUsers, when positive, runs the lottery part of the demo after
	// the claims with this many draw participants.
	LotteryUsers int
	// NotifyUsers, when positive and MySQL is the real server, fans a
	// notification campaign out to a crowd of that many users at the end
	// (notify_demo.go).
	NotifyUsers int
}

func (s scenario) hotBatch() string { return "HOT-" + s.RunID }

// batchDefs returns the scenario's batches: one hot batch with little stock
// and a per-user limit of 1, and normal batches with ample stock and 2.
func (s scenario) batchDefs(now time.Time) []schemas.BatchDefined {
	defs := []schemas.BatchDefined{{
		BatchID: s.hotBatch(), Name: "Hot live-room coupon", Revision: 1, TotalStock: s.HotStock, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive,
	}}
	for i := 1; i <= s.Batches; i++ {
		defs = append(defs, schemas.BatchDefined{
			BatchID: fmt.Sprintf("B%d-%s", i, s.RunID), Name: fmt.Sprintf("Everyday coupon %d", i), Revision: 1,
			TotalStock: int64(s.Claims), PerUserLimit: 2,
			ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive,
		})
	}
	return defs
}

// hostileRecords are raw records that must all land in the DLQ.
func hostileRecords(runID string) []*kgo.Record {
	ok := func(mut func(m map[string]any)) []byte {
		m := map[string]any{
			"event_id": "bad-" + runID, "type": schemas.TypeCouponClaimRequested, "version": 1, "app_id": "demo",
			"occurred_at": time.Now().UTC().Format(time.RFC3339Nano), "key": "u1",
			"payload": map[string]any{"batch_id": "HOT-" + runID, "user_id": "u1"},
		}
		mut(m)
		b, _ := json.Marshal(m)
		return b
	}
	big := strings.Repeat("A", 100<<10)
	vals := [][]byte{
		[]byte(`{"event_id": "x", "type": `),                                 // truncated JSON
		[]byte("not json at all"),                                            // malformed
		{0xff, 0xfe, '{', '}'},                                               // invalid UTF-8
		ok(func(m map[string]any) { m["version"] = 99 }),                     // unknown schema version
		ok(func(m map[string]any) { delete(m, "event_id") }),                 // missing field
		ok(func(m map[string]any) { m["type"] = "coupon.claim.teleported" }), // unknown type
		ok(func(m map[string]any) {
			m["payload"].(map[string]any)["user_id"] = "u1'); DROP TABLE coupon_grant_0; --"
		}),
		ok(func(m map[string]any) { m["payload"].(map[string]any)["batch_id"] = "=cmd|' /C calc'!A0" }),
		ok(func(m map[string]any) { m["payload"].(map[string]any)["channel"] = big }), // oversized
		ok(func(m map[string]any) { m["occurred_at"] = time.Now().Add(48 * time.Hour).Format(time.RFC3339) }),
	}
	recs := make([]*kgo.Record, len(vals))
	for i, v := range vals {
		recs[i] = &kgo.Record{Topic: coupon.TopicClaims, Key: []byte("u1"), Value: v}
	}
	return recs
}

// published counts what the generator sent.
type published struct {
	claims, dups, hostile atomic.Int64
}

// generate publishes the scenario's claims from s.Producers concurrent
// producers, a duplicate right after a share of them, and the hostile
// records. progress is called as claims are acknowledged.
func generate(ctx context.Context, brokers []string, s scenario, pub *published) error {
	var wg sync.WaitGroup
	errc := make(chan error, s.Producers+1)
	now := time.Now()
	defs := s.batchDefs(now)
	for w := 0; w < s.Producers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			p, err := producers.New(producers.Config{Brokers: brokers, AppID: s.AppID})
			if err != nil {
				errc <- err
				return
			}
			defer p.Close()
			rng := rand.New(rand.NewSource(int64(w) + 1))
			var failed atomic.Pointer[error]
			done := func(err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
			start := time.Now()
			sent := 0
			for i := w; i < s.Claims; i += s.Producers {
				if ctx.Err() != nil || failed.Load() != nil {
					break
				}
				if s.Rate > 0 {
					sent++
					// Pace this producer at its share of the rate.
					due := start.Add(time.Duration(float64(sent) / float64(s.Rate) * float64(s.Producers) * float64(time.Second)))
					if d := time.Until(due); d > 0 {
						time.Sleep(d)
					}
				}
				batch := defs[0].BatchID
				if len(defs) > 1 && rng.Float64() >= s.HotShare {
					batch = defs[1+rng.Intn(len(defs)-1)].BatchID
				}
				c := schemas.ClaimRequested{BatchID: batch, UserID: fmt.Sprintf("u%07d", rng.Intn(s.Users)), Channel: "live"}
				id := fmt.Sprintf("c-%s-%d", s.RunID, i)
				at := time.Now()
				p.PublishAsync(ctx, id, at, c, func(err error) {
					done(err)
					if err == nil {
						pub.claims.Add(1)
					}
				})
				if rng.Float64() < s.DupRate {
					p.PublishAsync(ctx, id, at, c, func(err error) {
						done(err)
						if err == nil {
							pub.dups.Add(1)
						}
					})
				}
			}
			if err := p.Flush(ctx); err != nil {
				errc <- err
				return
			}
			if e := failed.Load(); e != nil {
				errc <- *e
			}
		}(w)
	}
	if s.Malformed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
			if err != nil {
				errc <- err
				return
			}
			defer cl.Close()
			recs := hostileRecords(s.RunID)
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				errc <- fmt.Errorf("producing hostile records: %w", err)
				return
			}
			pub.hostile.Add(int64(len(recs)))
		}()
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// publishBatches defines the scenario's batches on the admin topic.
func publishBatches(ctx context.Context, brokers []string, s scenario) error {
	p, err := producers.New(producers.Config{Brokers: brokers, AppID: s.AppID})
	if err != nil {
		return err
	}
	defer p.Close()
	for _, d := range s.batchDefs(time.Now()) {
		if err := p.DefineBatch(ctx, fmt.Sprintf("def-%s-%d", d.BatchID, d.Revision), d); err != nil {
			return fmt.Errorf("defining batch %s: %w", d.BatchID, err)
		}
	}
	return nil
}

// tally reads the result and dead-letter topics from the start and counts
// distinct results, outcomes, and claim→decision latency.
type tally struct {
	mu        sync.Mutex
	results   map[string]string // result_id -> "granted" or reason
	perUser   map[string]int    // batch|user -> grants
	hotGrants int64
	dead      map[string]int
	deadN     int
	records   int // grant records read, replays included
	conflicts int // records whose decision differs from the first one seen

	lat  []time.Duration
	hot  string
	only string // if set, count only claims whose event id has this prefix
}

func newTally(hot string) *tally {
	return &tally{results: map[string]string{}, perUser: map[string]int{}, dead: map[string]int{}, hot: hot}
}

func (t *tally) run(ctx context.Context, brokers []string, ready chan<- struct{}) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(coupon.TopicGrants, "promoflow.dlq"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	close(ready)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		t.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			if r.Topic != coupon.TopicGrants {
				t.deadN++
				for _, h := range r.Headers {
					if h.Key == stream.HeaderDLQReason {
						t.dead[string(h.Value)]++
					}
				}
				return
			}
			var env schemas.Envelope
			var g schemas.GrantDecided
			if json.Unmarshal(r.Value, &env) != nil || json.Unmarshal(env.Payload, &g) != nil {
				return
			}
			if t.only != "" && !strings.HasPrefix(g.ClaimEventID, t.only) {
				return
			}
			t.records++
			outcome := g.Reason
			if g.Status == schemas.StatusGranted {
				outcome = schemas.StatusGranted
			}
			if prev, seen := t.results[g.ResultID]; seen {
				if prev != outcome {
					t.conflicts++
				}
				return
			}
			if g.Status == schemas.StatusGranted {
				t.results[g.ResultID] = schemas.StatusGranted
				t.perUser[g.BatchID+"|"+g.UserID]++
				if g.BatchID == t.hot {
					t.hotGrants++
				}
			} else {
				t.results[g.ResultID] = g.Reason
			}
			t.lat = append(t.lat, now.Sub(g.ClaimedAt))
		})
		t.mu.Unlock()
	}
}

type tallySnapshot struct {
	results, granted, hotGrants, deadN int64
	records, conflicts                 int64
	byReason, deadBy                   map[string]int
	maxPerUser                         map[string]int // batch -> max grants to one user
}

func (t *tally) snapshot() tallySnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := tallySnapshot{results: int64(len(t.results)), hotGrants: t.hotGrants, deadN: int64(t.deadN),
		records: int64(t.records), conflicts: int64(t.conflicts),
		byReason: map[string]int{}, deadBy: map[string]int{}, maxPerUser: map[string]int{}}
	for _, r := range t.results {
		if r == schemas.StatusGranted {
			s.granted++
		} else {
			s.byReason[r]++
		}
	}
	for k, v := range t.dead {
		s.deadBy[k] = v
	}
	for k, n := range t.perUser {
		b := k[:strings.Index(k, "|")]
		if n > s.maxPerUser[b] {
			s.maxPerUser[b] = n
		}
	}
	return s
}

func (t *tally) percentiles(ps ...float64) []time.Duration {
	t.mu.Lock()
	l := append([]time.Duration(nil), t.lat...)
	t.mu.Unlock()
	return percentiles(l, ps...)
}

// percentiles sorts l and returns the values at the given quantiles.
func percentiles(l []time.Duration, ps ...float64) []time.Duration {
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	out := make([]time.Duration, len(ps))
	for i, p := range ps {
		if len(l) > 0 {
			out[i] = l[int(p*float64(len(l)-1))]
		}
	}
	return out
}

// quietLogger keeps the runtime's logs out of the demo's display unless
// they are warnings.
func quietLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

var errTimeout = errors.New("timed out waiting for the pipeline to finish")
