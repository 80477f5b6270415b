package clickhouse

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/promoflow/promoflow/internal/verify"
	"github.com/promoflow/promoflow/schemas"
)

var (
	_ verify.IDReader  = (*Sink)(nil)
	_ verify.IDCounter = (*Sink)(nil)
)

// OpenReader connects to ClickHouse to read, as `promoflow verify` does:
// unlike New it creates no database, table or view. cfg's unset fields take
// their defaults. Close it like a Sink.
func OpenReader(ctx context.Context, cfg Config) (*Sink, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating clickhouse config: %w", err)
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol:     clickhouse.Native,
		Addr:         []string{cfg.Addr},
		Auth:         clickhouse.Auth{Database: cfg.Database, Username: cfg.Username, Password: cfg.Password},
		DialTimeout:  cfg.DialTimeout,
		MaxOpenConns: cfg.MaxOpenConns,
		MaxIdleConns: cfg.MaxOpenConns,
		TLS:          cfg.TLSConfig,
	})
	if err == nil {
		err = conn.Ping(ctx)
		if err != nil {
			_ = conn.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to clickhouse database %s at %s: %w", cfg.Database, cfg.Addr, err)
	}
	return &Sink{cfg: cfg, conn: conn, known: map[schemas.TypeVersion]bool{}, reader: true}, nil
}

// IDStreams returns 1: each table is one sorted stream of result ids.
func (s *Sink) IDStreams() int { return 1 }

// ResultIDs returns one page of the result ids of table name (a result table
// keyed by result_id: coupon_grants, coupon_operations, lottery_entries,
// lottery_awards, gift_matches, …) that q selects, read with FINAL, in
// ascending order, for `promoflow verify`. The range is a range of the
// tables' sorting key, so ClickHouse reads only the parts' granules that
// hold it. Values travel as query arguments, which the driver binds for
// SELECT on every server version.
func (s *Sink) ResultIDs(ctx context.Context, name string, stream int, q verify.IDQuery) ([]string, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("reading result ids from clickhouse: %w", ErrClosed)
	}
	if stream != 0 {
		return nil, fmt.Errorf("reading result ids from clickhouse: no stream %d", stream)
	}
	i := slices.IndexFunc(tables, func(t *table) bool { return t.name == name })
	if i < 0 || len(tables[i].columns) == 0 || tables[i].columns[0] != "result_id" {
		return nil, fmt.Errorf("reading result ids from clickhouse: no result table %q", name)
	}
	var conds []string
	var args []any
	add := func(cond, v string) {
		conds = append(conds, cond)
		args = append(args, v)
	}
	if q.From != "" {
		add("result_id >= ?", q.From)
	}
	if q.To != "" {
		add("result_id < ?", q.To)
	}
	if q.After != "" {
		add("result_id > ?", q.After)
	}
	if q.Column != "" {
		if q.Column != "batch_id" && q.Column != "activity_id" || !slices.Contains(tables[i].columns, q.Column) {
			return nil, fmt.Errorf("reading result ids from clickhouse: %s cannot be narrowed by %q", name, q.Column)
		}
		add(q.Column+" = ?", q.Value)
	}
	stmt := "SELECT result_id FROM `" + s.cfg.Database + "`.`" + name + "` FINAL"
	if len(conds) > 0 {
		stmt += " WHERE " + strings.Join(conds, " AND ")
	}
	stmt += " ORDER BY result_id LIMIT " + strconv.Itoa(max(1, q.Limit))
	rows, err := s.conn.Query(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("reading result ids from %s.%s: %w", s.cfg.Database, name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("reading result ids from %s.%s: %w", s.cfg.Database, name, err)
		}
		out = append(out, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading result ids from %s.%s: %w", s.cfg.Database, name, err)
	}
	return out, nil
}

// CountIDs returns the rows of table name without FINAL: an upper bound of
// its result ids (replays not yet merged count again), read from the
// parts' row counts without a scan.
func (s *Sink) CountIDs(ctx context.Context, name string) (int64, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("counting rows in clickhouse: %w", ErrClosed)
	}
	if !slices.ContainsFunc(tables, func(t *table) bool { return t.name == name }) {
		return 0, fmt.Errorf("counting rows in clickhouse: no table %q", name)
	}
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM `"+s.cfg.Database+"`.`"+name+"`").Scan(&n); err != nil {
		return 0, fmt.Errorf("counting rows in %s.%s: %w", s.cfg.Database, name, err)
	}
	return int64(n), nil
}
