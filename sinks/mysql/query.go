package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.LotteryReader = (*Sink)(nil)

// shard names table <prefix>_<table> of database db.
type shard struct{ db, table int }

// route returns the one shard that holds key's rows.
func (s *Sink) route(key string) []shard {
	db, j := s.cfg.Route(key)
	return []shard{{db, j}}
}

// everyShard returns every table index of every database.
func (s *Sink) everyShard() []shard {
	out := make([]shard, 0, len(s.dbs)*s.cfg.TablesPerDatabase)
	for db := range s.dbs {
		for j := range s.cfg.TablesPerDatabase {
			out = append(out, shard{db, j})
		}
	}
	return out
}

// query runs q on each of shards and returns what scan makes of every row,
// in no particular order. q is a format whose %[1]d is the shard's table
// index. The databases are read concurrently, each on one connection, its
// tables one after another; rows are scanned as they arrive.
func query[T any](ctx context.Context, s *Sink, what string, shards []shard, q string, args []any,
	scan func(*sql.Rows) (T, error)) ([]T, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("reading %s from mysql: %w", what, ErrClosed)
	}
	byDB := map[int][]int{}
	for _, sh := range shards {
		byDB[sh.db] = append(byDB[sh.db], sh.table)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		out  []T
		errs []error
	)
	for db, tables := range byDB {
		wg.Go(func() {
			var got []T
			var err error
			for _, j := range tables {
				if got, err = scanRows(ctx, s.dbs[db], fmt.Sprintf(q, j), args, scan, got); err != nil {
					err = fmt.Errorf("reading %s from %s (table %d): %w", what, s.names[db], j, err)
					break
				}
			}
			mu.Lock()
			defer mu.Unlock()
			out = append(out, got...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// scanRows appends what scan makes of every row of q on db to out.
func scanRows[T any](ctx context.Context, db *sql.DB, q string, args []any,
	scan func(*sql.Rows) (T, error), out []T) ([]T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// selectFrom reads the rows of r's tables in shards that tail (WHERE, ORDER
// BY and LIMIT clauses, in which the table is t) selects.
func selectFrom[T any](ctx context.Context, s *Sink, r *results[T], shards []shard, tail string, args ...any) ([]T, error) {
	q := "SELECT " + r.selectList + " FROM " + r.prefix + "_%[1]d t " + tail
	return query(ctx, s, r.what, shards, q, args, r.scan)
}

// Activity returns the activity's committed record, reading the one table
// its activity id routes to, or an error wrapping [ErrNotFound].
func (s *Sink) Activity(ctx context.Context, activityID string) (*schemas.ActivityCommitted, error) {
	got, err := selectFrom(ctx, s, lotteryActivities, s.route(activityID),
		"WHERE activity_id = ? ORDER BY revision DESC, result_id LIMIT 1", activityID)
	return first(got, err, "activity", activityID)
}

// Draw returns the activity's draw, reading the one table its activity id
// routes to, or an error wrapping [ErrNotFound] when it was not drawn.
func (s *Sink) Draw(ctx context.Context, activityID string) (*schemas.DrawCompleted, error) {
	got, err := selectFrom(ctx, s, lotteryDraws, s.route(activityID),
		"WHERE activity_id = ? ORDER BY drawn_at, result_id LIMIT 1", activityID)
	return first(got, err, "draw of activity", activityID)
}

func first[T any](got []T, err error, what, activityID string) (*T, error) {
	switch {
	case err != nil:
		return nil, err
	case len(got) == 0:
		return nil, fmt.Errorf("reading %s %s from mysql: %w", what, activityID, ErrNotFound)
	}
	return &got[0], nil
}

// Participants returns the distinct users with an accepted entry in the
// activity, sorted bytewise. It reads every shard's (activity_id, status,
// user_id) index range and nothing else, a million users in about a second.
func (s *Sink) Participants(ctx context.Context, activityID string) ([]string, error) {
	users, err := query(ctx, s, lotteryEntries.what, s.everyShard(),
		"SELECT user_id FROM lottery_entry_%[1]d WHERE activity_id = ? AND status = '"+schemas.EntryAccepted+"'",
		[]any{activityID}, scanOne[string])
	if err != nil {
		return nil, err
	}
	// A user's entries share one table, but the collation pads trailing
	// spaces, so the bytewise order and distinctness are made here.
	return sinks.SortParticipants(users), nil
}

// Awards returns the activity's prizes from every shard, sorted by
// [sinks.SortAwards].
func (s *Sink) Awards(ctx context.Context, activityID string) ([]schemas.PrizeAwarded, error) {
	awards, err := selectFrom(ctx, s, lotteryAwards, s.everyShard(), "WHERE activity_id = ?", activityID)
	if err != nil {
		return nil, err
	}
	sinks.SortAwards(awards)
	return awards, nil
}

// EntryCounts counts the activity's entries in every shard.
func (s *Sink) EntryCounts(ctx context.Context, activityID string) (sinks.EntryCounts, error) {
	type group struct {
		status, reason string
		n, won         int64
	}
	groups, err := query(ctx, s, lotteryEntries.what, s.everyShard(),
		"SELECT status, reason, COUNT(*), COALESCE(SUM(outcome = '"+schemas.OutcomeWon+"'), 0) "+
			"FROM lottery_entry_%[1]d WHERE activity_id = ? GROUP BY status, reason",
		[]any{activityID}, func(rows *sql.Rows) (group, error) {
			var g group
			err := rows.Scan(&g.status, &g.reason, &g.n, &g.won)
			return g, err
		})
	if err != nil {
		return sinks.EntryCounts{}, err
	}
	// A user's entries share one table, so the shards' counts add up.
	users, err := query(ctx, s, lotteryEntries.what, s.everyShard(),
		"SELECT COUNT(DISTINCT user_id) FROM lottery_entry_%[1]d WHERE activity_id = ? AND status = '"+schemas.EntryAccepted+"'",
		[]any{activityID}, scanOne[int64])
	if err != nil {
		return sinks.EntryCounts{}, err
	}
	c := sinks.EntryCounts{RejectedBy: map[string]int64{}}
	for _, g := range groups {
		switch g.status {
		case schemas.EntryAccepted:
			c.Accepted += g.n
		case schemas.EntryRejected:
			c.Rejected += g.n
			c.RejectedBy[g.reason] += g.n
		}
		c.Won += g.won
	}
	for _, n := range users {
		c.Participants += n
	}
	return c, nil
}

func scanOne[T any](rows *sql.Rows) (T, error) {
	var v T
	err := rows.Scan(&v)
	return v, err
}

// GiftMatches returns the gift sends f selects, sorted by
// [sinks.SortMatches]: from the sender's shard when f names the sender,
// from every shard otherwise.
func (s *Sink) GiftMatches(ctx context.Context, f sinks.GiftFilter) ([]schemas.MatchDecided, error) {
	var w where
	w.eq("t.activity_id", f.ActivityID)
	w.eq("t.sender_id", f.Sender)
	w.eq("t.receiver_id", f.Receiver)
	w.eq("t.status", f.Status)
	return list(ctx, s, giftMatches, &w, f.Sender, "t.decided_at, t.sender_id, t.result_id", f.Limit, sinks.SortMatches)
}

// GiftMembers returns the members f selects, sorted by [sinks.SortMembers]:
// from the member's shard when f names the user, from every shard
// otherwise. A member's sends are routed by the member's id too, so Pending
// looks for them in the member's own shard.
func (s *Sink) GiftMembers(ctx context.Context, f sinks.MemberFilter) ([]schemas.MemberRecorded, error) {
	var w where
	w.eq("t.activity_id", f.ActivityID)
	w.eq("t.user_id", f.UserID)
	w.eq("t.status", f.Status)
	if f.Pending {
		w.eq("t.status", schemas.MemberActive)
		w.conds = append(w.conds, "NOT EXISTS (SELECT 1 FROM gift_match_%[1]d g WHERE g.activity_id = t.activity_id "+
			"AND g.sender_id = t.user_id AND g.status = '"+schemas.MatchMatched+"')")
	}
	return list(ctx, s, giftMembers, &w, f.UserID, "t.user_id, t.activity_id, t.result_id", f.Limit, sinks.SortMembers)
}

// list returns the first n (0: all) rows of r's tables that w selects, in
// the order of sort, which orderBy gives in SQL. It reads the shard key
// routes to, or every shard when key is empty; each shard returns its first
// n rows, and the merge keeps the first n of them all.
func list[T any](ctx context.Context, s *Sink, r *results[T], w *where, key, orderBy string, n int, sort func([]T)) ([]T, error) {
	shards := s.everyShard()
	if key != "" {
		shards = s.route(key)
	}
	rows, err := selectFrom(ctx, s, r, shards, w.String()+" ORDER BY "+orderBy+limit(n), w.args...)
	if err != nil {
		return nil, err
	}
	sort(rows)
	return sinks.Limit(rows, n), nil
}

// where builds a WHERE clause of conditions joined by AND.
type where struct {
	conds []string
	args  []any
}

// eq adds col = value, unless value is empty (any value).
func (w *where) eq(col, value string) {
	if value != "" {
		w.conds = append(w.conds, col+" = ?")
		w.args = append(w.args, value)
	}
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return "WHERE " + strings.Join(w.conds, " AND ")
}

// limit returns the LIMIT clause of n rows, or nothing for no limit.
func limit(n int) string {
	if n <= 0 {
		return ""
	}
	return " LIMIT " + strconv.Itoa(n)
}
