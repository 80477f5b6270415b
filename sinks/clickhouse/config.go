package clickhouse

import (
	"fmt"
	"net"
	"regexp"
	"time"
)

// Defaults applied by [Config.Defaults].
const (
	DefaultAddr         = "127.0.0.1:9000"
	DefaultDatabase     = "promoflow"
	DefaultUsername     = "default"
	DefaultDialTimeout  = 10 * time.Second
	DefaultMaxOpenConns = 4
)

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Config configures the ClickHouse sink.
type Config struct {
	// Addr is the host:port of the server's native protocol (not HTTP).
	// Default 127.0.0.1:9000.
	Addr string `yaml:"addr"`
	// Database holds the sink's tables; it is created if missing.
	// Default "promoflow".
	Database string `yaml:"database"`
	// Username defaults to "default".
	Username string `yaml:"username"`
	// Password defaults to empty.
	Password string `yaml:"password"`
	// DialTimeout bounds connecting. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// MaxOpenConns limits the connections; one WriteBatch uses one per
	// table it inserts into. Default 4.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// Defaults fills every unset field with its default.
func (c *Config) Defaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Database == "" {
		c.Database = DefaultDatabase
	}
	if c.Username == "" {
		c.Username = DefaultUsername
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.MaxOpenConns == 0 {
		c.MaxOpenConns = DefaultMaxOpenConns
	}
}

// Validate reports the first problem with c, which must have had Defaults
// applied.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		return fmt.Errorf("addr must be host:port of the native protocol: %w", err)
	}
	if !identifier.MatchString(c.Database) {
		return fmt.Errorf("database must be 1-63 letters, digits or _, not starting with a digit, got %q", c.Database)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("dial_timeout must not be negative, got %s", c.DialTimeout)
	}
	if c.MaxOpenConns < 1 {
		return fmt.Errorf("max_open_conns must be at least 1, got %d", c.MaxOpenConns)
	}
	return nil
}
