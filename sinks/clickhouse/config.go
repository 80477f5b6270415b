package clickhouse

import (
	"crypto/tls"
	"errors"
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
	// PasswordFile names a file holding Password, so that the YAML does
	// not carry it. The sink does not read it: whoever loads the
	// configuration (cmd/promoflow, once at start) reads it into Password.
	// Default none.
	PasswordFile string `yaml:"password_file"`
	// TLS asks for TLS on the native protocol (the server's secure port,
	// 9440 by default). The sink does not read its files: whoever loads
	// the configuration builds TLSConfig from them. Default off.
	TLS TLSConfig `yaml:"tls"`
	// TLSConfig, when not nil, encrypts every connection with it. It has
	// no YAML key: it is built from TLS's files. Default nil (plain TCP).
	TLSConfig *tls.Config `yaml:"-"`
	// DialTimeout bounds connecting. Default 10s.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// MaxOpenConns limits the connections; one WriteBatch uses one per
	// table it inserts into. Default 4.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// TLSConfig is the YAML-facing TLS setting of the ClickHouse connections:
// the files to build a *tls.Config from. Without CAFile the system roots
// verify the server; without CertFile and KeyFile no client certificate is
// sent.
type TLSConfig struct {
	// Enabled turns TLS on. Default false.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM file of the CAs that sign the server's certificate.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// servers that require one.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the server's certificate must carry,
	// overriding the default: the host of Addr.
	ServerName string `yaml:"server_name"`
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
	if c.TLS.Enabled && c.TLSConfig == nil {
		// Connecting in the clear when TLS was asked for is worse than not
		// connecting.
		return errors.New("tls.enabled is set but TLSConfig was not built from its files")
	}
	return nil
}
