package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// couponEnv runs the coupon stage and the MySQL sink against kfake and the
// real Redis and MariaDB; restart replaces the processor.
type couponEnv struct {
	t      testing.TB
	cfg    *Config
	stop   func()
	prefix string
	stages []string
}

func startCouponEnv(t testing.TB, stages ...string) *couponEnv {
	t.Helper()
	brokers, _ := testenv.KafkaWithTopics(t)
	name := testenv.Name("ci")
	cfg := &Config{}
	cfg.defaults()
	cfg.Kafka.Brokers = brokers
	cfg.Redis.Addr, cfg.Redis.KeyPrefix = testenv.RedisAddr(), name
	cfg.MySQL.DSN, cfg.MySQL.DatabasePrefix = testenv.MySQLDSN(), name
	cfg.MySQL.Databases, cfg.MySQL.TablesPerDatabase = 2, 2
	cfg.Runtime.SessionTimeout = 6 * time.Second
	// Offsets committed every 2s: a restart redelivers what was decided
	// since, which must be decided the same again.
	cfg.Runtime.CommitInterval = 2 * time.Second
	t.Cleanup(func() {
		rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
		deleteKeys(rdb, name)
		rdb.Close()
		dropDemoDatabases(context.Background(), testenv.MySQLDSN(), name)
	})
	if len(stages) == 0 {
		stages = []string{stageCoupon, stageMySQL}
	}
	cfg.ClickHouse.Addr, cfg.ClickHouse.Database = testenv.ClickHouseAddr(), name
	t.Cleanup(func() {
		if conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}}); err == nil {
			conn.Exec(context.Background(), "DROP DATABASE IF EXISTS `"+name+"`")
			conn.Close()
		}
	})
	ce := &couponEnv{t: t, cfg: cfg, prefix: name, stages: stages}
	ce.restart()
	t.Cleanup(func() { ce.stop() })
	return ce
}

func (e *couponEnv) restart() {
	e.t.Helper()
	if e.stop != nil {
		e.stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	p, err := buildPipeline(testenv.Context(e.t, time.Minute), e.cfg, e.stages, parts{log: quietLogger(os.Stderr, 8)})
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	e.stop = func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("pipeline: %v", err)
		}
	}
}

// TestIntegrationBulkIssueTwiceAcrossRestart is the issue's test: a bulk
// issue of 100,000 users from a batch with stock 60,000, submitted twice
// while the processor restarts: exactly 60,000 issued, none twice.
func TestIntegrationBulkIssueTwiceAcrossRestart(t *testing.T) {
	e := startCouponEnv(t)
	ctx := testenv.Context(t, 5*time.Minute)
	now := time.Now().UTC()
	def := schemas.BatchDefinedV2{BatchID: "VIP-60K", Revision: 1, TotalStock: 60_000, PerUserLimit: 1,
		ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive,
		DiscountType: schemas.DiscountFixed, Amount: 500}
	pr, err := producers.New(producers.Config{Brokers: e.cfg.Kafka.Brokers, AppID: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.Publish(ctx, "def-vip", now, def); err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	var file bytes.Buffer
	file.WriteString("user_id\n")
	for i := range n {
		fmt.Fprintf(&file, "vip-%06d\n", i)
	}
	path := filepath.Join(t.TempDir(), "users.csv")
	if err := os.WriteFile(path, file.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	report := filepath.Join(t.TempDir(), "report.csv")

	// The first submission, with the processor replaced while it runs.
	first := make(chan error, 1)
	var out1 bytes.Buffer
	go func() {
		first <- runIssue(ctx, e.cfg, "ops", "VIP-60K", path, "", "", 0, false, 3*time.Minute, report, true, &out1)
	}()
	time.Sleep(1500 * time.Millisecond)
	e.restart()
	if err := <-first; err != nil {
		t.Fatalf("first issue: %v\n%s", err, out1.String())
	}
	if !strings.Contains(out1.String(), "issued 60000, skipped 40000 (out_of_stock 40000), failed 0") {
		t.Fatalf("first issue report:\n%s", out1.String())
	}

	// The same file again: nothing more is issued.
	var out2 bytes.Buffer
	if err := runIssue(ctx, e.cfg, "ops", "VIP-60K", path, "", "", 0, false, 3*time.Minute, "", true, &out2); err != nil {
		t.Fatalf("second issue: %v\n%s", err, out2.String())
	}
	if !strings.Contains(out2.String(), "issued 0, skipped 100000 (already_granted 60000, already_rejected 40000), failed 0") {
		t.Fatalf("second issue report:\n%s", out2.String())
	}
	rep, err := os.ReadFile(report)
	if err != nil || bytes.Count(rep, []byte("\n")) != n+1 {
		t.Fatalf("report has %d lines, want %d: %v", bytes.Count(rep, []byte("\n")), n+1, err)
	}

	// The stock counter and every published grant agree: 60,000, each user once.
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr()})
	defer rdb.Close()
	if got, err := coupon.NewStore(rdb, coupon.WithKeyPrefix(e.prefix)).Granted(ctx, "VIP-60K"); err != nil || got != 60_000 {
		t.Fatalf("granted counter = %d, %v; want 60000", got, err)
	}
	granted := map[string]string{}
	for _, r := range consumeTopic(t, e.cfg.Kafka.Brokers, coupon.TopicGrants) {
		var dec schemas.Decoder
		env, err := dec.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		var g schemas.GrantDecided
		if err := env.DecodePayload(&g); err != nil {
			t.Fatal(err)
		}
		if g.Status != schemas.StatusGranted {
			continue
		}
		if prev, ok := granted[g.UserID]; ok && prev != g.ResultID {
			t.Fatalf("user %s was issued twice (%s and %s)", g.UserID, prev, g.ResultID)
		}
		granted[g.UserID] = g.ResultID
	}
	if len(granted) != 60_000 {
		t.Fatalf("%d users granted, want 60000", len(granted))
	}
	sink, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		rows, err := sink.CountGrants(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rows == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("MySQL holds %d decisions, want one per user: %d", rows, n)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// consumeTopic reads a topic from its start to its current end.
func consumeTopic(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(t, time.Minute)
	ends, err := kadmEnds(ctx, cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []*kgo.Record
	pos := map[int32]int64{}
	done := func() bool {
		for p, end := range ends {
			if pos[p] < end {
				return false
			}
		}
		return true
	}
	for !done() {
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v", topic, ctx.Err())
		}
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			pos[r.Partition] = r.Offset + 1
		})
	}
	return out
}

func kadmEnds(ctx context.Context, cl *kgo.Client, topic string) (map[int32]int64, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { out[o.Partition] = o.Offset })
	return out, nil
}

// TestIntegrationOrderTimeValidationAndTCC follows two coupons of one
// exclusion group from their claims through the order-time validation API
// and an order's lock, cancel, lock and confirm, to the analysts' view.
func TestIntegrationOrderTimeValidationAndTCC(t *testing.T) {
	e := startCouponEnv(t, stageCoupon, stageMySQL, stageClickHouse)
	ctx := testenv.Context(t, 3*time.Minute)
	now := time.Now().UTC()
	pr, err := producers.New(producers.Config{Brokers: e.cfg.Kafka.Brokers, AppID: "shop"})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defs := []schemas.BatchDefinedV2{
		{BatchID: "PCT10", Name: "10% off phones", Revision: 1, TotalStock: 100, PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour),
			Status: schemas.BatchActive, Categories: []string{"phone"}, Threshold: 50000, DiscountType: schemas.DiscountPercent, Percent: 10, Cap: 8000, ExclusionGroup: "d11"},
		{BatchID: "FIX50", Name: "50 off", Revision: 1, TotalStock: 100, PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour),
			Status: schemas.BatchActive, DiscountType: schemas.DiscountFixed, Amount: 5000, ExclusionGroup: "d11"},
	}
	for _, d := range defs {
		if err := pr.Publish(ctx, "def-"+d.BatchID, now, d); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the definitions reach the processor's cache
	for _, d := range defs {
		if err := pr.ClaimCoupon(ctx, "claim-"+d.BatchID, "u1", d.BatchID); err != nil {
			t.Fatal(err)
		}
	}
	store, err := mysql.New(ctx, e.cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	waitFor(t, "the coupons in MySQL", func() bool {
		rows, err := store.UserCoupons(ctx, "u1", schemas.CouponAvailable)
		return err == nil && len(rows) == 2
	})
	batches := coupon.NewBatches()
	for _, d := range defs {
		batches.Put((*schemas.BatchDefined)(&d))
	}
	srv, err := api.New(api.Config{Coupons: store, Batches: batches, CacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	usable := func() api.UsableResponse {
		t.Helper()
		resp, err := http.Post(ts.URL+"/v1/users/u1/coupons/usable", "application/json",
			strings.NewReader(`{"items":[{"sku":"x1","category":"phone","brand":"acme","amount":129900}]}`))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r api.UsableResponse
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		return r
	}
	// 10% of 1299.00 is 129.90, capped at 80.00, beats 50.00 off.
	r := usable()
	if len(r.Usable) != 1 || r.Usable[0].BatchID != "PCT10" || r.Usable[0].Discount != 8000 ||
		len(r.Unusable) != 1 || r.Unusable[0].Reason != "excluded" || r.Unusable[0].ExcludedBy != r.Usable[0].CouponID {
		t.Fatalf("before the order: %+v", r)
	}
	pct, fix := r.Usable[0].CouponID, r.Unusable[0].CouponID

	order := func(id string, p schemas.Payload) {
		t.Helper()
		if err := pr.Publish(ctx, id, time.Now(), p); err != nil {
			t.Fatal(err)
		}
	}
	state := func(couponID, want string) {
		t.Helper()
		waitFor(t, couponID+" "+want, func() bool {
			rows, err := store.UserCoupons(ctx, "u1", want)
			if err != nil {
				return false
			}
			for _, row := range rows {
				if row.CouponID == couponID {
					return true
				}
			}
			return false
		})
	}
	// Order 1 locks the best coupon: it is no longer usable elsewhere, and
	// the other coupon of the group becomes the best.
	order("o1-lock", schemas.LockRequested{OrderID: "o1", UserID: "u1", CouponID: pct, OrderAmount: 129900})
	state(pct, schemas.CouponLocked)
	r = usable()
	if len(r.Usable) != 1 || r.Usable[0].CouponID != fix {
		t.Fatalf("with %s locked: %+v", pct, r)
	}
	// Another order cannot take it; order 1 cancels; order 2 locks and confirms.
	order("o9-lock", schemas.LockRequested{OrderID: "o9", UserID: "u1", CouponID: pct})
	order("o1-cancel", schemas.CancelRequested{OrderID: "o1", UserID: "u1", CouponID: pct})
	state(pct, schemas.CouponAvailable)
	order("o2-lock", schemas.LockRequested{OrderID: "o2", UserID: "u1", CouponID: pct})
	order("o2-confirm", schemas.ConfirmRequested{OrderID: "o2", UserID: "u1", CouponID: pct, OrderAmount: 121900})
	order("o1-confirm", schemas.ConfirmRequested{OrderID: "o1", UserID: "u1", CouponID: pct})
	state(pct, schemas.CouponUsed)
	r = usable()
	if len(r.Usable) != 1 || r.Usable[0].CouponID != fix {
		t.Fatalf("with %s used: %+v", pct, r)
	}
	var ops []schemas.StateChanged
	waitFor(t, "the operation record", func() bool {
		ops, err = store.CouponOps(ctx, "u1", pct)
		return err == nil && len(ops) == 7
	})
	var got []string
	for _, o := range ops {
		got = append(got, o.Op+"/"+o.Status+"/"+o.Reason+"/"+o.OrderID)
	}
	want := []string{"grant/applied//", "lock/applied//o1", "lock/rejected/locked_by_other_order/o9", "cancel/applied//o1",
		"lock/applied//o2", "confirm/applied//o2", "confirm/rejected/already_used/o1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("operation record:\n got %v\nwant %v", got, want)
	}

	// ClickHouse: one redemption of PCT10, conversion 1.
	conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	waitFor(t, "coupon_batch_stats", func() bool {
		var grants, redemptions uint64
		var conversion float64
		err := conn.QueryRow(ctx, "SELECT grants, redemptions, conversion FROM `"+e.cfg.ClickHouse.Database+"`.coupon_batch_stats WHERE batch_id = 'PCT10'").Scan(&grants, &redemptions, &conversion)
		return err == nil && grants == 1 && redemptions == 1 && conversion == 1
	})
	// The definitions reach ClickHouse from coupon.admin and price the
	// budget: each grant at its most (PCT10's cap, FIX50's amount), the
	// redemption at 10% of the order, capped.
	waitFor(t, "coupon_budget", func() bool {
		var granted, redeemed int64
		err := conn.QueryRow(ctx, "SELECT sumIf(discount_value, src = 'grant'), sumIf(discount_value, src = 'redeem') FROM `"+
			e.cfg.ClickHouse.Database+"`.coupon_budget").Scan(&granted, &redeemed)
		return err == nil && granted == 8000+5000 && redeemed == 8000
	})
}
