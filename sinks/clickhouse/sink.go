package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/promoflow/promoflow/schemas"
)

// Sink writes results and raw events to ClickHouse. It is safe for
// concurrent use.
type Sink struct {
	cfg    Config
	conn   driver.Conn
	known  map[schemas.TypeVersion]bool
	closed atomic.Bool
	once   sync.Once
	// reader is set by OpenReader: the connections default to the
	// database, so statements may leave it out.
	reader bool
}

// New connects to ClickHouse over the native protocol, creates the database,
// tables and views that do not exist yet, and returns the sink. cfg's unset
// fields take their defaults.
func New(ctx context.Context, cfg Config) (*Sink, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating clickhouse config: %w", err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.Native,
		Addr:     []string{cfg.Addr},
		// Every statement names the database, which may not exist yet.
		Auth:         clickhouse.Auth{Username: cfg.Username, Password: cfg.Password},
		DialTimeout:  cfg.DialTimeout,
		MaxOpenConns: cfg.MaxOpenConns,
		MaxIdleConns: cfg.MaxOpenConns,
		TLS:          cfg.TLSConfig,
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to clickhouse at %s: %w", cfg.Addr, err)
	}
	s := &Sink{cfg: cfg, conn: conn, known: map[schemas.TypeVersion]bool{}}
	for _, tv := range schemas.Known() {
		s.known[tv] = true
	}
	if err := s.createSchema(ctx); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return s, nil
}

func (s *Sink) createSchema(ctx context.Context) error {
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("connecting to clickhouse at %s: %w", s.cfg.Addr, err)
	}
	db := s.cfg.Database
	if err := s.conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS `"+db+"`"); err != nil {
		return fmt.Errorf("creating clickhouse database %s: %w", db, err)
	}
	for _, t := range tables {
		if err := s.conn.Exec(ctx, fmt.Sprintf(t.create, "`"+db+"`.`"+t.name+"`")); err != nil {
			return fmt.Errorf("creating table %s.%s: %w", db, t.name, err)
		}
		if err := s.conn.Exec(ctx, t.viewSQL(db)); err != nil {
			return fmt.Errorf("creating view %s.%s_final: %w", db, t.name, err)
		}
	}
	for _, v := range views {
		if err := s.conn.Exec(ctx, fmt.Sprintf(v, "`"+db+"`")); err != nil {
			return fmt.Errorf("creating a view in %s: %w", db, err)
		}
	}
	return nil
}

// Name returns "clickhouse".
func (s *Sink) Name() string { return "clickhouse" }

// WriteBatch writes events idempotently: after writing the same batch twice,
// a reader using FINAL sees exactly one row per result. Every event goes to
// events_raw, and each result (a grant decision, a lottery or
// gift-exchange result) also to its result table. It refuses the
// whole batch, writing nothing, if an event's (type, version) has no schema
// ([ErrUnsupportedType]) or a payload does not decode. The tables are
// inserted concurrently; on error some may hold the batch already, and the
// caller retries all of it, which is safe.
func (s *Sink) WriteBatch(ctx context.Context, events []*schemas.Envelope) error {
	if s.closed.Load() {
		return fmt.Errorf("writing batch to clickhouse: %w", ErrClosed)
	}
	if len(events) == 0 {
		return nil
	}
	for _, env := range events {
		if !s.known[env.TypeVersion()] {
			return fmt.Errorf("writing event %s of type %s to clickhouse: %w", env.EventID, env.TypeVersion(), ErrUnsupportedType)
		}
	}
	rows := make([][][]any, len(tables))
	for i, t := range tables {
		seen := map[string]int{}
		for _, env := range events {
			key, values, ok, err := t.row(env)
			if err != nil {
				return fmt.Errorf("writing %s to clickhouse: decoding event %s: %w", t.what, env.EventID, err)
			}
			if !ok {
				continue
			}
			if j, dup := seen[key]; dup {
				rows[i][j] = values // the last copy wins, as it would in the table
				continue
			}
			seen[key] = len(rows[i])
			rows[i] = append(rows[i], values)
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i, t := range tables {
		if len(rows[i]) == 0 {
			continue
		}
		wg.Go(func() {
			if err := s.insert(ctx, t, rows[i]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// insert sends rows to t in one native batch.
func (s *Sink) insert(ctx context.Context, t *table, rows [][]any) error {
	where := s.cfg.Database + "." + t.name
	batch, err := s.conn.PrepareBatch(ctx, t.insertSQL(s.cfg.Database))
	if err != nil {
		return fmt.Errorf("writing %s to %s: preparing batch: %w", t.what, where, err)
	}
	defer batch.Close()
	for _, r := range rows {
		if err := batch.Append(r...); err != nil {
			return fmt.Errorf("writing %s to %s: %w", t.what, where, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("writing %s to %s: %w", t.what, where, err)
	}
	return nil
}

// CountGrants returns the number of coupon grants stored, one per result:
// SELECT count() FROM coupon_grants FINAL.
func (s *Sink) CountGrants(ctx context.Context) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("counting coupon grants in clickhouse: %w", ErrClosed)
	}
	var n uint64
	q := "SELECT count() FROM `" + s.cfg.Database + "`.`" + couponGrants.name + "` FINAL"
	if err := s.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting coupon grants in %s.%s: %w", s.cfg.Database, couponGrants.name, err)
	}
	return int64(n), nil
}

// Close closes the connections. Calling it again returns nil.
func (s *Sink) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		if cerr := s.conn.Close(); cerr != nil {
			err = fmt.Errorf("closing clickhouse connection: %w", cerr)
		}
	})
	return err
}
