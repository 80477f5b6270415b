package notify

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// genCrowds are generated crowds: crowd name -> the user numbers [lo, hi),
// named u%08d so that their names sort as their numbers do.
type genCrowds struct {
	mu     sync.Mutex
	ranges map[string][2]int
	calls  atomic.Int64
}

func (g *genCrowds) get(id string) ([2]int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r, ok := g.ranges[id]
	return r, ok
}

// add adds a crowd while the planner runs.
func (g *genCrowds) add(id string, lo, hi int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ranges[id] = [2]int{lo, hi}
}

func userName(i int) string { return fmt.Sprintf("u%08d", i) }

func userNumber(u string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(u, "u"))
	if err != nil {
		return -1
	}
	return n
}

func (g *genCrowds) Crowd(_ context.Context, id string) (sinks.Crowd, error) {
	if _, ok := g.get(id); !ok {
		return sinks.Crowd{}, fmt.Errorf("crowd %s: %w", id, sinks.ErrNotFound)
	}
	return sinks.Crowd{CrowdID: id, AppID: "shop", Trigger: sinks.CrowdManual}, nil
}

func (g *genCrowds) MembersOf(_ context.Context, c sinks.Crowd, after string, limit int) ([]string, error) {
	g.calls.Add(1)
	r, ok := g.get(c.CrowdID)
	if !ok {
		return nil, fmt.Errorf("crowd %s: %w", c.CrowdID, sinks.ErrNotFound)
	}
	from := r[0]
	if after != "" {
		from = max(from, sort.Search(r[1], func(i int) bool { return userName(i) > after }))
	}
	out := make([]string, 0, min(limit, max(r[1]-from, 0)))
	for i := from; i < r[1] && len(out) < limit; i++ {
		out = append(out, userName(i))
	}
	return out, nil
}

// countingSender counts deliveries per campaign and user number, and fails
// on purpose: fail decides, per shard attempt, what goes wrong.
type countingSender struct {
	mu        sync.Mutex
	delivered map[string][]int32 // campaign -> count per user number
	size      int
	attempts  sync.Map // shard id -> *atomic.Int32
	// fail returns, for attempt n (1-based) of a shard, a whole-call error,
	// or per-message errors (nil: all delivered).
	fail       func(shard string, seq int64, attempt int32, msgs []Message) ([]error, error)
	calls      atomic.Int64
	byCampaign sync.Map // campaign -> *atomic.Int64 calls
}

func newCountingSender(size int) *countingSender {
	return &countingSender{delivered: map[string][]int32{}, size: size}
}

func (s *countingSender) Send(_ context.Context, msgs []Message) ([]error, error) {
	s.calls.Add(1)
	c, _ := s.byCampaign.LoadOrStore(msgs[0].CampaignID, new(atomic.Int64))
	c.(*atomic.Int64).Add(1)
	shard := msgs[0].ShardID
	a, _ := s.attempts.LoadOrStore(shard, new(atomic.Int32))
	attempt := a.(*atomic.Int32).Add(1)
	errs := make([]error, len(msgs))
	if s.fail != nil {
		seq, _ := strconv.ParseInt(shard[strings.LastIndexByte(shard, '/')+1:], 10, 64)
		e, err := s.fail(shard, seq, attempt, msgs)
		if err != nil {
			return nil, err
		}
		if e != nil {
			errs = e
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range msgs {
		if errs[i] != nil {
			continue
		}
		d := s.delivered[m.CampaignID]
		if d == nil {
			d = make([]int32, s.size)
			s.delivered[m.CampaignID] = d
		}
		d[userNumber(m.UserID)]++
	}
	return errs, nil
}

// callsFor counts the Send calls for a campaign.
func (s *countingSender) callsFor(campaign string) int64 {
	c, ok := s.byCampaign.Load(campaign)
	if !ok {
		return 0
	}
	return c.(*atomic.Int64).Load()
}

// counts returns a copy of a campaign's deliveries per user number.
func (s *countingSender) counts(campaign string) []int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int32, s.size)
	copy(out, s.delivered[campaign])
	return out
}

// harness runs planners and senders against kfake over TCP and the real
// Redis.
type harness struct {
	t         testing.TB
	brokers   []string
	rdb       *redis.Client
	store     *Store
	crowds    *genCrowds
	templates *Templates
	cl        *kgo.Client
	prefix    string
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var testTemplates = map[string]Template{
	"spring": {Title: "Spring sale", Body: "Hello {{.UserID}}, the spring sale starts now.", Link: "https://shop.example/spring?c={{.CampaignID}}"},
	"flash":  {Title: "Flash deal", Body: "Two hours only."},
}

func newHarness(t testing.TB, crowds map[string][2]int, opts ...StoreOption) *harness {
	t.Helper()
	brokers, _ := testenv.KafkaWithTopics(t)
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), PoolSize: 64})
	t.Cleanup(func() { rdb.Close() })
	ctx := testenv.Context(t, time.Minute)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	prefix := testenv.Name("nt")
	t.Cleanup(func() { deleteKeys(rdb, prefix) })
	store := NewStore(rdb, append([]StoreOption{WithKeyPrefix(prefix), WithKeep(time.Hour)}, opts...)...)
	if err := store.Load(ctx); err != nil {
		t.Fatal(err)
	}
	tpl, err := CompileTemplates(testTemplates)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &harness{t: t, brokers: brokers, rdb: rdb, store: store, crowds: &genCrowds{ranges: crowds}, templates: tpl, cl: cl, prefix: prefix}
}

// deleteKeys removes a test's keys in batches (a million-user test leaves
// a million user hashes).
func deleteKeys(rdb *redis.Client, prefix string) {
	ctx := context.Background()
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+":*", 20000).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			rdb.Unlink(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

func (h *harness) run(st stream.Stage, fenced bool) func() {
	h.t.Helper()
	cfg := stream.Config{Brokers: h.brokers, Logger: quiet(), SessionTimeout: 6 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	if fenced {
		cfg.Fencer = &stream.RedisFencer{Client: h.rdb, Prefix: h.prefix}
	}
	r, err := stream.New(cfg, st)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return stop
}

// planner starts a planner instance.
func (h *harness) planner(opts ...PlannerOption) func() {
	return h.run(NewPlanner(h.store, h.crowds, h.templates, append([]PlannerOption{WithPlannerLogger(quiet())}, opts...)...).Stage(), false)
}

// sender starts a sender instance.
func (h *harness) sender(s Sender) func() {
	return h.run(NewDispatcher(h.store, s, h.templates, quiet()).Stage(), true)
}

// request publishes a campaign request.
func (h *harness) request(campaign, crowd, template string) {
	h.t.Helper()
	h.publish(TopicCampaigns, "req-"+campaign, schemas.NotifyCampaignRequested{CampaignID: campaign, CrowdID: crowd, Template: template, RequestedAt: time.Now()})
}

func (h *harness) publish(topic, id string, p schemas.Payload) {
	h.t.Helper()
	rec, err := stream.NewRecord(topic, id, "ops", time.Now(), p)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.cl.ProduceSync(testenv.Context(h.t, 10*time.Second), rec).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

// wait waits until the campaign is done, logging progress.
func (h *harness) wait(campaign string, d time.Duration) Progress {
	h.t.Helper()
	deadline := time.Now().Add(d)
	last := time.Now()
	for {
		p, err := h.store.Progress(context.Background(), campaign)
		if err == nil && p.Done() {
			return p
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("campaign %s not done after %s: %+v (%v)", campaign, d, p, err)
		}
		if time.Since(last) > 5*time.Second {
			h.t.Logf("campaign %s: %s, %d/%d shards, %d sent, %d capped, %d retries", campaign, p.Status, p.ShardsDone, p.ShardsPlanned, p.Sent, p.Capped, p.Retries)
			last = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
}
