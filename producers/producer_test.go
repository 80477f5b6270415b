package producers_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

func TestPublishRoutesKeysAndHeaders(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)

	occurred := time.Date(2025, 11, 11, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	if err := p.Publish(ctx, "claim-1", occurred, claim("user-1", "b-1")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if err := p.ClaimCoupon(ctx, "claim-2", "user-2", "b-1"); err != nil {
		t.Fatalf("ClaimCoupon: %v", err)
	}
	if err := p.DefineBatch(ctx, "batch-1", batch("b-1")); err != nil {
		t.Fatalf("DefineBatch: %v", err)
	}

	want := map[string]struct{ topic, key, typ string }{
		"claim-1": {"coupon.claims", "user-1", schemas.TypeCouponClaimRequested},
		"claim-2": {"coupon.claims", "user-2", schemas.TypeCouponClaimRequested},
		"batch-1": {"coupon.admin", "b-1", schemas.TypeCouponBatchDefined},
	}
	recs := consumeAll(t, addrs, allTopics(t)...)
	if len(recs) != len(want) {
		t.Fatalf("got %d records, want %d", len(recs), len(want))
	}
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatalf("decoding %s record: %v", r.Topic, err)
		}
		w, ok := want[env.EventID]
		if !ok {
			t.Fatalf("unexpected event %q", env.EventID)
		}
		delete(want, env.EventID)
		if r.Topic != w.topic || string(r.Key) != w.key || env.Key != w.key || env.Type != w.typ {
			t.Errorf("%s: topic %s key %q env.key %q type %s, want %s %q %s", env.EventID, r.Topic, r.Key, env.Key, env.Type, w.topic, w.key, w.typ)
		}
		if env.AppID != testApp {
			t.Errorf("%s: app_id %q, want %q", env.EventID, env.AppID, testApp)
		}
		if got := header(r, producers.HeaderType); got != w.typ {
			t.Errorf("%s: %s header %q, want %q", env.EventID, producers.HeaderType, got, w.typ)
		}
		if got := header(r, producers.HeaderVersion); got != "1" {
			t.Errorf("%s: %s header %q, want 1", env.EventID, producers.HeaderVersion, got)
		}
		if env.EventID == "claim-1" && !env.OccurredAt.Equal(occurred) {
			t.Errorf("occurred_at %s, want %s", env.OccurredAt, occurred)
		}
	}
}

func TestPublishRefusesInvalidEvents(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)

	for _, tc := range []struct {
		name     string
		eventID  string
		occurred time.Time
		payload  schemas.Payload
		reason   schemas.Reason
	}{
		{"empty event id", "", time.Now(), claim("user-1", "b-1"), schemas.ReasonInvalidEnvelope},
		{"event id charset", "claim 1", time.Now(), claim("user-1", "b-1"), schemas.ReasonInvalidEnvelope},
		{"bad user id", "claim-1", time.Now(), claim("user 1", "b-1"), schemas.ReasonInvalidPayload},
		{"empty user id", "claim-1", time.Now(), claim("", "b-1"), schemas.ReasonInvalidEnvelope},
		{"future", "claim-1", time.Now().Add(time.Hour), claim("user-1", "b-1"), schemas.ReasonFutureEvent},
		{"zero stock limit", "batch-1", time.Now(), schemas.BatchDefined{BatchID: "b-1", Revision: 1, Status: "active"}, schemas.ReasonInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.Publish(ctx, tc.eventID, tc.occurred, tc.payload)
			var ie *schemas.InvalidError
			if !errors.As(err, &ie) || !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("Publish error %v, want an *schemas.InvalidError", err)
			}
			if ie.Reason != tc.reason {
				t.Errorf("reason %s (%v), want %s", ie.Reason, err, tc.reason)
			}
			done := make(chan error, 1)
			p.PublishAsync(ctx, tc.eventID, tc.occurred, tc.payload, func(err error) { done <- err })
			select {
			case err := <-done:
				if schemas.ReasonOf(err) != tc.reason {
					t.Errorf("PublishAsync: %v, want reason %s", err, tc.reason)
				}
			default:
				t.Error("PublishAsync did not report the invalid event before returning")
			}
		})
	}
	if recs := consumeAll(t, addrs, allTopics(t)...); len(recs) != 0 {
		t.Fatalf("%d records produced, want none", len(recs))
	}
}

func TestPublishEnvelopeChecksApp(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)

	other, err := schemas.New("claim-1", "other-app", time.Now(), claim("user-1", "b-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PublishEnvelope(ctx, other); !errors.Is(err, producers.ErrWrongApp) {
		t.Fatalf("PublishEnvelope of another app: %v, want ErrWrongApp", err)
	}
	if err := p.PublishRaw(ctx, []byte(envelopeJSON(t, "claim-2", "other-app", claim("user-1", "b-1")))); !errors.Is(err, producers.ErrWrongApp) {
		t.Fatalf("PublishRaw of another app: %v, want ErrWrongApp", err)
	}
	if err := p.PublishRaw(ctx, []byte(`{"event_id":`)); schemas.ReasonOf(err) != schemas.ReasonMalformed {
		t.Fatalf("PublishRaw of malformed JSON: %v, want reason %s", err, schemas.ReasonMalformed)
	}
	if recs := consumeAll(t, addrs, allTopics(t)...); len(recs) != 0 {
		t.Fatalf("%d records produced, want none", len(recs))
	}

	own, err := schemas.New("claim-3", testApp, time.Now(), claim("user-3", "b-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PublishEnvelope(ctx, own); err != nil {
		t.Fatalf("PublishEnvelope: %v", err)
	}
	raw := envelopeJSON(t, "claim-4", testApp, claim("user-4", "b-1"))
	if err := p.PublishRaw(ctx, []byte(raw)); err != nil {
		t.Fatalf("PublishRaw: %v", err)
	}
	recs := consumeAll(t, addrs, "coupon.claims")
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if env.EventID == "claim-4" && string(r.Value) != raw {
			t.Errorf("PublishRaw changed the bytes:\n got %s\nwant %s", r.Value, raw)
		}
	}
}

func TestPublishAsync(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 20*time.Second)

	const n = 500
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	wg.Add(n)
	for i := range n {
		p.PublishAsync(ctx, fmt.Sprintf("claim-%d", i), time.Time{}, claim(fmt.Sprintf("user-%d", i%37), "b-1"), func(err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d sends failed, first: %v", len(errs), errs[0])
	}
	seen := map[string]bool{}
	for _, r := range consumeAll(t, addrs, "coupon.claims") {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if seen[env.EventID] {
			t.Fatalf("event %s produced twice", env.EventID)
		}
		seen[env.EventID] = true
	}
	if len(seen) != n {
		t.Fatalf("consumed %d events, want %d", len(seen), n)
	}
}

func TestPublishSameKeySamePartition(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)
	for i := range 20 {
		if err := p.ClaimCoupon(ctx, fmt.Sprintf("claim-%d", i), fmt.Sprintf("user-%d", i%3), "b-1"); err != nil {
			t.Fatal(err)
		}
	}
	parts := map[string]int32{}
	for _, r := range consumeAll(t, addrs, "coupon.claims") {
		if p, ok := parts[string(r.Key)]; ok && p != r.Partition {
			t.Fatalf("key %s on partitions %d and %d", r.Key, p, r.Partition)
		}
		parts[string(r.Key)] = r.Partition
	}
	if len(parts) != 3 {
		t.Fatalf("got %d keys, want 3", len(parts))
	}
}

func TestPublishWithoutTopic(t *testing.T) {
	addrs := kafka(t)
	f, err := topology.Parse([]byte(`
topics:
  - name: coupon.claims
    partitions: 12
    replication_factor: 1
    cleanup_policy: delete
    retention: 168h
    key: user_id
    schemas: [coupon.claim.requested.v1]
`))
	if err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, addrs, producers.WithTopology(f))
	ctx := testenv.Context(t, 10*time.Second)
	if err := p.DefineBatch(ctx, "batch-1", batch("b-1")); !errors.Is(err, producers.ErrNoTopic) {
		t.Fatalf("DefineBatch without a topic: %v, want ErrNoTopic", err)
	}
	if err := p.ClaimCoupon(ctx, "claim-1", "user-1", "b-1"); err != nil {
		t.Fatalf("ClaimCoupon: %v", err)
	}
}

func TestClose(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)

	var wg sync.WaitGroup
	var failed int
	var mu sync.Mutex
	for i := range 100 {
		wg.Add(1)
		p.PublishAsync(ctx, fmt.Sprintf("claim-%d", i), time.Time{}, claim("user-1", "b-1"), func(err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	p.Close() // flushes what is buffered
	p.Close()
	wg.Wait()
	if failed != 0 {
		t.Fatalf("%d records failed at Close, want Close to flush them", failed)
	}
	if err := p.ClaimCoupon(ctx, "claim-x", "user-1", "b-1"); !errors.Is(err, producers.ErrClosed) {
		t.Fatalf("publishing after Close: %v, want ErrClosed", err)
	}
	if n := len(consumeAll(t, addrs, "coupon.claims")); n != 100 {
		t.Fatalf("consumed %d records, want 100", n)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  producers.Config
		want string // substring of the error; "" for valid
	}{
		{"valid", producers.Config{Brokers: []string{"127.0.0.1:9092"}, AppID: "shop"}, ""},
		{"no brokers", producers.Config{AppID: "shop"}, "brokers"},
		{"empty broker", producers.Config{Brokers: []string{""}, AppID: "shop"}, "brokers[0]"},
		{"no app", producers.Config{Brokers: []string{"b:9092"}}, "app_id"},
		{"app uppercase", producers.Config{Brokers: []string{"b:9092"}, AppID: "Shop"}, "app_id"},
		{"negative linger", producers.Config{Brokers: []string{"b:9092"}, AppID: "shop", Linger: -time.Second}, "linger"},
		{"negative buffer", producers.Config{Brokers: []string{"b:9092"}, AppID: "shop", MaxBufferedRecords: -1}, "max_buffered_records"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, producers.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v, want ErrInvalidConfig mentioning %q", err, tc.want)
			}
			if _, err := producers.New(tc.cfg); !errors.Is(err, producers.ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	var cfg producers.Config
	err := yaml.Unmarshal([]byte(`
brokers: [k1:9092, k2:9092]
app_id: live-room
client_id: live-room-eu
linger: 20ms
max_buffered_records: 1000
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := producers.Config{Brokers: []string{"k1:9092", "k2:9092"}, AppID: "live-room", ClientID: "live-room-eu", Linger: 20 * time.Millisecond, MaxBufferedRecords: 1000}
	if fmt.Sprint(cfg) != fmt.Sprint(want) {
		t.Fatalf("decoded %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}
