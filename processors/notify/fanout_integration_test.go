package notify

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// fanoutUsers is the size of the million-user test's crowd
// (PROMOFLOW_FANOUT_USERS overrides it, e.g. for a quick run).
func fanoutUsers(t *testing.T) int {
	if s := os.Getenv("PROMOFLOW_FANOUT_USERS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("PROMOFLOW_FANOUT_USERS=%q", s)
		}
		return n
	}
	return 1_000_000
}

// TestIntegrationFanoutMillion fans a campaign out to a generated crowd of
// a million users through three sender members while the sender fails
// some shards (whole calls, and some users of others), and one member is
// stopped half-way: every user is delivered exactly once. A second request
// for the same campaign then sends nothing.
func TestIntegrationFanoutMillion(t *testing.T) {
	n := fanoutUsers(t)
	h := newHarness(t, map[string][2]int{"all": {0, n}, "probe": {0, 1000}})
	s := newCountingSender(n)
	s.fail = func(_ string, seq int64, attempt int32, msgs []Message) ([]error, error) {
		switch {
		case seq%7 == 3 && attempt <= 2:
			return nil, errors.New("gateway timeout (injected)")
		case seq%11 == 5 && attempt == 1:
			errs := make([]error, len(msgs))
			for i := 0; i < len(msgs); i += 2 {
				errs[i] = errors.New("throttled (injected)")
			}
			return errs, nil
		}
		return nil, nil
	}
	h.planner()
	stops := []func(){h.sender(s), h.sender(s), h.sender(s)}
	start := time.Now()
	h.request("spring-1", "all", "spring")

	// Stop one member once a third is sent: its partitions move.
	for {
		p, _ := h.store.Progress(context.Background(), "spring-1")
		if p.Sent >= int64(n)/3 || p.Done() {
			break
		}
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("no progress: %+v", p)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stops[0]()
	p := h.wait("spring-1", 10*time.Minute)
	t.Logf("%d users in %s (%.0f users/s): %+v", n, time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds(), p)

	counts := s.counts("spring-1")
	var missing, twice int
	for i, c := range counts {
		switch {
		case c == 0:
			missing++
		case c > 1:
			twice++
			if twice < 5 {
				t.Errorf("user %s delivered %d times", userName(i), c)
			}
		}
	}
	if missing > 0 || twice > 0 {
		t.Fatalf("%d users never delivered, %d delivered more than once", missing, twice)
	}
	wantShards := int64((n + 999) / 1000)
	if p.Status != StatusPlanned || p.Sent != int64(n) || p.UsersPlanned != int64(n) || p.ShardsPlanned != wantShards || p.ShardsDone != wantShards || p.Capped != 0 || p.Failed != 0 {
		t.Fatalf("progress %+v, want %d users in %d shards all sent", p, n, wantShards)
	}
	if p.Retries == 0 {
		t.Fatal("no shard was retried: the injected failures did not happen")
	}

	// The same request again plans and sends nothing; nor does a replayed
	// shard.
	calls := s.callsFor("spring-1")
	h.request("spring-1", "all", "spring")
	h.publish(TopicShards, "replay", schemas.NotifyShardPlanned{ShardID: "spring-1/3", CampaignID: "spring-1", Seq: 3, CrowdID: "all",
		Template: "spring", Users: []string{userName(3000), userName(3001)}, PlannedAt: time.Now()})
	h.request("probe-1", "probe", "flash") // a later campaign shows the repeat was consumed
	h.wait("probe-1", time.Minute)
	if got := s.callsFor("spring-1") - calls; got != 0 {
		t.Fatalf("%d sender calls for the campaign after the repeat, want none", got)
	}
	again, _ := h.store.Progress(context.Background(), "spring-1")
	if again.Sent != p.Sent || again.ShardsPlanned != p.ShardsPlanned {
		t.Fatalf("the repeat changed the campaign: %+v, was %+v", again, p)
	}
	for i, c := range s.counts("spring-1") {
		if c != 1 {
			t.Fatalf("after the repeat, user %s delivered %d times", userName(i), c)
		}
	}
}

// TestIntegrationFanoutCaps: with a cap of one notification a day, two
// campaigns to overlapping crowds reach each user of the overlap once,
// whether they run one after the other or at the same time.
func TestIntegrationFanoutCaps(t *testing.T) {
	for _, together := range []bool{false, true} {
		t.Run(map[bool]string{false: "one after the other", true: "at the same time"}[together], func(t *testing.T) {
			h := newHarness(t, map[string][2]int{"a": {0, 10_000}, "b": {5_000, 15_000}}, WithCaps(Cap{Window: 24 * time.Hour, Max: 1}, Cap{Window: time.Hour, Max: 5}))
			s := newCountingSender(15_000)
			h.planner(WithShardSize(500))
			h.sender(s)
			h.sender(s)
			h.request("cap-a", "a", "spring")
			if !together {
				h.wait("cap-a", 2*time.Minute)
			}
			h.request("cap-b", "b", "flash")
			pa, pb := h.wait("cap-a", 2*time.Minute), h.wait("cap-b", 2*time.Minute)
			ca, cb := s.counts("cap-a"), s.counts("cap-b")
			for i := range 15_000 {
				got := ca[i] + cb[i]
				inA, inB := i < 10_000, i >= 5_000
				if got != 1 || (!inA && ca[i] != 0) || (!inB && cb[i] != 0) {
					t.Fatalf("user %s: %d from a, %d from b", userName(i), ca[i], cb[i])
				}
			}
			if pa.Sent+pb.Sent != 15_000 || pa.Capped+pb.Capped != 5_000 {
				t.Fatalf("a %+v, b %+v: want 15000 sent and 5000 capped in all", pa, pb)
			}
			if !together && (pa.Capped != 0 || pb.Capped != 5_000) {
				t.Fatalf("in order: a capped %d, b capped %d; want 0 and 5000", pa.Capped, pb.Capped)
			}
		})
	}
}

// TestIntegrationFanoutRefusals: a request for an unknown template or crowd
// and a forged shard are dead-lettered with their reason, the campaign's
// status says why, and nothing is sent; a permanent failure is counted
// once and not retried.
func TestIntegrationFanoutRefusals(t *testing.T) {
	h := newHarness(t, map[string][2]int{"small": {0, 2_500}})
	s := newCountingSender(2_500)
	s.fail = func(_ string, seq int64, _ int32, msgs []Message) ([]error, error) {
		if seq != 1 {
			return nil, nil
		}
		errs := make([]error, len(msgs))
		for i := range errs {
			if i%10 == 0 {
				errs[i] = Permanent(errors.New("unsubscribed"))
			}
		}
		return errs, nil
	}
	h.planner()
	h.sender(s)
	h.request("no-tpl", "small", "nope")
	h.request("no-crowd", "missing", "spring")
	h.publish(TopicShards, "forged", schemas.NotifyShardPlanned{ShardID: "x/1", CampaignID: "x", Seq: 2, CrowdID: "small",
		Template: "spring", Users: []string{userName(1)}, PlannedAt: time.Now()})
	h.publish(TopicShards, "forged-2", schemas.NotifyShardPlanned{ShardID: "y/1", CampaignID: "x", Seq: 1, CrowdID: "small",
		Template: "spring", Users: []string{userName(2)}, PlannedAt: time.Now()})
	for c, reason := range map[string]string{"no-tpl": ReasonUnknownTemplate, "no-crowd": ReasonUnknownCrowd} {
		p := h.wait(c, time.Minute)
		if p.Status != StatusFailed || len(p.Reason) < len(reason) || p.Reason[:len(reason)] != reason {
			t.Fatalf("%s: %+v, want failed with %s", c, p, reason)
		}
	}
	// Once the crowd exists, the refused campaign may be requested again
	// under its id.
	h.crowds.add("missing", 0, 100)
	h.publish(TopicCampaigns, "req-no-crowd-again", schemas.NotifyCampaignRequested{CampaignID: "no-crowd", CrowdID: "missing", Template: "spring", RequestedAt: time.Now()})
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		p, _ := h.store.Progress(context.Background(), "no-crowd")
		if p.Status == StatusPlanned && p.Done() {
			if p.Sent != 100 || p.Reason != "" {
				t.Fatalf("no-crowd requested again: %+v", p)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no-crowd requested again: %+v", p)
		}
	}
	h.request("ok", "small", "spring")
	p := h.wait("ok", time.Minute)
	if p.Sent != 2_400 || p.Failed != 100 || p.ShardsDone != 3 || p.Retries != 0 {
		t.Fatalf("ok: %+v, want 2400 sent, 100 failed for good, 3 shards, no retries", p)
	}
	if st, _ := h.store.UserState(context.Background(), "ok", userName(1000)); st != "failed" {
		t.Fatalf("user %s: %q, want failed", userName(1000), st)
	}
	dead := h.deadLetters(4)
	want := map[string]int{ReasonUnknownTemplate: 1, ReasonUnknownCrowd: 1, ReasonBadShard: 1, string(schemas.ReasonInvalidPayload): 1}
	for r, n := range want {
		if dead[r] != n {
			t.Fatalf("dead letters by reason %v, want %v", dead, want)
		}
	}
	for i, c := range s.counts("x") {
		if c != 0 {
			t.Fatalf("the forged shard was sent to %s", userName(i))
		}
	}
}

// deadLetters reads n records of the dead-letter topic and counts them by
// reason.
func (h *harness) deadLetters(n int) map[string]int {
	h.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics("promoflow.dlq"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx := testenv.Context(h.t, 30*time.Second)
	out := map[string]int{}
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("%d of %d dead letters: %v", got, n, out)
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, hd := range r.Headers {
				if hd.Key == stream.HeaderDLQReason {
					out[string(hd.Value)]++
				}
			}
			got++
		})
	}
	return out
}

// slowSender delays every call, so that a campaign is still sending when
// the test acts on it.
type slowSender struct {
	Sender
	delay time.Duration
}

func (s slowSender) Send(ctx context.Context, msgs []Message) ([]error, error) {
	time.Sleep(s.delay)
	return s.Sender.Send(ctx, msgs)
}

// TestIntegrationFanoutCancel cancels a campaign while it sends: the
// sends stop within the shards in flight, every user sent is counted once,
// nobody is sent twice, and the audit agrees.
func TestIntegrationFanoutCancel(t *testing.T) {
	const n = 100_000
	h := newHarness(t, map[string][2]int{"all": {0, n}})
	s := newCountingSender(n)
	h.planner(WithShardSize(500), WithStepShards(5))
	h.sender(slowSender{s, 20 * time.Millisecond})
	h.sender(slowSender{s, 20 * time.Millisecond})
	ctx := testenv.Context(t, 2*time.Minute)
	h.request("stop-me", "all", "spring")
	for {
		p, _ := h.store.Progress(ctx, "stop-me")
		if p.Sent >= 5_000 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no progress: %+v", p)
		}
		time.Sleep(5 * time.Millisecond)
	}
	p, err := h.store.Cancel(ctx, "stop-me")
	if err != nil || p.Status != StatusCancelled || !p.Done() {
		t.Fatalf("cancel: %+v %v", p, err)
	}
	if _, err := h.store.Cancel(ctx, "nope"); !errors.Is(err, ErrUnknownCampaign) {
		t.Fatalf("cancelling an unknown campaign: %v", err)
	}
	// The shards in flight finish; then nothing more is sent.
	var calls int64
	for stable := 0; stable < 20; time.Sleep(50 * time.Millisecond) {
		if c := s.callsFor("stop-me"); c == calls {
			stable++
		} else {
			calls, stable = c, 0
		}
	}
	sent := 0
	for i, c := range s.counts("stop-me") {
		if c > 1 {
			t.Fatalf("user %s sent %d times", userName(i), c)
		}
		sent += int(c)
	}
	p, _ = h.store.Progress(ctx, "stop-me")
	if int64(sent) != p.Sent || sent >= n || sent > 5_000+4*8*500 {
		t.Fatalf("%d users delivered, counted %d (of %d): the cancel did not stop the campaign in time", sent, p.Sent, n)
	}
	t.Logf("cancelled at 5,000+ sent: %d delivered in all, %d shards done", sent, p.ShardsDone)
}
