package producers_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

func TestProduceLinesMixedInput(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 20*time.Second)

	valid := func(id, user string) string { return envelopeJSON(t, id, testApp, claim(user, "b-1")) }
	// A valid envelope padded past the 64 KiB event limit but short enough
	// to be read whole: refused by validation.
	big := envelopeJSON(t, "big-1", testApp, schemas.ClaimRequested{BatchID: "b-1", UserID: "user-9", Channel: "x"})
	big = strings.Replace(big, `"payload"`, strings.Repeat(" ", schemas.DefaultMaxBytes)+`"payload"`, 1)
	unknown := strings.Replace(valid("unk-1", "user-1"), schemas.TypeCouponClaimRequested, "coupon.claim.vanished", 1)
	mismatch := strings.Replace(valid("mis-1", "user-1"), `"key":"user-1"`, `"key":"user-2"`, 1)
	badPayload := strings.Replace(valid("bad-1", "user-1"), `"user_id":"user-1"`, `"user_id":"user 1"`, 1)

	lines := []string{
		/* 1 */ "# claims exported from the shop, 2025-11-11",
		/* 2 */ valid("ok-1", "user-1"),
		/* 3 */ "",
		/* 4 */ `{"event_id": "broken-1", "type":`,
		/* 5 */ envelopeJSON(t, "ok-2", testApp, batch("b-1")),
		/* 6 */ `{"event_id":"bad-utf8-` + "\xff\xfe" + `"}`,
		/* 7 */ `{"event_id":"huge-1","pad":"` + strings.Repeat("a", 300<<10) + `"}`,
		/* 8 */ big,
		/* 9 */ unknown,
		/* 10 */ envelopeJSON(t, "other-1", "other-app", claim("user-1", "b-1")),
		/* 11 */ badPayload,
		/* 12 */ mismatch,
		/* 13 */ valid("ok-3", "user-3") + "\r",
		/* 14 */ "   \t",
		/* 15 */ "   " + valid("ok-4", "user-4"),
		/* 16 */ "  # indented comment",
		/* 17 */ valid("ok-5", "user-5"), // no trailing newline
	}
	input := strings.Join(lines, "\n")

	rep, err := producers.ProduceLines(ctx, p, strings.NewReader(input), producers.LinesOptions{})
	if err != nil {
		t.Fatalf("ProduceLines: %v", err)
	}
	wantRejections := []struct {
		line   int
		reason schemas.Reason
	}{
		{4, schemas.ReasonMalformed},
		{6, schemas.ReasonInvalidUTF8},
		{7, schemas.ReasonTooLarge},
		{8, schemas.ReasonTooLarge},
		{9, schemas.ReasonUnknownType},
		{10, producers.ReasonWrongApp},
		{11, schemas.ReasonInvalidPayload},
		{12, schemas.ReasonKeyMismatch},
	}
	if rep.Read != 13 || rep.Skipped != 4 || rep.Sent != 5 || rep.Acked != 5 || rep.Rejected != len(wantRejections) || rep.Failed != 0 {
		t.Errorf("report read %d skipped %d sent %d acked %d rejected %d failed %d, want 13 4 5 5 %d 0",
			rep.Read, rep.Skipped, rep.Sent, rep.Acked, rep.Rejected, rep.Failed, len(wantRejections))
	}
	if len(rep.Rejections) != len(wantRejections) {
		t.Fatalf("rejections %+v, want %d", rep.Rejections, len(wantRejections))
	}
	for i, w := range wantRejections {
		got := rep.Rejections[i]
		if got.Line != w.line || got.Reason != w.reason || got.Detail == "" {
			t.Errorf("rejection %d: line %d %s %q, want line %d %s", i, got.Line, got.Reason, got.Detail, w.line, w.reason)
		}
	}
	for _, r := range rep.Rejections {
		t.Logf("%v", &r)
	}
	if got := rep.Rejections[5].EventID; got != "other-1" {
		t.Errorf("wrong_app rejection names event %q, want other-1", got)
	}

	want := map[string]string{"ok-1": "user-1", "ok-2": "b-1", "ok-3": "user-3", "ok-4": "user-4", "ok-5": "user-5"}
	recs := consumeAll(t, addrs, allTopics(t)...)
	if len(recs) != len(want) {
		t.Fatalf("consumed %d records, want %d", len(recs), len(want))
	}
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatalf("decoding %s: %v", r.Value, err)
		}
		key, ok := want[env.EventID]
		if !ok {
			t.Fatalf("unexpected or duplicate event %q", env.EventID)
		}
		delete(want, env.EventID)
		if string(r.Key) != key {
			t.Errorf("%s keyed %q, want %q", env.EventID, r.Key, key)
		}
		if header(r, producers.HeaderType) != env.Type {
			t.Errorf("%s: type header %q", env.EventID, header(r, producers.HeaderType))
		}
	}
}

func TestProduceLinesTopicOverride(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)
	input := envelopeJSON(t, "c-1", testApp, claim("user-1", "b-1")) + "\n" +
		envelopeJSON(t, "b-1", testApp, batch("b-1")) + "\n"

	if _, err := producers.ProduceLines(ctx, p, strings.NewReader(input), producers.LinesOptions{Topic: "coupon.nowhere"}); !errors.Is(err, producers.ErrUnknownTopic) {
		t.Fatalf("undeclared topic: %v, want ErrUnknownTopic", err)
	}
	rep, err := producers.ProduceLines(ctx, p, strings.NewReader(input), producers.LinesOptions{Topic: "coupon.claims"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Acked != 1 || rep.Rejected != 1 || rep.Rejections[0].Line != 2 || rep.Rejections[0].Reason != schemas.ReasonWrongTopic {
		t.Fatalf("report %+v, want line 2 rejected as wrong_topic", rep)
	}
	if n := len(consumeAll(t, addrs, allTopics(t)...)); n != 1 {
		t.Fatalf("consumed %d records, want 1", n)
	}
}

func TestProduceLinesAllowAnyApp(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)
	input := envelopeJSON(t, "c-1", "app-a", claim("user-1", "b-1")) + "\n" +
		envelopeJSON(t, "c-1", "app-b", claim("user-1", "b-1")) + "\n"
	rep, err := producers.ProduceLines(ctx, p, strings.NewReader(input), producers.LinesOptions{AllowAnyApp: true})
	if err != nil || rep.Acked != 2 || rep.Rejected != 0 {
		t.Fatalf("report %+v, err %v; want both lines sent", rep, err)
	}
}

func TestProduceLinesStopOnError(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)
	input := strings.Join([]string{
		envelopeJSON(t, "c-1", testApp, claim("user-1", "b-1")),
		"# fine",
		"not json",
		envelopeJSON(t, "c-2", testApp, claim("user-2", "b-1")),
	}, "\n")
	rep, err := producers.ProduceLines(ctx, p, strings.NewReader(input), producers.LinesOptions{StopOnError: true})
	var le *producers.LineError
	if !errors.As(err, &le) || le.Line != 3 || le.Reason != schemas.ReasonMalformed {
		t.Fatalf("error %v, want a *LineError for line 3", err)
	}
	if rep.Read != 2 || rep.Acked != 1 || rep.Rejected != 1 {
		t.Fatalf("report %+v, want 2 read, 1 acked, 1 rejected", rep)
	}
}

func TestProduceLinesReportsFailedSends(t *testing.T) {
	_, addrs := testenv.Kafka(t, 1) // no topics: every send fails
	p := newProducer(t, addrs, producers.WithClientOpts(kgo.UnknownTopicRetries(0)))
	ctx := testenv.Context(t, 20*time.Second)
	input := envelopeJSON(t, "c-1", testApp, claim("user-1", "b-1")) + "\n" +
		envelopeJSON(t, "c-2", testApp, claim("user-2", "b-1")) + "\n"
	rep, err := producers.ProduceLines(ctx, p, strings.NewReader(input), producers.LinesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 2 || rep.Failed != 2 || rep.Acked != 0 || len(rep.Rejections) != 2 {
		t.Fatalf("report %+v, want 2 sent and failed", rep)
	}
	for i, r := range rep.Rejections {
		if r.Line != i+1 || r.Reason != producers.ReasonSendFailed || !errors.Is(&r, kerr.UnknownTopicOrPartition) {
			t.Errorf("rejection %+v (%v), want line %d send_failed UNKNOWN_TOPIC_OR_PARTITION", r, r.Unwrap(), i+1)
		}
	}
}

func TestProduceLinesProgress(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 20*time.Second)

	pr, pw := io.Pipe()
	go func() {
		for i := range 10 {
			fmt.Fprintln(pw, envelopeJSON(t, fmt.Sprintf("c-%d", i), testApp, claim("user-1", "b-1")))
			time.Sleep(15 * time.Millisecond)
		}
		pw.Close()
	}()
	var (
		mu       sync.Mutex
		calls    []producers.LinesProgress
		returned bool
	)
	rep, err := producers.ProduceLines(ctx, p, pr, producers.LinesOptions{
		ProgressEvery: 20 * time.Millisecond,
		Progress: func(lp producers.LinesProgress) {
			mu.Lock()
			defer mu.Unlock()
			if returned {
				t.Error("Progress called after ProduceLines returned")
			}
			calls = append(calls, lp)
		},
	})
	mu.Lock()
	returned = true
	mu.Unlock()
	if err != nil || rep.Acked != 10 {
		t.Fatalf("report %+v, err %v", rep, err)
	}
	if len(calls) < 1 {
		t.Fatalf("Progress called %d times over ~150ms at 20ms, want some", len(calls))
	}
	if !slices.IsSortedFunc(calls, func(a, b producers.LinesProgress) int { return a.Read - b.Read }) {
		t.Errorf("progress went backwards: %+v", calls)
	}
	for _, c := range calls {
		if c.Acked > c.Sent || c.Sent > c.Read || c.Rate < 0 {
			t.Errorf("inconsistent progress %+v", c)
		}
	}
}

func TestProduceLinesKeepsAtMost1000Rejections(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)
	rep, err := producers.ProduceLines(ctx, p, strings.NewReader(strings.Repeat("{\n", 1500)), producers.LinesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 1500 || len(rep.Rejections) != producers.MaxRejectionsKept || rep.Rejections[999].Line != 1000 {
		t.Fatalf("rejected %d, kept %d, want 1500 and %d", rep.Rejected, len(rep.Rejections), producers.MaxRejectionsKept)
	}
}

func TestProduceLinesStopsWhenContextEnds(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx, cancel := context.WithCancel(testenv.Context(t, 10*time.Second))

	pr, pw := io.Pipe()
	go func() {
		for i := range 3 {
			fmt.Fprintln(pw, envelopeJSON(t, fmt.Sprintf("c-%d", i), testApp, claim("user-1", "b-1")))
		}
		cancel()
		fmt.Fprintln(pw, envelopeJSON(t, "c-late", testApp, claim("user-1", "b-1")))
		pw.Close()
	}()
	rep, err := producers.ProduceLines(ctx, p, pr, producers.LinesOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if rep.Read != rep.Rejected+rep.Sent || rep.Sent != rep.Acked+rep.Failed || rep.Read > 4 {
		t.Fatalf("report %+v does not add up", rep)
	}
}
