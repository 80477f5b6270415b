package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

func init() {
	register(&command{
		name:    "bench",
		summary: "benchmark the whole pipeline: claims/s end to end, latency, and the raw component limits",
		usage:   "[--claims N] [--users N] [--standins auto|always|never]",
		help: `Runs the pipeline on the embedded default (in-process kfake; real Redis,
MySQL and ClickHouse where reachable) with every guarantee on, and measures in
one run:
  1. raw Redis: the claim Lua script, pipelined, without Kafka (claims/s);
  2. raw Kafka: kfake consume→produce of claim-sized records (records/s);
  3. end to end, burst: N pre-encoded claims published at once, timed until
     every decision is in both sinks (claims/s, and the ratio to the slowest
     raw component);
  4. end to end, paced: claims at a steady share of the burst rate, for
     claim→decision latency percentiles under sustainable load.
The load generator's encoding and validation happen before the clock starts.`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file (Redis/MySQL/ClickHouse addresses)")
			claims := fs.Int("claims", 300_000, "claims in the burst phase")
			users := fs.Int("users", 200_000, "distinct users")
			paced := fs.Float64("paced-share", 0.5, "rate of the paced phase as a share of the burst rate (0 = skip)")
			pacedFor := fs.Duration("paced-for", 10*time.Second, "duration of the paced phase")
			standins := fs.String("standins", "auto", "auto, always or never (see promoflow demo)")
			cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *claims < 1000 || *users < 1 {
					return usagef("--claims must be at least 1000")
				}
				if os.Getenv("GOGC") == "" {
					// The pipeline allocates per record; trading memory for
					// fewer collections is the usual setting for a throughput run.
					debug.SetGCPercent(400)
				}
				if *cpuprofile != "" {
					stop, err := startCPUProfile(*cpuprofile)
					if err != nil {
						return err
					}
					defer stop()
				}
				return runBench(ctx, *cfgPath, *standins, *claims, *users, *paced, *pacedFor, os.Stdout)
			}
		},
	})
}

func runBench(ctx context.Context, cfgPath, standins string, claims, users int, pacedShare float64, pacedFor time.Duration, out io.Writer) error {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	cfg.Runtime.SessionTimeout = 10 * time.Second
	runID := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)
	fmt.Fprintln(out, "Components:")
	env, err := startEmbedded(ctx, cfg, runID, standins, "", out)
	if err != nil {
		return err
	}
	defer env.close()

	fmt.Fprintln(out, "\n1. Raw Redis: claim script, pipelined in batches of 500 from 4 workers")
	redisRate, err := benchRedis(ctx, cfg, env, 200_000)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %.0f claims/s\n", redisRate)

	fmt.Fprintln(out, "\n2. Raw Kafka: kfake consume→produce of claim-sized records")
	kafkaRate, err := benchKafka(ctx, env.brokers, 300_000)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   %.0f records/s\n", kafkaRate)

	env.parts.log = quietLogger(os.Stderr, slog.LevelWarn)
	// The metrics are on, as in production (their cost is in the numbers).
	env.parts.metrics = metrics.New()
	p, err := buildPipeline(ctx, cfg, allStages, env.parts)
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	go func() { runDone <- p.Run(runCtx) }()

	// 3. Burst.
	s := scenario{RunID: runID, Claims: claims, Users: users, HotStock: int64(claims / 20), HotShare: 0.3, Batches: 4, AppID: "bench"}
	if err := publishBatches(ctx, env.brokers, s); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n3. End to end, burst: %d claims (30%% on a hot batch with stock %d), both sinks on\n", claims, s.HotStock)
	recs, err := encodeClaims(s, 0)
	if err != nil {
		return err
	}
	t := &sampler{every: 16}
	tctx, stopTally := context.WithCancel(ctx)
	defer stopTally()
	ready := make(chan struct{})
	go t.run(tctx, env.brokers, "c-"+s.RunID+"-", ready)
	<-ready
	// Warm up: the groups join before the clock starts.
	if err := waitAssigned(ctx, p); err != nil {
		return err
	}
	base := p.Stats()
	start := time.Now()
	if err := produceRaw(ctx, env.brokers, recs, 0); err != nil {
		return err
	}
	pubDone := time.Since(start)
	decided, err := waitResults(ctx, t, int64(claims), runDone)
	if err != nil {
		return err
	}
	decidedAt := time.Since(start)
	// The sinks commit a record only after writing it, so their committed
	// counts say when every decision is stored (claims and grants for the
	// ClickHouse archive, grants for MySQL); the row counts are checked once
	// afterwards, since counting with FINAL while the sinks write would
	// slow them down.
	want := map[string]int64{stageMySQL: int64(claims), stageClickHouse: 2 * int64(claims)}
	if err := waitCommitted(ctx, p, base, want, runDone); err != nil {
		return err
	}
	// The sinks also read coupon.states, so their committed counts reach
	// the claims before every grant is stored: wait for the rows as well.
	if err := waitRows(ctx, env.counters, int64(claims), runDone); err != nil {
		return err
	}
	e2e := time.Since(start)
	for name, c := range env.counters {
		n, err := c.CountGrants(ctx)
		if err != nil {
			return fmt.Errorf("counting rows in %s: %w", name, err)
		}
		if n != int64(claims) {
			return fmt.Errorf("%s holds %d rows for %d claims", name, n, claims)
		}
	}
	rate := float64(claims) / e2e.Seconds()
	store := coupon.NewStore(env.parts.rdb, coupon.WithKeyPrefix(cfg.Redis.KeyPrefix))
	hotGranted, err := store.Granted(ctx, s.hotBatch())
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "   published in %s; all decided after %s (%.0f decisions/s); in both sinks after %s\n",
		pubDone.Round(time.Millisecond), decidedAt.Round(time.Millisecond), float64(decided)/decidedAt.Seconds(), e2e.Round(time.Millisecond))
	fmt.Fprintf(out, "   %.0f claims/s end to end = %.2f× raw Redis, %.2f× raw Kafka consume→produce\n", rate, rate/redisRate, rate/kafkaRate)
	fmt.Fprintf(out, "   hot batch: %d granted of stock %d; rows in each sink: %d (one per claim)\n", hotGranted, s.HotStock, claims)
	for name, st := range p.Stats() {
		fmt.Fprintf(out, "   stage %-16s polls %5d  poll wait %6s  handle %6s  produce %6s  commit %6s\n", name, st.Polls,
			st.PollTime.Round(time.Millisecond), st.HandleTime.Round(time.Millisecond), st.ProduceTime.Round(time.Millisecond), st.CommitTime.Round(time.Millisecond))
	}
	if hotGranted > s.HotStock {
		return fmt.Errorf("invariant broken during the benchmark: %d granted of stock %d", hotGranted, s.HotStock)
	}

	// 4. Paced latency.
	if pacedShare > 0 {
		pr := int(rate * pacedShare)
		n := int(float64(pr) * pacedFor.Seconds())
		ps := s
		ps.RunID = runID + "p"
		ps.Claims = n
		if err := publishBatches(ctx, env.brokers, ps); err != nil {
			return err
		}
		fmt.Fprintf(out, "\n4. End to end, paced: %d claims at %d claims/s (%.0f%% of the burst rate)\n", n, pr, pacedShare*100)
		precs, err := encodeClaims(ps, 0)
		if err != nil {
			return err
		}
		pt := &sampler{every: 1}
		ready := make(chan struct{})
		go pt.run(tctx, env.brokers, "c-"+ps.RunID+"-", ready)
		<-ready
		if err := produceRaw(ctx, env.brokers, precs, pr); err != nil {
			return err
		}
		if _, err := waitResults(ctx, pt, int64(n), runDone); err != nil {
			return err
		}
		q := pt.percentiles(0.5, 0.9, 0.99, 1)
		fmt.Fprintf(out, "   claim→decision latency p50 %s  p90 %s  p99 %s  max %s\n",
			q[0].Round(time.Millisecond), q[1].Round(time.Millisecond), q[2].Round(time.Millisecond), q[3].Round(time.Millisecond))
	}
	stopRun()
	return <-runDone
}

// waitAssigned waits until every stage of the pipeline holds partitions.
func waitAssigned(ctx context.Context, p *pipeline) error {
	for _, r := range p.runners {
		select {
		case <-r.Assigned():
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(60 * time.Second):
			return fmt.Errorf("stage %s was not assigned partitions within a minute", r.Stage().Name)
		}
	}
	return nil
}

func waitResults(ctx context.Context, t *sampler, n int64, runDone <-chan error) (int64, error) {
	deadline := time.After(10 * time.Minute)
	for {
		if got := t.count.Load(); got >= n {
			return got, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case err := <-runDone:
			return 0, fmt.Errorf("pipeline stopped: %v", err)
		case <-deadline:
			return 0, errTimeout
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitCommitted waits until each named stage has committed want more input
// records than it had in base.
func waitCommitted(ctx context.Context, p *pipeline, base map[string]stream.Stats, want map[string]int64, runDone <-chan error) error {
	return pollPipeline(ctx, runDone, 10*time.Minute, func() (bool, error) {
		now := p.Stats()
		for name, n := range want {
			if now[name].Committed-base[name].Committed < n {
				return false, nil
			}
		}
		return true, nil
	})
}

// waitRows waits until every sink holds n grant rows, or a minute.
func waitRows(ctx context.Context, counters map[string]grantCounter, n int64, runDone <-chan error) error {
	err := pollPipeline(ctx, runDone, time.Minute, func() (bool, error) {
		for name, c := range counters {
			got, err := c.CountGrants(ctx)
			if err != nil {
				return false, fmt.Errorf("counting rows in %s: %w", name, err)
			}
			if got < n {
				return false, nil
			}
		}
		return true, nil
	})
	if errors.Is(err, errTimeout) {
		return fmt.Errorf("the sinks do not hold %d rows after a minute: %w", n, err)
	}
	return err
}

// pollPipeline calls done every 20ms until it reports true or an error,
// ctx ends, the pipeline stops, or timeout passes (errTimeout).
func pollPipeline(ctx context.Context, runDone <-chan error, timeout time.Duration, done func() (bool, error)) error {
	deadline := time.After(timeout)
	for {
		if ok, err := done(); ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runDone:
			return fmt.Errorf("pipeline stopped: %v", err)
		case <-deadline:
			return errTimeout
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// encodeClaims builds and validates the scenario's claim records up front.
func encodeClaims(s scenario, _ int) ([]*kgo.Record, error) {
	defs := s.batchDefs(time.Now())
	rng := rand.New(rand.NewSource(42))
	recs := make([]*kgo.Record, 0, s.Claims)
	for i := 0; i < s.Claims; i++ {
		batch := defs[0].BatchID
		if len(defs) > 1 && rng.Float64() >= s.HotShare {
			batch = defs[1+rng.Intn(len(defs)-1)].BatchID
		}
		c := schemas.ClaimRequested{BatchID: batch, UserID: fmt.Sprintf("u%07d", rng.Intn(s.Users)), Channel: "live"}
		env, err := schemas.New(fmt.Sprintf("c-%s-%d", s.RunID, i), s.AppID, time.Now(), c)
		if err != nil {
			return nil, err
		}
		b, err := schemas.Validate(env)
		if err != nil {
			return nil, err
		}
		recs = append(recs, &kgo.Record{Topic: coupon.TopicClaims, Key: []byte(c.UserID), Value: b})
	}
	return recs, nil
}

// produceRaw publishes pre-encoded records, at rate records/s if positive.
// Each record's occurred_at is rewritten to its send time so latency is
// measured from the moment it is published.
func produceRaw(ctx context.Context, brokers []string, recs []*kgo.Record, rate int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer cl.Close()
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	for i, r := range recs {
		if rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / float64(rate) * float64(time.Second)))); d > 0 {
				time.Sleep(d)
			}
			r.Value = restamp(r.Value)
		}
		wg.Add(1)
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if e := failed.Load(); e != nil {
		return *e
	}
	return nil
}

// restamp sets occurred_at to now in an encoded claim envelope.
func restamp(b []byte) []byte {
	env, err := schemas.Decode(b)
	if err != nil {
		return b
	}
	env.OccurredAt = time.Now().UTC()
	nb, err := env.Encode()
	if err != nil {
		return b
	}
	return nb
}

// benchRedis measures the claim script alone: 4 workers, batches of 500.
func benchRedis(ctx context.Context, cfg *Config, env *embedded, n int) (float64, error) {
	store := coupon.NewStore(env.parts.rdb, coupon.WithKeyPrefix(cfg.Redis.KeyPrefix+":rawbench"))
	if err := store.Load(ctx); err != nil {
		return 0, err
	}
	now := time.Now()
	def := &schemas.BatchDefined{BatchID: "RAW", Revision: 1, TotalStock: int64(n / 2), PerUserLimit: 2, ValidFrom: now.Add(-time.Hour), ValidUntil: now.Add(time.Hour), Status: schemas.BatchActive}
	const workers, batch = 4, 500
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			in := make([]coupon.ClaimInput, 0, batch)
			for i := w; i < n; i += workers {
				in = append(in, coupon.ClaimInput{AppID: "bench", EventID: fmt.Sprintf("raw-%d", i), BatchID: def.BatchID, UserID: fmt.Sprintf("u%d", i%50_000), Def: def})
				if len(in) == batch || i+workers >= n {
					if _, err := store.Claim(ctx, fmt.Sprintf("raw/%d", w), int64(1), time.Now(), in); err != nil {
						errc <- err
						return
					}
					in = in[:0]
				}
			}
		}(w)
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return 0, err
	}
	rate := float64(n) / time.Since(start).Seconds()
	deleteKeys(env.parts.rdb, cfg.Redis.KeyPrefix+":rawbench")
	return rate, nil
}

// benchKafka measures kfake consume→produce: n claim-sized records are
// produced to one topic, then consumed and produced to another, acked.
func benchKafka(ctx context.Context, brokers []string, n int) (float64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(2*time.Millisecond), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	in, outT := "bench.raw.in", "bench.raw.out"
	if _, err := adm.CreateTopics(ctx, 12, 1, nil, in, outT); err != nil {
		return 0, err
	}
	defer adm.DeleteTopics(context.Background(), in, outT)
	val := make([]byte, 260)
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: in, Key: []byte(fmt.Sprintf("u%07d", i%100_000)), Value: val}
	}
	if err := produceRaw(ctx, brokers, recs, 0); err != nil {
		return 0, err
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(in), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	start := time.Now()
	got := 0
	var wg sync.WaitGroup
	for got < n {
		fs := cons.PollRecords(ctx, 5000)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			wg.Add(1)
			cons.Produce(ctx, &kgo.Record{Topic: outT, Key: r.Key, Value: r.Value}, func(*kgo.Record, error) { wg.Done() })
		})
		wg.Wait() // acked before the next poll, as the runtime does
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// sampler counts the decisions of one benchmark phase on the grants topic
// and decodes every n-th for the claim→decision latency, so that measuring
// costs the pipeline little CPU. Phases publish no duplicates, so records
// counted equal results; the sinks' row counts confirm it.
type sampler struct {
	every int64
	count atomic.Int64
	mu    sync.Mutex
	lat   []time.Duration
}

func (s *sampler) run(ctx context.Context, brokers []string, prefix string, ready chan<- struct{}) error {
	// Start exactly at the current end of every partition, so records of
	// earlier phases are not counted and none of this phase's are missed.
	admCl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		close(ready)
		return err
	}
	ends, err := kadm.NewClient(admCl).ListEndOffsets(ctx, coupon.TopicGrants)
	admCl.Close()
	if err != nil {
		close(ready)
		return err
	}
	start := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { start[o.Partition] = kgo.NewOffset().At(o.Offset) })
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{coupon.TopicGrants: start}))
	if err != nil {
		close(ready)
		return err
	}
	defer cl.Close()
	close(ready)
	var seen int64
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now()
		fs.EachRecord(func(r *kgo.Record) {
			seen++
			if seen%s.every != 0 {
				s.count.Add(1)
				return
			}
			env, err := schemas.Decode(r.Value)
			if err != nil {
				return
			}
			var g schemas.GrantDecided
			if env.DecodePayload(&g) != nil || len(g.ClaimEventID) < len(prefix) || g.ClaimEventID[:len(prefix)] != prefix {
				return
			}
			s.count.Add(1)
			s.mu.Lock()
			s.lat = append(s.lat, now.Sub(g.ClaimedAt))
			s.mu.Unlock()
		})
	}
}

func (s *sampler) percentiles(ps ...float64) []time.Duration {
	s.mu.Lock()
	l := append([]time.Duration(nil), s.lat...)
	s.mu.Unlock()
	return percentiles(l, ps...)
}
