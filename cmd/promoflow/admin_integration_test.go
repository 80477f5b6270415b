package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

// TestIntegrationBadBatchDefinitionsAreDeadLetteredOnce publishes a batch
// whose window is inverted and a malformed record to the admin topic, with
// two processor instances running: each bad record reaches the DLQ exactly
// once, the bad batch is never cached (its claims are unknown_batch), and
// a good batch works.
func TestIntegrationBadBatchDefinitionsAreDeadLetteredOnce(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	brokers, _ := testenv.KafkaWithTopics(t)
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers = brokers
	cfg.Redis.Addr = testenv.RedisAddr()
	cfg.Redis.KeyPrefix = testenv.Name("pfadmin")
	cfg.Runtime.SessionTimeout = 6 * time.Second
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr})
	t.Cleanup(func() { deleteKeys(rdb, cfg.Redis.KeyPrefix); rdb.Close() })

	now := time.Now().UTC()
	good := schemas.BatchDefined{BatchID: "GOOD", Revision: 1, TotalStock: 5, PerUserLimit: 1, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Status: schemas.BatchActive}
	bad := good
	bad.BatchID, bad.ValidFrom, bad.ValidUntil = "BAD", now.Add(time.Hour), now.Add(-time.Hour)
	var recs []*kgo.Record
	for _, d := range []schemas.BatchDefined{good, bad} {
		env, err := schemas.New("def-"+d.BatchID, "ops", now, d)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := env.Encode()
		recs = append(recs, &kgo.Record{Topic: coupon.TopicAdmin, Key: []byte(d.BatchID), Value: b})
	}
	recs = append(recs, &kgo.Record{Topic: coupon.TopicAdmin, Key: []byte("X"), Value: []byte("{broken")})
	for _, u := range []string{"u1", "u2"} {
		for _, batch := range []string{"GOOD", "BAD"} {
			env, _ := schemas.New("claim-"+batch+"-"+u, "shop", now, schemas.ClaimRequested{BatchID: batch, UserID: u})
			b, _ := env.Encode()
			recs = append(recs, &kgo.Record{Topic: coupon.TopicClaims, Key: []byte(u), Value: b})
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := 0; i < 2; i++ {
		p, err := buildPipeline(ctx, cfg, []string{stageCoupon}, parts{log: quiet})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- p.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-done })
	}

	tl := newTally("")
	ready := make(chan struct{})
	go tl.run(ctx, brokers, ready)
	<-ready
	waitUntil(t, ctx, "4 decisions and 2 dead letters", func() bool {
		s := tl.snapshot()
		return s.results == 4 && s.deadN >= 2
	})
	time.Sleep(2 * time.Second) // a second dead letter for the same record would show up by now
	s := tl.snapshot()
	if s.deadN != 2 || s.deadBy["invalid_batch"] != 1 || s.deadBy["malformed_json"] != 1 {
		t.Fatalf("dead letters %d %v, want one invalid_batch and one malformed_json", s.deadN, s.deadBy)
	}
	if s.granted != 2 || s.byReason[schemas.RejectUnknownBatch] != 2 {
		t.Fatalf("decisions: %d granted, reasons %v; want the good batch granted twice and the bad one unknown", s.granted, s.byReason)
	}
}
