package mysql

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/promoflow/promoflow/internal/testenv"
)

func TestRoute(t *testing.T) {
	eight := Config{Shards: make([]string, 8), TablesPerDatabase: 8}
	cases := []struct {
		name      string
		cfg       Config
		user      string
		db, table int
	}{
		// Pinned: a change here moves users' rows and needs a migration.
		{"default layout", Config{}, "user-1", 1, 0},
		{"default layout", Config{}, "alice", 1, 3},
		{"default layout", Config{}, "用户🎉", 0, 2},
		{"2x4 explicit", Config{Databases: 2, TablesPerDatabase: 4}, "alice", 1, 3},
		{"8x8 shards", eight, "user-1", 2, 4},
		{"8x8 shards", eight, "alice", 0, 7},
		{"8x8 shards", eight, "用户🎉", 0, 2},
		{"1x1", Config{Databases: 1, TablesPerDatabase: 1}, "alice", 0, 0},
		{"empty user", Config{}, "", 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name+"/"+c.user, func(t *testing.T) {
			db, table := c.cfg.Route(c.user)
			if db != c.db || table != c.table {
				t.Errorf("Route(%q) = (%d, %d), want (%d, %d)", c.user, db, table, c.db, c.table)
			}
		})
	}
}

func TestRouteSpreadsUsersEvenly(t *testing.T) {
	layouts := []struct{ dbs, tables int }{{2, 4}, {8, 8}, {3, 5}, {1, 16}}
	const users = 100_000
	for _, l := range layouts {
		t.Run(fmt.Sprintf("%dx%d", l.dbs, l.tables), func(t *testing.T) {
			cfg := Config{Databases: l.dbs, TablesPerDatabase: l.tables}
			counts := make([]int, l.dbs*l.tables)
			for i := range users {
				u := fmt.Sprintf("user-%d", i)
				db, table := cfg.Route(u)
				if db < 0 || db >= l.dbs || table < 0 || table >= l.tables {
					t.Fatalf("Route(%q) = (%d, %d), outside %dx%d", u, db, table, l.dbs, l.tables)
				}
				if db2, table2 := cfg.Route(u); db2 != db || table2 != table {
					t.Fatalf("Route(%q) gave (%d, %d) then (%d, %d)", u, db, table, db2, table2)
				}
				counts[db*l.tables+table]++
			}
			mean := float64(users) / float64(len(counts))
			for i, n := range counts {
				// Binomial spread is about sqrt(mean); 15% is over five sigmas.
				if dev := (float64(n) - mean) / mean; dev > 0.15 || dev < -0.15 {
					t.Errorf("shard %d holds %d users, %.1f%% off the mean %.0f", i, n, 100*dev, mean)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name    string
		cfg     Config
		wantErr string // "" for valid
	}{
		{"defaults", Config{}, ""},
		{"shards", Config{Shards: []string{"u:p@tcp(a:3306)/pf_0", "u:p@tcp(b:3306)/pf_1"}}, ""},
		{"same name on two servers", Config{Shards: []string{"u@tcp(a:3306)/pf", "u@tcp(b:3306)/pf"}}, ""},
		{"shard without database", Config{Shards: []string{"u@tcp(a:3306)/"}}, "must name its database"},
		{"shard with odd database", Config{Shards: []string{"u@tcp(a:3306)/pf-0"}}, "must name its database"},
		{"duplicate shard", Config{Shards: []string{"u@tcp(a:3306)/pf", "v@tcp(a:3306)/pf"}}, "same database"},
		{"bad shard dsn", Config{Shards: []string{"u@tcp(a:3306"}}, "parsing shards[0]"},
		{"databases disagree", Config{Shards: []string{"u@tcp(a)/x"}, Databases: 2}, "databases is 2"},
		{"dsn with database", Config{DSN: "root@tcp(127.0.0.1:3306)/pf"}, "leave it out"},
		{"bad prefix", Config{DatabasePrefix: "pf; DROP"}, "database_prefix"},
		{"long prefix", Config{DatabasePrefix: strings.Repeat("p", 49)}, "database_prefix"},
		{"too many databases", Config{Databases: MaxShards + 1}, "databases must be"},
		{"negative tables", Config{TablesPerDatabase: -1}, "tables_per_database"},
		{"huge batch", Config{BatchRows: MaxBatchRows + 1}, "batch_rows"},
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

func TestDefaults(t *testing.T) {
	var c Config
	c.Defaults()
	want := Config{
		DSN: DefaultDSN, DatabasePrefix: DefaultDatabasePrefix, Databases: DefaultDatabases,
		TablesPerDatabase: DefaultTablesPerDatabase, BatchRows: DefaultBatchRows,
		MaxOpenConns: DefaultMaxOpenConns, ConnMaxLifetime: DefaultConnMaxLifetime,
	}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("Defaults() = %+v, want %+v", c, want)
	}
	shards := Config{Shards: []string{"u@tcp(a)/x"}}
	shards.Defaults()
	if shards.DSN != "" || shards.Databases != 0 || shards.NumDatabases() != 1 {
		t.Errorf("Defaults() with shards = %+v, want no dsn or databases and 1 database", shards)
	}
}

func TestInsertSQL(t *testing.T) {
	got := couponGrants.insertSQL("coupon_grant_3", 2)
	tuple := "(?,?,?,?,?,?,?,?,?,?,?)"
	for _, want := range []string{
		"INSERT INTO `coupon_grant_3` (result_id, claim_event_id,",
		"VALUES " + tuple + "," + tuple + " ON DUPLICATE KEY UPDATE claim_event_id = VALUES(claim_event_id),",
		"decided_at = VALUES(decided_at)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("insertSQL = %s\nwant it to contain %s", got, want)
		}
	}
	if strings.Contains(got, "result_id = VALUES") || strings.Contains(got, "created_at") {
		t.Errorf("insertSQL updates the key or created_at: %s", got)
	}
}

func TestConfigRegisterTLS(t *testing.T) {
	pool := x509.NewCertPool()
	tc := &tls.Config{RootCAs: pool, ServerName: "db.internal", MinVersion: tls.VersionTLS12}
	layouts := map[string]Config{
		"dsn":    {DSN: "promoflow@tcp(db-0:3306)/"},
		"shards": {Shards: []string{"promoflow@tcp(db-0:3306)/pf_0", "promoflow@tcp(db-1:3306)/pf_1"}},
	}
	for name, c := range layouts {
		t.Run(name, func(t *testing.T) {
			if err := c.RegisterTLS(tc); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(c.TLSName, "promoflow-mysql-") {
				t.Fatalf("TLSName = %q", c.TLSName)
			}
			c.TLS.Enabled = true
			c.Defaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			shards, err := c.shardConfigs()
			if err != nil {
				t.Fatal(err)
			}
			for i, mc := range shards {
				dsn := mc.FormatDSN()
				if mc.TLSConfig != c.TLSName || !strings.Contains(dsn, "tls="+c.TLSName) {
					t.Errorf("shard %d: DSN %s does not use tls=%s", i, dsn, c.TLSName)
				}
				// The name resolves, through the driver's registry, to a
				// copy of tc.
				parsed, err := mysql.ParseDSN(dsn)
				if err != nil {
					t.Fatalf("shard %d: parsing %s: %v", i, dsn, err)
				}
				if parsed.TLS == nil || parsed.TLS.ServerName != "db.internal" || parsed.TLS.RootCAs != pool || parsed.TLS == tc {
					t.Errorf("shard %d: the registered TLS config is %+v", i, parsed.TLS)
				}
			}
		})
	}
	var a, b Config
	if err := a.RegisterTLS(tc); err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterTLS(tc); err != nil {
		t.Fatal(err)
	}
	if a.TLSName == b.TLSName {
		t.Errorf("two registrations share the name %s", a.TLSName)
	}
	if err := a.RegisterTLS(nil); err == nil {
		t.Error("RegisterTLS(nil) succeeded")
	}
}

func TestConfigTLSRejects(t *testing.T) {
	enabled := Config{TLS: TLSConfig{Enabled: true, CAFile: "/ca.pem"}}
	enabled.Defaults()
	if err := enabled.Validate(); err == nil || !strings.Contains(err.Error(), "tls.enabled is set but no TLS configuration is registered") {
		t.Errorf("TLS enabled but not registered: Validate() = %v", err)
	}
	for _, c := range []Config{
		{DSN: "u@tcp(a:3306)/?tls=true"},
		{Shards: []string{"u@tcp(a:3306)/d0", "u@tcp(b:3306)/d1?tls=skip-verify"}},
	} {
		if err := c.RegisterTLS(&tls.Config{}); err != nil {
			t.Fatal(err)
		}
		c.Defaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "keep one") {
			t.Errorf("%v with TLS registered: Validate() = %v, want the conflict", c.DSN+strings.Join(c.Shards, ","), err)
		}
	}
	// Without the tls block, a DSN's own tls parameter is left alone.
	own := Config{DSN: "u@tcp(a:3306)/?tls=skip-verify"}
	own.Defaults()
	shards, err := own.shardConfigs()
	if err != nil || shards[0].TLSConfig != "skip-verify" {
		t.Errorf("DSN's own tls: %v, %v", shards, err)
	}
}

func TestConfigPassword(t *testing.T) {
	c := Config{Shards: []string{"u:old@tcp(a:3306)/d0", "u@tcp(b:3306)/d1"}, Password: "p@ss:w/rd"}
	c.Defaults()
	shards, err := c.shardConfigs()
	if err != nil {
		t.Fatal(err)
	}
	for i, mc := range shards {
		if mc.Passwd != "p@ss:w/rd" {
			t.Errorf("shard %d: password %q, want Password", i, mc.Passwd)
		}
	}
	c.Password = ""
	shards, _ = c.shardConfigs()
	if shards[0].Passwd != "old" || shards[1].Passwd != "" {
		t.Errorf("without Password the DSNs' own: %q, %q", shards[0].Passwd, shards[1].Passwd)
	}

	for _, tc := range []struct {
		cfg  Config
		want bool
	}{
		{Config{DSN: "root@tcp(h:3306)/"}, false},
		{Config{DSN: "root:pw@tcp(h:3306)/"}, true},
		{Config{DSN: "root@tcp(h:3306)/", Shards: []string{"u@tcp(a)/d0", "u:pw@tcp(b)/d1"}}, true},
		{Config{DSN: "not a dsn"}, false},
		{Config{}, false},
	} {
		if got := tc.cfg.HasDSNPassword(); got != tc.want {
			t.Errorf("HasDSNPassword(%q %q) = %v, want %v", tc.cfg.DSN, tc.cfg.Shards, got, tc.want)
		}
	}
}

// TestIntegrationTLSRequested shows that the sink asks the server for TLS
// when a TLS configuration is registered: the local test server has none,
// so connecting fails, and nothing is created.
func TestIntegrationTLSRequested(t *testing.T) {
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
	c := Config{DSN: testenv.MySQLDSN(), DatabasePrefix: testenv.Name("pf"), TLS: TLSConfig{Enabled: true}}
	if err := c.RegisterTLS(&tls.Config{MinVersion: tls.VersionTLS12}); err != nil {
		t.Fatal(err)
	}
	s, err := New(testenv.Context(t, 30*time.Second), c)
	if err == nil {
		_ = s.Close()
		t.Fatal("New connected without TLS to a server that has none")
	}
	if !strings.Contains(err.Error(), "TLS") {
		t.Errorf("New: %v, want a TLS error", err)
	}
}
