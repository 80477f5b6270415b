package verify

import (
	"context"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// fakeKafka is a source over records in memory, planned as Kafka plans by
// timestamps.
type fakeKafka struct {
	topics  map[string]map[int32][]*kgo.Record
	commits map[string]map[tp]int64 // group → partition → committed offset
	next    map[tp]int64
	now     time.Time
}

func newFakeKafka(topics ...string) *fakeKafka {
	f := &fakeKafka{topics: map[string]map[int32][]*kgo.Record{}, commits: map[string]map[tp]int64{}, next: map[tp]int64{},
		now: time.Date(2026, 11, 11, 10, 0, 0, 0, time.UTC)}
	for _, t := range topics {
		f.topics[t] = map[int32][]*kgo.Record{}
	}
	return f
}

// add appends a record to topic/part one second after the previous one.
func (f *fakeKafka) add(topic string, part int32, value []byte, headers ...kgo.RecordHeader) *kgo.Record {
	key := tp{topic, part}
	f.now = f.now.Add(time.Second)
	r := &kgo.Record{Topic: topic, Partition: part, Offset: f.next[key], Timestamp: f.now, Value: value, Headers: headers}
	f.next[key]++
	f.topics[topic][part] = append(f.topics[topic][part], r)
	return r
}

// gap skips an offset of topic/part (a record no committed reader sees).
func (f *fakeKafka) gap(topic string, part int32) { f.next[tp{topic, part}]++ }

func (f *fakeKafka) planTopics(_ context.Context, topics []string, since, until time.Time) (plan, []string, error) {
	p := plan{}
	var missing []string
	for _, t := range topics {
		parts, ok := f.topics[t]
		if !ok {
			missing = append(missing, t)
			continue
		}
		for part, recs := range parts {
			at := func(ts time.Time, def int64) int64 {
				if ts.IsZero() {
					return def
				}
				for _, r := range recs {
					if !r.Timestamp.Before(ts) {
						return r.Offset
					}
				}
				return f.next[tp{t, part}]
			}
			p[tp{t, part}] = span{at(since, 0), at(until, f.next[tp{t, part}])}
		}
	}
	return p, missing, nil
}

func (f *fakeKafka) scan(_ context.Context, p plan, fn func(*kgo.Record) error) error {
	keys := slices.SortedFunc(maps.Keys(p), func(a, b tp) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.part - b.part)
	})
	for _, k := range keys {
		sp := p[k]
		for _, r := range f.topics[k.topic][k.part] {
			if r.Offset >= sp.from && r.Offset < sp.to {
				if err := fn(r); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (f *fakeKafka) committed(_ context.Context, group, topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for k, o := range f.commits[group] {
		if k.topic == topic {
			out[k.part] = o
		}
	}
	return out, nil
}

var testTopics = Topics{
	Claims: "claims", ClaimsGroup: "g-coupon", Orders: "orders", OrdersGroup: "g-coupon",
	Requests: "requests", RequestsGroup: "g-lottery",
	Grants: "grants", States: "states", Results: "results",
	CouponAdmin: "cadmin", LotteryAdmin: "ladmin", DLQ: "dlq",
}

func event(t *testing.T, eventID, app string, p schemas.Payload) []byte {
	t.Helper()
	env, err := schemas.New(eventID, app, time.Date(2026, 11, 11, 9, 0, 0, 0, time.UTC), p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := env.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// deadLetter returns the dlq headers pointing at r.
func deadLetter(r *kgo.Record, reason string) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("x")},
		{Key: stream.HeaderDLQReason, Value: []byte(reason)},
		{Key: stream.HeaderDLQStage, Value: []byte("coupon")},
		{Key: stream.HeaderDLQSourceTopic, Value: []byte(r.Topic)},
		{Key: stream.HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		{Key: stream.HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	}
}

// pipelineFixture lays out inputs, results and dead letters whose
// reconciliation is known (see the comments).
func pipelineFixture(t *testing.T) *fakeKafka {
	f := newFakeKafka("claims", "orders", "requests", "grants", "states", "results", "dlq", "cadmin", "ladmin")
	claim := func(ev, batch string) []byte {
		return event(t, ev, "app", schemas.ClaimRequested{BatchID: batch, UserID: "u-" + ev})
	}
	grant := func(ev, batch string) {
		id := schemas.ResultID(KindGrant, "app", ev)
		f.add("grants", 0, event(t, id, "app", schemas.GrantDecided{ResultID: id, ClaimEventID: ev, BatchID: batch, UserID: "u-" + ev, Status: schemas.StatusGranted}))
	}
	dead := func(r *kgo.Record, reason string) { f.add("dlq", 0, []byte("x"), deadLetter(r, reason)...) }

	c1 := f.add("claims", 0, claim("e1", "B1"))
	f.add("claims", 0, claim("e1", "B1")) // a duplicate delivery
	grant("e1", "B1")
	dead(f.add("claims", 0, claim("e2", "B1")), "invalid_payload") // dead-lettered
	f.add("claims", 0, claim("e3", "B2"))                          // lost
	dead(f.add("claims", 0, []byte("{")), "malformed_json")        // dead-lettered, no identity
	f.add("claims", 0, []byte("not json"))                         // lost, no identity
	dead(f.add("claims", 0, claim("e4", "B1")), "future_event")    // dead-lettered, then
	f.add("claims", 0, claim("e4", "B1"))                          // replayed and decided
	grant("e4", "B1")
	dead(f.add("claims", 0, claim("e5", "B1")), "unknown_type") // dead-lettered twice over
	e5 := f.add("claims", 0, claim("e5", "B1"))
	dead(e5, "unknown_type")
	dead(e5, "unknown_type") // the same record dead-lettered again (redelivery)
	f.commits["g-coupon"] = map[tp]int64{{"claims", 0}: f.next[tp{"claims", 0}], {"claims", 1}: 1, {"orders", 0}: 1}
	f.add("claims", 0, claim("e6", "B1")) // not read by the processor yet
	f.add("claims", 1, claim("e7", "B2"))
	grant("e7", "B2")

	p1 := event(t, "p1", "app", schemas.ParticipationRequested{ActivityID: "A1", UserID: "u1"})
	f.add("requests", 0, p1)
	eid := schemas.ResultID(KindEntry, "app", "p1")
	f.add("results", 0, event(t, eid, "app", schemas.EntryRecorded{ResultID: eid, ActivityID: "A1", UserID: "u1", Status: schemas.EntryAccepted}))
	dead(f.add("requests", 0, event(t, "d1", "app", schemas.DrawRequested{ActivityID: "A1"})), "unknown_activity")
	f.add("requests", 0, event(t, "s1", "app", schemas.SendRequested{ActivityID: "A1", UserID: "u1"}))
	mid := schemas.ResultID(KindMatch, "app", "s1")
	f.add("results", 1, event(t, mid, "app", schemas.MatchDecided{ResultID: mid, ActivityID: "A1", SenderID: "u1", Status: schemas.MatchMatched}))
	f.commits["g-lottery"] = map[tp]int64{{"requests", 0}: 3}

	f.add("orders", 0, event(t, "o1", "app", schemas.LockRequested{OrderID: "o", UserID: "u1", CouponID: "c"}))
	oid := schemas.ResultID(KindOp, "app", "o1")
	f.add("states", 0, event(t, oid, "app", schemas.StateChanged{ResultID: oid, CouponID: "c", UserID: "u1", BatchID: "B1", Op: schemas.OpLock, Status: schemas.OpApplied}))
	// Results that answer no input of the range, and records that answer none at all.
	orphan := schemas.ResultID(KindEntry, "app", "older")
	f.add("results", 0, event(t, orphan, "app", schemas.EntryRecorded{ResultID: orphan, ActivityID: "A1", UserID: "u9", Status: schemas.EntryAccepted}))
	gid := schemas.ResultID("coupon.granted", "app", "e1")
	f.add("states", 0, event(t, gid, "app", schemas.StateChanged{ResultID: gid, CouponID: "c", UserID: "u1", BatchID: "B1", Op: schemas.OpGrant, Status: schemas.OpApplied}))
	// Dead letters the inputs do not account for, and should not.
	f.add("dlq", 1, []byte("hand-written"))
	f.add("dlq", 1, []byte("bad def"), deadLetter(&kgo.Record{Topic: "cadmin", Partition: 0, Offset: 0}, "invalid_batch")...)
	_ = c1
	return f
}

func runInputs(t *testing.T, f *fakeKafka, cfg Config) (*Check, *Check) {
	t.Helper()
	cfg.Topics = testTopics
	c1, c4 := newCheck(1, "inputs"), newCheck(4, "dlq")
	if err := checkInputs(context.Background(), f, cfg, newScope(cfg.Campaign, nil), newProgress(nil), c1, c4); err != nil {
		t.Fatal(err)
	}
	return c1, c4
}

func wantCounts(t *testing.T, c *Check, want map[string]int64) {
	t.Helper()
	for k, v := range want {
		if got := c.Counts[k]; got != v {
			t.Errorf("check %d: %s = %d, want %d\nsummary: %s\ninfo: %s\nexamples: %s", c.ID, k, got, v,
				strings.Join(c.Summary, " | "), strings.Join(c.Info, " | "), strings.Join(c.Examples, " | "))
		}
	}
}

func TestCheckInputsReconciles(t *testing.T) {
	f := pipelineFixture(t)
	var first *Check
	// Any number of passes gives the same answer.
	tmp := t.TempDir()
	for _, mb := range []int{0, 1, 3, 16, 255, Buckets} {
		c1, c4 := runInputs(t, f, Config{MemoryBuckets: mb, TempDir: tmp})
		if left, err := os.ReadDir(tmp); err != nil || len(left) != 0 {
			t.Fatalf("memory buckets %d: the spill files were left behind: %v %v", mb, left, err)
		}
		if want := int64(len(bucketGroups(max(1, mb)))); mb > 0 && c1.Counts["bucket_groups"] != want {
			t.Fatalf("memory buckets %d: %d groups, want %d", mb, c1.Counts["bucket_groups"], want)
		}
		wantCounts(t, c1, map[string]int64{
			"inputs": 12, "inputs.claims": 9, "inputs.requests": 2, "inputs.orders": 1,
			"decided": 6, "dead_lettered": 3, "lost": 3, "lost_not_yet_read": 1,
			"duplicate_deliveries": 3, "without_identity": 2,
			"other_requests": 1, "other_requests_dead_lettered": 1, "results_without_input": 1,
		})
		if c1.Status != StatusBreach || c1.Breaches != 3 {
			t.Fatalf("memory buckets %d: check 1 %s with %d breaches, want BREACH with 3", mb, c1.Status, c1.Breaches)
		}
		wantCounts(t, c4, map[string]int64{
			"dead_letters": 6, "dead_lettered_inputs": 3, "further_copies": 1, "copies_of_decided_inputs": 1,
			"other_requests": 1, "pointing_at_no_input": 0,
			"reason.unknown_type": 2, "reason.invalid_payload": 1, "reason.malformed_json": 1, "reason.future_event": 1, "reason.unknown_activity": 1,
		})
		if c4.Status != StatusOK {
			t.Fatalf("check 4: %s: %v %v", c4.Status, c4.Summary, c4.Examples)
		}
		if first == nil {
			first = c1
			continue
		}
		if !slices.Equal(c1.Examples, first.Examples) {
			t.Fatalf("memory buckets %d: examples %v, with one pass %v", mb, c1.Examples, first.Examples)
		}
	}
	joined := strings.Join(first.Examples, "\n")
	for _, want := range []string{"lost claims/0@3 result_id " + schemas.ResultID(KindGrant, "app", "e3"), "lost claims/0@5 (no event identity)", "(not yet read by g-coupon)"} {
		if !strings.Contains(joined, want) {
			t.Errorf("examples lack %q:\n%s", want, joined)
		}
	}
}

func TestCheckInputsUntilLeavesOutLaterRecords(t *testing.T) {
	f := pipelineFixture(t)
	// Until the record of e6: it and everything after is left out.
	var until time.Time
	for _, r := range f.topics["claims"][0] {
		if strings.Contains(string(r.Value), `"e6"`) {
			until = r.Timestamp
		}
	}
	c1, _ := runInputs(t, f, Config{Until: until})
	wantCounts(t, c1, map[string]int64{"lost": 2, "lost_not_yet_read": 0})
}

func TestCheckInputsCampaign(t *testing.T) {
	f := pipelineFixture(t)
	c1, c4 := runInputs(t, f, Config{Campaign: "B2"})
	wantCounts(t, c1, map[string]int64{"inputs": 2, "decided": 1, "lost": 1, "dead_lettered": 0})
	wantCounts(t, c4, map[string]int64{"dead_letters": 6, "outside_campaign_or_time": 6, "pointing_at_no_input": 0})
	if c4.Status != StatusOK {
		t.Fatalf("check 4 %s: %v", c4.Status, c4.Summary)
	}
}

func TestCheckInputsDeadLetterOfNothing(t *testing.T) {
	f := pipelineFixture(t)
	// A dead letter pointing at an offset no committed record holds (a
	// runtime bug, or a forged header).
	f.gap("claims", 1)
	f.add("claims", 1, event(t, "e8", "app", schemas.ClaimRequested{BatchID: "B2", UserID: "u8"}))
	f.add("dlq", 0, []byte("x"), deadLetter(&kgo.Record{Topic: "claims", Partition: 1, Offset: 1}, "malformed_json")...)
	_, c4 := runInputs(t, f, Config{})
	if c4.Status != StatusBreach || c4.Counts["pointing_at_no_input"] != 1 {
		t.Fatalf("check 4: %s %v", c4.Status, c4.Counts)
	}
	if len(c4.Examples) != 1 || !strings.Contains(c4.Examples[0], "claims/1@1") {
		t.Fatalf("examples %v", c4.Examples)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v        []byte
		cls      inputClass
		id       string
		campaign string
	}{
		{"claim", event(t, "e", "a", schemas.ClaimRequested{BatchID: "B", UserID: "u"}), classDecision, schemas.ResultID(KindGrant, "a", "e"), "B"},
		{"issue", event(t, "e", "a", schemas.IssueRequested{BatchID: "B", UserID: "u"}), classDecision, schemas.ResultID(KindGrant, "a", "e"), "B"},
		{"participation", event(t, "e", "a", schemas.ParticipationRequested{ActivityID: "A", UserID: "u"}), classDecision, schemas.ResultID(KindEntry, "a", "e"), "A"},
		{"send", event(t, "e", "a", schemas.SendRequested{ActivityID: "A", UserID: "u"}), classDecision, schemas.ResultID(KindMatch, "a", "e"), "A"},
		{"confirm", event(t, "e", "a", schemas.ConfirmRequested{OrderID: "o", UserID: "u", CouponID: "c"}), classDecision, schemas.ResultID(KindOp, "a", "e"), ""},
		{"draw", event(t, "e", "a", schemas.DrawRequested{ActivityID: "A"}), classOther, "", "A"},
		{"member", event(t, "e", "a", schemas.MemberUpdated{ActivityID: "A", UserID: "u", Action: "add"}), classOther, "", "A"},
		{"unknown type", []byte(`{"event_id":"e","app_id":"a","type":"x.y","version":1,"payload":{}}`), classAnonymous, "", ""},
		{"no event id", []byte(`{"app_id":"a","type":"coupon.claim.requested","version":1,"payload":{}}`), classAnonymous, "", ""},
		{"payload not an object", []byte(`{"event_id":"e","app_id":"a","type":"coupon.claim.requested","version":1,"payload":7}`), classDecision, schemas.ResultID(KindGrant, "a", "e"), ""},
		{"malformed", []byte(`{"event_id":`), classAnonymous, "", ""},
		{"invalid utf-8", []byte("\xff\xfe"), classAnonymous, "", ""},
	} {
		cls, id, campaign, has := classifyInput(tc.v)
		if cls != tc.cls || id != tc.id || campaign != tc.campaign || has != (tc.campaign != "") {
			t.Errorf("%s: class %d id %q campaign %q %v", tc.name, cls, id, campaign, has)
		}
	}
	for _, tc := range []struct {
		name     string
		v        []byte
		id       string
		campaign string
		ok       bool
	}{
		{"grant", event(t, "r1", "a", schemas.GrantDecided{ResultID: "r1", BatchID: "B"}), "r1", "B", true},
		{"entry", event(t, "r2", "a", schemas.EntryRecorded{ResultID: "r2", ActivityID: "A"}), "r2", "A", true},
		{"match", event(t, "r3", "a", schemas.MatchDecided{ResultID: "r3", ActivityID: "A"}), "r3", "A", true},
		{"confirm op", event(t, "r4", "a", schemas.StateChanged{ResultID: "r4", BatchID: "B", Op: schemas.OpConfirm}), "r4", "B", true},
		{"grant op", event(t, "r5", "a", schemas.StateChanged{ResultID: "r5", BatchID: "B", Op: schemas.OpGrant}), "", "", false},
		{"expire op", event(t, "r6", "a", schemas.StateChanged{ResultID: "r6", BatchID: "B", Op: schemas.OpExpire}), "", "", false},
		{"award", event(t, "r7", "a", schemas.PrizeAwarded{ResultID: "r7", ActivityID: "A"}), "", "", false},
		{"junk", []byte("junk"), "", "", false},
	} {
		id, campaign, ok := resultOf(tc.v)
		if id != tc.id || campaign != tc.campaign || ok != tc.ok {
			t.Errorf("%s: id %q campaign %q ok %v", tc.name, id, campaign, ok)
		}
	}
}

func BenchmarkClassify(b *testing.B) {
	in := event(&testing.T{}, "claim-000123", "shop", schemas.ClaimRequested{BatchID: "D11-PHONE-50", UserID: "user-000123", Channel: "app"})
	id := schemas.ResultID(KindGrant, "shop", "claim-000123")
	out := event(&testing.T{}, id, "shop", schemas.GrantDecided{ResultID: id, ClaimEventID: "claim-000123", BatchID: "D11-PHONE-50",
		UserID: "user-000123", Status: schemas.StatusGranted, CouponID: id, GrantSeq: 7, ClaimedAt: time.Now(), DecidedAt: time.Now()})
	b.Run("input", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			classifyInput(in)
		}
	})
	b.Run("result", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			resultOf(out)
		}
	})
}
