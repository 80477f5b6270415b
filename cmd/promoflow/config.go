package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// Config is the YAML configuration file (docs/configuration.md). Every
// field has a default that works against local servers; PROMOFLOW_*
// environment variables override the file.
type Config struct {
	Kafka      KafkaConfig       `yaml:"kafka"`
	Redis      RedisConfig       `yaml:"redis"`
	MySQL      mysql.Config      `yaml:"mysql"`
	ClickHouse clickhouse.Config `yaml:"clickhouse"`
	Runtime    RuntimeConfig     `yaml:"runtime"`
	Coupon     CouponConfig      `yaml:"coupon"`
	Lottery    LotteryConfig     `yaml:"lottery"`
	Log        LogConfig         `yaml:"log"`
}

// KafkaConfig says where the brokers are.
type KafkaConfig struct {
	// Brokers are seed brokers. Default 127.0.0.1:9092.
	Brokers []string `yaml:"brokers"`
}

// RedisConfig says where the processors' state lives.
type RedisConfig struct {
	// Addr is a standalone Redis. Default 127.0.0.1:6379.
	Addr string `yaml:"addr"`
	// ClusterAddrs, when set, are Redis Cluster seed nodes (Addr is ignored).
	ClusterAddrs []string `yaml:"cluster_addrs"`
	Username     string   `yaml:"username"`
	// Password is better given by PROMOFLOW_REDIS_PASSWORD or PasswordFile.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// KeyPrefix starts every key Promoflow writes. Default "pf".
	KeyPrefix string `yaml:"key_prefix"`
}

// RuntimeConfig tunes the processor runtime shared by every stage.
type RuntimeConfig struct {
	// MaxPollRecords bounds the records handled per poll. Default 5000.
	MaxPollRecords int `yaml:"max_poll_records"`
	// SessionTimeout is the consumer-group session timeout: how long a
	// crashed member keeps its partitions. Default 45s.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// DLQTopic receives invalid records. Default promoflow.dlq.
	DLQTopic string `yaml:"dlq_topic"`
	// CommitInterval, when set, commits offsets in the background at most
	// this often instead of after every poll (fewer commits; more records
	// redelivered, and deduplicated, after a crash). Default 0: every poll.
	CommitInterval time.Duration `yaml:"commit_interval"`
}

// CouponConfig tunes the coupon processor.
type CouponConfig struct {
	// DecisionTTL is how long decisions are remembered for deduplication;
	// keep it above the claims topic's retention. Default 192h (8 days).
	DecisionTTL time.Duration `yaml:"decision_ttl"`
	// LockTimeout is how long an order's lock on a coupon holds before the
	// timer releases it, unless confirmed or cancelled. Default 15m.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// RateLimit limits self-claims (not issues). Default off.
	RateLimit CouponRateLimits `yaml:"rate_limit"`
}

// CouponRateLimits are the token buckets of self-claims.
type CouponRateLimits struct {
	// PerUser limits each user's claims.
	PerUser RateLimitConfig `yaml:"per_user"`
	// PerApp limits each app's claims (all its users together).
	PerApp RateLimitConfig `yaml:"per_app"`
}

// RateLimitConfig is a token bucket: Rate claims per second on average,
// Burst at once. Rate 0 turns it off (the default).
type RateLimitConfig struct {
	Rate  float64 `yaml:"rate"`
	Burst int64   `yaml:"burst"`
}

// LotteryConfig tunes the lottery processor.
type LotteryConfig struct {
	// DecisionTTL is how long an activity's state (participants, decisions,
	// the draw) is kept after its join window or draw time, whichever is
	// later; keep it above the requests topic's retention. Default 192h.
	DecisionTTL time.Duration `yaml:"decision_ttl"`
}

// LogConfig sets the log format and level.
type LogConfig struct {
	// Format is text or json. Default text.
	Format string `yaml:"format"`
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
}

// loadConfig reads path (if not empty), applies environment overrides and
// defaults, and validates.
func loadConfig(path string) (*Config, error) {
	var c Config
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(b)))
		dec.KnownFields(true)
		if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) { // io.EOF: no document, all defaults
			return nil, fmt.Errorf("parsing config %s: %w", path, err)
		}
	}
	c.applyEnv(os.Getenv)
	c.defaults()
	if c.Redis.PasswordFile != "" && c.Redis.Password == "" {
		b, err := os.ReadFile(c.Redis.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("reading redis.password_file: %w", err)
		}
		c.Redis.Password = strings.TrimSpace(string(b))
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// loadConfigBrokers is loadConfig for the commands with a --brokers flag:
// a non-empty brokers list replaces kafka.brokers (flags win over the
// environment and the file).
func loadConfigBrokers(path, brokers string) (*Config, error) {
	c, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if brokers != "" {
		c.Kafka.Brokers = splitList(brokers)
	}
	return c, nil
}

// envOverrides lists every environment variable the config reads.
var envOverrides = []struct{ name, doc string }{
	{"PROMOFLOW_KAFKA_BROKERS", "comma-separated seed brokers"},
	{"PROMOFLOW_REDIS_ADDR", "standalone Redis address"},
	{"PROMOFLOW_REDIS_CLUSTER_ADDRS", "comma-separated Redis Cluster seeds"},
	{"PROMOFLOW_REDIS_PASSWORD", "Redis password"},
	{"PROMOFLOW_REDIS_KEY_PREFIX", "Redis key prefix"},
	{"PROMOFLOW_MYSQL_DSN", "MySQL server DSN (without database)"},
	{"PROMOFLOW_MYSQL_SHARDS", "comma-separated DSNs, one per shard database"},
	{"PROMOFLOW_MYSQL_DATABASE_PREFIX", "shard database name prefix"},
	{"PROMOFLOW_CLICKHOUSE_ADDR", "ClickHouse native-protocol address"},
	{"PROMOFLOW_CLICKHOUSE_DATABASE", "ClickHouse database"},
	{"PROMOFLOW_CLICKHOUSE_USERNAME", "ClickHouse user"},
	{"PROMOFLOW_CLICKHOUSE_PASSWORD", "ClickHouse password"},
	{"PROMOFLOW_LOG_FORMAT", "text or json"},
	{"PROMOFLOW_LOG_LEVEL", "debug, info, warn or error"},
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *Config) applyEnv(get func(string) string) {
	set := func(name string, f func(string)) {
		if v := get(name); v != "" {
			f(v)
		}
	}
	set("PROMOFLOW_KAFKA_BROKERS", func(v string) { c.Kafka.Brokers = splitList(v) })
	set("PROMOFLOW_REDIS_ADDR", func(v string) { c.Redis.Addr = v })
	set("PROMOFLOW_REDIS_CLUSTER_ADDRS", func(v string) { c.Redis.ClusterAddrs = splitList(v) })
	set("PROMOFLOW_REDIS_PASSWORD", func(v string) { c.Redis.Password = v })
	set("PROMOFLOW_REDIS_KEY_PREFIX", func(v string) { c.Redis.KeyPrefix = v })
	set("PROMOFLOW_MYSQL_DSN", func(v string) { c.MySQL.DSN = v })
	set("PROMOFLOW_MYSQL_SHARDS", func(v string) { c.MySQL.Shards = splitList(v) })
	set("PROMOFLOW_MYSQL_DATABASE_PREFIX", func(v string) { c.MySQL.DatabasePrefix = v })
	set("PROMOFLOW_CLICKHOUSE_ADDR", func(v string) { c.ClickHouse.Addr = v })
	set("PROMOFLOW_CLICKHOUSE_DATABASE", func(v string) { c.ClickHouse.Database = v })
	set("PROMOFLOW_CLICKHOUSE_USERNAME", func(v string) { c.ClickHouse.Username = v })
	set("PROMOFLOW_CLICKHOUSE_PASSWORD", func(v string) { c.ClickHouse.Password = v })
	set("PROMOFLOW_LOG_FORMAT", func(v string) { c.Log.Format = v })
	set("PROMOFLOW_LOG_LEVEL", func(v string) { c.Log.Level = v })
}

func (c *Config) defaults() {
	if len(c.Kafka.Brokers) == 0 {
		c.Kafka.Brokers = []string{"127.0.0.1:9092"}
	}
	if c.Redis.Addr == "" {
		c.Redis.Addr = "127.0.0.1:6379"
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = "pf"
	}
	if c.Runtime.DLQTopic == "" {
		c.Runtime.DLQTopic = "promoflow.dlq"
	}
	if c.Runtime.MaxPollRecords == 0 {
		c.Runtime.MaxPollRecords = 5000
	}
	if c.Runtime.SessionTimeout == 0 {
		c.Runtime.SessionTimeout = 45 * time.Second
	}
	if c.Coupon.DecisionTTL == 0 {
		c.Coupon.DecisionTTL = 8 * 24 * time.Hour
	}
	if c.Coupon.LockTimeout == 0 {
		c.Coupon.LockTimeout = 15 * time.Minute
	}
	if c.Lottery.DecisionTTL == 0 {
		c.Lottery.DecisionTTL = 8 * 24 * time.Hour
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	c.MySQL.Defaults()
	c.ClickHouse.Defaults()
}

// Validate checks the whole configuration and reports every problem.
func (c *Config) Validate() error {
	var errs []error
	if c.Log.Format != "text" && c.Log.Format != "json" {
		errs = append(errs, fmt.Errorf("log.format %q: want text or json", c.Log.Format))
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		errs = append(errs, fmt.Errorf("log.level %q: %w", c.Log.Level, err))
	}
	if c.Runtime.SessionTimeout < 0 || c.Runtime.MaxPollRecords < 0 || c.Runtime.CommitInterval < 0 {
		errs = append(errs, errors.New("runtime: negative session_timeout, max_poll_records or commit_interval"))
	}
	if c.Coupon.DecisionTTL < time.Hour {
		errs = append(errs, fmt.Errorf("coupon.decision_ttl %s: must be at least 1h (and above the claims retention)", c.Coupon.DecisionTTL))
	}
	if c.Coupon.LockTimeout < time.Second {
		errs = append(errs, fmt.Errorf("coupon.lock_timeout %s: must be at least 1s", c.Coupon.LockTimeout))
	}
	for _, l := range []struct {
		name string
		RateLimitConfig
	}{{"per_user", c.Coupon.RateLimit.PerUser}, {"per_app", c.Coupon.RateLimit.PerApp}} {
		switch {
		case l.Rate < 0 || l.Burst < 0:
			errs = append(errs, fmt.Errorf("coupon.rate_limit.%s: negative rate or burst", l.name))
		case l.Rate > 0 && l.Rate < 0.001:
			errs = append(errs, fmt.Errorf("coupon.rate_limit.%s.rate %g: at least 0.001 per second (or 0: off)", l.name, l.Rate))
		case l.Rate > 0 && l.Burst < 1:
			errs = append(errs, fmt.Errorf("coupon.rate_limit.%s.burst %d: at least 1 when rate is set", l.name, l.Burst))
		case l.Burst > 1_000_000:
			errs = append(errs, fmt.Errorf("coupon.rate_limit.%s.burst %d: at most 1000000", l.name, l.Burst))
		}
	}
	if c.Lottery.DecisionTTL < time.Hour {
		errs = append(errs, fmt.Errorf("lottery.decision_ttl %s: must be at least 1h (and above the requests retention)", c.Lottery.DecisionTTL))
	}
	if err := c.MySQL.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("mysql: %w", err))
	}
	if err := c.ClickHouse.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("clickhouse: %w", err))
	}
	return errors.Join(errs...)
}

func (c *Config) logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}
