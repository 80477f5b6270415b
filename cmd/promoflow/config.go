package main

import (
	"crypto/tls"
	"crypto/x509"
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
	Gateway    GatewayConfig     `yaml:"gateway"`
	Referral   ReferralConfig    `yaml:"referral"`
	Metrics    MetricsConfig     `yaml:"metrics"`
	Station    StationConfig     `yaml:"station"`
	Recommend  RecommendConfig   `yaml:"recommend"`
	Crowds     CrowdsConfig      `yaml:"crowds"`
	Notify     NotifyConfig      `yaml:"notify"`
}

// KafkaConfig says where the brokers are and how to reach them.
type KafkaConfig struct {
	// Brokers are seed brokers. Default 127.0.0.1:9092.
	Brokers []string `yaml:"brokers"`
	// TLS encrypts the connections to the brokers. Default off.
	TLS KafkaTLSConfig `yaml:"tls"`
	// SASL authenticates the clients to the brokers. Default off.
	SASL SASLConfig `yaml:"sasl"`

	tlsConfig *tls.Config // built from TLS by loadConfig
}

// KafkaTLSConfig is TLSConfig with a way to skip verification, for
// development brokers with throwaway certificates.
type KafkaTLSConfig struct {
	Enabled    bool   `yaml:"enabled"`
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any certificate: anyone on the network
	// path can then impersonate the brokers. loadConfig logs a warning.
	// Default false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// files returns the TLSConfig part of t.
func (t KafkaTLSConfig) files() TLSConfig {
	return TLSConfig{Enabled: t.Enabled, CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName}
}

// SASL mechanisms of kafka.sasl.mechanism (matched case-insensitively).
const (
	saslPlain     = "plain"
	saslSCRAM256  = "scram-sha-256"
	saslSCRAM512  = "scram-sha-512"
	saslWantedMsg = "want plain, scram-sha-256 or scram-sha-512"
)

// SASLConfig authenticates the Kafka clients.
type SASLConfig struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512. Default empty:
	// no SASL.
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password is better given by PROMOFLOW_KAFKA_SASL_PASSWORD or
	// PasswordFile.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig turns TLS on for a connection and says how to verify the
// server, as files read once by loadConfig. Without CAFile the system
// roots verify the server; without CertFile and KeyFile no client
// certificate is sent. The sinks' TLS settings have the same fields.
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that sign the servers' certificates.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the servers' certificates must carry,
	// overriding the default: the host each connection dials.
	ServerName string `yaml:"server_name"`
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
	// TLS encrypts the connections to Redis. Default off.
	TLS TLSConfig `yaml:"tls"`

	tlsConfig *tls.Config // built from TLS by loadConfig
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

// CrowdsConfig tunes the crowd tables and their maintenance
// (docs/crowds.md).
type CrowdsConfig struct {
	// AheadDays is how many days after today routine tables are created
	// ahead. Default 3.
	AheadDays int `yaml:"ahead_days"`
	// RetentionDays is how many days of routine tables are kept; older ones
	// are backed up and dropped whole. Default 7.
	RetentionDays int `yaml:"retention_days"`
	// Backup is what happens to a routine table past the retention before
	// it leaves: archive (moved into <database>_archive), dump (a gzip'd
	// TSV file under dump_dir) or none. Default archive.
	Backup string `yaml:"backup"`
	// DumpDir is where dumps go (backup dump).
	DumpDir string `yaml:"dump_dir"`
	// MaintainInterval is how often `promoflow run` (with the sink-crowd
	// stage) maintains the tables, besides at start. Default 1h.
	MaintainInterval time.Duration `yaml:"maintain_interval"`
	// TimeZone is the zone days are cut in. Default UTC.
	TimeZone string `yaml:"time_zone"`
}

// location returns the crowds' time zone.
func (c CrowdsConfig) location() (*time.Location, error) {
	if c.TimeZone == "" {
		return time.UTC, nil
	}
	return time.LoadLocation(c.TimeZone)
}

// StationConfig tunes station messages (站内信, docs/station-messages.md).
type StationConfig struct {
	// Lookback is how old (by published_at) a message to all users may be
	// when a user's inbox would receive it: a user who reads for the first
	// time, or after a long absence, gets only the messages of this window.
	// Default 720h (30 days); at least 1h.
	Lookback time.Duration `yaml:"lookback"`
}

// RecommendConfig tunes the recommendation processor
// (docs/recommendations.md).
type RecommendConfig struct {
	// RulesFile is the recommendation rules (YAML). Empty uses the built-in
	// rules, the example of docs/recommendations.md. The file is reloaded
	// without a restart when it changes and on SIGHUP. Default empty.
	RulesFile string `yaml:"rules_file"`
	// RulesPoll is how often the rules file is checked for changes.
	// Default 5s.
	RulesPoll time.Duration `yaml:"rules_poll"`
	// DecisionTTL is how long behaviour event ids and top-N decisions are
	// remembered; keep it above the behaviour topic's retention. Default
	// 192h (8 days).
	DecisionTTL time.Duration `yaml:"decision_ttl"`
}

// GatewayConfig configures `promoflow gateway`, the HTTP ingest gateway
// (docs/gateway.md). Zero fields take the defaults; its methods are in
// cmd_gateway.go.
type GatewayConfig struct {
	// Addr is the listen address. Default 127.0.0.1:8090.
	Addr string `yaml:"addr"`
	// Apps are the upstream apps allowed to publish. Default none.
	Apps []GatewayApp `yaml:"apps"`
	// MaxBody bounds a request body in bytes. Default 1048576 (1 MiB).
	MaxBody int64 `yaml:"max_body"`
	// MaxBatch bounds the events of one request. Default 500.
	MaxBatch int `yaml:"max_batch"`
	// MaxSkew bounds how far a request's timestamp may be from the
	// gateway's clock, and how long signatures are remembered against
	// replays. Default 5m.
	MaxSkew time.Duration `yaml:"max_skew"`
	// RatePerApp is each app's token-bucket rate, events per second.
	// Default 1000.
	RatePerApp float64 `yaml:"rate_per_app"`
	// BurstPerApp is the bucket's size, at least MaxBatch. Default 1000.
	BurstPerApp int `yaml:"burst_per_app"`
	// ReplayCacheSize bounds the signatures remembered per app.
	// Default 100000.
	ReplayCacheSize int `yaml:"replay_cache_size"`
	// PublishTimeout bounds how long a request waits for Kafka. Default 10s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
}

// GatewayApp is an app allowed to publish through the gateway. Its key is
// never in the file: KeyEnv names an environment variable holding it, or
// KeyFile a file (one of the two).
type GatewayApp struct {
	AppID   string `yaml:"app_id"`
	KeyEnv  string `yaml:"key_env"`
	KeyFile string `yaml:"key_file"`
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
	// The file alone must say each secret one way; the environment then
	// overrides either.
	if err := c.secretConflicts(); err != nil {
		return nil, err
	}
	c.applyEnv(os.Getenv)
	c.applyLogFlags()
	c.defaults()
	if err := c.loadFiles(); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Kafka.TLS.Enabled && c.Kafka.TLS.InsecureSkipVerify {
		c.logger().Warn("kafka.tls.insecure_skip_verify is set: the brokers' certificates are NOT verified and anyone on the network path can impersonate them; use it only against development brokers")
	}
	if strings.EqualFold(c.Kafka.SASL.Mechanism, saslPlain) && !c.Kafka.TLS.Enabled {
		c.logger().Warn("kafka.sasl.mechanism plain without kafka.tls: the password crosses the network in clear text")
	}
	return &c, nil
}

// secretConflicts reports every secret the file gives both inline and by
// file. It runs before the environment is applied: a password from the
// environment overrides either.
func (c *Config) secretConflicts() error {
	var errs []error
	both := func(inline bool, file, what string) {
		if inline && file != "" {
			errs = append(errs, fmt.Errorf("%s: give the password one way, inline or by file, not both", what))
		}
	}
	both(c.Kafka.SASL.Password != "", c.Kafka.SASL.PasswordFile, "kafka.sasl.password and kafka.sasl.password_file are both set")
	both(c.Redis.Password != "", c.Redis.PasswordFile, "redis.password and redis.password_file are both set")
	both(c.MySQL.HasDSNPassword(), c.MySQL.PasswordFile, "mysql.dsn or mysql.shards holds a password and mysql.password_file is set")
	both(c.ClickHouse.Password != "", c.ClickHouse.PasswordFile, "clickhouse.password and clickhouse.password_file are both set")
	return errors.Join(errs...)
}

// loadFiles reads, once, every file the configuration names: the password
// files of the passwords not given otherwise, and the TLS files. It reports
// every problem.
func (c *Config) loadFiles() error {
	var errs []error
	secret := func(field, path string, password *string) {
		if path == "" || *password != "" { // the environment won
			return
		}
		v, err := readSecretFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", field, err))
			return
		}
		*password = v
	}
	secret("kafka.sasl.password_file", c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password)
	secret("redis.password_file", c.Redis.PasswordFile, &c.Redis.Password)
	secret("mysql.password_file", c.MySQL.PasswordFile, &c.MySQL.Password)
	secret("clickhouse.password_file", c.ClickHouse.PasswordFile, &c.ClickHouse.Password)

	var err error
	if c.Kafka.tlsConfig, err = c.Kafka.TLS.files().load("kafka.tls", c.Kafka.TLS.InsecureSkipVerify); err != nil {
		errs = append(errs, err)
	}
	if c.Redis.tlsConfig, err = c.Redis.TLS.load("redis.tls", false); err != nil {
		errs = append(errs, err)
	}
	if tc, err := TLSConfig(c.MySQL.TLS).load("mysql.tls", false); err != nil {
		errs = append(errs, err)
	} else if tc != nil {
		if err := c.MySQL.RegisterTLS(tc); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ClickHouse.TLSConfig, err = TLSConfig(c.ClickHouse.TLS).load("clickhouse.tls", false); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// maxSecretFile bounds what readSecretFile reads.
const maxSecretFile = 64 << 10

// readSecretFile reads a password from path, surrounding whitespace and
// the final newline trimmed. Like ssh with a private key, it refuses a file
// that group or others may access (mode & 0o077 != 0), and an empty one.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("%s has mode %#o: a secret file must not be readable or writable by group or others (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxSecretFile {
		return "", fmt.Errorf("%s is larger than %d bytes: not a password", path, maxSecretFile)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}

// load builds the client TLS configuration of section (kafka.tls, ...) from
// t's files, or returns nil when TLS is off. insecure skips verifying the
// server's certificate.
func (t TLSConfig) load(section string, insecure bool) (*tls.Config, error) {
	if !t.Enabled {
		// A CA or a certificate named but not used would leave the
		// connection in the clear while the file suggests otherwise.
		if t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || insecure {
			return nil, fmt.Errorf("%s: files or options set but enabled is false (set enabled: true, or remove them)", section)
		}
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: insecure}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", section, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: no PEM certificate in %s", section, t.CAFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: loading cert_file %s and key_file %s: %w", section, t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	case t.CertFile != "" || t.KeyFile != "":
		return nil, fmt.Errorf("%s: cert_file and key_file go together; set both or neither", section)
	}
	return tc, nil
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
	{"PROMOFLOW_KAFKA_SASL_PASSWORD", "Kafka SASL password"},
	{"PROMOFLOW_REDIS_ADDR", "standalone Redis address"},
	{"PROMOFLOW_REDIS_CLUSTER_ADDRS", "comma-separated Redis Cluster seeds"},
	{"PROMOFLOW_REDIS_PASSWORD", "Redis password"},
	{"PROMOFLOW_REDIS_KEY_PREFIX", "Redis key prefix"},
	{"PROMOFLOW_MYSQL_DSN", "MySQL server DSN (without database)"},
	{"PROMOFLOW_MYSQL_SHARDS", "comma-separated DSNs, one per shard database"},
	{"PROMOFLOW_MYSQL_DATABASE_PREFIX", "shard database name prefix"},
	{"PROMOFLOW_MYSQL_PASSWORD", "MySQL password, replacing the DSNs'"},
	{"PROMOFLOW_CLICKHOUSE_ADDR", "ClickHouse native-protocol address"},
	{"PROMOFLOW_CLICKHOUSE_DATABASE", "ClickHouse database"},
	{"PROMOFLOW_CLICKHOUSE_USERNAME", "ClickHouse user"},
	{"PROMOFLOW_CLICKHOUSE_PASSWORD", "ClickHouse password"},
	{"PROMOFLOW_RECOMMEND_RULES_FILE", "recommendation rules file"},
	{"PROMOFLOW_LOG_FORMAT", "text or json"},
	{"PROMOFLOW_LOG_LEVEL", "debug, info, warn or error"},
	{"PROMOFLOW_METRICS_LISTEN", "address of run's /metrics, /healthz, /readyz, or off"},
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
	set("PROMOFLOW_KAFKA_SASL_PASSWORD", func(v string) { c.Kafka.SASL.Password = v })
	set("PROMOFLOW_REDIS_ADDR", func(v string) { c.Redis.Addr = v })
	set("PROMOFLOW_REDIS_CLUSTER_ADDRS", func(v string) { c.Redis.ClusterAddrs = splitList(v) })
	set("PROMOFLOW_REDIS_PASSWORD", func(v string) { c.Redis.Password = v })
	set("PROMOFLOW_REDIS_KEY_PREFIX", func(v string) { c.Redis.KeyPrefix = v })
	set("PROMOFLOW_MYSQL_DSN", func(v string) { c.MySQL.DSN = v })
	set("PROMOFLOW_MYSQL_SHARDS", func(v string) { c.MySQL.Shards = splitList(v) })
	set("PROMOFLOW_MYSQL_DATABASE_PREFIX", func(v string) { c.MySQL.DatabasePrefix = v })
	set("PROMOFLOW_MYSQL_PASSWORD", func(v string) { c.MySQL.Password = v })
	set("PROMOFLOW_CLICKHOUSE_ADDR", func(v string) { c.ClickHouse.Addr = v })
	set("PROMOFLOW_CLICKHOUSE_DATABASE", func(v string) { c.ClickHouse.Database = v })
	set("PROMOFLOW_CLICKHOUSE_USERNAME", func(v string) { c.ClickHouse.Username = v })
	set("PROMOFLOW_CLICKHOUSE_PASSWORD", func(v string) { c.ClickHouse.Password = v })
	set("PROMOFLOW_RECOMMEND_RULES_FILE", func(v string) { c.Recommend.RulesFile = v })
	set("PROMOFLOW_LOG_FORMAT", func(v string) { c.Log.Format = v })
	set("PROMOFLOW_LOG_LEVEL", func(v string) { c.Log.Level = v })
	set("PROMOFLOW_METRICS_LISTEN", func(v string) { c.Metrics.Listen = v })
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
	if c.Station.Lookback == 0 {
		c.Station.Lookback = mysql.DefaultLookback
	}
	if c.Crowds.AheadDays == 0 {
		c.Crowds.AheadDays = 3
	}
	if c.Crowds.RetentionDays == 0 {
		c.Crowds.RetentionDays = 7
	}
	if c.Crowds.Backup == "" {
		c.Crowds.Backup = mysql.BackupArchive
	}
	if c.Crowds.MaintainInterval == 0 {
		c.Crowds.MaintainInterval = time.Hour
	}
	if c.Crowds.TimeZone == "" {
		c.Crowds.TimeZone = "UTC"
	}
	if c.Recommend.RulesPoll == 0 {
		c.Recommend.RulesPoll = 5 * time.Second
	}
	if c.Recommend.DecisionTTL == 0 {
		c.Recommend.DecisionTTL = 8 * 24 * time.Hour
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	c.MySQL.Defaults()
	c.ClickHouse.Defaults()
	c.Gateway.defaults()
	c.Referral.defaults()
	c.Notify.defaults()
	c.Metrics.defaults()
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
	if c.Station.Lookback < time.Hour {
		errs = append(errs, fmt.Errorf("station.lookback %s: must be at least 1h", c.Station.Lookback))
	}
	if c.Crowds.AheadDays < 1 || c.Crowds.AheadDays > 30 {
		errs = append(errs, fmt.Errorf("crowds.ahead_days %d: must be from 1 to 30", c.Crowds.AheadDays))
	}
	if c.Crowds.RetentionDays < 1 || c.Crowds.RetentionDays > 366 {
		errs = append(errs, fmt.Errorf("crowds.retention_days %d: must be from 1 to 366", c.Crowds.RetentionDays))
	}
	switch c.Crowds.Backup {
	case mysql.BackupArchive, mysql.BackupNone:
	case mysql.BackupDump:
		if c.Crowds.DumpDir == "" {
			errs = append(errs, errors.New("crowds.backup dump needs crowds.dump_dir"))
		}
	default:
		errs = append(errs, fmt.Errorf("crowds.backup %q: must be archive, dump or none", c.Crowds.Backup))
	}
	if c.Crowds.MaintainInterval < time.Minute {
		errs = append(errs, fmt.Errorf("crowds.maintain_interval %s: must be at least 1m", c.Crowds.MaintainInterval))
	}
	if _, err := c.Crowds.location(); err != nil {
		errs = append(errs, fmt.Errorf("crowds.time_zone %q: %v", c.Crowds.TimeZone, err))
	}
	if c.Recommend.DecisionTTL < time.Hour {
		errs = append(errs, fmt.Errorf("recommend.decision_ttl %s: must be at least 1h (and above the behaviour.events retention)", c.Recommend.DecisionTTL))
	}
	if c.Recommend.RulesPoll < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("recommend.rules_poll %s: must be at least 100ms", c.Recommend.RulesPoll))
	}
	if err := c.Kafka.SASL.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.MySQL.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("mysql: %w", err))
	}
	if err := c.ClickHouse.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("clickhouse: %w", err))
	}
	if err := c.Gateway.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Referral.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Notify.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Metrics.validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validate checks the mechanism and that it has a user and a password.
func (s SASLConfig) validate() error {
	m := strings.ToLower(s.Mechanism)
	switch m {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			return fmt.Errorf("kafka.sasl: a username or password is set but no mechanism (%s)", saslWantedMsg)
		}
		return nil
	case saslPlain, saslSCRAM256, saslSCRAM512:
	default:
		return fmt.Errorf("kafka.sasl.mechanism %q: %s", s.Mechanism, saslWantedMsg)
	}
	var errs []error
	if s.Username == "" {
		errs = append(errs, fmt.Errorf("kafka.sasl.username: required with mechanism %s", m))
	}
	if s.Password == "" {
		errs = append(errs, fmt.Errorf("kafka.sasl.password: required with mechanism %s (PROMOFLOW_KAFKA_SASL_PASSWORD or kafka.sasl.password_file)", m))
	}
	return errors.Join(errs...)
}

// redacted stands for a secret in Redacted.
const redacted = "***"

// Redacted returns a copy of c with every secret replaced by "***": the
// passwords, and the password inside each MySQL DSN. A secret that is not
// set stays empty, so the copy still shows which ones are.
func (c Config) Redacted() Config {
	mask := func(s *string) {
		if *s != "" {
			*s = redacted
		}
	}
	mask(&c.Kafka.SASL.Password)
	mask(&c.Redis.Password)
	mask(&c.MySQL.Password)
	mask(&c.ClickHouse.Password)
	c.MySQL.DSN = redactDSN(c.MySQL.DSN)
	if c.MySQL.Shards != nil {
		shards := make([]string, len(c.MySQL.Shards)) // not the caller's array
		for i, dsn := range c.MySQL.Shards {
			shards[i] = redactDSN(dsn)
		}
		c.MySQL.Shards = shards
	}
	return c
}

// String returns c, redacted, as YAML, so that printing a Config never
// shows a secret.
func (c Config) String() string {
	b, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// LogValue logs c redacted.
func (c Config) LogValue() slog.Value { return slog.StringValue(c.String()) }

func (c *Config) logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	l := slog.New(slog.NewTextHandler(os.Stderr, opts))
	if c.Log.Format == "json" {
		l = slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	redisLog.Store(l)
	return l
}
