package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/promoflow/promoflow/schemas"
)

// MySQL error numbers the sink acts on.
const (
	erUnknownDatabase = 1049
	erLockWaitTimeout = 1205
	erDeadlock        = 1213
)

// txAttempts is how often a database's transaction is tried when InnoDB
// aborts it for a deadlock or lock wait timeout before WriteBatch gives up
// and leaves the retry to its caller.
const txAttempts = 4

// Sink writes results to sharded MySQL. It is safe for concurrent use.
type Sink struct {
	cfg Config
	dbs []*sql.DB
	// names label the shard databases in errors.
	names  []string
	closed atomic.Bool
	once   sync.Once
}

// New connects to every shard database, creating the databases and tables
// that do not exist yet, and returns the sink. cfg's unset fields take their
// defaults.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating mysql config: %w", err)
	}
	shards, err := cfg.shardConfigs()
	if err != nil {
		return nil, fmt.Errorf("validating mysql config: %w", err)
	}
	s := &Sink{cfg: cfg}
	for _, mc := range shards {
		db, err := openShard(ctx, mc, cfg)
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		name := mc.DBName
		if len(cfg.Shards) > 0 {
			name += "@" + mc.Addr // shard databases may share a name on different servers
		}
		s.dbs = append(s.dbs, db)
		s.names = append(s.names, name)
		if err := s.createTables(ctx, db, name); err != nil {
			_ = s.Close()
			return nil, err
		}
	}
	return s, nil
}

// openShard opens a pool on one shard database, creating the database if
// the server says it does not exist. Connecting first lets the sink run as
// a user allowed to use the database but not to create databases.
func openShard(ctx context.Context, mc *mysql.Config, cfg Config) (*sql.DB, error) {
	db, err := openPool(mc, cfg)
	if err != nil {
		return nil, err
	}
	err = db.PingContext(ctx)
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == erUnknownDatabase {
		if err = createDatabase(ctx, mc, cfg); err == nil {
			err = db.PingContext(ctx)
		}
	}
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connecting to mysql database %s at %s: %w", mc.DBName, mc.Addr, err)
	}
	return db, nil
}

func openPool(mc *mysql.Config, cfg Config) (*sql.DB, error) {
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("configuring mysql database %s: %w", mc.DBName, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	return db, nil
}

func createDatabase(ctx context.Context, mc *mysql.Config, cfg Config) error {
	server := mc.Clone()
	server.DBName = ""
	db, err := openPool(server, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	// The name was checked against identifier by Validate.
	q := "CREATE DATABASE IF NOT EXISTS `" + mc.DBName + "` DEFAULT CHARACTER SET utf8mb4"
	if _, err := db.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("creating database %s: %w", mc.DBName, err)
	}
	return nil
}

func (s *Sink) createTables(ctx context.Context, db *sql.DB, dbName string) error {
	for _, t := range tables {
		for j := range s.cfg.TablesPerDatabase {
			if _, err := db.ExecContext(ctx, fmt.Sprintf(t.create, "`"+t.name(j)+"`")); err != nil {
				return fmt.Errorf("creating table %s.%s: %w", dbName, t.name(j), err)
			}
		}
	}
	return nil
}

// Name returns "mysql".
func (s *Sink) Name() string { return "mysql" }

// Config returns the sink's configuration with defaults applied, whose
// Route tells where a user's rows are.
func (s *Sink) Config() Config { return s.cfg }

// shardWrite is the rows one table of one database receives from a batch.
type shardWrite struct {
	table *table
	index int // the table's suffix
	rows  []row
}

// WriteBatch writes events idempotently: writing the same batch twice leaves
// exactly one row per result. It refuses the whole batch, writing nothing,
// if an event has a type without a table ([ErrUnsupportedType]) or does not
// decode. Otherwise it writes every database concurrently, each in one
// transaction; on error some databases may have committed, and the caller
// retries the whole batch.
func (s *Sink) WriteBatch(ctx context.Context, events []*schemas.Envelope) error {
	if s.closed.Load() {
		return fmt.Errorf("writing batch to mysql: %w", ErrClosed)
	}
	if len(events) == 0 {
		return nil
	}
	plan, err := s.plan(events)
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for db, writes := range plan {
		if len(writes) == 0 {
			continue
		}
		wg.Go(func() {
			if err := s.writeDatabase(ctx, db, writes); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// plan decodes and routes every event: plan[db] lists the writes of
// database db, in table order, each with its rows deduplicated and sorted
// by primary key. Locking rows in one global order keeps concurrent batches
// from deadlocking one another.
func (s *Sink) plan(events []*schemas.Envelope) ([][]shardWrite, error) {
	type shard struct {
		table *table
		index int
	}
	m := s.cfg.TablesPerDatabase
	byShard := map[shard]*batchRows{}
	for _, env := range events {
		ts, ok := tablesFor[env.Type]
		if !ok {
			return nil, fmt.Errorf("writing event %s of type %s to mysql: %w", env.EventID, env.Type, ErrUnsupportedType)
		}
		for _, t := range ts {
			r, ok, err := t.row(env)
			if err != nil {
				return nil, fmt.Errorf("writing %s to mysql: decoding event %s: %w", t.what, env.EventID, err)
			}
			if !ok {
				continue
			}
			db, j := s.cfg.Route(r.routeKey)
			k := shard{t, db*m + j}
			rows := byShard[k]
			if rows == nil {
				rows = &batchRows{rows: map[string]row{}, unique: map[string]string{}}
				byShard[k] = rows
			}
			rows.add(t, r)
		}
	}
	plan := make([][]shardWrite, len(s.dbs))
	for k, rows := range byShard {
		w := shardWrite{table: k.table, index: k.index % m, rows: make([]row, 0, len(rows.rows))}
		for _, r := range rows.rows {
			w.rows = append(w.rows, r)
		}
		slices.SortFunc(w.rows, func(a, b row) int { return strings.Compare(a.key, b.key) })
		db := k.index / m
		plan[db] = append(plan[db], w)
	}
	for _, writes := range plan {
		slices.SortFunc(writes, func(a, b shardWrite) int {
			if c := strings.Compare(a.table.prefix, b.table.prefix); c != 0 {
				return c
			}
			return a.index - b.index
		})
	}
	return plan, nil
}

// batchRows are the rows of one shard table in a batch, keyed as the table
// keys them, so that the batch writes what the table would keep of them.
type batchRows struct {
	rows map[string]row
	// unique maps row.unique to the primary key of its first row, for
	// tables whose first row wins.
	unique map[string]string
}

func (b *batchRows) add(t *table, r row) {
	if prev, dup := b.rows[r.key]; dup && t.newer != "" && r.version <= prev.version {
		return // not newer than the row kept
	}
	if t.firstWins {
		if key, taken := b.unique[r.unique]; taken && key != r.key {
			return // another row took the unique key first
		}
		b.unique[r.unique] = r.key
	}
	b.rows[r.key] = r // the last copy of a duplicate wins, as it would in the table
}

// writeDatabase writes one database's share of a batch in one transaction,
// trying again when InnoDB aborts it for a deadlock or a lock wait timeout.
func (s *Sink) writeDatabase(ctx context.Context, db int, writes []shardWrite) error {
	return retrying(ctx, func() error { return s.writeTx(ctx, db, writes) })
}

// retrying runs fn, a transaction, again while InnoDB aborts it for a
// deadlock or a lock wait timeout, at most txAttempts times, backing off
// a little longer each time.
func retrying(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == txAttempts || !retryable(err) {
			return err
		}
		backoff := time.Duration(attempt) * (5*time.Millisecond + rand.N(20*time.Millisecond))
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
		}
	}
}

func retryable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == erDeadlock || me.Number == erLockWaitTimeout)
}

func (s *Sink) writeTx(ctx context.Context, db int, writes []shardWrite) (err error) {
	tx, err := s.dbs[db].BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("writing to %s: beginning transaction: %w", s.names[db], err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var args []any
	for _, w := range writes {
		name := w.table.name(w.index)
		full := "" // the statement for BatchRows rows, built once per table
		for lo := 0; lo < len(w.rows); lo += s.cfg.BatchRows {
			chunk := w.rows[lo:min(lo+s.cfg.BatchRows, len(w.rows))]
			var q string
			if len(chunk) == s.cfg.BatchRows {
				if full == "" {
					full = w.table.insertSQL(name, len(chunk))
				}
				q = full
			} else {
				q = w.table.insertSQL(name, len(chunk))
			}
			args = args[:0]
			for _, r := range chunk {
				args = append(args, r.values...)
			}
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("writing %s to %s.%s: %w", w.table.what, s.names[db], name, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("writing to %s: committing: %w", s.names[db], err)
	}
	return nil
}

// CountGrants returns the number of coupon grant rows in every shard, one
// per result. It scans every table, so it is for reports and tests, not for
// the write path.
func (s *Sink) CountGrants(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("counting coupon grants in mysql: %w", ErrClosed)
	}
	var total int64
	for i, db := range s.dbs {
		for j := range s.cfg.TablesPerDatabase {
			var n int64
			name := couponGrants.name(j)
			if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+name+"`").Scan(&n); err != nil {
				return 0, fmt.Errorf("counting coupon grants in %s.%s: %w", s.names[i], name, err)
			}
			total += n
		}
	}
	return total, nil
}

// Close closes every connection pool. Calling it again returns nil.
func (s *Sink) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		var errs []error
		for i, db := range s.dbs {
			if cerr := db.Close(); cerr != nil {
				errs = append(errs, fmt.Errorf("closing mysql database %s: %w", s.names[i], cerr))
			}
		}
		err = errors.Join(errs...)
	})
	return err
}
