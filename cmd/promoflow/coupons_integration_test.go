package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// couponEnv runs the coupon stage and the MySQL sink against kfake and the
// real Redis and MariaDB; restart replaces the processor.
type couponEnv struct {
	t      *testing.T
	cfg    *Config
	stop   func()
	prefix string
}

func startCouponEnv(t *testing.T) *couponEnv {
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
	ce := &couponEnv{t: t, cfg: cfg, prefix: name}
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
	p, err := buildPipeline(testenv.Context(e.t, time.Minute), e.cfg, []string{stageCoupon, stageMySQL}, parts{log: quietLogger(os.Stderr, 8)})
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
