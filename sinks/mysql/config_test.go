package mysql

import (
	"fmt"
	"strings"
	"testing"
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
