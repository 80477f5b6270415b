package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/promoflow/promoflow/internal/verify"
	"github.com/promoflow/promoflow/schemas"
)

// The reads of `promoflow verify` ([verify.Record]). Each reads one shard
// table, numbered db*TablesPerDatabase + table, through an index: result
// ids by primary-key range, aggregates grouped by the database. None holds
// more than a page in memory; the aggregates stream their rows to fn.

var _ verify.Record = (*Sink)(nil)

// verifyTables are the tables verify reads, by prefix, with the columns a
// query may narrow them by.
var verifyTables = map[string][]string{
	couponGrants.prefix:   {"batch_id"},
	couponOps.prefix:      {"batch_id"},
	lotteryEntries.prefix: {"activity_id"},
	lotteryAwards.prefix:  {"activity_id"},
	giftMatches.prefix:    {"activity_id"},

	referralBindings.prefix:       {"activity_id"},
	referralQualifications.prefix: {"activity_id"},
	referralRewards.prefix:        {"activity_id"},
}

// OpenReader connects to every shard database to read, as `promoflow
// verify` does: unlike New it creates nothing, so a database that does not
// exist is an error rather than a new empty shard. cfg's unset fields take
// their defaults. Close it like a Sink.
func OpenReader(ctx context.Context, cfg Config) (*Sink, error) {
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
		db, err := openPool(mc, cfg)
		if err == nil {
			if err = db.PingContext(ctx); err != nil {
				_ = db.Close()
				err = fmt.Errorf("connecting to mysql database %s at %s: %w", mc.DBName, mc.Addr, err)
			}
		}
		if err != nil {
			_ = s.Close()
			return nil, err
		}
		name := mc.DBName
		if len(cfg.Shards) > 0 {
			name += "@" + mc.Addr
		}
		s.dbs = append(s.dbs, db)
		s.names = append(s.names, name)
	}
	return s, nil
}

// IDStreams returns the number of shard tables of each result type.
func (s *Sink) IDStreams() int { return len(s.dbs) * s.cfg.TablesPerDatabase }

// ShardName names shard table i: its database and table index.
func (s *Sink) ShardName(i int) string {
	m := s.cfg.TablesPerDatabase
	if i < 0 || i >= s.IDStreams() {
		return fmt.Sprintf("shard %d", i)
	}
	return fmt.Sprintf("%s table %d", s.names[i/m], i%m)
}

// shardQuery runs q (its %[1]d is the table index) on shard table i and
// calls fn with every row as it arrives.
func (s *Sink) shardQuery(ctx context.Context, i int, q string, args []any, fn func(*sql.Rows) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	m := s.cfg.TablesPerDatabase
	if i < 0 || i >= s.IDStreams() {
		return fmt.Errorf("no shard table %d (there are %d)", i, s.IDStreams())
	}
	rows, err := s.dbs[i/m].QueryContext(ctx, fmt.Sprintf(q, i%m), args...)
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.ShardName(i), err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", s.ShardName(i), err)
	}
	return nil
}

// ResultIDs returns one page of the result ids of table (a prefix:
// coupon_grant, coupon_op, lottery_entry, lottery_award, gift_match) in
// shard table i that q selects, in ascending order: a range scan of the
// primary key.
func (s *Sink) ResultIDs(ctx context.Context, table string, i int, q verify.IDQuery) ([]string, error) {
	cols, ok := verifyTables[table]
	if !ok {
		return nil, fmt.Errorf("verify reads no table %q", table)
	}
	var w where
	var conds []string
	if q.From != "" {
		conds, w.args = append(conds, "result_id >= ?"), append(w.args, q.From)
	}
	if q.To != "" {
		conds, w.args = append(conds, "result_id < ?"), append(w.args, q.To)
	}
	if q.After != "" {
		conds, w.args = append(conds, "result_id > ?"), append(w.args, q.After)
	}
	if q.Column != "" {
		if !contains(cols, q.Column) {
			return nil, fmt.Errorf("verify cannot narrow %s by %q", table, q.Column)
		}
		conds, w.args = append(conds, q.Column+" = ?"), append(w.args, q.Value)
	}
	w.conds = conds
	stmt := "SELECT result_id FROM `" + table + "_%[1]d` " + w.String() + " ORDER BY result_id" + limit(max(1, q.Limit))
	out := make([]string, 0, max(0, min(q.Limit, 1<<16)))
	err := s.shardQuery(ctx, i, stmt, w.args, func(rows *sql.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		out = append(out, id)
		return nil
	})
	return out, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// batchWhere returns " AND batch_id = ?" and its argument when batch is
// set.
func batchWhere(batch string) (string, []any) {
	if batch == "" {
		return "", nil
	}
	return " AND batch_id = ?", []any{batch}
}

// GrantedPerBatch calls fn with the granted rows of each batch in shard
// table i (only batch's when set), through the (batch_id, status) index.
func (s *Sink) GrantedPerBatch(ctx context.Context, i int, batch string, fn func(batch string, n int64) error) error {
	and, args := batchWhere(batch)
	q := "SELECT batch_id, COUNT(*) FROM `coupon_grant_%[1]d` WHERE status = '" + schemas.StatusGranted + "'" + and + " GROUP BY batch_id"
	return s.shardQuery(ctx, i, q, args, func(rows *sql.Rows) error {
		var b string
		var n int64
		if err := rows.Scan(&b, &n); err != nil {
			return err
		}
		return fn(b, n)
	})
}

// GrantsPerUserOver calls fn with each (user, batch) of shard table i
// holding more than over granted rows. A user's grants share one table.
func (s *Sink) GrantsPerUserOver(ctx context.Context, i int, batch string, over int64, fn func(user, batch string, n int64) error) error {
	and, args := batchWhere(batch)
	q := "SELECT user_id, batch_id, COUNT(*) FROM `coupon_grant_%[1]d` WHERE status = '" + schemas.StatusGranted + "'" + and +
		" GROUP BY user_id, batch_id HAVING COUNT(*) > ?"
	return s.shardQuery(ctx, i, q, append(args, over), func(rows *sql.Rows) error {
		var u, b string
		var n int64
		if err := rows.Scan(&u, &b, &n); err != nil {
			return err
		}
		return fn(u, b, n)
	})
}

// ConfirmsPerCouponOver calls fn with each coupon of shard table i that
// has more than one applied confirm in its operation record. A coupon's
// applied operations are its owner's, so they share one table.
func (s *Sink) ConfirmsPerCouponOver(ctx context.Context, i int, batch string, fn func(coupon string, n int64) error) error {
	and, args := batchWhere(batch)
	q := "SELECT coupon_id, COUNT(*) FROM `coupon_op_%[1]d` WHERE op = '" + schemas.OpConfirm + "' AND status = '" + schemas.OpApplied + "'" + and +
		" GROUP BY coupon_id HAVING COUNT(*) > 1"
	return s.shardQuery(ctx, i, q, args, func(rows *sql.Rows) error {
		var c string
		var n int64
		if err := rows.Scan(&c, &n); err != nil {
			return err
		}
		return fn(c, n)
	})
}

// ActivityIDs calls fn with each activity id in table (lottery_award or
// gift_match) of shard table i, through its activity index.
func (s *Sink) ActivityIDs(ctx context.Context, i int, table string, fn func(activity string) error) error {
	if table != lotteryAwards.prefix && table != giftMatches.prefix && table != referralBindings.prefix {
		return fmt.Errorf("verify lists no activities of %q", table)
	}
	return s.shardQuery(ctx, i, "SELECT DISTINCT activity_id FROM `"+table+"_%[1]d`", nil, func(rows *sql.Rows) error {
		var a string
		if err := rows.Scan(&a); err != nil {
			return err
		}
		return fn(a)
	})
}

// AwardsPerTier calls fn with the awards of each (activity, tier) in shard
// table i (only activity's when set), through the (activity_id, tier_id)
// index.
func (s *Sink) AwardsPerTier(ctx context.Context, i int, activity string, fn func(activity, tier string, n int64) error) error {
	q := "SELECT activity_id, tier_id, COUNT(*) FROM `lottery_award_%[1]d`"
	var args []any
	if activity != "" {
		q += " WHERE activity_id = ?"
		args = append(args, activity)
	}
	q += " GROUP BY activity_id, tier_id"
	return s.shardQuery(ctx, i, q, args, func(rows *sql.Rows) error {
		var a, t string
		var n int64
		if err := rows.Scan(&a, &t, &n); err != nil {
			return err
		}
		return fn(a, t, n)
	})
}

// sortedUserColumns are the columns SortedUsers pages by, per table, with
// the column it returns as the other party.
var sortedUserColumns = map[string]map[string]string{
	lotteryAwards.prefix: {"user_id": "tier_id"},
	giftMatches.prefix:   {"sender_id": "receiver_id", "receiver_id": "sender_id"},
	// An invitee's bindings (bound decisions only), with the inviter.
	referralBindings.prefix: {"invitee_id": "bound_inviter_id"},
}

// SortedUsers returns one page of an activity's rows in shard table i,
// sorted by (q.Column, result_id): awards by user, or matched gift sends by
// sender or receiver. It walks the (activity_id, column) index, whose
// entries end with the primary key.
func (s *Sink) SortedUsers(ctx context.Context, i int, q verify.UserQuery) ([]verify.UserRow, error) {
	other, ok := sortedUserColumns[q.Table][q.Column]
	if !ok {
		return nil, fmt.Errorf("verify cannot sort %q by %q", q.Table, q.Column)
	}
	col := q.Column
	conds := []string{"activity_id = ?"}
	args := []any{q.ActivityID}
	if q.Table == giftMatches.prefix {
		conds = append(conds, "status = '"+schemas.MatchMatched+"'")
	}
	if q.Table == referralBindings.prefix {
		conds = append(conds, "status = '"+schemas.ReferralBound+"'")
	}
	if q.AfterID != "" {
		conds = append(conds, "("+col+" > ? OR ("+col+" = ? AND result_id > ?))")
		args = append(args, q.AfterKey, q.AfterKey, q.AfterID)
	}
	stmt := "SELECT " + col + ", result_id, " + other + " FROM `" + q.Table + "_%[1]d` WHERE " + strings.Join(conds, " AND ") +
		" ORDER BY " + col + ", result_id" + limit(max(1, q.Limit))
	var out []verify.UserRow
	err := s.shardQuery(ctx, i, stmt, args, func(rows *sql.Rows) error {
		var r verify.UserRow
		if err := rows.Scan(&r.Key, &r.ResultID, &r.Other); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	return out, err
}
