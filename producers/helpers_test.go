package producers_test

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

const testApp = "shop"

// kafka starts a kfake cluster reached over TCP with every topic of
// topics.yaml created (replication factor 1: kfake runs one broker here).
func kafka(t testing.TB) []string {
	t.Helper()
	addrs, _ := testenv.KafkaWithTopics(t)
	return addrs
}

func admin(t testing.TB, addrs []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatalf("creating admin client: %v", err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func newProducer(t testing.TB, addrs []string, opts ...producers.Option) *producers.Producer {
	t.Helper()
	p, err := producers.New(producers.Config{Brokers: addrs, AppID: testApp}, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// allTopics lists every topic of topics.yaml.
func allTopics(t testing.TB) []string {
	t.Helper()
	f, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tp := range f.Topics {
		names = append(names, tp.Name)
	}
	return names
}

// consumeAll reads every record in topics, from the start up to the end
// offsets at the time of the call, so a duplicate would show up as an
// extra record.
func consumeAll(t testing.TB, addrs []string, topics ...string) []*kgo.Record {
	t.Helper()
	ctx := testenv.Context(t, 15*time.Second)
	ends, err := admin(t, addrs).ListEndOffsets(ctx, topics...)
	if err != nil || ends.Error() != nil {
		t.Fatalf("listing end offsets: %v %v", err, ends.Error())
	}
	want := 0
	ends.Each(func(o kadm.ListedOffset) { want += int(o.Offset) })
	if want == 0 {
		return nil
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addrs...),
		kgo.ConsumeTopics(topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatalf("creating consumer: %v", err)
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

// envelopeJSON encodes an envelope for payload p as an app in any language
// would write it.
func envelopeJSON(t testing.TB, eventID, appID string, p schemas.Payload) string {
	t.Helper()
	env, err := schemas.New(eventID, appID, time.Now().Add(-time.Minute), p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "\n") {
		t.Fatal("encoded envelope spans lines")
	}
	return string(b)
}

func claim(user, batch string) schemas.ClaimRequested {
	return schemas.ClaimRequested{BatchID: batch, UserID: user}
}

func batch(id string) schemas.BatchDefined {
	now := time.Now().UTC().Truncate(time.Second)
	return schemas.BatchDefined{
		BatchID: id, Revision: 1, TotalStock: 100, PerUserLimit: 1,
		ValidFrom: now, ValidUntil: now.Add(24 * time.Hour), Status: schemas.BatchActive,
	}
}
