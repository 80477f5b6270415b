package gateway_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/gateway"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

var (
	shopKey = []byte("shop-secret-0123456789abcdef0123456789abcdef")
	liveKey = []byte("live-secret-0123456789abcdef0123456789abcdef")
)

func envelope(t *testing.T, eventID, appID string, p schemas.Payload) string {
	t.Helper()
	env, err := schemas.New(eventID, appID, time.Now().Add(-time.Minute), p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// send signs body as app and POSTs it to the gateway over real HTTP.
func send(t *testing.T, srv *httptest.Server, app string, key []byte, target, contentType, body string) (int, gateway.Response) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	if err := gateway.Sign(req, app, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var r gateway.Response
	_ = json.Unmarshal(b, &r)
	t.Logf("%s %s: %d %s", app, target, resp.StatusCode, b)
	return resp.StatusCode, r
}

// TestIntegrationPublishesToTopics runs the gateway with the SDK's
// producers against a Kafka broker (kfake) and checks what reached the
// topics: every accepted event on the topic topics.yaml names for its type,
// keyed by its partition key, with the bytes as sent and the SDK's
// headers; no rejected event anywhere, and nothing at all from a refused
// atomic batch or a request naming another app.
func TestIntegrationPublishesToTopics(t *testing.T) {
	addrs, adm := testenv.KafkaWithTopics(t)
	pubs := map[string]*producers.Producer{}
	for _, app := range []string{"shop", "live-room"} {
		p, err := producers.New(producers.Config{Brokers: addrs, AppID: app})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		pubs[app] = p
	}
	s, err := gateway.New(gateway.Config{
		Apps: []gateway.App{
			{ID: "shop", Key: shopKey, Publisher: pubs["shop"]},
			{ID: "live-room", Key: liveKey, Publisher: pubs["live-room"]},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	coupon := "0123456789abcdef0123456789abcdef"
	type want struct{ topic, key, value string }
	accepted := map[string]want{}
	keep := func(id, topic, key, value string) string {
		accepted[id] = want{topic, key, value}
		return value
	}
	batch := []string{
		keep("claim-1", "coupon.claims", "u1", envelope(t, "claim-1", "shop", schemas.ClaimRequested{BatchID: "b-1", UserID: "u1"})),
		strings.Replace(envelope(t, "claim-bad-key", "shop", schemas.ClaimRequested{BatchID: "b-1", UserID: "u2"}), `"key":"u2"`, `"key":"u3"`, 1),
		keep("lock-1", "coupon.orders", "u2", envelope(t, "lock-1", "shop", schemas.LockRequested{OrderID: "o-1", UserID: "u2", CouponID: coupon})),
		strings.Replace(envelope(t, "claim-bad-payload", "shop", schemas.ClaimRequested{BatchID: "b-1", UserID: "u4"}), `"batch_id":"b-1",`, ``, 1),
		keep("join-1", "lottery.requests", "act-9", envelope(t, "join-1", "shop", schemas.ParticipationRequested{ActivityID: "act-9", UserID: "u5"})),
		keep("claim-2", "coupon.claims", "u1", envelope(t, "claim-2", "shop", schemas.ClaimRequested{BatchID: "b-2", UserID: "u1"})),
	}
	code, resp := send(t, srv, "shop", shopKey, "/v1/events:batch", "application/x-ndjson", strings.Join(batch, "\n")+"\n")
	if code != http.StatusOK || resp.Accepted != 4 || resp.Rejected != 2 {
		t.Fatalf("batch: %d %+v", code, resp)
	}
	for _, r := range resp.Results {
		if w, ok := accepted[r.EventID]; ok != (r.Status == gateway.StatusAccepted) || ok && r.Topic != w.topic {
			t.Errorf("result %+v", r)
		}
	}

	code, _ = send(t, srv, "live-room", liveKey, "/v1/events", "application/json",
		keep("live-1", "coupon.claims", "u7", envelope(t, "live-1", "live-room", schemas.ClaimRequested{BatchID: "b-1", UserID: "u7"})))
	if code != http.StatusAccepted {
		t.Fatalf("single event: %d", code)
	}

	// Refused as a whole: nothing of these reaches Kafka.
	atomic := "[" + envelope(t, "atomic-ok", "shop", schemas.ClaimRequested{BatchID: "b-1", UserID: "u8"}) + "," +
		strings.Replace(envelope(t, "atomic-bad", "shop", schemas.ClaimRequested{BatchID: "b-1", UserID: "u8"}), `"version":1`, `"version":7`, 1) + "]"
	if code, _ := send(t, srv, "shop", shopKey, "/v1/events:batch?atomic=true", "application/json", atomic); code != http.StatusUnprocessableEntity {
		t.Fatalf("atomic batch with an invalid event: %d", code)
	}
	foreign := "[" + envelope(t, "mine", "shop", schemas.ClaimRequested{BatchID: "b-1", UserID: "u9"}) + "," +
		envelope(t, "theirs", "live-room", schemas.ClaimRequested{BatchID: "b-1", UserID: "u9"}) + "]"
	if code, _ := send(t, srv, "shop", shopKey, "/v1/events:batch", "application/json", foreign); code != http.StatusForbidden {
		t.Fatalf("envelope of another app: %d", code)
	}

	recs := consumeAll(t, addrs, adm)
	if len(recs) != len(accepted) {
		t.Errorf("%d records in Kafka, want the %d accepted events", len(recs), len(accepted))
	}
	seen := map[string]bool{}
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Errorf("record on %s does not decode: %v", r.Topic, err)
			continue
		}
		w, ok := accepted[env.EventID]
		switch {
		case !ok:
			t.Errorf("event %s reached %s but was not accepted", env.EventID, r.Topic)
		case seen[env.EventID]:
			t.Errorf("event %s published twice", env.EventID)
		case r.Topic != w.topic || string(r.Key) != w.key || string(r.Value) != w.value:
			t.Errorf("event %s on %s key %q, want %s key %q and the bytes as sent", env.EventID, r.Topic, r.Key, w.topic, w.key)
		case header(r, producers.HeaderType) != env.Type:
			t.Errorf("event %s has no %s header", env.EventID, producers.HeaderType)
		}
		seen[env.EventID] = true
	}
	// claim-1 and claim-2 share key u1: same partition, in request order.
	var order []string
	for _, r := range recs {
		if r.Topic == "coupon.claims" && string(r.Key) == "u1" {
			env, _ := schemas.Decode(r.Value)
			order = append(order, env.EventID)
		}
	}
	if strings.Join(order, ",") != "claim-1,claim-2" {
		t.Errorf("events of key u1 in order %v", order)
	}
}

// consumeAll reads every topic of topics.yaml from the start to its
// current end.
func consumeAll(t *testing.T, addrs []string, adm *kadm.Client) []*kgo.Record {
	t.Helper()
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, tp := range topo.Topics {
		topics = append(topics, tp.Name)
	}
	ctx := testenv.Context(t, 20*time.Second)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil || ends.Error() != nil {
		t.Fatalf("listing end offsets: %v %v", err, ends.Error())
	}
	want := 0
	ends.Each(func(o kadm.ListedOffset) { want += int(o.Offset) })
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(out) < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), want, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", topic, p, err) })
		out = append(out, fs.Records()...)
	}
	return out
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
