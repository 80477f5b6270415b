package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/api"
	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/processors/recommend"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/mysql"
)

func init() {
	register(&command{
		name:    "serve",
		summary: "serve the HTTP API: order-time coupon validation, a user's coupons and recommendations, share links, inboxes, crowds, health, the live campaign page",
		usage:   "[--addr HOST:PORT] [--config FILE]",
		help: `Serves the HTTP API other services call (docs/coupons.md):

  POST /v1/users/{user}/coupons/usable   body {"items":[{"sku","category","brand","model","amount"}]}
        the user's usable coupons for the cart, best first, each with the discount
        (or bonus) it gives, and the others with the reason they do not apply:
        expired, not_yet_valid, out_of_scope, below_threshold, excluded (by another
        coupon of its exclusion group), locked, used, batch_disabled, unknown_batch
  GET  /v1/users/{user}/coupons[?state=available|locked|used|expired]
  POST /v1/share-links   body {"activity_id","inviter","ttl"?}: a signed share link
        {token, url, expires_at} of a referral activity (docs/referrals.md);
        ttl is seconds or a duration ("72h"), at most the activity's link TTL
  GET  /v1/share-links/{token}   what a link names (activity_id, inviter,
        expires_at), or 400 with reason bad_token, expired_token,
        unknown_activity or activity_disabled
  GET  /v1/users/{user}/inbox[?limit=20&after=NEXT]
        the user's station messages (站内信), newest first, with their read state;
        delivers the messages to all users published since the user's last read
        (docs/station-messages.md). next in the response continues the list.
  GET  /v1/users/{user}/inbox/unread-count   writes nothing
  POST /v1/users/{user}/inbox/{message}/read  404 when not in the user's inbox
  POST /v1/users/{user}/inbox/read-all
  GET  /v1/users/{user}/recommendations   the coupon batches recommended to the user,
        best first, from the recommendation processor's store in Redis
        (docs/recommendations.md); 503 when Redis does not answer
  GET  /v1/crowds/{crowd}   a crowd's trigger (manual or routine), app and the day
        readers see (docs/crowds.md); 404 for an unknown crowd
  GET  /v1/crowds/{crowd}/members[?limit=1000&after=USER]   a page of member ids,
        ascending (limit 1-10000); next in the response continues; a routine crowd
        is read at its last complete compute day, 404 before it has one
  GET  /v1/crowds/{crowd}/members/{user}   {"member": true|false}
  GET  /healthz   the process is up
  GET  /readyz    the batch cache has caught up with coupon.admin and MySQL answers
  GET  /metrics   Prometheus metrics: requests per route and status code, their
                  latency, MySQL read errors (docs/operations.md)

The campaign page for operators (docs/campaign-page.md):

  GET  /campaigns            the page: every campaign, and one campaign's figures
                             and charts, refreshed every second (also at GET /)
  GET  /v1/campaigns         the coupon batches (coupon.admin) and lottery
                             activities (lottery.admin) the server knows
  GET  /v1/campaigns/{id}[?kind=coupon_batch|lottery][&window=SECONDS]
        a batch's claims, grants, rejections by reason and redemptions (MySQL)
        and remaining stock (the coupon processor's Redis counter); an activity's
        participants, rejected entries by reason, draw status and winners per
        tier (MySQL); the DLQ's record count (Kafka offsets); decisions per
        second over the window, 300s by default (ClickHouse). 404 for an unknown
        campaign; 503 when MySQL does not answer; a part whose store is down or
        not configured is left out and named in "unavailable".

It reads the user's shard of the MySQL system of record (never every shard),
keeps a user's coupons in memory for --cache-ttl, and follows batch
definitions from coupon.admin, activities from lottery.admin and referral
activities from referral.admin; share links are signed with
referral.link_keys. Redis and ClickHouse (and Kafka's DLQ offsets) are read
for the campaign page only: serve starts without them, and only MySQL must
answer for it to start. Serve it on the internal network only: whoever
reaches it can make links for any inviter. Stops cleanly on SIGINT/SIGTERM.

Example:
  promoflow serve --config promoflow.yaml --addr 127.0.0.1:8080
  curl -s -XPOST localhost:8080/v1/users/u1/coupons/usable -d '{"items":[{"category":"phone","brand":"acme","amount":129900}]}'
  curl -s localhost:8080/v1/campaigns/HOT-1        # or open http://127.0.0.1:8080/campaigns`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			addr := fs.String("addr", "127.0.0.1:8080", "listen address")
			cacheTTL := fs.Duration("cache-ttl", time.Second, "how long a user's coupons are served from memory (negative: no cache)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cfg, err := loadConfig(*cfgPath)
				if err != nil {
					return err
				}
				return runServe(ctx, cfg, *addr, *cacheTTL, func(a net.Addr) {
					fmt.Fprintf(cmdStdout, "serving on http://%s\n", a)
				})
			}
		},
	})
}

// campaignSources connects what the campaign page reads besides MySQL and
// the batch cache: the lottery activities (a view of lottery.admin, run
// until ctx ends), the coupon processor's stock in Redis, the dead-letter
// topic's offsets and ClickHouse. None is needed to start: Redis and Kafka
// clients connect on use, and ClickHouse is opened on first use (and again
// after a failure), so each part of the page answers as soon as its store
// does. The caller sets Records.
func (c *Config) campaignSources(ctx context.Context, log *slog.Logger) (api.CampaignSources, func(), error) {
	acts := lottery.NewActivities()
	view, err := stream.NewView(c.streamConfig(log), lottery.TopicAdmin, acts.Apply)
	if err != nil {
		return api.CampaignSources{}, nil, err
	}
	go func() { _ = view.Run(ctx) }()
	rdb := newRedis(c.Redis)
	kcl, err := kgo.NewClient(c.kafkaOpts()...)
	if err != nil {
		rdb.Close()
		return api.CampaignSources{}, nil, fmt.Errorf("creating the kafka admin client: %w", err)
	}
	ch := &lazyClickHouse{cfg: c.ClickHouse}
	src := api.CampaignSources{
		Activities: acts,
		Stock:      coupon.NewStore(rdb, coupon.WithKeyPrefix(c.Redis.KeyPrefix)),
		DLQ:        api.KafkaDLQ{Admin: kadm.NewClient(kcl), Topic: c.Runtime.DLQTopic},
		Throughput: ch,
	}
	return src, func() { ch.Close(); kcl.Close(); rdb.Close() }, nil
}

// lazyClickHouse reads throughput from ClickHouse, connecting on first use
// and, after a failed connection, again at most every 5 seconds.
type lazyClickHouse struct {
	cfg   clickhouse.Config
	mu    sync.Mutex
	s     *clickhouse.Sink
	err   error
	tried time.Time
}

func (l *lazyClickHouse) Throughput(ctx context.Context, q sinks.ThroughputQuery) ([]sinks.ThroughputBucket, error) {
	l.mu.Lock()
	if l.s == nil && time.Since(l.tried) >= 5*time.Second {
		l.tried = time.Now()
		l.s, l.err = clickhouse.OpenReader(ctx, l.cfg)
	}
	s, err := l.s, l.err
	l.mu.Unlock()
	if s == nil {
		return nil, err
	}
	return s.Throughput(ctx, q)
}

func (l *lazyClickHouse) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.s != nil {
		_ = l.s.Close()
	}
}

// runServe serves the API on addr until ctx ends. listening is told the
// address once the socket is open.
func runServe(ctx context.Context, cfg *Config, addr string, cacheTTL time.Duration, listening func(net.Addr)) error {
	log := cfg.logger()
	m := metrics.New()
	store, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		return fmt.Errorf("opening the system of record: %w", err)
	}
	defer store.Close()
	reader := countingReader{store, m}
	// Recommendations are read from Redis, connected on first use.
	rdb := newRedis(cfg.Redis)
	defer rdb.Close()
	station, err := store.Station(ctx, mysql.WithLookback(cfg.Station.Lookback))
	if err != nil {
		return fmt.Errorf("opening station messages: %w", err)
	}
	crowds, err := openCrowds(ctx, cfg, store)
	if err != nil {
		return fmt.Errorf("opening crowds: %w", err)
	}
	batches := coupon.NewBatches()
	view, err := stream.NewView(cfg.streamConfig(log), coupon.TopicAdmin, batches.Apply)
	if err != nil {
		return err
	}
	vctx, stopView := context.WithCancel(context.WithoutCancel(ctx))
	defer stopView()
	go func() { _ = view.Run(vctx) }()
	caught := make(chan struct{})
	go func() {
		if view.WaitCaughtUp(vctx) == nil {
			close(caught)
		}
	}()
	sources, closeSources, err := cfg.campaignSources(vctx, log)
	if err != nil {
		return err
	}
	defer closeSources()
	sources.Records = store
	links, refCaught, err := serveShareLinks(vctx, cfg, log)
	if err != nil {
		return err
	}
	srv, err := api.New(api.Config{
		Coupons: reader, Batches: batches, CacheTTL: cacheTTL, Logger: log, Campaigns: sources, ShareLinks: links, Inbox: station, Crowds: crowds,
		Recommendations: recommend.NewStore(rdb, recommend.WithKeyPrefix(cfg.Redis.KeyPrefix)),
		Ready: func(ctx context.Context) error {
			select {
			case <-caught:
			default:
				return errors.New("the batch cache is still loading coupon.admin")
			}
			select {
			case <-refCaught:
			default:
				return errors.New("the referral activity cache is still loading referral.admin")
			}
			_, err := reader.UserCoupons(ctx, "readiness-probe")
			return err
		},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: withMetrics("api", srv.Handler(), m), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	log.Info("serving", "addr", ln.Addr().String())
	if listening != nil {
		listening(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return hs.Shutdown(sctx)
}
