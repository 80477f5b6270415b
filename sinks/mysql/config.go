package mysql

import (
	"crypto/tls"
	"errors"
	"fmt"
	"hash/crc32"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Defaults applied by [Config.Defaults].
const (
	DefaultDSN               = "root@tcp(127.0.0.1:3306)/"
	DefaultDatabasePrefix    = "promoflow"
	DefaultDatabases         = 2
	DefaultTablesPerDatabase = 4
	DefaultBatchRows         = 500
	DefaultMaxOpenConns      = 4
	DefaultConnMaxLifetime   = 3 * time.Minute
	DefaultDialTimeout       = 10 * time.Second
)

// Limits checked by [Config.Validate].
const (
	// MaxShards bounds the databases and the tables per database.
	MaxShards = 1024
	// MaxBatchRows bounds rows per INSERT, keeping the placeholders of one
	// statement under the protocol's limit of 65,535.
	MaxBatchRows = 5000
)

var identifier = regexp.MustCompile(`^[A-Za-z0-9_]{1,48}$`)

// Config configures the MySQL sink. The zero value, after Defaults, is two
// databases of four tables on a local server.
type Config struct {
	// Shards lists one go-sql-driver DSN per shard database, in shard order,
	// each naming its database (user:pw@tcp(host:3306)/promoflow_3). Use it
	// when shards live on different servers. When empty, the shards are the
	// databases <DatabasePrefix>_0 … _<Databases-1> on the server DSN.
	Shards []string `yaml:"shards"`
	// DSN is the go-sql-driver DSN of the server, without a database, used
	// when Shards is empty. Default root@tcp(127.0.0.1:3306)/.
	DSN string `yaml:"dsn"`
	// DatabasePrefix names the shard databases when Shards is empty.
	// Default "promoflow".
	DatabasePrefix string `yaml:"database_prefix"`
	// Databases is the number of shard databases when Shards is empty.
	// Default 2. With Shards it may be left 0 or must equal len(Shards).
	Databases int `yaml:"databases"`
	// TablesPerDatabase is the number of tables of each result type in each
	// database. Default 4.
	TablesPerDatabase int `yaml:"tables_per_database"`
	// BatchRows is the most rows one INSERT statement carries. Default 500.
	BatchRows int `yaml:"batch_rows"`
	// MaxOpenConns limits the connections to each shard database; one
	// WriteBatch uses one per database it writes to. Default 4.
	MaxOpenConns int `yaml:"max_open_conns"`
	// ConnMaxLifetime closes connections older than this, staying below
	// server and proxy idle timeouts. Default 3m.
	ConnMaxLifetime time.Duration `yaml:"conn_max_lifetime"`
	// PasswordFile names a file holding the password, so that neither the
	// YAML nor the DSNs carry it. The sink does not read it: whoever loads
	// the configuration (cmd/promoflow, once at start) reads it into
	// Password. Default none.
	PasswordFile string `yaml:"password_file"`
	// Password, when not empty, replaces the password of DSN and of every
	// DSN of Shards. It has no YAML key: it comes from the environment or
	// from PasswordFile. Default none (the DSNs' own).
	Password string `yaml:"-"`
	// TLS asks for TLS on every shard connection. The sink does not read
	// its files: whoever loads the configuration builds a *tls.Config from
	// them and hands it to RegisterTLS. Default off.
	TLS TLSConfig `yaml:"tls"`
	// TLSName is the name of a TLS configuration registered with the
	// driver (mysql.RegisterTLSConfig) that every shard connection uses, as
	// tls=<TLSName> in a DSN would. RegisterTLS sets it. Default none: each
	// DSN's own tls parameter, if any.
	TLSName string `yaml:"-"`
}

// TLSConfig is the YAML-facing TLS setting of the MySQL connections: the
// files to build a *tls.Config from. Without CAFile the system roots verify
// the server; without CertFile and KeyFile no client certificate is sent.
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that sign the servers' certificates.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that require one (REQUIRE X509).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the servers' certificates must carry,
	// overriding the default: the host of each DSN.
	ServerName string `yaml:"server_name"`
}

// tlsNames numbers the TLS configurations RegisterTLS registers.
var tlsNames atomic.Int64

// RegisterTLS registers tc with the driver under a name of its own
// (promoflow-mysql-<n>) and sets TLSName to it, so that every shard
// connection uses tc. The driver owns what it is given, so tc is cloned
// first. Call it once per configuration: each call registers another name.
func (c *Config) RegisterTLS(tc *tls.Config) error {
	if tc == nil {
		return errors.New("registering mysql tls: nil config")
	}
	name := fmt.Sprintf("promoflow-mysql-%d", tlsNames.Add(1))
	if err := mysql.RegisterTLSConfig(name, tc.Clone()); err != nil {
		return fmt.Errorf("registering mysql tls: %w", err)
	}
	c.TLSName = name
	return nil
}

// HasDSNPassword reports whether DSN or a DSN of Shards holds a password
// (a DSN that does not parse holds none; Validate reports it).
func (c Config) HasDSNPassword() bool {
	for _, dsn := range append([]string{c.DSN}, c.Shards...) {
		if mc, err := mysql.ParseDSN(dsn); err == nil && mc.Passwd != "" {
			return true
		}
	}
	return false
}

// Defaults fills every unset field with its default.
func (c *Config) Defaults() {
	if len(c.Shards) == 0 {
		if c.DSN == "" {
			c.DSN = DefaultDSN
		}
		if c.DatabasePrefix == "" {
			c.DatabasePrefix = DefaultDatabasePrefix
		}
		if c.Databases == 0 {
			c.Databases = DefaultDatabases
		}
	}
	if c.TablesPerDatabase == 0 {
		c.TablesPerDatabase = DefaultTablesPerDatabase
	}
	if c.BatchRows == 0 {
		c.BatchRows = DefaultBatchRows
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
	if c.ConnMaxLifetime == 0 {
		c.ConnMaxLifetime = DefaultConnMaxLifetime
	}
}

// Validate reports the first problem with c, which must have had Defaults
// applied.
func (c Config) Validate() error {
	if _, err := c.shardConfigs(); err != nil {
		return err
	}
	if c.TablesPerDatabase < 1 || c.TablesPerDatabase > MaxShards {
		return fmt.Errorf("tables_per_database must be between 1 and %d, got %d", MaxShards, c.TablesPerDatabase)
	}
	if c.BatchRows < 1 || c.BatchRows > MaxBatchRows {
		return fmt.Errorf("batch_rows must be between 1 and %d, got %d", MaxBatchRows, c.BatchRows)
	}
	if c.MaxOpenConns < 1 {
		return fmt.Errorf("max_open_conns must be at least 1, got %d", c.MaxOpenConns)
	}
	if c.ConnMaxLifetime < 0 {
		return fmt.Errorf("conn_max_lifetime must not be negative, got %s", c.ConnMaxLifetime)
	}
	if c.TLS.Enabled && c.TLSName == "" {
		// Connecting in the clear when TLS was asked for is worse than not
		// connecting.
		return errors.New("tls.enabled is set but no TLS configuration is registered (RegisterTLS)")
	}
	return nil
}

// NumDatabases returns the number of shard databases: len(Shards), or
// Databases when Shards is empty (the default when that is 0).
func (c Config) NumDatabases() int {
	switch {
	case len(c.Shards) > 0:
		return len(c.Shards)
	case c.Databases > 0:
		return c.Databases
	default:
		return DefaultDatabases
	}
}

func (c Config) numTables() int {
	if c.TablesPerDatabase > 0 {
		return c.TablesPerDatabase
	}
	return DefaultTablesPerDatabase
}

// Route returns the shard that holds key's rows, key being a user id, or
// an activity id for the rows of an activity as a whole (lottery_activity,
// lottery_draw): the index of the database (into Shards, or the suffix of
// <DatabasePrefix>_<db>) and of the table within it (the suffix of
// coupon_grant_<table>). It is crc32.ChecksumIEEE(key) % (N*M) split into
// db = idx/M, table = idx%M, for N databases of M tables; unset counts take
// their defaults.
func (c Config) Route(key string) (db, table int) {
	m := uint32(c.numTables())
	idx := crc32.ChecksumIEEE([]byte(key)) % (uint32(c.NumDatabases()) * m)
	return int(idx / m), int(idx % m)
}

// shardConfigs returns the driver config of every shard database, in shard
// order, or why there are none.
func (c Config) shardConfigs() ([]*mysql.Config, error) {
	if len(c.Shards) == 0 {
		return c.prefixedShards()
	}
	if len(c.Shards) > MaxShards {
		return nil, fmt.Errorf("shards lists %d databases, more than %d", len(c.Shards), MaxShards)
	}
	if c.Databases != 0 && c.Databases != len(c.Shards) {
		return nil, fmt.Errorf("databases is %d but shards lists %d", c.Databases, len(c.Shards))
	}
	out := make([]*mysql.Config, len(c.Shards))
	seen := map[string]int{}
	for i, dsn := range c.Shards {
		mc, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, fmt.Errorf("parsing shards[%d]: %w", i, err)
		}
		if !identifier.MatchString(mc.DBName) {
			return nil, fmt.Errorf("shards[%d] must name its database (letters, digits, _), got %q", i, mc.DBName)
		}
		where := mc.Net + "(" + mc.Addr + ")/" + mc.DBName
		if j, dup := seen[where]; dup {
			return nil, fmt.Errorf("shards[%d] and shards[%d] are the same database %s", j, i, where)
		}
		seen[where] = i
		if out[i], err = c.driverConfig(mc); err != nil {
			return nil, fmt.Errorf("shards[%d]: %w", i, err)
		}
	}
	return out, nil
}

func (c Config) prefixedShards() ([]*mysql.Config, error) {
	if c.DSN == "" {
		return nil, errors.New("either shards or dsn must be set")
	}
	if !identifier.MatchString(c.DatabasePrefix) {
		return nil, fmt.Errorf("database_prefix must be 1-48 letters, digits or _, got %q", c.DatabasePrefix)
	}
	if c.Databases < 1 || c.Databases > MaxShards {
		return nil, fmt.Errorf("databases must be between 1 and %d, got %d", MaxShards, c.Databases)
	}
	server, err := mysql.ParseDSN(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("parsing dsn: %w", err)
	}
	if server.DBName != "" {
		return nil, fmt.Errorf("dsn names database %q; leave it out, shard databases are named by database_prefix", server.DBName)
	}
	out := make([]*mysql.Config, c.Databases)
	for i := range out {
		mc := server.Clone()
		mc.DBName = fmt.Sprintf("%s_%d", c.DatabasePrefix, i)
		if out[i], err = c.driverConfig(mc); err != nil {
			return nil, fmt.Errorf("dsn: %w", err)
		}
	}
	return out, nil
}

// driverConfig sets what the sink relies on whatever the DSN says: times
// as time.Time in UTC, and a bounded dial; and what the configuration says
// over the DSN: the password and the TLS configuration.
func (c Config) driverConfig(mc *mysql.Config) (*mysql.Config, error) {
	if c.Password != "" {
		mc.Passwd = c.Password
	}
	if c.TLSName != "" {
		if mc.TLSConfig != "" {
			// Two TLS settings would leave it unclear which one secures
			// the connection.
			return nil, fmt.Errorf("the DSN sets tls=%s and the configuration has TLS on: keep one", mc.TLSConfig)
		}
		mc.TLSConfig = c.TLSName
	}
	mc.ParseTime = true
	mc.Loc = time.UTC
	// Multi-row upserts carry thousands of placeholders; without
	// interpolation every statement is a server-side prepare, execute and
	// close (three round trips and a parse). The driver escapes the values
	// itself for the connection's charset (utf8mb4); the conformance suite's
	// hostile strings are stored verbatim with it on.
	mc.InterpolateParams = true
	if mc.Timeout == 0 {
		mc.Timeout = DefaultDialTimeout
	}
	return mc, nil
}
