package mysql_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// integration skips t when PROMOFLOW_SKIP_INTEGRATION=1. Otherwise an
// unreachable server fails the test: CI installs and starts it.
func integration(t testing.TB) {
	t.Helper()
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
}

// newSink returns a sink over fresh databases named after the test, and a
// reader of them; the databases are dropped when the test ends.
func newSink(t testing.TB, cfg mysql.Config) (*mysql.Sink, *reader) {
	t.Helper()
	integration(t)
	cfg.DSN = testenv.MySQLDSN()
	cfg.DatabasePrefix = testenv.Name("pf")
	ctx := testenv.Context(t, 30*time.Second)
	s, err := mysql.New(ctx, cfg)
	// Registered first so it runs last, and even after a partial start.
	t.Cleanup(func() {
		if err := dropDatabases(cfg); err != nil && s != nil {
			t.Errorf("dropping test databases: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("starting mysql sink on %s: %v", cfg.DSN, err)
	}
	cfg = s.Config()
	r := &reader{cfg: cfg}
	t.Cleanup(func() {
		_ = s.Close()
		for _, db := range r.dbs {
			_ = db.Close()
		}
	})
	for i := range cfg.NumDatabases() {
		db, err := openDatabase(fmt.Sprintf("%s_%d", cfg.DatabasePrefix, i))
		if err != nil {
			t.Fatal(err)
		}
		r.dbs = append(r.dbs, db)
	}
	return s, r
}

func openDatabase(name string) (*sql.DB, error) {
	mc, err := driver.ParseDSN(testenv.MySQLDSN())
	if err != nil {
		return nil, err
	}
	mc.DBName = name
	mc.ParseTime = true
	conn, err := driver.NewConnector(mc)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	return db, nil
}

func dropDatabases(cfg mysql.Config) error {
	db, err := openDatabase("")
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range cfg.NumDatabases() {
		if _, err := db.ExecContext(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS `%s_%d`", cfg.DatabasePrefix, i)); err != nil {
			return err
		}
	}
	return nil
}

// reader reads the shard tables directly, as other services do.
type reader struct {
	cfg mysql.Config
	dbs []*sql.DB
}

func (r *reader) GrantRows(ctx context.Context) (map[string]sinktest.GrantRow, int, error) {
	return readShards(ctx, r, "SELECT result_id, claim_event_id, app_id, batch_id, user_id, status, reason, coupon_id, "+
		"grant_seq, claimed_at, decided_at FROM coupon_grant_%d", func(res *sql.Rows) (string, sinktest.GrantRow, error) {
		var g sinktest.GrantRow
		err := res.Scan(&g.ResultID, &g.ClaimEventID, &g.AppID, &g.BatchID, &g.UserID, &g.Status,
			&g.Reason, &g.CouponID, &g.GrantSeq, &g.ClaimedAt, &g.DecidedAt)
		return g.ResultID, g, err
	})
}

// resultTables names the table of each result type.
var resultTables = map[string]string{
	schemas.TypeLotteryActivityCommitted: "lottery_activity",
	schemas.TypeLotteryEntryRecorded:     "lottery_entry",
	schemas.TypeLotteryDrawCompleted:     "lottery_draw",
	schemas.TypeLotteryPrizeAwarded:      "lottery_award",
	schemas.TypeGiftMatchDecided:         "gift_match",
	schemas.TypeGiftMemberRecorded:       "gift_member",
	schemas.TypeCouponStateChanged:       "coupon_op",
	schemas.TypeNotificationRequested:    "coupon_reminder",

	schemas.TypeReferralBound:                "referral",
	schemas.TypeReferralQualificationDecided: "referral_qualification",
	schemas.TypeReferralRewardGranted:        "referral_reward",
	schemas.TypeRecommendationMade:           "recommendation",
}

// ResultRows reads every column of every shard's table of eventType by
// name, independently of how the sink maps them.
func (r *reader) ResultRows(ctx context.Context, eventType string) (map[string]sinktest.ResultRow, int, error) {
	return readShards(ctx, r, "SELECT * FROM "+resultTables[eventType]+"_%d", func(res *sql.Rows) (string, sinktest.ResultRow, error) {
		cols, err := columns(res)
		if err != nil {
			return "", sinktest.ResultRow{}, err
		}
		row, err := sinktest.ColumnsRow(eventType, cols)
		return row.ResultID, row, err
	})
}

// CouponStates reads every shard's coupon table.
func (r *reader) CouponStates(ctx context.Context) (map[string]sinktest.CouponState, int, error) {
	return readShards(ctx, r, "SELECT coupon_id, user_id, batch_id, state, order_id, seq, valid_from, expires_at, "+
		"lock_deadline, updated_at, app_id FROM coupon_%d", func(res *sql.Rows) (string, sinktest.CouponState, error) {
		var c sinktest.CouponState
		err := res.Scan(&c.CouponID, &c.UserID, &c.BatchID, &c.State, &c.OrderID, &c.Seq,
			&c.ValidFrom, &c.ExpiresAt, &c.LockDeadline, &c.UpdatedAt, &c.AppID)
		return c.CouponID, c, err
	})
}

// readShards runs q, whose %d is the table index, on every shard table and
// returns what scan makes of each row by the key scan gives it, and the
// number of rows read.
func readShards[T any](ctx context.Context, r *reader, q string, scan func(*sql.Rows) (string, T, error)) (map[string]T, int, error) {
	rows := map[string]T{}
	total := 0
	for i, db := range r.dbs {
		for j := range r.cfg.TablesPerDatabase {
			if err := eachRow(ctx, db, fmt.Sprintf(q, j), func(res *sql.Rows) error {
				key, v, err := scan(res)
				if err != nil {
					return err
				}
				rows[key] = v
				total++
				return nil
			}); err != nil {
				return nil, 0, fmt.Errorf("reading %s_%d (table %d): %w", r.cfg.DatabasePrefix, i, j, err)
			}
		}
	}
	return rows, total, nil
}

// eachRow calls f with every row of q.
func eachRow(ctx context.Context, db *sql.DB, q string, f func(*sql.Rows) error, args ...any) error {
	res, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer res.Close()
	for res.Next() {
		if err := f(res); err != nil {
			return err
		}
	}
	return res.Err()
}

// readColumns calls f with every row of q, its columns by name.
func readColumns(ctx context.Context, db *sql.DB, q string, f func(map[string]any) error, args ...any) error {
	return eachRow(ctx, db, q, func(res *sql.Rows) error {
		cols, err := columns(res)
		if err != nil {
			return err
		}
		return f(cols)
	}, args...)
}

// columns scans the row res is on into its columns by name.
func columns(res *sql.Rows) (map[string]any, error) {
	names, err := res.Columns()
	if err != nil {
		return nil, err
	}
	values := make([]any, len(names))
	ptrs := make([]any, len(names))
	for i := range values {
		ptrs[i] = &values[i]
	}
	if err := res.Scan(ptrs...); err != nil {
		return nil, err
	}
	cols := make(map[string]any, len(names))
	for i, n := range names {
		cols[n] = values[i]
	}
	return cols, nil
}

func (r *reader) ShardRows(ctx context.Context) ([]int, error) {
	var out []int
	for _, db := range r.dbs {
		for j := range r.cfg.TablesPerDatabase {
			var n int
			if err := db.QueryRowContext(ctx, fmt.Sprintf("SELECT COUNT(*) FROM coupon_grant_%d", j)).Scan(&n); err != nil {
				return nil, err
			}
			out = append(out, n)
		}
	}
	return out, nil
}

// suiteLayout is the layout the shared suites run on: BatchRows below the
// suites' batch sizes exercises chunking, and three databases of three
// tables a layout other than the default, whose listings merge shards.
var suiteLayout = mysql.Config{Databases: 3, TablesPerDatabase: 3, BatchRows: 70}

func TestIntegrationMySQLConformance(t *testing.T) {
	integration(t)
	sinktest.Run(t, func(t *testing.T) (sinktest.Sink, sinktest.Reader) {
		return newSink(t, suiteLayout)
	})
}

func TestIntegrationMySQLLotteryReader(t *testing.T) {
	integration(t)
	sinktest.RunLotteryReader(t, func(t *testing.T) sinktest.LotterySink {
		s, _ := newSink(t, suiteLayout)
		return s
	})
}

func TestIntegrationMySQLCouponReader(t *testing.T) {
	integration(t)
	sinktest.RunCouponReader(t, func(t *testing.T) (sinktest.CouponSink, sinktest.Reader) {
		return newSink(t, suiteLayout)
	})
}

// TestIntegrationMySQLUserCouponsUsesIndex checks that UserCoupons reads
// a user's coupons through the (user_id, state) index, with and without
// states.
func TestIntegrationMySQLUserCouponsUsesIndex(t *testing.T) {
	s, r := newSink(t, mysql.Config{Databases: 1, TablesPerDatabase: 1})
	ctx := testenv.Context(t, 60*time.Second)
	if err := s.WriteBatch(ctx, sinktest.Coupons(t, "idx", 500, 20)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.dbs[0].ExecContext(ctx, "ANALYZE TABLE coupon_0"); err != nil {
		t.Fatal(err)
	}
	for _, states := range [][]string{nil, {schemas.CouponAvailable}, {schemas.CouponLocked, schemas.CouponUsed}} {
		args := []any{"idx-user-7"}
		for _, st := range states {
			args = append(args, st)
		}
		q := "EXPLAIN SELECT * FROM coupon_0 t " + mysql.UserCouponsWhere(len(states))
		var keys []any
		if err := readColumns(ctx, r.dbs[0], q, func(cols map[string]any) error {
			keys = append(keys, cols["key"])
			return nil
		}, args...); err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 || fmt.Sprintf("%s", keys[0]) != "idx_user_state" {
			t.Errorf("%s with %q uses keys %s, want idx_user_state", q, states, keys)
		}
	}
}

func TestIntegrationMySQLReadAfterClose(t *testing.T) {
	s, _ := newSink(t, mysql.Config{Databases: 1, TablesPerDatabase: 1})
	ctx := testenv.Context(t, 30*time.Second)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Participants(ctx, "a-1"); !errors.Is(err, mysql.ErrClosed) {
		t.Errorf("Participants after Close: got %v, want an error wrapping ErrClosed", err)
	}
	if _, err := s.UserCoupons(ctx, "u-1"); !errors.Is(err, mysql.ErrClosed) {
		t.Errorf("UserCoupons after Close: got %v, want an error wrapping ErrClosed", err)
	}
}

func TestIntegrationMySQLRowsLiveWhereRouteSays(t *testing.T) {
	s, r := newSink(t, mysql.Config{})
	ctx := testenv.Context(t, 30*time.Second)
	events := sinktest.Grants(t, "route", 300)
	if err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	rows, _, err := r.GrantRows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rows {
		db, table := s.Config().Route(g.UserID)
		var n int
		q := fmt.Sprintf("SELECT COUNT(*) FROM coupon_grant_%d WHERE user_id = ? AND result_id = ?", table)
		if err := r.dbs[db].QueryRowContext(ctx, q, g.UserID, g.ResultID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("user %s: %d rows of result %s in shard (%d, %d) that Route names", g.UserID, n, g.ResultID, db, table)
		}
	}
}

func TestIntegrationMySQLReplayKeepsCreatedAt(t *testing.T) {
	s, r := newSink(t, mysql.Config{Databases: 1, TablesPerDatabase: 1})
	ctx := testenv.Context(t, 30*time.Second)
	events := sinktest.Grants(t, "created", 5)
	if err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	createdAt := func() map[string]time.Time {
		res, err := r.dbs[0].QueryContext(ctx, "SELECT result_id, created_at FROM coupon_grant_0")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		out := map[string]time.Time{}
		for res.Next() {
			var id string
			var at time.Time
			if err := res.Scan(&id, &at); err != nil {
				t.Fatal(err)
			}
			out[id] = at
		}
		return out
	}
	before := createdAt()
	time.Sleep(20 * time.Millisecond)
	if err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	after := createdAt()
	if len(before) != len(events) || fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("created_at before replay %v, after %v", before, after)
	}
}

func TestIntegrationMySQLNewIsIdempotent(t *testing.T) {
	s, r := newSink(t, mysql.Config{})
	ctx := testenv.Context(t, 30*time.Second)
	events := sinktest.Grants(t, "restart", 50)
	if err := s.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	// A restart over existing databases and tables keeps the rows.
	again, err := mysql.New(ctx, s.Config())
	if err != nil {
		t.Fatalf("restarting over existing tables: %v", err)
	}
	defer again.Close()
	if err := again.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	if _, total, err := r.GrantRows(ctx); err != nil || total != len(events) {
		t.Errorf("after restart: %d rows, err %v; want %d", total, err, len(events))
	}
}

func TestIntegrationMySQLShardsConfig(t *testing.T) {
	integration(t)
	ctx := testenv.Context(t, 30*time.Second)
	prefix := testenv.Name("pfshard")
	var shards []string
	for i := range 2 {
		mc, err := driver.ParseDSN(testenv.MySQLDSN())
		if err != nil {
			t.Fatal(err)
		}
		mc.DBName = fmt.Sprintf("%s_%d", prefix, i)
		shards = append(shards, mc.FormatDSN())
	}
	cfg := mysql.Config{Shards: shards, TablesPerDatabase: 2}
	t.Cleanup(func() {
		if err := dropDatabases(mysql.Config{DatabasePrefix: prefix, Databases: 2}); err != nil {
			t.Errorf("dropping test databases: %v", err)
		}
	})
	s, err := mysql.New(ctx, cfg)
	if err != nil {
		t.Fatalf("starting mysql sink with shards: %v", err)
	}
	defer s.Close()
	if err := s.WriteBatch(ctx, sinktest.Grants(t, "shards", 100)); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrationMySQLCampaignReader(t *testing.T) {
	integration(t)
	sinktest.RunCampaignReader(t, func(t *testing.T) sinktest.CampaignSink {
		s, _ := newSink(t, suiteLayout)
		return s
	})
}
