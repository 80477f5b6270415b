package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/recommend"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// TestIntegrationRecommendStageFromConfig runs `promoflow run --only
// recommend` as the command builds it (the batch cache loaded from
// coupon.admin, the rules file of the configuration) on kfake and the real
// Redis: a phone buyer is recommended the phone coupon under the file's
// revision; the file is edited while the stage runs and the next
// recommendation is made, without a restart, under the new rules and
// revision; the serve API answers from the same store. A stage whose
// rules file does not validate refuses to start, naming the line.
func TestIntegrationRecommendStageFromConfig(t *testing.T) {
	ctx := testenv.Context(t, 2*time.Minute)
	brokers, _ := testenv.KafkaWithTopics(t)
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	writeFile := func(body string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(rulesPath, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(rulesPath, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	base := strings.Replace(string(recommend.DefaultRulesYAML), "top_n: 3", "top_n: 1", 1)
	writeFile(base, time.Now().Add(-time.Hour))

	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers = brokers
	cfg.Redis.Addr = testenv.RedisAddr()
	cfg.Redis.KeyPrefix = testenv.Name("pfrec")
	cfg.Runtime.SessionTimeout = 6 * time.Second
	cfg.Recommend.RulesFile = rulesPath
	cfg.Recommend.RulesPoll = 100 * time.Millisecond
	rdb := redis.NewClient(&redis.Options{Addr: cfg.Redis.Addr})
	t.Cleanup(func() { deleteKeys(rdb, cfg.Redis.KeyPrefix); rdb.Close() })

	now := time.Now().UTC()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func(topic, id, app string, p schemas.Payload) {
		t.Helper()
		env, err := schemas.New(id, app, now, p)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := env.Encode()
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(env.Key), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []schemas.BatchDefinedV2{
		{BatchID: "PHONE-50", Name: "50 off phones", Revision: 1, TotalStock: 1000, PerUserLimit: 1, Status: schemas.BatchActive,
			ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(72 * time.Hour), Categories: []string{"phone"}, DiscountType: schemas.DiscountFixed, Amount: 5000},
		{BatchID: "ALL-5", Revision: 1, TotalStock: 1000, PerUserLimit: 1, Status: schemas.BatchActive,
			ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(72 * time.Hour), DiscountType: schemas.DiscountFixed, Amount: 500},
	} {
		produce(coupon.TopicAdmin, "def-"+d.BatchID, "ops", d)
	}

	// A rules file that does not validate: the stage refuses to start.
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("version: 1\nactions:\n  order: {weight: 0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := *cfg
	bad.Recommend.RulesFile = broken
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := buildPipeline(ctx, &bad, []string{stageRecommend}, parts{log: quiet}); err == nil ||
		!strings.Contains(err.Error(), "broken.yaml:3: actions.order.weight") {
		t.Fatalf("a broken rules file: %v", err)
	}

	p, err := buildPipeline(ctx, cfg, []string{stageRecommend}, parts{log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })

	var mu sync.Mutex
	var recs []schemas.RecommendationMade
	go func() {
		rc, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(recommend.TopicRecommendations), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			return
		}
		defer rc.Close()
		for ctx.Err() == nil {
			rc.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				env, err := schemas.Decode(r.Value)
				if err != nil {
					return
				}
				var m schemas.RecommendationMade
				if env.DecodePayload(&m) == nil {
					mu.Lock()
					recs = append(recs, m)
					mu.Unlock()
				}
			})
		}
	}()
	seen := func(n int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(recs) >= n }
	}
	first := p.rules.Rules().Revision
	produce(recommend.TopicBehaviour, "b-1", "shop", schemas.BehaviourRecorded{UserID: "u1", Action: "order", Category: "phone", Price: 80000, Quantity: 1})
	waitUntil(t, ctx, "the first recommendation", seen(1))
	mu.Lock()
	if r := recs[0]; r.BatchID != "PHONE-50" || r.Rank != 1 || r.RulesRevision != first || r.TriggerEventID != "b-1" {
		t.Errorf("first recommendation %+v under %s", r, first)
	}
	mu.Unlock()

	// Edited while running: top 2 from now on.
	writeFile(strings.Replace(base, "top_n: 1", "top_n: 2", 1), time.Now())
	waitUntil(t, ctx, "the rules reloaded", func() bool { return p.rules.Reloads() == 1 })
	second := p.rules.Rules().Revision
	produce(recommend.TopicBehaviour, "b-2", "shop", schemas.BehaviourRecorded{UserID: "u1", Action: "browse", Category: "phone", Price: 80000})
	waitUntil(t, ctx, "the top 2", seen(3))
	mu.Lock()
	for _, r := range recs[1:] {
		if r.RulesRevision != second || second == first || r.TriggerEventID != "b-2" {
			t.Errorf("after the reload: %+v, want revision %s (was %s)", r, second, first)
		}
	}
	mu.Unlock()

	// promoflow serve answers from the same store.
	srv, err := api.New(api.Config{Coupons: noCoupons{}, Batches: p.batches,
		Recommendations: recommend.NewStore(rdb, recommend.WithKeyPrefix(cfg.Redis.KeyPrefix))})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v1/users/u1/recommendations", nil))
	var resp api.RecommendationsResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if len(resp.Recommendations) != 2 || resp.Recommendations[0].BatchID != "PHONE-50" || resp.Recommendations[0].BatchName != "50 off phones" ||
		resp.RulesRevision != second {
		t.Errorf("GET recommendations = %s", rec.Body)
	}
}

// noCoupons is a CouponReader holding no coupons (the recommendation
// lookups do not read coupons).
type noCoupons struct{}

func (noCoupons) UserCoupons(context.Context, string, ...string) ([]sinks.CouponRow, error) {
	return nil, nil
}
func (noCoupons) CouponOps(context.Context, string, string) ([]schemas.StateChanged, error) {
	return nil, nil
}
