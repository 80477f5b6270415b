package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/processors/notify"
	"github.com/promoflow/promoflow/processors/recommend"
	"github.com/promoflow/promoflow/processors/referral"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// Stage names accepted by `promoflow run --only`.
const (
	stageCoupon     = "coupon"
	stageLottery    = "lottery"
	stageMySQL      = "sink-mysql"
	stageClickHouse = "sink-clickhouse"
	stageReferral   = "referral"
	stageStation    = "sink-station"
	stageCrowd      = "sink-crowd"
	stageRecommend  = recommend.StageName
)

var allStages = []string{stageCoupon, stageLottery, stageMySQL, stageClickHouse, stageReferral, stageStation, stageRecommend, stageCrowd,
	stageNotifyPlan, stageNotifySend}

// sinkWriter is a sink as the pipeline holds it.
type sinkWriter interface {
	stream.BatchWriter
	Close() error
}

// parts are the connections a pipeline is built from. Fields left nil are
// opened from the config; the demo fills them with stand-ins.
type parts struct {
	log        *slog.Logger
	rdb        redis.UniversalClient
	mysql      sinkWriter
	clickhouse sinkWriter
	// metrics receives the stages' metrics (nil: none).
	metrics *metrics.Metrics
}

// pipeline is the set of stages one `promoflow run` process runs.
type pipeline struct {
	cfg     *Config
	log     *slog.Logger
	runners []*stream.Runner
	views   []*stream.View
	batches *coupon.Batches
	acts    *lottery.Activities
	refActs *referral.Activities
	closers []func() error
	rdb     redis.UniversalClient
	metrics *metrics.Metrics
	sinks   []sinkWriter // the sinks of the chosen stages (readiness)
	// ownMySQL is the MySQL sink opened for the stages that need MySQL
	// when the pipeline does not run sink-mysql.
	ownMySQL *mysql.Sink
	// rules reloads the recommendation rules file (nil without one).
	rules *recommend.Watcher
	// background are jobs that run while the stages run (crowd table
	// maintenance), until ctx ends.
	background []func(ctx context.Context)
}

// stageDecls returns the declarations of every stage, without connecting,
// for topology checks and `promoflow topics graph`, with the default
// dead-letter topic.
func stageDecls() []topology.Node { return stageDeclsWithDLQ("promoflow.dlq") }

// stageDeclsWithDLQ is stageDecls with the configured dead-letter topic.
func stageDeclsWithDLQ(dlq string) []topology.Node {
	stages := append([]stream.Stage{
		coupon.New(nil, nil).Stage(), coupon.AdminStage(),
		lottery.New(nil, nil).Stage(), lottery.AdminStage(nil),
		referral.New(nil, nil, nil).Stage(), referral.AdminStage(),
		recommend.New(nil, nil, nil, nil).Stage(),
	}, sinkStages(nil, nil)...)
	stages = append(stages, stationStage(nil), crowdStage(nil),
		notify.NewPlanner(nil, nil, nil).Stage(), notify.NewDispatcher(nil, nil, nil, nil).Stage())
	nodes := make([]topology.Node, len(stages))
	for i, s := range stages {
		nodes[i] = s.Node()
		// Every stage may dead-letter (the runtime adds the configured DLQ).
		nodes[i].Writes = append(nodes[i].Writes, dlq)
	}
	return nodes
}

func typesV1(types ...string) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = schemas.TypeVersion{Type: t, Version: 1}.String()
	}
	return out
}

// resultTypes are the results every sink stores; inputTypes the raw events
// ClickHouse archives as well.
var (
	resultTypes = typesV1(schemas.TypeCouponGrantDecided, schemas.TypeCouponStateChanged, schemas.TypeNotificationRequested,
		schemas.TypeLotteryActivityCommitted, schemas.TypeLotteryEntryRecorded, schemas.TypeLotteryDrawCompleted,
		schemas.TypeLotteryPrizeAwarded, schemas.TypeGiftMatchDecided, schemas.TypeGiftMemberRecorded,
		schemas.TypeReferralBound, schemas.TypeReferralQualificationDecided, schemas.TypeReferralRewardGranted,
		schemas.TypeRecommendationMade)
	inputTypes = typesV1(schemas.TypeCouponClaimRequested, schemas.TypeCouponIssueRequested,
		schemas.TypeCouponLockRequested, schemas.TypeCouponConfirmRequested, schemas.TypeCouponCancelRequested,
		schemas.TypeLotteryParticipationRequested, schemas.TypeLotteryDrawRequested,
		schemas.TypeGiftMemberUpdated, schemas.TypeGiftSendRequested,
		schemas.TypeReferralClickRecorded, schemas.TypeReferralRegistered, schemas.TypeReferralQualified,
		schemas.TypeStationMessagePublished, schemas.TypeStationMessageWithdrawn,
		schemas.TypeBehaviourEventRecorded)
)

// resultTopics are the topics of results every sink stores.
var resultTopics = []string{coupon.TopicGrants, coupon.TopicStates, coupon.TopicNotifications, lottery.TopicResults, referral.TopicResults,
	recommend.TopicRecommendations}

// archivedAdminTopics are the admin topics ClickHouse keeps as well, with
// their types: the batch definitions price coupons in the budget reports
// (coupon_batches).
var (
	archivedAdminTopics = []string{coupon.TopicAdmin}
	archivedAdminTypes  = []string{
		schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 1}.String(),
		schemas.TypeVersion{Type: schemas.TypeCouponBatchDefined, Version: 2}.String(),
	}
)

// sinkStages declares the sink stages: MySQL keeps results (the system of
// record); ClickHouse keeps the raw requests and the results (reporting).
func sinkStages(my, ch stream.BatchWriter) []stream.Stage {
	sinkFetch := []kgo.Opt{kgo.FetchMinBytes(256 << 10), kgo.FetchMaxWait(200 * time.Millisecond)}
	m := stream.SinkStage(stageMySQL, "promoflow-sink-mysql",
		resultTopics, resultTypes, my)
	m.ClientOpts = sinkFetch
	m.MaxPollRecords = 20_000
	c := stream.SinkStage(stageClickHouse, "promoflow-sink-clickhouse",
		append(append([]string{coupon.TopicClaims, coupon.TopicOrders, lottery.TopicRequests, referral.TopicEvents, topicStation, recommend.TopicBehaviour}, resultTopics...), archivedAdminTopics...),
		append(append(append([]string(nil), inputTypes...), resultTypes...), archivedAdminTypes...), ch)
	c.ClientOpts = sinkFetch
	c.MaxPollRecords = 20_000
	// The processors own their input topics and dead-letter invalid
	// records; the archive must not dead-letter them a second time.
	c.SkipInvalid = true
	return []stream.Stage{m, c}
}

func parseOnly(only string) ([]string, error) {
	if only == "" || only == "all" {
		return allStages, nil
	}
	var out []string
	for _, s := range splitList(only) {
		found := false
		for _, a := range allStages {
			if s == a {
				found = true
			}
		}
		if !found {
			return nil, usagef("unknown stage %q (stages: %s)", s, strings.Join(allStages, ", "))
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out, nil
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func newRedis(c RedisConfig) redis.UniversalClient {
	if len(c.ClusterAddrs) > 0 {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.ClusterAddrs, Username: c.Username, Password: c.Password,
			TLSConfig: c.tlsConfig.Clone()})
	}
	return redis.NewClient(&redis.Options{Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB,
		TLSConfig: c.tlsConfig.Clone()})
}

// kafkaOpts returns what every Kafka client of a command starts from: the
// seed brokers and, as configured, TLS and SASL. Only clients of the
// embedded kfake cluster (demo, bench, broker) do without.
func (c *Config) kafkaOpts() []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Kafka.Brokers...)}
	if c.Kafka.tlsConfig != nil {
		opts = append(opts, kgo.DialTLSConfig(c.Kafka.tlsConfig.Clone()))
	}
	if m := c.Kafka.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts
}

// mechanism returns the configured SASL mechanism, or nil without one.
// Validate has checked the name.
func (s SASLConfig) mechanism() sasl.Mechanism {
	switch strings.ToLower(s.Mechanism) {
	case saslPlain:
		return plain.Auth{User: s.Username, Pass: s.Password}.AsMechanism()
	case saslSCRAM256:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha256Mechanism()
	case saslSCRAM512:
		return scram.Auth{User: s.Username, Pass: s.Password}.AsSha512Mechanism()
	}
	return nil
}

// wrap prefixes a Kafka command's error with how the clients reach Kafka:
// against a broker that drops the connection on bad credentials the error
// alone is a bare EOF. It returns nil for nil.
func (k KafkaConfig) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", k.describe(), err)
}

// describe says how the clients reach Kafka, for errors: the brokers, TLS
// and the SASL mechanism and user (never the password).
func (k KafkaConfig) describe() string {
	how := "plaintext"
	if k.tlsConfig != nil {
		how = "TLS"
	}
	if m := strings.ToLower(k.SASL.Mechanism); m != "" {
		how += ", SASL " + m + " as " + k.SASL.Username
	}
	return "kafka at " + strings.Join(k.Brokers, ",") + " (" + how + ")"
}

func (c *Config) streamConfig(log *slog.Logger) stream.Config {
	return stream.Config{
		Brokers:        c.Kafka.Brokers,
		DLQTopic:       c.Runtime.DLQTopic,
		MaxPollRecords: c.Runtime.MaxPollRecords,
		SessionTimeout: c.Runtime.SessionTimeout,
		CommitInterval: c.Runtime.CommitInterval,
		Logger:         log,
		// The seed brokers again, harmlessly, with TLS and SASL.
		ClientOpts: c.kafkaOpts(),
	}
}

// limit converts a configured bucket (Rate 0 = off).
func (l RateLimitConfig) limit() coupon.RateLimit {
	return coupon.RateLimit{Rate: l.Rate, Burst: l.Burst}
}

// buildPipeline connects the chosen stages. Nothing runs until Run.
func buildPipeline(ctx context.Context, cfg *Config, stages []string, pt parts) (_ *pipeline, err error) {
	log := pt.log
	if log == nil {
		log = cfg.logger()
	}
	p := &pipeline{cfg: cfg, log: log, metrics: pt.metrics}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	scfg := cfg.streamConfig(log)
	scfg.Metrics = pt.metrics

	if has(stages, stageCoupon) {
		rdb, err := p.redis(ctx, pt)
		if err != nil {
			return nil, err
		}
		store := coupon.NewStore(rdb, coupon.WithKeyPrefix(cfg.Redis.KeyPrefix), coupon.WithDecisionTTL(cfg.Coupon.DecisionTTL))
		if err := store.Load(ctx); err != nil {
			return nil, err
		}
		p.batches = coupon.NewBatches()
		view, err := stream.NewView(scfg, coupon.TopicAdmin, p.batches.Apply)
		if err != nil {
			return nil, err
		}
		p.views = append(p.views, view)
		sc := scfg
		sc.Fencer = &stream.RedisFencer{Client: rdb, Prefix: cfg.Redis.KeyPrefix}
		r, err := stream.New(sc, coupon.New(store, p.batches,
			coupon.WithLockTimeout(cfg.Coupon.LockTimeout),
			coupon.WithRateLimits(cfg.Coupon.RateLimit.PerUser.limit(), cfg.Coupon.RateLimit.PerApp.limit()),
			// Prizes won in the lottery are not self-claims.
			coupon.WithRateLimitExempt(lottery.AppID),
		).Stage())
		if err != nil {
			return nil, err
		}
		p.runners = append(p.runners, r)
		// The admin check runs with the processor (a group of its own).
		ar, err := stream.New(scfg, coupon.AdminStage())
		if err != nil {
			return nil, err
		}
		p.runners = append(p.runners, ar)
	}

	if has(stages, stageLottery) {
		rdb, err := p.redis(ctx, pt)
		if err != nil {
			return nil, err
		}
		store := lottery.NewStore(rdb, lottery.WithKeyPrefix(cfg.Redis.KeyPrefix), lottery.WithDecisionTTL(cfg.Lottery.DecisionTTL))
		if err := store.Load(ctx); err != nil {
			return nil, err
		}
		p.acts = lottery.NewActivities()
		view, err := stream.NewView(scfg, lottery.TopicAdmin, p.acts.Apply)
		if err != nil {
			return nil, err
		}
		p.views = append(p.views, view)
		sc := scfg
		sc.Fencer = &stream.RedisFencer{Client: rdb, Prefix: cfg.Redis.KeyPrefix}
		r, err := stream.New(sc, lottery.New(store, p.acts).Stage())
		if err != nil {
			return nil, err
		}
		p.runners = append(p.runners, r)
		// The admin stage (seed commitments, bad definitions) runs with the
		// processor, in a group of its own.
		ar, err := stream.New(scfg, lottery.AdminStage(store))
		if err != nil {
			return nil, err
		}
		p.runners = append(p.runners, ar)
	}

	if has(stages, stageReferral) {
		if err := p.buildReferral(ctx, pt, scfg); err != nil {
			return nil, err
		}
	}
	if has(stages, stageRecommend) {
		if err := p.addRecommend(ctx, pt, scfg); err != nil {
			return nil, err
		}
	}

	var my, ch sinkWriter = pt.mysql, pt.clickhouse
	if has(stages, stageMySQL) && my == nil {
		s, err := mysql.New(ctx, cfg.MySQL)
		if err != nil {
			return nil, fmt.Errorf("starting mysql sink: %w", err)
		}
		my = s
		p.closers = append(p.closers, s.Close)
	}
	if has(stages, stageClickHouse) && ch == nil {
		s, err := clickhouse.New(ctx, cfg.ClickHouse)
		if err != nil {
			return nil, fmt.Errorf("starting clickhouse sink: %w", err)
		}
		ch = s
		p.closers = append(p.closers, s.Close)
	}
	for _, st := range sinkStages(my, ch) {
		if !has(stages, st.Name) {
			continue
		}
		r, err := stream.New(scfg, st)
		if err != nil {
			return nil, err
		}
		p.runners = append(p.runners, r)
	}
	if has(stages, stageStation) {
		if err := p.addStation(ctx, my, scfg); err != nil {
			return nil, err
		}
	}
	if has(stages, stageCrowd) {
		if err := p.addCrowds(ctx, my, scfg); err != nil {
			return nil, err
		}
	}
	if has(stages, stageNotifyPlan) {
		if err := p.addNotifyPlan(ctx, pt, my, scfg); err != nil {
			return nil, err
		}
	}
	if has(stages, stageNotifySend) {
		if err := p.addNotifySend(ctx, pt, scfg); err != nil {
			return nil, err
		}
	}
	p.sinks = usedSinks(stages, my, ch)
	return p, nil
}

// addRecommend adds the recommendation processor: its rules (the file,
// watched for changes, or the built-in ones), its store, the coupon batch
// cache (shared with the coupon stage when it runs here) and the coupon
// processor's counters it ranks by.
func (p *pipeline) addRecommend(ctx context.Context, pt parts, scfg stream.Config) error {
	rdb, err := p.redis(ctx, pt)
	if err != nil {
		return err
	}
	var rules recommend.RulesSource
	if f := p.cfg.Recommend.RulesFile; f != "" {
		w, err := recommend.NewWatcher(f, p.cfg.Recommend.RulesPoll, p.log)
		if err != nil {
			return fmt.Errorf("recommend.rules_file: %w", err)
		}
		p.rules, rules = w, w
	} else {
		rules = recommend.StaticRules(recommend.DefaultRules())
		p.log.Info("recommend.rules_file is not set: using the built-in recommendation rules", "revision", rules.Rules().Revision)
	}
	store := recommend.NewStore(rdb, recommend.WithKeyPrefix(p.cfg.Redis.KeyPrefix), recommend.WithDecisionTTL(p.cfg.Recommend.DecisionTTL))
	if err := store.Load(ctx); err != nil {
		return err
	}
	if p.batches == nil {
		p.batches = coupon.NewBatches()
		view, err := stream.NewView(scfg, coupon.TopicAdmin, p.batches.Apply)
		if err != nil {
			return err
		}
		p.views = append(p.views, view)
	}
	counters := coupon.NewStore(rdb, coupon.WithKeyPrefix(p.cfg.Redis.KeyPrefix))
	sc := scfg
	sc.Fencer = &stream.RedisFencer{Client: rdb, Prefix: p.cfg.Redis.KeyPrefix}
	r, err := stream.New(sc, recommend.New(store, counters, p.batches, rules).Stage())
	if err != nil {
		return err
	}
	p.runners = append(p.runners, r)
	return nil
}

// watchRules reloads the recommendation rules file when it changes and on
// SIGHUP, until ctx ends.
func (p *pipeline) watchRules(ctx context.Context) {
	if p.rules == nil {
		return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go p.rules.Run(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			p.log.Info("SIGHUP: reloading the recommendation rules")
			_, _ = p.rules.Reload() // logged
		}
	}
}

// mysqlFor returns the MySQL sink a stage that needs MySQL runs on: my (the
// pipeline's MySQL sink when it runs one), or a sink opened once for all
// such stages of the pipeline. On the demo's in-memory stand-in it returns
// nil, and logs that the stage does not run.
func (p *pipeline) mysqlFor(ctx context.Context, my sinkWriter, stage, what string) (*mysql.Sink, error) {
	switch m := my.(type) {
	case *mysql.Sink:
		return m, nil
	case nil:
		if p.ownMySQL == nil {
			s, err := mysql.New(ctx, p.cfg.MySQL)
			if err != nil {
				return nil, fmt.Errorf("starting %s: %w", stage, err)
			}
			p.closers = append(p.closers, s.Close)
			p.ownMySQL = s
		}
		return p.ownMySQL, nil
	}
	p.log.Info(what + " needs MySQL: stage " + stage + " does not run on the in-memory stand-in")
	return nil, nil
}

// redis returns the pipeline's Redis client, connecting it on first use.
func (p *pipeline) redis(ctx context.Context, pt parts) (redis.UniversalClient, error) {
	if p.rdb == nil {
		p.rdb = pt.rdb
		if p.rdb == nil {
			p.rdb = newRedis(p.cfg.Redis)
			p.closers = append(p.closers, p.rdb.Close)
		}
		p.metrics.InstrumentRedis(p.rdb)
	}
	if err := p.rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("connecting to redis: %w", err)
	}
	return p.rdb, nil
}

// Run runs every stage until ctx ends. Processors start consuming only after
// the batch cache has caught up with the admin topic. Shutdown follows the
// data flow: each runner stops polling, finishes and commits its batch in
// flight and leaves its group; then connections close.
func (p *pipeline) Run(ctx context.Context) error {
	defer p.close()
	var wg sync.WaitGroup
	errs := make(chan error, len(p.runners)+len(p.views))
	vctx, stopViews := context.WithCancel(context.WithoutCancel(ctx))
	defer stopViews()
	for _, v := range p.views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := v.Run(vctx); err != nil {
				errs <- err
			}
		}()
	}
	for _, v := range p.views {
		if err := v.WaitCaughtUp(ctx); err != nil {
			stopViews()
			wg.Wait()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	if p.batches != nil {
		p.log.Info("coupon batch cache loaded", "batches", p.batches.Len())
	}
	if p.acts != nil {
		p.log.Info("lottery activity cache loaded", "activities", p.acts.Len())
	}
	if p.refActs != nil {
		p.log.Info("referral activity cache loaded", "activities", p.refActs.Len())
	}
	go p.watchRules(ctx)
	for _, job := range p.background {
		go job(ctx)
	}
	var rwg sync.WaitGroup
	for _, r := range p.runners {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			if err := r.Run(ctx); err != nil {
				errs <- fmt.Errorf("stage %s: %w", r.Stage().Name, err)
			}
		}()
	}
	rwg.Wait()
	stopViews()
	wg.Wait()
	close(errs)
	var all []error
	for e := range errs {
		all = append(all, e)
	}
	return errors.Join(all...)
}

// Stats returns each stage's counters.
func (p *pipeline) Stats() map[string]stream.Stats {
	out := map[string]stream.Stats{}
	for _, r := range p.runners {
		out[r.Stage().Name] = r.Stats()
	}
	return out
}

func (p *pipeline) close() {
	for _, r := range p.runners {
		r.Close()
	}
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			p.log.Warn("closing", "err", err)
		}
	}
	p.closers = nil
}
