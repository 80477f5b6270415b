package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

func init() {
	register(&command{
		name:    "demo",
		summary: "run the whole pipeline on the embedded default with a realistic burst of claims",
		usage:   "[--claims N] [--users N] [--stock N] [--standins auto|always|never] [--serve HOST:PORT]",
		help: `Starts an in-process Kafka broker (kfake), uses the real Redis, MySQL and
ClickHouse where they are reachable (and embedded stand-ins where not, saying
which), runs every processor and sink, and publishes a burst of claims: many
users, one hot batch with little stock, duplicates, and a set of malformed and
hostile records. It shows progress every second and ends with a summary:
events in, grants, rejections by reason, rows in each sink, DLQ count, elapsed
time and events/s, and whether every invariant held. Then a lottery: a draw
that fires by itself a few seconds later over --lottery-users participants
(some delivered twice) and an instant-win activity; the draw is read back from
MySQL and verified from its revealed seed, as "promoflow draw verify" does.
With the real MySQL, a notification campaign last: a routine crowd of
--notify-users members is published and stored, and a campaign fans out to it
through the notify stages and the log sender (to a file), every member
checked to be notified exactly once. Exits non-zero if an invariant broke. Needs nothing but Go; real servers are used in their own databases/keys
(promoflow_demo, pfdemo:*), which are reset or removed.

--serve HOST:PORT serves the live campaign page and its API (as "promoflow
serve" does, docs/campaign-page.md) from the demo's own stores while the
demo runs and after it, until Ctrl-C: it prints the URL to open, e.g.
  promoflow demo --serve 127.0.0.1:8080    then open http://127.0.0.1:8080/campaigns`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file (Redis/MySQL/ClickHouse addresses)")
			claims := fs.Int("claims", 100_000, "distinct claim events to publish")
			users := fs.Int("users", 30_000, "distinct users")
			stock := fs.Int64("stock", 5_000, "stock of the hot batch")
			hot := fs.Float64("hot-share", 0.5, "share of claims on the hot batch")
			batches := fs.Int("batches", 4, "everyday batches besides the hot one")
			dups := fs.Float64("dup-rate", 0.1, "share of claims delivered twice")
			prods := fs.Int("producers", 4, "concurrent producers")
			lotteryUsers := fs.Int("lottery-users", 20_000, "participants of the demo's scheduled lottery draw (0: skip the lottery part)")
			notifyUsers := fs.Int("notify-users", 20_000, "members of the crowd the demo's notification campaign fans out to, when MySQL is the real server (0: skip it)")
			standins := fs.String("standins", "auto", "auto: real servers where reachable; always: embedded stand-ins only; never: fail if a server is down")
			timeout := fs.Duration("timeout", 10*time.Minute, "give up if the pipeline has not caught up by then")
			verbose := fs.Bool("v", false, "show the pipeline's info logs")
			cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file")
			serve := fs.String("serve", "", "serve the live campaign page and its API at HOST:PORT during and after the demo, until Ctrl-C")
			return func(ctx context.Context, args []string) error {
				if *cpuprofile != "" {
					stop, err := startCPUProfile(*cpuprofile)
					if err != nil {
						return err
					}
					defer stop()
				}
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				if *claims < 1 || *users < 1 || *prods < 1 || *stock < 0 || *hot < 0 || *hot > 1 || *dups < 0 || *dups > 1 {
					return usagef("counts must be positive and shares between 0 and 1")
				}
				if *standins != "auto" && *standins != "always" && *standins != "never" {
					return usagef("--standins must be auto, always or never")
				}
				s := scenario{
					RunID: fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff), Claims: *claims, Users: *users,
					HotStock: *stock, HotShare: *hot, Batches: *batches, DupRate: *dups, Malformed: true,
					Producers: *prods, AppID: "demo", LotteryUsers: *lotteryUsers, NotifyUsers: *notifyUsers,
				}
				level := slog.LevelWarn
				if *verbose {
					level = slog.LevelInfo
				}
				var opts demoOptions
				if *serve != "" {
					opts.serve = &demoServe{addr: *serve, after: func(ctx context.Context, run demoRun) error {
						run.rep.print(os.Stdout)
						fmt.Fprintf(os.Stdout, "\nThe demo is over; its campaign page stays up at %s until Ctrl-C.\n", run.url)
						<-ctx.Done()
						return nil
					}}
				}
				rep, err := runScenario(ctx, *cfgPath, s, *standins, *timeout, level, os.Stdout, opts)
				if err != nil {
					return err
				}
				if opts.serve == nil {
					rep.print(os.Stdout)
				}
				if len(rep.breaches) > 0 {
					return fmt.Errorf("%d invariant(s) broken", len(rep.breaches))
				}
				return nil
			}
		},
	})
}

// report is the outcome of a scenario run.
type report struct {
	s                        scenario
	components               []component
	published, dups, hostile int64
	snap                     tallySnapshot
	rows                     map[string]int64
	elapsed                  time.Duration
	p50, p99                 time.Duration
	breaches                 []string
	lottery                  *lotteryDemoReport
	notify                   *notifyDemoReport
}

// runScenario runs a scenario end to end on the embedded environment and
// checks the invariants.
func runScenario(ctx context.Context, cfgPath string, s scenario, standins string, timeout time.Duration, level slog.Level, out io.Writer, opts demoOptions) (*report, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	cfg.Runtime.SessionTimeout = 10 * time.Second
	fmt.Fprintln(out, "Components:")
	env, err := startEmbedded(ctx, cfg, s.RunID, standins, opts.database, out)
	if err != nil {
		return nil, err
	}
	defer env.close()

	env.parts.log = quietLogger(os.Stderr, level)
	notifyLog := prepareNotifyDemo(cfg, s.RunID)
	p, err := buildPipeline(ctx, cfg, allStages, env.parts)
	if err != nil {
		return nil, err
	}
	var pageURL string
	if opts.serve != nil {
		stop, url, err := opts.serve.start(ctx, cfg, env, p, out)
		if err != nil {
			return nil, err
		}
		defer stop()
		pageURL = url
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runDone := make(chan error, 1)
	if err := publishBatches(ctx, env.brokers, s); err != nil {
		return nil, err
	}
	go func() { runDone <- p.Run(runCtx) }()

	t := newTally(s.hotBatch())
	tctx, stopTally := context.WithCancel(ctx)
	defer stopTally()
	ready := make(chan struct{})
	go t.run(tctx, env.brokers, ready)
	<-ready

	fmt.Fprintf(out, "\nPublishing %d claims from %d producers (%.0f%% duplicated, %.0f%% on hot batch %s with stock %d) plus %d hostile records...\n",
		s.Claims, s.Producers, s.DupRate*100, s.HotShare*100, s.hotBatch(), s.HotStock, len(hostileRecords(s.RunID)))
	start := time.Now()
	var pub published
	genDone := make(chan error, 1)
	go func() { genDone <- generate(ctx, env.brokers, s, &pub) }()

	rep := &report{s: s, components: env.components, rows: map[string]int64{}}
	deadline := time.After(timeout)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	generating := true
	for {
		select {
		case err := <-genDone:
			if err != nil {
				return nil, fmt.Errorf("publishing claims: %w", err)
			}
			generating = false
			genDone = nil
		case err := <-runDone:
			return nil, fmt.Errorf("pipeline stopped early: %w", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline:
			return nil, fmt.Errorf("%w after %s", errTimeout, timeout)
		case <-tick.C:
		}
		snap := t.snapshot()
		for name, c := range env.counters {
			if n, err := c.CountGrants(ctx); err == nil {
				rep.rows[name] = n
			}
		}
		el := time.Since(start)
		fmt.Fprintf(out, "  %5.1fs  published %7d  decided %7d  dlq %3d  mysql rows %7d  clickhouse rows %7d  %6.0f decisions/s\n",
			el.Seconds(), pub.claims.Load()+pub.dups.Load(), snap.results, snap.deadN, rep.rows["mysql"], rep.rows["clickhouse"], float64(snap.results)/el.Seconds())
		if !generating && snap.results >= int64(s.Claims) && snap.deadN >= pub.hostile.Load() &&
			rep.rows["mysql"] >= int64(s.Claims) && rep.rows["clickhouse"] >= int64(s.Claims) {
			rep.elapsed = el
			rep.snap = snap
			break
		}
	}
	rep.published, rep.dups, rep.hostile = pub.claims.Load(), pub.dups.Load(), pub.hostile.Load()
	ps := t.percentiles(0.5, 0.99)
	rep.p50, rep.p99 = ps[0], ps[1]
	rep.check()
	if s.LotteryUsers > 0 {
		reader, ok := env.parts.mysql.(sinks.LotteryReader)
		if !ok {
			return nil, fmt.Errorf("the MySQL sink cannot read lottery results back")
		}
		ld := lotteryDemo{runID: s.RunID, users: s.LotteryUsers, dupRate: s.DupRate, tries: max(s.LotteryUsers/4, 100)}
		if _, real := env.parts.mysql.(*mysql.Sink); real {
			ld.verifyHint = fmt.Sprintf("PROMOFLOW_MYSQL_DATABASE_PREFIX=%s promoflow draw verify demo-draw-%s   (the demo's databases stay until the next demo)", cfg.MySQL.DatabasePrefix, s.RunID)
		}
		lr, err := ld.run(ctx, env.brokers, reader, timeout, out)
		if err != nil {
			return nil, fmt.Errorf("lottery demo: %w", err)
		}
		rep.lottery = lr
		rep.breaches = append(rep.breaches, lr.breaches...)
	}
	if s.NotifyUsers > 0 {
		if sink, real := env.parts.mysql.(*mysql.Sink); real {
			crowds, err := openCrowds(ctx, cfg, sink)
			if err != nil {
				return nil, err
			}
			nd := notifyDemo{runID: s.RunID, users: s.NotifyUsers, logFile: notifyLog, crowds: crowds, rdb: env.parts.rdb, cfg: cfg}
			nr, err := nd.run(ctx, env.brokers, timeout, out)
			if err != nil {
				return nil, fmt.Errorf("notification demo: %w", err)
			}
			rep.notify = nr
			rep.breaches = append(rep.breaches, nr.breaches...)
		} else {
			fmt.Fprintln(out, "\nNotification fan-out skipped: crowds live in MySQL, and this run uses the in-memory stand-in.")
		}
	}
	if opts.serve != nil && opts.serve.after != nil {
		if err := opts.serve.after(ctx, demoRun{rep: rep, url: pageURL, brokers: env.brokers}); err != nil {
			return nil, err
		}
	}
	stopRun()
	if err := <-runDone; err != nil {
		return nil, err
	}
	return rep, nil
}

// check records every broken invariant.
func (r *report) check() {
	b := func(format string, args ...any) { r.breaches = append(r.breaches, fmt.Sprintf(format, args...)) }
	if r.snap.results != int64(r.s.Claims) {
		b("%d distinct results for %d distinct claims", r.snap.results, r.s.Claims)
	}
	if r.snap.conflicts > 0 {
		b("%d replayed decisions differ from the first decision of their claim", r.snap.conflicts)
	}
	if r.snap.hotGrants > r.s.HotStock {
		b("hot batch over-issued: %d grants, stock %d", r.snap.hotGrants, r.s.HotStock)
	}
	for batch, n := range r.snap.maxPerUser {
		limit := 2
		if batch == r.s.hotBatch() {
			limit = 1
		}
		if n > limit {
			b("a user got %d coupons of %s (limit %d)", n, batch, limit)
		}
	}
	for name, n := range r.rows {
		if n != r.snap.results {
			b("%s holds %d rows for %d results", name, n, r.snap.results)
		}
	}
	if r.snap.deadN != r.hostile {
		b("%d records in the DLQ, %d hostile records published", r.snap.deadN, r.hostile)
	}
}

func (r *report) print(w io.Writer) {
	fmt.Fprintf(w, "\nSummary\n")
	fmt.Fprintf(w, "  events in        %d claims published (%d distinct + %d duplicates) + %d hostile records\n", r.published+r.dups, r.published, r.dups, r.hostile)
	fmt.Fprintf(w, "  grants           %d (hot batch %s: %d of stock %d)\n", r.snap.granted, r.s.hotBatch(), r.snap.hotGrants, r.s.HotStock)
	var reasons []string
	for k, v := range r.snap.byReason {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "  rejections       %d (%s)\n", r.snap.results-r.snap.granted, strings.Join(reasons, ", "))
	names := make([]string, 0, len(r.rows))
	for k := range r.rows {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, n := range names {
		kind := ""
		for _, c := range r.components {
			if strings.EqualFold(c.name, n) {
				kind = " (" + c.kind + ")"
			}
		}
		fmt.Fprintf(w, "  rows in %-11s %d%s\n", n, r.rows[n], kind)
	}
	var dead []string
	for k, v := range r.snap.deadBy {
		dead = append(dead, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(dead)
	fmt.Fprintf(w, "  DLQ              %d (%s)\n", r.snap.deadN, strings.Join(dead, ", "))
	fmt.Fprintf(w, "  elapsed          %s\n", r.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  throughput       %.0f events/s end to end (claim published → row in both sinks)\n", float64(r.published+r.dups)/r.elapsed.Seconds())
	fmt.Fprintf(w, "  latency          claim→decision p50 %s, p99 %s\n", r.p50.Round(time.Millisecond), r.p99.Round(time.Millisecond))
	n := len(r.breaches)
	if r.lottery != nil {
		n -= len(r.lottery.breaches)
	}
	if r.notify != nil {
		n -= len(r.notify.breaches)
	}
	if n == 0 {
		fmt.Fprintf(w, "  invariants       OK: one result per claim, grants ≤ stock, per-user limits held, one row per result in each sink, every hostile record in the DLQ\n")
	}
	for _, br := range r.breaches[:n] {
		fmt.Fprintf(w, "  BROKEN           %s\n", br)
	}
	if r.lottery != nil {
		r.lottery.print(w)
	}
	if r.notify != nil {
		r.notify.print(w)
	}
}

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
