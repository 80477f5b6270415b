package clickhouse

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
)

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // "" for valid
	}{
		{"defaults", Config{}, ""},
		{"tls built", Config{TLS: TLSConfig{Enabled: true}, TLSConfig: &tls.Config{}}, ""},
		{"tls config without the block", Config{TLSConfig: &tls.Config{}}, ""},
		{"tls enabled, not built", Config{TLS: TLSConfig{Enabled: true, CAFile: "/ca.pem"}}, "tls.enabled is set but TLSConfig was not built"},
		{"http address", Config{Addr: "http://ch:8123"}, "addr"},
		{"bad database", Config{Database: "1db"}, "database"},
		{"negative conns", Config{MaxOpenConns: -1}, "max_open_conns"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.Defaults()
			err := c.cfg.Validate()
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("Validate() = %v, want an error containing %q", err, c.wantErr)
			}
		})
	}
}

// TestIntegrationTLSRequested shows that the sink dials TLS when TLSConfig
// is set: the local test server speaks plain TCP on its native port, so
// the handshake fails.
func TestIntegrationTLSRequested(t *testing.T) {
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
	cfg := Config{
		Addr: testenv.ClickHouseAddr(), Database: testenv.Name("pf"), DialTimeout: 5 * time.Second,
		TLS: TLSConfig{Enabled: true}, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12},
	}
	s, err := New(testenv.Context(t, 30*time.Second), cfg)
	if err == nil {
		_ = s.Close()
		t.Fatal("New connected over TLS to a plain TCP port")
	}
	t.Logf("New: %v", err)
	if !strings.Contains(err.Error(), "tls") && !strings.Contains(err.Error(), "TLS") {
		t.Errorf("New: %v, want a TLS error", err)
	}
}
