package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/schemas"
)

const (
	dlqTestTopic    = "promoflow.dlq"
	dlqTestClaims   = "coupon.claims"
	dlqTestOversize = 300_000
)

// dlqFixture is a kfake cluster whose dead-letter topic holds:
//   - a hand-written record without dlq headers, timestamped 3h ago, first
//     in its partition;
//   - four dead letters written by a real stream.Runner reading
//     coupon.claims: malformed_json (with a source header), invalid_utf8,
//     key_mismatch and an oversized value (truncated in the DLQ);
//   - two records built with the runtime's header constants:
//     invalid_payload from legacy.claims (not in topics.yaml) and
//     invalid_payload from coupon.grants.
type dlqFixture struct {
	brokers []string
	adm     *kadm.Client
	topo    *topology.File
	// byReason indexes the runner's and the hand-built dead letters by
	// reason (and the headerless one by dlqNoHeaders); bySource the
	// hand-built ones by source topic.
	byReason map[string]*dlqRecord
	bySource map[string]*dlqRecord
	// sources are the records the runner dead-lettered, by key.
	sources map[string]*kgo.Record
}

func produceSync(t *testing.T, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(testenv.Context(t, 20*time.Second), recs...).FirstErr(); err != nil {
		t.Fatalf("producing: %v", err)
	}
}

func endOffsets(t *testing.T, adm *kadm.Client, topic string) kadm.ListedOffsets {
	t.Helper()
	ends, err := adm.ListEndOffsets(testenv.Context(t, 10*time.Second), topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("listing end offsets of %s: %v", topic, err)
	}
	return ends
}

func totalOffsets(l kadm.ListedOffsets) int64 {
	var n int64
	l.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// deadLetterLike builds a dead letter of src exactly as the runtime writes
// one (stream.Runner.deadRecord), with the runtime's header constants.
func deadLetterLike(src *kgo.Record, reason, detail, stage string) *kgo.Record {
	headers := append([]kgo.RecordHeader(nil), src.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: stream.HeaderDLQReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: stream.HeaderDLQDetail, Value: []byte(detail)},
		kgo.RecordHeader{Key: stream.HeaderDLQStage, Value: []byte(stage)},
		kgo.RecordHeader{Key: stream.HeaderDLQSourceTopic, Value: []byte(src.Topic)},
		kgo.RecordHeader{Key: stream.HeaderDLQSourcePartition, Value: []byte(strconv.Itoa(int(src.Partition)))},
		kgo.RecordHeader{Key: stream.HeaderDLQSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
		kgo.RecordHeader{Key: stream.HeaderDLQAt, Value: []byte(time.Now().UTC().Format(time.RFC3339Nano))},
	)
	return &kgo.Record{Topic: dlqTestTopic, Key: src.Key, Value: src.Value, Headers: headers}
}

func newDLQFixture(t *testing.T) *dlqFixture {
	t.Helper()
	brokers, adm := testenv.KafkaWithTopics(t)
	topo, err := topology.Load()
	if err != nil {
		t.Fatal(err)
	}
	f := &dlqFixture{brokers: brokers, adm: adm, topo: topo, byReason: map[string]*dlqRecord{}, bySource: map[string]*dlqRecord{}, sources: map[string]*kgo.Record{}}

	// Written by hand, long ago: first in its partition so --since can
	// leave it out.
	produceSync(t, brokers, &kgo.Record{Topic: dlqTestTopic, Key: []byte("manual"),
		Value: []byte("\x1b[31mhand-written\x00 \u202e"), Timestamp: time.Now().Add(-3 * time.Hour)})

	env, err := schemas.New("claim-ok", "shop", time.Now(), schemas.ClaimRequested{BatchID: "B", UserID: "u5"})
	if err != nil {
		t.Fatal(err)
	}
	good, _ := env.Encode()
	env3, _ := schemas.New("claim-u3", "shop", time.Now(), schemas.ClaimRequested{BatchID: "B", UserID: "u3"})
	mismatched, _ := env3.Encode()
	src := []*kgo.Record{
		{Topic: dlqTestClaims, Key: []byte("u1"), Value: []byte(`{"event_id": "x", "type": `),
			Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("00-abc-def-01")}}},
		{Topic: dlqTestClaims, Key: []byte("u2"), Value: []byte{0xff, 0xfe, '{', '}'}},
		{Topic: dlqTestClaims, Key: []byte("wrong-key"), Value: mismatched},
		{Topic: dlqTestClaims, Key: []byte("u4"), Value: bytes.Repeat([]byte("A"), dlqTestOversize)},
		{Topic: dlqTestClaims, Key: []byte("u5"), Value: good},
	}
	produceSync(t, brokers, src...)
	for _, r := range src {
		f.sources[string(r.Key)] = r
	}

	// A real runner dead-letters the four bad records.
	claimV1 := schemas.TypeVersion{Type: schemas.TypeCouponClaimRequested, Version: 1}.String()
	r, err := stream.New(stream.Config{Brokers: brokers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, stream.Stage{
		Name: "coupon", Group: testenv.Name("dlq-test"), Reads: []string{dlqTestClaims}, Handles: []string{claimV1, schemas.TypeVersion{Type: schemas.TypeCouponIssueRequested, Version: 1}.String()},
		Handler: stream.HandlerFunc(func(context.Context, *stream.Batch) (stream.Result, error) { return stream.Result{}, nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(15 * time.Second)
	for totalOffsets(endOffsets(t, adm, dlqTestTopic)) < 5 {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the runner dead-lettered %d records, want 4", totalOffsets(endOffsets(t, adm, dlqTestTopic))-1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}

	legacy := &kgo.Record{Topic: "legacy.claims", Partition: 2, Offset: 77, Key: []byte("u6"), Value: []byte(`{"legacy":true}`)}
	grants := &kgo.Record{Topic: "coupon.grants", Partition: 1, Offset: 5, Key: []byte("u7"), Value: []byte(`{"event_id":"g"}`)}
	produceSync(t, brokers,
		deadLetterLike(legacy, string(schemas.ReasonInvalidPayload), "payload: missing batch_id", "legacy"),
		deadLetterLike(grants, string(schemas.ReasonInvalidPayload), "payload: status", "sink-mysql"),
	)

	err = readDLQ(testenv.Context(t, 20*time.Second), brokers, nil, dlqTestTopic, dlqFilter{}, func(d *dlqRecord) bool {
		switch {
		case d.SourceTopic == "legacy.claims" || d.SourceTopic == "coupon.grants":
			f.bySource[d.SourceTopic] = d
		default:
			f.byReason[d.reasonLabel()] = d
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"malformed_json", "invalid_utf8", "key_mismatch", "too_large", dlqNoHeaders} {
		if f.byReason[want] == nil {
			t.Fatalf("fixture: no dead letter with reason %s (have %v)", want, keys(f.byReason))
		}
	}
	if len(f.bySource) != 2 {
		t.Fatalf("fixture: hand-built dead letters missing: %v", keys(f.bySource))
	}
	return f
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func (f *dlqFixture) list(t *testing.T, opts dlqListOptions) (dlqSummary, string) {
	t.Helper()
	opts.Topic = dlqTestTopic
	var out bytes.Buffer
	sum, err := listDLQ(testenv.Context(t, 20*time.Second), f.brokers, opts, &out)
	if err != nil {
		t.Fatalf("listDLQ(%+v): %v\noutput:\n%s", opts, err, out.String())
	}
	return sum, out.String()
}

func (f *dlqFixture) replay(t *testing.T, opts dlqReplayOptions) (dlqReplayReport, string, error) {
	t.Helper()
	opts.Topic = dlqTestTopic
	opts.Topology = f.topo
	var out bytes.Buffer
	rep, err := replayDLQ(testenv.Context(t, 20*time.Second), f.brokers, opts, &out)
	return rep, out.String(), err
}

// consumeRange reads topic from the offsets in from until it has n records
// (or 10 s pass) and returns them.
func consumeRange(t *testing.T, brokers []string, topic string, from kadm.ListedOffsets, n int) []*kgo.Record {
	t.Helper()
	at := map[int32]kgo.Offset{}
	from.Each(func(o kadm.ListedOffset) { at[o.Partition] = kgo.NewOffset().At(o.Offset) })
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(t, 10*time.Second)
	var out []*kgo.Record
	for len(out) < n && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func TestDLQ(t *testing.T) {
	f := newDLQFixture(t)

	t.Run("list", func(t *testing.T) {
		sum, out := f.list(t, dlqListOptions{})
		if sum.Read != 7 || sum.Listed != 7 {
			t.Fatalf("read %d, listed %d; want 7 and 7\n%s", sum.Read, sum.Listed, out)
		}
		want := map[string]int{"malformed_json": 1, "invalid_utf8": 1, "key_mismatch": 1, "too_large": 1, "invalid_payload": 2, dlqNoHeaders: 1}
		for r, n := range want {
			if sum.ByReason[r] != n {
				t.Errorf("summary counts %d %s, want %d (%v)", sum.ByReason[r], r, n, sum.ByReason)
			}
			if !strings.Contains(out, "  "+r) || !strings.Contains(out, " "+strconv.Itoa(n)+"\n") {
				t.Errorf("summary does not show %s %d:\n%s", r, n, out)
			}
		}
		if !strings.Contains(out, "7 dead letters listed (7 read from promoflow.dlq)") || !strings.Contains(out, "by reason:") {
			t.Errorf("no summary:\n%s", out)
		}
		lines := 0
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, " key=") {
				lines++
				if len([]rune(l)) > 400 {
					t.Errorf("line of %d characters: %.120s…", len([]rune(l)), l)
				}
			}
		}
		if lines != 7 {
			t.Errorf("%d record lines, want 7:\n%s", lines, out)
		}
		// Each dead letter's line names its stage, reason and source.
		m := f.byReason["malformed_json"]
		wantLine := strconv.Itoa(int(m.Partition)) + "@" + strconv.FormatInt(m.Offset, 10)
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, wantLine+" ") {
				found = true
				src := "coupon.claims/" + strconv.Itoa(int(m.SourcePartition)) + "@" + strconv.FormatInt(m.SourceOffset, 10)
				for _, s := range []string{" coupon ", " malformed_json ", src, `key="u1"`, `value="{\"event_id\": \"x\", \"type\": "`, "detail="} {
					if !strings.Contains(l, s) {
						t.Errorf("line %q lacks %q", l, s)
					}
				}
			}
		}
		if !found {
			t.Errorf("no line starts with %s:\n%s", wantLine, out)
		}
		// Untrusted bytes are escaped: no terminal escape, NUL, bidi
		// override or invalid UTF-8 reaches the output.
		for _, bad := range []string{"\x1b", "\x00", "\u202e", "\xff"} {
			if strings.Contains(out, bad) {
				t.Errorf("output contains raw %q", bad)
			}
		}
		for _, esc := range []string{`\u001b[31mhand-written\u0000 \u202e`, `\xff\xfe{}`, "truncated(300000 bytes)", "(no dlq headers)"} {
			if !strings.Contains(out, esc) {
				t.Errorf("output lacks %q:\n%s", esc, out)
			}
		}
	})

	t.Run("filters", func(t *testing.T) {
		sum, out := f.list(t, dlqListOptions{Filter: dlqFilter{Reasons: []string{"malformed_json", "invalid_utf8"}}})
		if sum.Listed != 2 || sum.ByReason["malformed_json"] != 1 || sum.ByReason["invalid_utf8"] != 1 || sum.Read != 7 {
			t.Errorf("reason filter: %+v\n%s", sum, out)
		}
		sum, out = f.list(t, dlqListOptions{Filter: dlqFilter{SourceTopics: []string{"coupon.grants"}}})
		if sum.Listed != 1 || !strings.Contains(out, " sink-mysql ") {
			t.Errorf("source-topic filter: %+v\n%s", sum, out)
		}
		sum, out = f.list(t, dlqListOptions{Filter: dlqFilter{SourceTopics: []string{"coupon.claims"}, Reasons: []string{string(schemas.ReasonInvalidPayload)}}})
		if sum.Listed != 0 || !strings.Contains(out, "0 dead letters listed") {
			t.Errorf("combined filters: %+v\n%s", sum, out)
		}
		sum, _ = f.list(t, dlqListOptions{Filter: dlqFilter{Reasons: []string{dlqNoHeaders}}})
		if sum.Listed != 1 {
			t.Errorf("the headerless record is not selectable by %q: %+v", dlqNoHeaders, sum)
		}
		sum, out = f.list(t, dlqListOptions{Limit: 2})
		if sum.Listed != 2 || !sum.Limited || !strings.Contains(out, "stopped at --limit 2") {
			t.Errorf("limit: %+v\n%s", sum, out)
		}
		sum, out = f.list(t, dlqListOptions{Filter: dlqFilter{Since: time.Hour}})
		if sum.Listed != 6 || sum.ByReason[dlqNoHeaders] != 0 {
			t.Errorf("--since 1h listed %d (%v), want the 6 recent ones\n%s", sum.Listed, sum.ByReason, out)
		}
	})

	t.Run("json", func(t *testing.T) {
		_, out := f.list(t, dlqListOptions{JSON: true})
		var recs []dlqJSON
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var j dlqJSON
			if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
				t.Fatalf("line does not parse: %v: %.200s", err, sc.Text())
			}
			recs = append(recs, j)
		}
		if len(recs) != 7 {
			t.Fatalf("%d JSON lines, want 7 (and nothing else)", len(recs))
		}
		for _, j := range recs {
			switch {
			case j.Reason == "invalid_utf8":
				if j.ValueEncoding != "base64" {
					t.Errorf("invalid UTF-8 value encoded as %s", j.ValueEncoding)
				}
				if b, err := base64.StdEncoding.DecodeString(j.Value); err != nil || !bytes.Equal(b, []byte{0xff, 0xfe, '{', '}'}) {
					t.Errorf("invalid UTF-8 value %q does not decode to the original", j.Value)
				}
			case j.Reason == "malformed_json":
				if j.ValueEncoding != "utf8" || j.Value != `{"event_id": "x", "type": ` || j.Key != "u1" || j.Stage != "coupon" || j.SourceTopic != dlqTestClaims || j.SourcePartition == nil || j.SourceOffset == nil || j.Detail == "" || j.At == "" {
					t.Errorf("malformed_json record: %+v", j)
				}
				if len(j.Headers) != 1 || j.Headers[0].Key != "traceparent" || j.Headers[0].Value != "00-abc-def-01" {
					t.Errorf("source headers: %+v (the dlq headers must not be among them)", j.Headers)
				}
			case j.Reason == "too_large":
				if !j.Truncated || j.OriginalSize != dlqTestOversize || len(j.Value) >= dlqTestOversize {
					t.Errorf("oversized record: truncated %v, original size %d, value %d bytes", j.Truncated, j.OriginalSize, len(j.Value))
				}
			case !j.DLQHeaders:
				if j.Reason != "" || j.SourceTopic != "" || j.SourcePartition != nil || j.SourceOffset != nil || j.Key != "manual" {
					t.Errorf("headerless record: %+v", j)
				}
			}
		}
	})

	t.Run("replay refuses without a selection", func(t *testing.T) {
		end := totalOffsets(endOffsets(t, f.adm, dlqTestClaims))
		_, _, err := f.replay(t, dlqReplayOptions{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), "selection") {
			t.Errorf("replay without a selection: %v, want a usage error", err)
		}
		if _, _, err := f.replay(t, dlqReplayOptions{All: true, Filter: dlqFilter{Reasons: []string{"x"}}}); !errors.As(err, &ue) {
			t.Errorf("--all with --reason: %v, want a usage error", err)
		}
		if _, _, err := f.replay(t, dlqReplayOptions{All: true, To: "no.such.topic"}); !errors.As(err, &ue) {
			t.Errorf("--to a topic topics.yaml does not declare: %v, want a usage error", err)
		}
		if got := totalOffsets(endOffsets(t, f.adm, dlqTestClaims)); got != end {
			t.Errorf("refused replays produced %d records", got-end)
		}
	})

	t.Run("replay dry run", func(t *testing.T) {
		before := totalOffsets(endOffsets(t, f.adm, dlqTestClaims)) + totalOffsets(endOffsets(t, f.adm, "coupon.grants"))
		rep, out, err := f.replay(t, dlqReplayOptions{All: true, DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Selected != 7 || rep.Replayed[dlqTestClaims] != 3 || rep.Replayed["coupon.grants"] != 1 || len(rep.Refused) != 3 {
			t.Errorf("dry run: %+v\n%s", rep, out)
		}
		if !strings.Contains(out, "dry run: would replay 4 of 7 selected dead letters: coupon.claims 3, coupon.grants 1 (nothing produced)") {
			t.Errorf("dry-run summary missing:\n%s", out)
		}
		after := totalOffsets(endOffsets(t, f.adm, dlqTestClaims)) + totalOffsets(endOffsets(t, f.adm, "coupon.grants"))
		if after != before {
			t.Errorf("dry run produced %d records", after-before)
		}
	})

	t.Run("replay refuses truncated and undeclared sources", func(t *testing.T) {
		before := endOffsets(t, f.adm, dlqTestClaims)
		rep, out, err := f.replay(t, dlqReplayOptions{Filter: dlqFilter{Reasons: []string{"too_large"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Refused) != 1 || len(rep.Replayed) != 0 || !strings.Contains(out, "truncated") {
			t.Errorf("truncated record: %+v\n%s", rep, out)
		}
		// Even to an explicit topic.
		rep, _, _ = f.replay(t, dlqReplayOptions{Filter: dlqFilter{Reasons: []string{"too_large"}}, To: dlqTestClaims})
		if len(rep.Refused) != 1 || len(rep.Replayed) != 0 {
			t.Errorf("truncated record with --to: %+v", rep)
		}
		rep, out, err = f.replay(t, dlqReplayOptions{Filter: dlqFilter{SourceTopics: []string{"legacy.claims"}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Refused) != 1 || len(rep.Replayed) != 0 || !strings.Contains(out, "not declared in topics.yaml") {
			t.Errorf("undeclared source topic: %+v\n%s", rep, out)
		}
		if got := totalOffsets(endOffsets(t, f.adm, dlqTestClaims)); got != totalOffsets(before) {
			t.Errorf("refused replays produced %d records", got-totalOffsets(before))
		}
		// --to names a declared topic: accepted (dry, to leave the topic be).
		rep, _, err = f.replay(t, dlqReplayOptions{Filter: dlqFilter{SourceTopics: []string{"legacy.claims"}}, To: dlqTestClaims, DryRun: true})
		if err != nil || len(rep.Refused) != 0 || rep.Replayed[dlqTestClaims] != 1 {
			t.Errorf("undeclared source with --to: %+v, %v", rep, err)
		}
		// An --offsets entry that is not in the topic is reported.
		rep, out, _ = f.replay(t, dlqReplayOptions{Filter: dlqFilter{Offsets: map[int32]map[int64]bool{0: {999: true}}}, DryRun: true})
		if len(rep.Refused) != 1 || !strings.Contains(out, "0@999") {
			t.Errorf("missing offset: %+v\n%s", rep, out)
		}
	})

	t.Run("replay selection", func(t *testing.T) {
		m, k := f.byReason["malformed_json"], f.byReason["key_mismatch"]
		before := endOffsets(t, f.adm, dlqTestClaims)
		grantsBefore := totalOffsets(endOffsets(t, f.adm, "coupon.grants"))
		sel := map[int32]map[int64]bool{}
		for _, d := range []*dlqRecord{m, k} {
			if sel[d.Partition] == nil {
				sel[d.Partition] = map[int64]bool{}
			}
			sel[d.Partition][d.Offset] = true
		}
		rep, out, err := f.replay(t, dlqReplayOptions{Filter: dlqFilter{Offsets: sel}})
		if err != nil {
			t.Fatalf("replay: %v\n%s", err, out)
		}
		if rep.Selected != 2 || rep.Replayed[dlqTestClaims] != 2 || len(rep.Replayed) != 1 || len(rep.Refused) != 0 {
			t.Fatalf("replay report %+v\n%s", rep, out)
		}
		if !strings.Contains(out, "replayed 2 of 2 selected dead letters: coupon.claims 2") {
			t.Errorf("summary missing:\n%s", out)
		}
		got := consumeRange(t, f.brokers, dlqTestClaims, before, 2)
		if len(got) != 2 {
			t.Fatalf("read %d replayed records, want 2", len(got))
		}
		if n := totalOffsets(endOffsets(t, f.adm, dlqTestClaims)) - totalOffsets(before); n != 2 {
			t.Errorf("%d records produced to %s, want exactly 2", n, dlqTestClaims)
		}
		if n := totalOffsets(endOffsets(t, f.adm, "coupon.grants")) - grantsBefore; n != 0 {
			t.Errorf("%d records produced to coupon.grants", n)
		}
		for _, r := range got {
			orig := f.sources[string(r.Key)]
			if orig == nil || (string(r.Key) != "u1" && string(r.Key) != "wrong-key") {
				t.Errorf("replayed a record with key %q, not one of the selection", r.Key)
				continue
			}
			if !bytes.Equal(r.Value, orig.Value) {
				t.Errorf("key %s: value %q, want the original %q", r.Key, r.Value, orig.Value)
			}
			if len(r.Headers) != len(orig.Headers) {
				t.Errorf("key %s: headers %v, want the original %v", r.Key, r.Headers, orig.Headers)
			}
			for i, h := range r.Headers {
				if strings.HasPrefix(h.Key, "promoflow.dlq.") {
					t.Errorf("key %s: replayed with dlq header %s", r.Key, h.Key)
				} else if i < len(orig.Headers) && (h.Key != orig.Headers[i].Key || !bytes.Equal(h.Value, orig.Headers[i].Value)) {
					t.Errorf("key %s: header %s=%q, want %s=%q", r.Key, h.Key, h.Value, orig.Headers[i].Key, orig.Headers[i].Value)
				}
			}
			// Same key, same partitioner: the replay lands where the
			// original did, behind the same user's other events.
			d := m
			if string(r.Key) == "wrong-key" {
				d = k
			}
			if r.Partition != d.SourcePartition {
				t.Errorf("key %s: replayed to partition %d, the original was in %d", r.Key, r.Partition, d.SourcePartition)
			}
		}
	})
}

// TestDLQHeaderPrefix guards the prefix replay strips: every header the
// runtime adds must start with it.
func TestDLQHeaderPrefix(t *testing.T) {
	for _, h := range []string{stream.HeaderDLQReason, stream.HeaderDLQDetail, stream.HeaderDLQStage, stream.HeaderDLQSourceTopic,
		stream.HeaderDLQSourcePartition, stream.HeaderDLQSourceOffset, stream.HeaderDLQAt, stream.HeaderDLQTruncated} {
		if !strings.HasPrefix(h, dlqHeaderPrefix) {
			t.Errorf("header %s does not start with %s", h, dlqHeaderPrefix)
		}
	}
}

func TestDLQParseRecord(t *testing.T) {
	// Dead-lettered twice: the runtime's headers (last) win, and the
	// earlier dlq headers are not kept as source headers.
	r := &kgo.Record{Partition: 1, Offset: 9, Headers: []kgo.RecordHeader{
		{Key: "h", Value: []byte("v")},
		{Key: stream.HeaderDLQReason, Value: []byte("old")},
		{Key: stream.HeaderDLQSourcePartition, Value: []byte("x")},
		{Key: stream.HeaderDLQReason, Value: []byte("new")},
		{Key: stream.HeaderDLQSourceOffset, Value: []byte("12")},
	}}
	d := parseDLQRecord(r)
	if d.Reason != "new" || d.SourcePartition != -1 || d.SourceOffset != 12 || !d.HasHeaders || len(d.Headers) != 1 || d.Headers[0].Key != "h" {
		t.Errorf("parsed %+v", d)
	}
	if got := d.source(); got != "?/?@12" {
		t.Errorf("source %q", got)
	}
}

func TestDLQEscape(t *testing.T) {
	cases := []struct {
		in   string
		max  int
		want string
	}{
		{"plain", 80, "plain"},
		{"a\"b\\c", 80, `a\"b\\c`},
		{"\x1b[2J\x00\n\t", 80, `\u001b[2J\u0000\n\t`},
		{"\xff\xfeok", 80, `\xff\xfeok`},
		{"rtl\u202eevil", 80, `rtl\u202eevil`},
		{"日本語", 80, "日本語"},
		{strings.Repeat("x", 100), 10, strings.Repeat("x", 10) + "…"},
		{"ab\x00", 4, "ab…"},
	}
	for _, c := range cases {
		if got := dlqEscape([]byte(c.in), c.max, true); got != c.want {
			t.Errorf("dlqEscape(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

func TestDLQParseOffsets(t *testing.T) {
	got, err := parseDLQOffsets("0:12, 2:40,0:13")
	if err != nil || len(got) != 2 || !got[0][12] || !got[0][13] || !got[2][40] {
		t.Errorf("parseDLQOffsets = %v, %v", got, err)
	}
	for _, bad := range []string{"", "1", "a:1", "1:b", "-1:2", "1:-2", ","} {
		if _, err := parseDLQOffsets(bad); err == nil {
			t.Errorf("parseDLQOffsets(%q) accepted", bad)
		}
	}
}

// TestDLQCommandArguments runs the command as ops would, with wrong
// arguments: each is refused with exit status 2 and the usage, before any
// connection is made.
func TestDLQCommandArguments(t *testing.T) {
	clearConfigEnv(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"dlq"}, "want one action"},
		{[]string{"dlq", "purge"}, `unknown dlq action "purge"`},
		{[]string{"dlq", "replay", "--brokers", "127.0.0.1:1"}, "replay needs a selection"},
		{[]string{"dlq", "replay", "--brokers", "127.0.0.1:1", "--all", "--reason", "x"}, "cannot be combined"},
		{[]string{"dlq", "replay", "--brokers", "127.0.0.1:1", "--offsets", "0-1"}, "--offsets"},
		{[]string{"dlq", "replay", "--brokers", "127.0.0.1:1", "--all", "--to", "nowhere"}, "topics.yaml does not declare it"},
		{[]string{"dlq", "replay", "--brokers", "127.0.0.1:1", "--all", "--json"}, "--json does not apply to dlq replay"},
		{[]string{"dlq", "list", "--brokers", "127.0.0.1:1", "--dry-run"}, "--dry-run does not apply to dlq list"},
		{[]string{"dlq", "list", "--since", "-1h"}, "--since"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		if code := runMain(c.args, &out, &errOut); code != 2 {
			t.Errorf("%q exited %d, want 2; stderr:\n%s", c.args, code, errOut.String())
			continue
		}
		if !strings.Contains(errOut.String(), c.want) || !strings.Contains(errOut.String(), "Usage: promoflow dlq") {
			t.Errorf("%q: stderr lacks %q and the usage:\n%s", c.args, c.want, errOut.String())
		}
	}
}
