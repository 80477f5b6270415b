package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/mysql"
)

const exampleConfig = "../../deploy/promoflow.example.yaml"

// clearConfigEnv hides every PROMOFLOW_* override of the developer's or the
// CI's environment from the test (applyEnv ignores empty values).
func clearConfigEnv(t *testing.T) {
	t.Helper()
	for _, e := range envOverrides {
		t.Setenv(e.name, "")
	}
}

// writeConfig writes body to a config file in a temporary directory.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "promoflow.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// defaultConfig is what an empty configuration turns into.
func defaultConfig(t *testing.T) *Config {
	t.Helper()
	var c Config
	c.defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	return &c
}

func TestConfigDefaults(t *testing.T) {
	clearConfigEnv(t)
	files := []struct{ name, path string }{
		{"no file", ""},
		{"empty document", writeConfig(t, "---\n")},
		{"empty sections", writeConfig(t, "kafka: {}\nredis: {}\nmysql: {}\nclickhouse: {}\nruntime: {}\ncoupon: {}\nlog: {}\n")},
		{"null fields", writeConfig(t, "kafka:\n  brokers:\nredis:\n  addr: \"\"\nlog:\n  format:\n")},
		{"empty file", writeConfig(t, "")},
		{"only comments", writeConfig(t, "# nothing set\n")},
	}
	for _, f := range files {
		path := f.path
		c, err := loadConfig(path)
		if err != nil {
			t.Fatalf("loadConfig(%s): %v", f.name, err)
		}
		checks := []struct {
			field     string
			got, want any
		}{
			{"kafka.brokers", c.Kafka.Brokers, []string{"127.0.0.1:9092"}},
			{"redis.addr", c.Redis.Addr, "127.0.0.1:6379"},
			{"redis.key_prefix", c.Redis.KeyPrefix, "pf"},
			{"redis.cluster_addrs", len(c.Redis.ClusterAddrs), 0},
			{"mysql.dsn", c.MySQL.DSN, mysql.DefaultDSN},
			{"mysql.database_prefix", c.MySQL.DatabasePrefix, mysql.DefaultDatabasePrefix},
			{"mysql.databases", c.MySQL.Databases, mysql.DefaultDatabases},
			{"mysql.tables_per_database", c.MySQL.TablesPerDatabase, mysql.DefaultTablesPerDatabase},
			{"mysql.batch_rows", c.MySQL.BatchRows, mysql.DefaultBatchRows},
			{"mysql.max_open_conns", c.MySQL.MaxOpenConns, mysql.DefaultMaxOpenConns},
			{"mysql.conn_max_lifetime", c.MySQL.ConnMaxLifetime, mysql.DefaultConnMaxLifetime},
			{"clickhouse.addr", c.ClickHouse.Addr, clickhouse.DefaultAddr},
			{"clickhouse.database", c.ClickHouse.Database, clickhouse.DefaultDatabase},
			{"clickhouse.username", c.ClickHouse.Username, clickhouse.DefaultUsername},
			{"clickhouse.dial_timeout", c.ClickHouse.DialTimeout, clickhouse.DefaultDialTimeout},
			{"clickhouse.max_open_conns", c.ClickHouse.MaxOpenConns, clickhouse.DefaultMaxOpenConns},
			{"runtime.dlq_topic", c.Runtime.DLQTopic, "promoflow.dlq"},
			{"coupon.decision_ttl", c.Coupon.DecisionTTL, 192 * time.Hour},
			{"log.format", c.Log.Format, "text"},
			{"log.level", c.Log.Level, "info"},
		}
		for _, ck := range checks {
			if !reflect.DeepEqual(ck.got, ck.want) {
				t.Errorf("loadConfig(%q): %s = %v, want the default %v", path, ck.field, ck.got, ck.want)
			}
		}
		if want := defaultConfig(t); !reflect.DeepEqual(c, want) {
			t.Errorf("loadConfig(%q) = %+v, want the defaults %+v", path, c, want)
		}
	}
}

func TestConfigDefaultsKeepSetValues(t *testing.T) {
	c := Config{
		Kafka:  KafkaConfig{Brokers: []string{"k:1"}},
		Redis:  RedisConfig{Addr: "r:1", KeyPrefix: "x"},
		Coupon: CouponConfig{DecisionTTL: 2 * time.Hour},
		Log:    LogConfig{Format: "json", Level: "debug"},
	}
	c.Runtime.DLQTopic = "dlq"
	c.defaults()
	if c.Kafka.Brokers[0] != "k:1" || c.Redis.Addr != "r:1" || c.Redis.KeyPrefix != "x" ||
		c.Coupon.DecisionTTL != 2*time.Hour || c.Log.Format != "json" || c.Log.Level != "debug" || c.Runtime.DLQTopic != "dlq" {
		t.Errorf("defaults overwrote set values: %+v", c)
	}
}

func TestConfigExampleFile(t *testing.T) {
	clearConfigEnv(t)
	c, err := loadConfig(exampleConfig)
	if err != nil {
		t.Fatalf("loading %s: %v", exampleConfig, err)
	}
	// Its values are the defaults. Runtime's are filled in by the stream
	// runtime rather than by Config.defaults, so they are compared apart.
	want := defaultConfig(t)
	want.Runtime.MaxPollRecords = 5000
	want.Runtime.SessionTimeout = 45 * time.Second
	// The example writes empty lists as []; the defaults leave them nil.
	if len(c.Redis.ClusterAddrs) == 0 {
		c.Redis.ClusterAddrs = nil
	}
	if len(c.MySQL.Shards) == 0 {
		c.MySQL.Shards = nil
	}
	if len(c.Notify.Caps) == 0 {
		c.Notify.Caps = nil
	}
	if len(c.Notify.Templates) == 0 {
		c.Notify.Templates = nil
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("%s does not hold the defaults:\n got %+v\nwant %+v", exampleConfig, c, want)
	}
}

// TestConfigComposeFile loads the configuration docker-compose.yml mounts,
// with the environment the compose file gives the containers.
func TestConfigComposeFile(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_REDIS_PASSWORD", "other-demo")
	t.Setenv("PROMOFLOW_MYSQL_DSN", "root:other-demo@tcp(mysql:3306)/")
	t.Setenv("PROMOFLOW_CLICKHOUSE_PASSWORD", "other-demo")
	c, err := loadConfig("../../deploy/promoflow.compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"kafka-1:19092", "kafka-2:19092", "kafka-3:19092"}; !reflect.DeepEqual(c.Kafka.Brokers, want) {
		t.Errorf("brokers %v, want %v", c.Kafka.Brokers, want)
	}
	if c.Redis.Addr != "redis:6379" || c.ClickHouse.Addr != "clickhouse:9000" {
		t.Errorf("redis %s, clickhouse %s: want the compose services", c.Redis.Addr, c.ClickHouse.Addr)
	}
	if c.Redis.Password != "other-demo" || c.ClickHouse.Password != "other-demo" || c.MySQL.DSN != "root:other-demo@tcp(mysql:3306)/" {
		t.Errorf("the environment of the containers does not win over the file: %+v", c)
	}
}

// TestConfigExampleCoversEveryField keeps the example honest: every YAML
// field of Config is written out in it.
func TestConfigExampleCoversEveryField(t *testing.T) {
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, path := range yamlFields(reflect.TypeOf(Config{}), "") {
		m, _ := parentMap(doc, path)
		if _, ok := m[path[strings.LastIndex(path, ".")+1:]]; !ok {
			t.Errorf("%s does not set %s", exampleConfig, path)
		}
	}
}

// yamlFields lists the dotted YAML paths of every leaf field of t.
func yamlFields(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeOf(time.Duration(0)) {
			out = append(out, yamlFields(f.Type, prefix+name+".")...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// parentMap returns the mapping that holds the last key of path.
func parentMap(doc map[string]any, path string) (map[string]any, bool) {
	keys := strings.Split(path, ".")
	m := doc
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

// TestConfigExampleShardLayout checks the commented 8x8 production layout of
// the example file: uncommented, it is a valid MySQL configuration that
// routes users over 64 shards as the comments say.
func TestConfigExampleShardLayout(t *testing.T) {
	b, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)# BEGIN 8x8 EXAMPLE\n(.*?)\n\s*# END 8x8 EXAMPLE`).FindSubmatch(b)
	if block == nil {
		t.Fatalf("%s has no 8x8 example block", exampleConfig)
	}
	var lines []string
	for _, l := range strings.Split(string(block[1]), "\n") {
		_, after, ok := strings.Cut(l, "#   ")
		if !ok {
			t.Fatalf("line %q of the 8x8 example is not a comment", l)
		}
		lines = append(lines, after)
	}
	var c mysql.Config
	dec := yaml.NewDecoder(strings.NewReader(strings.Join(lines, "\n")))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("parsing the 8x8 example: %v", err)
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("the 8x8 example does not validate: %v", err)
	}
	if c.NumDatabases() != 8 || c.TablesPerDatabase != 8 {
		t.Fatalf("8x8 example has %d databases x %d tables", c.NumDatabases(), c.TablesPerDatabase)
	}
	// The worked example of the comments and docs/configuration.md.
	if db, table := c.Route("u42"); db != 3 || table != 6 {
		t.Errorf("Route(u42) = db %d table %d, want 3, 6 as documented", db, table)
	}
	var local mysql.Config
	local.Defaults()
	if db, table := local.Route("u42"); db != 1 || table != 2 {
		t.Errorf("default layout: Route(u42) = db %d table %d, want 1, 2 as documented", db, table)
	}
}

func TestConfigEnvOverridesFile(t *testing.T) {
	clearConfigEnv(t)
	path := writeConfig(t, `
kafka:
  brokers: [file-kafka:9092]
  sasl:
    mechanism: scram-sha-256
    username: file-user
    password: file-kafka-secret
redis:
  addr: file-redis:6379
  password: file-secret
  key_prefix: file
mysql:
  dsn: "file@tcp(file-mysql:3306)/"
  database_prefix: filedb
clickhouse:
  addr: file-ch:9000
  database: filech
  username: fileuser
  password: file-ch-secret
log:
  format: text
  level: info
`)
	env := map[string]string{
		"PROMOFLOW_KAFKA_BROKERS":         " k1:9092, k2:9092 ,,k3:9092 ",
		"PROMOFLOW_KAFKA_SASL_PASSWORD":   "env-kafka-secret",
		"PROMOFLOW_MYSQL_PASSWORD":        "env-mysql-secret",
		"PROMOFLOW_REDIS_ADDR":            "env-redis:6379",
		"PROMOFLOW_REDIS_PASSWORD":        "env-secret",
		"PROMOFLOW_REDIS_KEY_PREFIX":      "env",
		"PROMOFLOW_MYSQL_DSN":             "env:pw@tcp(env-mysql:3306)/",
		"PROMOFLOW_MYSQL_DATABASE_PREFIX": "envdb",
		"PROMOFLOW_CLICKHOUSE_ADDR":       "env-ch:9000",
		"PROMOFLOW_CLICKHOUSE_DATABASE":   "envch",
		"PROMOFLOW_CLICKHOUSE_USERNAME":   "envuser",
		"PROMOFLOW_CLICKHOUSE_PASSWORD":   "env-ch-secret",
		"PROMOFLOW_LOG_FORMAT":            "json",
		"PROMOFLOW_LOG_LEVEL":             "warn",
		"PROMOFLOW_METRICS_LISTEN":        "127.0.0.1:19464",
		"PROMOFLOW_RECOMMEND_RULES_FILE":  "/etc/promoflow/rules.yaml",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		env       string
		got, want any
	}{
		{"PROMOFLOW_KAFKA_BROKERS", c.Kafka.Brokers, []string{"k1:9092", "k2:9092", "k3:9092"}},
		{"PROMOFLOW_KAFKA_SASL_PASSWORD", c.Kafka.SASL.Password, "env-kafka-secret"},
		{"PROMOFLOW_MYSQL_PASSWORD", c.MySQL.Password, "env-mysql-secret"},
		{"PROMOFLOW_REDIS_ADDR", c.Redis.Addr, "env-redis:6379"},
		{"PROMOFLOW_REDIS_PASSWORD", c.Redis.Password, "env-secret"},
		{"PROMOFLOW_REDIS_KEY_PREFIX", c.Redis.KeyPrefix, "env"},
		{"PROMOFLOW_MYSQL_DSN", c.MySQL.DSN, "env:pw@tcp(env-mysql:3306)/"},
		{"PROMOFLOW_MYSQL_DATABASE_PREFIX", c.MySQL.DatabasePrefix, "envdb"},
		{"PROMOFLOW_CLICKHOUSE_ADDR", c.ClickHouse.Addr, "env-ch:9000"},
		{"PROMOFLOW_CLICKHOUSE_DATABASE", c.ClickHouse.Database, "envch"},
		{"PROMOFLOW_CLICKHOUSE_USERNAME", c.ClickHouse.Username, "envuser"},
		{"PROMOFLOW_CLICKHOUSE_PASSWORD", c.ClickHouse.Password, "env-ch-secret"},
		{"PROMOFLOW_LOG_FORMAT", c.Log.Format, "json"},
		{"PROMOFLOW_LOG_LEVEL", c.Log.Level, "warn"},
		{"PROMOFLOW_METRICS_LISTEN", c.Metrics.Listen, "127.0.0.1:19464"},
		{"PROMOFLOW_RECOMMEND_RULES_FILE", c.Recommend.RulesFile, "/etc/promoflow/rules.yaml"},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s: got %v, want %v (the env must win over the file)", ck.env, ck.got, ck.want)
		}
	}
	// Every documented override is exercised here, or (the two that switch
	// the layout: cluster seeds, shard DSNs) in TestConfigApplyEnv.
	elsewhere := map[string]bool{"PROMOFLOW_REDIS_CLUSTER_ADDRS": true, "PROMOFLOW_MYSQL_SHARDS": true}
	for _, e := range envOverrides {
		if _, ok := env[e.name]; !ok && !elsewhere[e.name] {
			t.Errorf("%s is not tested", e.name)
		}
	}
}

func TestConfigApplyEnv(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(*Config) bool
	}{
		{"empty values leave the file alone", map[string]string{"PROMOFLOW_REDIS_ADDR": "", "PROMOFLOW_KAFKA_BROKERS": ""},
			func(c *Config) bool { return c.Redis.Addr == "file:6379" && len(c.Kafka.Brokers) == 1 }},
		{"cluster addrs", map[string]string{"PROMOFLOW_REDIS_CLUSTER_ADDRS": "r1:6379,r2:6379"},
			func(c *Config) bool { return reflect.DeepEqual(c.Redis.ClusterAddrs, []string{"r1:6379", "r2:6379"}) }},
		{"mysql shards", map[string]string{"PROMOFLOW_MYSQL_SHARDS": "u:p@tcp(a:3306)/db_0, u:p@tcp(b:3306)/db_1"},
			func(c *Config) bool {
				return reflect.DeepEqual(c.MySQL.Shards, []string{"u:p@tcp(a:3306)/db_0", "u:p@tcp(b:3306)/db_1"})
			}},
		{"brokers list", map[string]string{"PROMOFLOW_KAFKA_BROKERS": "a:1,b:2"},
			func(c *Config) bool { return reflect.DeepEqual(c.Kafka.Brokers, []string{"a:1", "b:2"}) }},
		{"unrelated variables ignored", map[string]string{"PROMOFLOW_NOPE": "x", "KAFKA_BROKERS": "x:1"},
			func(c *Config) bool { return c.Kafka.Brokers[0] == "file:9092" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Kafka: KafkaConfig{Brokers: []string{"file:9092"}}, Redis: RedisConfig{Addr: "file:6379"}}
			c.applyEnv(func(k string) string { return tc.env[k] })
			if !tc.check(&c) {
				t.Errorf("after applyEnv(%v): %+v", tc.env, c)
			}
		})
	}
}

func TestConfigShardsFromEnv(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_MYSQL_SHARDS", "u:p@tcp(a:3306)/promoflow_0,u:p@tcp(b:3306)/promoflow_1")
	c, err := loadConfig(writeConfig(t, "mysql:\n  tables_per_database: 8\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MySQL.NumDatabases() != 2 || c.MySQL.TablesPerDatabase != 8 {
		t.Errorf("shards from env: %d databases x %d tables, want 2 x 8", c.MySQL.NumDatabases(), c.MySQL.TablesPerDatabase)
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown top-level field", "kafak:\n  brokers: [a:1]\n", []string{"field kafak not found", "line 1"}},
		{"unknown nested field", "redis:\n  adress: r:6379\n", []string{"field adress not found", "line 2"}},
		{"unknown mysql field", "mysql:\n  shard: [x]\n", []string{"field shard not found"}},
		{"bad log format", "log:\n  format: xml\n", []string{`log.format "xml"`, "text or json"}},
		{"bad log level", "log:\n  level: loud\n", []string{`log.level "loud"`}},
		{"decision_ttl too small", "coupon:\n  decision_ttl: 30m\n", []string{"coupon.decision_ttl 30m0s", "at least 1h"}},
		{"decision_ttl negative", "coupon:\n  decision_ttl: -1h\n", []string{"coupon.decision_ttl"}},
		{"duration without unit", "coupon:\n  decision_ttl: 192\n", []string{"line 2", "time.Duration"}},
		{"negative commit interval", "runtime:\n  commit_interval: -1s\n", []string{"runtime: negative"}},
		{"negative runtime", "runtime:\n  max_poll_records: -1\n", []string{"runtime: negative"}},
		{"negative session timeout", "runtime:\n  session_timeout: -5s\n", []string{"runtime: negative"}},
		{"mysql dsn with database", "mysql:\n  dsn: root@tcp(h:3306)/x\n", []string{"mysql:", "dsn names database"}},
		{"mysql shards and databases disagree", "mysql:\n  shards: [\"u@tcp(a:3306)/d0\"]\n  databases: 2\n", []string{"mysql:", "databases is 2 but shards lists 1"}},
		{"clickhouse http url", "clickhouse:\n  addr: http://ch:8123\n", []string{"clickhouse:", "addr"}},
		{"missing password file", "redis:\n  password_file: /nonexistent/promoflow-test\n", []string{"redis.password_file"}},
		{"not a mapping", "- a\n- b\n", []string{"parsing config"}},
		{"every problem at once", "log:\n  format: xml\n  level: loud\ncoupon:\n  decision_ttl: 1m\n", []string{"log.format", "log.level", "coupon.decision_ttl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			path := writeConfig(t, tc.yaml)
			c, err := loadConfig(path)
			if err == nil {
				t.Fatalf("loadConfig accepted %q: %+v", tc.yaml, c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigRejectsBadEnv(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_LOG_FORMAT", "yaml")
	if _, err := loadConfig(""); err == nil || !strings.Contains(err.Error(), `log.format "yaml"`) {
		t.Errorf("loadConfig with PROMOFLOW_LOG_FORMAT=yaml: err = %v", err)
	}
}

func TestConfigMissingFile(t *testing.T) {
	clearConfigEnv(t)
	_, err := loadConfig(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !strings.Contains(err.Error(), "reading config") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("loadConfig of a missing file: err = %v", err)
	}
}

func TestConfigPasswordFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "redis_password")
	if err := os.WriteFile(secret, []byte("  s3cret with spaces inside\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml string
		env  string
		want string
	}{
		{"read and trimmed", "redis:\n  password_file: " + secret + "\n", "", "s3cret with spaces inside"},
		{"env password wins", "redis:\n  password_file: " + secret + "\n", "from-env", "from-env"},
		{"env password wins, the file is not read", "redis:\n  password_file: /nonexistent/promoflow-test\n", "from-env", "from-env"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv("PROMOFLOW_REDIS_PASSWORD", tc.env)
			c, err := loadConfig(writeConfig(t, tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if c.Redis.Password != tc.want {
				t.Errorf("redis password = %q, want %q", c.Redis.Password, tc.want)
			}
		})
	}
}

func TestConfigEnvOverridesDocumented(t *testing.T) {
	b, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range envOverrides {
		if !strings.Contains(string(b), "`"+e.name+"`") {
			t.Errorf("docs/configuration.md does not document %s", e.name)
		}
	}
	for _, path := range yamlFields(reflect.TypeOf(Config{}), "") {
		if !strings.Contains(string(b), "`"+path+"`") {
			t.Errorf("docs/configuration.md does not document %s", path)
		}
	}
}

// writeSecret writes a password file with the given mode.
func writeSecret(t *testing.T, name, body string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode passes through the umask.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestConfigSecretFiles reads every password file into its password, and
// lets the environment win without reading the file.
func TestConfigSecretFiles(t *testing.T) {
	file := writeSecret(t, "secret", "from-file\n", 0o400)
	sections := []struct {
		name, yaml, env string
		got             func(*Config) string
	}{
		{"kafka", "kafka:\n  sasl:\n    mechanism: scram-sha-512\n    username: u\n    password_file: %s\n", "PROMOFLOW_KAFKA_SASL_PASSWORD",
			func(c *Config) string { return c.Kafka.SASL.Password }},
		{"redis", "redis:\n  password_file: %s\n", "PROMOFLOW_REDIS_PASSWORD",
			func(c *Config) string { return c.Redis.Password }},
		{"mysql", "mysql:\n  dsn: \"promoflow@tcp(db:3306)/\"\n  password_file: %s\n", "PROMOFLOW_MYSQL_PASSWORD",
			func(c *Config) string { return c.MySQL.Password }},
		{"clickhouse", "clickhouse:\n  password_file: %s\n", "PROMOFLOW_CLICKHOUSE_PASSWORD",
			func(c *Config) string { return c.ClickHouse.Password }},
	}
	for _, sec := range sections {
		t.Run(sec.name+"/file", func(t *testing.T) {
			clearConfigEnv(t)
			c, err := loadConfig(writeConfig(t, fmt.Sprintf(sec.yaml, file)))
			if err != nil {
				t.Fatal(err)
			}
			if got := sec.got(c); got != "from-file" {
				t.Errorf("password = %q, want the file's", got)
			}
		})
		t.Run(sec.name+"/env wins", func(t *testing.T) {
			clearConfigEnv(t)
			t.Setenv(sec.env, "from-env")
			// A file that cannot be read proves it is not read.
			c, err := loadConfig(writeConfig(t, fmt.Sprintf(sec.yaml, "/nonexistent/promoflow-secret")))
			if err != nil {
				t.Fatal(err)
			}
			if got := sec.got(c); got != "from-env" {
				t.Errorf("password = %q, want %s's", got, sec.env)
			}
		})
	}
}

func TestConfigSecretFileRejects(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path func(t *testing.T) string
		want []string
	}{
		{"group readable", func(t *testing.T) string { return writeSecret(t, "pw", "x", 0o640) }, []string{"redis.password_file", "mode 0640", "group or others", "chmod 600"}},
		{"world readable", func(t *testing.T) string { return writeSecret(t, "pw", "x", 0o604) }, []string{"redis.password_file", "mode 0604"}},
		{"the default 0644", func(t *testing.T) string { return writeSecret(t, "pw", "x", 0o644) }, []string{"mode 0644"}},
		{"group writable", func(t *testing.T) string { return writeSecret(t, "pw", "x", 0o620) }, []string{"mode 0620"}},
		{"missing", func(*testing.T) string { return filepath.Join(dir, "nope") }, []string{"redis.password_file", "no such file"}},
		{"empty", func(t *testing.T) string { return writeSecret(t, "pw", " \n\n", 0o600) }, []string{"redis.password_file", "is empty"}},
		{"a directory", func(*testing.T) string { return dir }, []string{"redis.password_file", "not a regular file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			_, err := loadConfig(writeConfig(t, "redis:\n  password_file: "+tc.path(t)+"\n"))
			if err == nil {
				t.Fatal("loadConfig accepted the password file")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		clearConfigEnv(t)
		path := writeSecret(t, "pw", "ok", mode)
		if _, err := loadConfig(writeConfig(t, "redis:\n  password_file: "+path+"\n")); err != nil {
			t.Errorf("mode %#o: %v", mode, err)
		}
	}
}

// TestConfigSecretFileErrorsTogether reports every bad file at once.
func TestConfigSecretFileErrorsTogether(t *testing.T) {
	clearConfigEnv(t)
	open := writeSecret(t, "pw", "x", 0o644)
	_, err := loadConfig(writeConfig(t, fmt.Sprintf(`
kafka:
  sasl: {mechanism: plain, username: u, password_file: %[1]s}
redis: {password_file: %[1]s}
mysql: {password_file: %[1]s}
clickhouse: {password_file: %[1]s}
`, open)))
	for _, w := range []string{"kafka.sasl.password_file", "redis.password_file", "mysql.password_file", "clickhouse.password_file"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not name %s", err, w)
		}
	}
}

func TestConfigConflictingSecrets(t *testing.T) {
	file := writeSecret(t, "pw", "from-file", 0o600)
	tests := []struct {
		name, yaml, want string
	}{
		{"kafka", "kafka:\n  sasl: {mechanism: plain, username: u, password: inline-pw-123, password_file: " + file + "}\n",
			"kafka.sasl.password and kafka.sasl.password_file are both set"},
		{"redis", "redis:\n  password: inline-pw-123\n  password_file: " + file + "\n",
			"redis.password and redis.password_file are both set"},
		{"mysql dsn", "mysql:\n  dsn: \"root:inline-pw-123@tcp(db:3306)/\"\n  password_file: " + file + "\n",
			"mysql.dsn or mysql.shards holds a password and mysql.password_file is set"},
		{"mysql shards", "mysql:\n  shards: [\"u@tcp(a:3306)/d0\", \"u:inline-pw-123@tcp(b:3306)/d1\"]\n  password_file: " + file + "\n",
			"mysql.dsn or mysql.shards holds a password and mysql.password_file is set"},
		{"clickhouse", "clickhouse:\n  password: inline-pw-123\n  password_file: " + file + "\n",
			"clickhouse.password and clickhouse.password_file are both set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			_, err := loadConfig(writeConfig(t, tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "inline-pw-123") || strings.Contains(err.Error(), "from-file") {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}
	// The environment may override an inline password while the file
	// names a password file: only the file itself must be unambiguous.
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_MYSQL_DSN", "root:from-env@tcp(db:3306)/")
	c, err := loadConfig(writeConfig(t, "mysql:\n  password_file: "+file+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.MySQL.Password != "from-file" {
		t.Errorf("mysql password %q, want password_file's to replace the DSN's", c.MySQL.Password)
	}
}

func TestConfigSASL(t *testing.T) {
	tests := []struct {
		name string
		sasl string
		want string // "" for valid
	}{
		{"plain", "{mechanism: plain, username: u, password: p}", ""},
		{"scram-sha-256", "{mechanism: scram-sha-256, username: u, password: p}", ""},
		{"scram-sha-512 upper case", "{mechanism: SCRAM-SHA-512, username: u, password: p}", ""},
		{"none", "{}", ""},
		{"unknown mechanism", "{mechanism: gssapi, username: u, password: p}", `kafka.sasl.mechanism "gssapi": want plain, scram-sha-256 or scram-sha-512`},
		{"no username", "{mechanism: plain, password: p}", "kafka.sasl.username: required with mechanism plain"},
		{"no password", "{mechanism: scram-sha-256, username: u}", "kafka.sasl.password: required with mechanism scram-sha-256"},
		{"user without mechanism", "{username: u}", "kafka.sasl: a username or password is set but no mechanism"},
		{"password without mechanism", "{password: p}", "no mechanism"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			var c *Config
			var err error
			logs := captureStderr(t, func() { c, err = loadConfig(writeConfig(t, "kafka:\n  sasl: "+tc.sasl+"\n")) })
			if warned := strings.Contains(logs, "plain without kafka.tls"); warned != (tc.name == "plain") {
				t.Errorf("warned about PLAIN in clear text: %v; logs:\n%s", warned, logs)
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("loadConfig: %v", err)
			case tc.want == "":
				if (c.Kafka.SASL.mechanism() == nil) != (c.Kafka.SASL.Mechanism == "") {
					t.Errorf("mechanism() = %v for %q", c.Kafka.SASL.mechanism(), c.Kafka.SASL.Mechanism)
				}
			case err == nil || !strings.Contains(err.Error(), tc.want):
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// The mechanism names franz-go sends.
	for m, want := range map[string]string{"plain": "PLAIN", "Scram-Sha-256": "SCRAM-SHA-256", "scram-sha-512": "SCRAM-SHA-512"} {
		if got := (SASLConfig{Mechanism: m, Username: "u", Password: "p"}).mechanism().Name(); got != want {
			t.Errorf("mechanism %q is %s, want %s", m, got, want)
		}
	}
}

// TestConfigRedacted fills every secret and checks that no way of printing
// a Config shows one.
func TestConfigRedacted(t *testing.T) {
	c := *defaultConfig(t)
	c.Kafka.SASL = SASLConfig{Mechanism: "plain", Username: "kafka-user", Password: "kafka-s3cret"}
	c.Redis.Password = "redis-s3cret"
	c.MySQL.DSN = "root:dsn-s3cret@tcp(db:3306)/"
	c.MySQL.Shards = []string{"u:shard-s3cret@tcp(a:3306)/d0", "u@tcp(b:3306)/d1"}
	c.MySQL.Password = "mysql-s3cret"
	c.ClickHouse.Password = "ch-s3cret"

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", c)
	for name, out := range map[string]string{
		"String": c.String(), "%v": fmt.Sprintf("%v", c), "%+v of a pointer": fmt.Sprintf("%+v", &c),
		"slog": logged.String(),
	} {
		if strings.Contains(out, "s3cret") {
			t.Errorf("%s shows a secret:\n%s", name, out)
		}
		if !strings.Contains(out, "kafka-user") || !strings.Contains(out, "db:3306") {
			t.Errorf("%s hides what is not secret:\n%s", name, out)
		}
	}
	r := c.Redacted()
	if r.Kafka.SASL.Password != "***" || r.Redis.Password != "***" || r.MySQL.Password != "***" || r.ClickHouse.Password != "***" ||
		r.MySQL.DSN != "root:***@tcp(db:3306)/" || !reflect.DeepEqual(r.MySQL.Shards, []string{"u:***@tcp(a:3306)/d0", "u@tcp(b:3306)/d1"}) {
		t.Errorf("Redacted() = %+v", r)
	}
	if c.Redis.Password != "redis-s3cret" || c.MySQL.Shards[0] != "u:shard-s3cret@tcp(a:3306)/d0" {
		t.Error("Redacted changed the original")
	}
	if unset := defaultConfig(t).Redacted(); unset.Redis.Password != "" {
		t.Errorf("an unset password redacts to %q, want empty", unset.Redis.Password)
	}
}

// TestConfigRedactedCoversEveryPassword is the safety net for fields added
// later: every string field named *Password*, anywhere in Config, set to a
// marker, must not show in String.
func TestConfigRedactedCoversEveryPassword(t *testing.T) {
	c := *defaultConfig(t)
	var fill func(v reflect.Value, path string)
	var filled []string
	fill = func(v reflect.Value, path string) {
		for i := range v.NumField() {
			f, ft := v.Field(i), v.Type().Field(i)
			if !ft.IsExported() {
				continue
			}
			switch {
			case ft.Type.Kind() == reflect.Struct:
				fill(f, path+ft.Name+".")
			case ft.Type.Kind() == reflect.String && strings.Contains(ft.Name, "Password") && !strings.HasSuffix(ft.Name, "File"):
				f.SetString("marker-" + ft.Name)
				filled = append(filled, path+ft.Name)
			}
		}
	}
	fill(reflect.ValueOf(&c).Elem(), "")
	if len(filled) < 4 {
		t.Fatalf("found only %v", filled)
	}
	if out := c.String(); strings.Contains(out, "marker-") {
		t.Errorf("String shows a password field (one of %v):\n%s", filled, out)
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"root:pw@tcp(h:3306)/", "root:***@tcp(h:3306)/"},
		{"root@tcp(h:3306)/", "root@tcp(h:3306)/"},
		{"root:p@ss:w/rd@tcp(h:3306)/db?tls=true", "root:***@tcp(h:3306)/db?tls=true"},
		{"u:pw@unix(/run/mysqld/mysqld.sock)/db", "u:***@unix(/run/mysqld/mysqld.sock)/db"},
		{"u:pw@/db", "u:***@/db"},
		{"tcp(h:3306)/", "tcp(h:3306)/"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := redactDSN(tc.dsn); got != tc.want {
			t.Errorf("redactDSN(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}
