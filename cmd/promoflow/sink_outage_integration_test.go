package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// TestIntegrationSinkHoldsOffsetsThroughOutage makes one MySQL shard table
// unwritable while grants flow: the sink's batches fail and are retried
// with backoff, nothing is committed, and once the table is back the sink
// catches up to exactly one row per result.
func TestIntegrationSinkHoldsOffsetsThroughOutage(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	brokers, _ := testenv.KafkaWithTopics(t)
	e := &stressEnv{}
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	name := testenv.Name("pfoutage")
	cfg.Kafka.Brokers = brokers
	cfg.MySQL.DSN = testenv.MySQLDSN()
	cfg.MySQL.DatabasePrefix = name
	cfg.Runtime.SessionTimeout = 6 * time.Second
	e.cfg = cfg
	sink, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	db := openMySQL(t)
	t.Cleanup(func() {
		for i := 0; i < cfg.MySQL.Databases; i++ {
			db.Exec(fmt.Sprintf("DROP DATABASE IF EXISTS %s_%d", name, i))
		}
	})
	e.mysqlDB = db

	// Take one table away: every batch touching it fails.
	off := fmt.Sprintf("RENAME TABLE %s_0.coupon_grant_1 TO %s_0.coupon_grant_1_away", name, name)
	if _, err := db.ExecContext(ctx, off); err != nil {
		t.Fatal(err)
	}

	const n = 2000
	at := time.Now().Add(-time.Minute)
	var recs []*kgo.Record
	for i := 0; i < n; i++ {
		g := schemas.GrantDecided{ClaimEventID: fmt.Sprintf("c%d", i), BatchID: "B", UserID: fmt.Sprintf("u%d", i),
			Status: schemas.StatusRejected, Reason: schemas.RejectOutOfStock, ClaimedAt: at, DecidedAt: at}
		g.ResultID = schemas.ResultID(coupon.ResultKind, "shop", g.ClaimEventID)
		env, err := schemas.New(g.ResultID, "shop", at, g)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := env.Encode()
		recs = append(recs, &kgo.Record{Topic: coupon.TopicGrants, Key: []byte(g.UserID), Value: b})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()

	p, err := buildPipeline(ctx, cfg, []string{stageMySQL}, parts{mysql: sink, log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() { stop(); <-done }()

	waitUntil(t, ctx, "failing batches", func() bool { return p.Stats()[stageMySQL].FailedBatches >= 3 })
	if c := p.Stats()[stageMySQL].Committed; c != 0 {
		t.Fatalf("the sink committed %d records while a table was missing", c)
	}

	on := fmt.Sprintf("RENAME TABLE %s_0.coupon_grant_1_away TO %s_0.coupon_grant_1", name, name)
	if _, err := db.ExecContext(ctx, on); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the sink to catch up", func() bool { return p.Stats()[stageMySQL].Committed == n })
	rows, _, _, err := e.mysqlGrants(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Fatalf("%d rows after the outage, want exactly %d", rows, n)
	}
}

func openMySQL(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", testenv.MySQLDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("mysql at %s: %v", testenv.MySQLDSN(), err)
	}
	return db
}
