package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.Inbox = (*Station)(nil)

// DefaultLookback is how old a message to all users may be and still reach
// an inbox, by default (see WithLookback).
const DefaultLookback = 30 * 24 * time.Hour

// stationBatchRows bounds the rows of one station INSERT: a row may carry
// a 4,000-character body (16 KB in utf8mb4), and 200 of them stay well
// under MySQL's and MariaDB's default max_allowed_packet.
const stationBatchRows = 200

// Station stores station messages (站内信) and serves users' inboxes (see
// doc.go, "Station messages"). It shares its Sink's connections and shard
// layout, and is safe for concurrent use.
type Station struct {
	s        *Sink
	lookback time.Duration
	now      func() time.Time
}

// StationOption configures a Station.
type StationOption func(*Station)

// WithLookback sets how old (by published_at) a message to all users may
// be when a user's inbox would receive it: older messages are never
// delivered, so a new user, or one back after a long absence, does not
// receive years of announcements. It overrides the default of
// DefaultLookback (30 days); it must be positive.
func WithLookback(d time.Duration) StationOption {
	return func(st *Station) {
		if d > 0 {
			st.lookback = d
		}
	}
}

// WithClock overrides time.Now, the clock that decides which messages are
// published, expired and read when (tests).
func WithClock(now func() time.Time) StationOption {
	return func(st *Station) { st.now = now }
}

// The station tables. station_message and station_seq live in the first
// shard database only; the inbox and cursor tables in every shard, routed
// by user id like every other table of a user.
const (
	stationMessageTable = "station_message"
	stationSeqTable     = "station_seq"
	stationInboxPrefix  = "station_inbox"
	stationCursorPrefix = "station_cursor"
	// broadcastDB is the shard database that stores messages to all users.
	broadcastDB = 0
)

// stationContent are the columns of a message as its events carry it,
// sized as the schema allows, in both tables that hold messages. The app
// that first stored a message owns it (see stationUpdates).
const stationContent = "" +
	"  app_id              VARCHAR(64)   NOT NULL,\n" +
	"  title               VARCHAR(200)  NOT NULL,\n" +
	"  body                TEXT          NOT NULL,\n" +
	"  link                VARCHAR(1024) NOT NULL,\n" +
	"  published_at        DATETIME(3)   NULL,\n" +
	"  expires_at          DATETIME(3)   NULL,\n" +
	"  withdrawn_at        DATETIME(3)   NULL,\n"

// stationMessageCreate stores each message to all users once. seq orders
// them as they were stored (see station_seq); published_at is NULL for a
// message whose withdrawal came before its publish.
const stationMessageCreate = "CREATE TABLE IF NOT EXISTS `" + stationMessageTable + "` (\n" +
	"  message_id          VARCHAR(64)   NOT NULL,\n" +
	"  seq                 BIGINT        NOT NULL,\n" +
	stationContent +
	"  created_at          DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" +
	"  PRIMARY KEY (message_id),\n" +
	"  UNIQUE KEY uk_seq (seq)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// stationSeqCreate is the one-row counter that numbers messages to all
// users. Every writer locks the row first, so writers take turns and a
// message's seq is in the order of the commits: a reader that sees seq n
// has seen every message below n (the inbox watermark relies on it).
const stationSeqCreate = "CREATE TABLE IF NOT EXISTS `" + stationSeqTable + "` (\n" +
	"  id                  TINYINT       NOT NULL,\n" +
	"  seq                 BIGINT        NOT NULL,\n" +
	"  PRIMARY KEY (id)\n" +
	") ENGINE=InnoDB"

// stationInboxCreate holds users' inboxes: messages to one user with their
// content, and the messages to all users a user's reads delivered
// (broadcast = 1, content in station_message). %s is the quoted name.
const stationInboxCreate = "CREATE TABLE IF NOT EXISTS %s (\n" +
	"  user_id             VARCHAR(128)  NOT NULL,\n" +
	"  message_id          VARCHAR(64)   NOT NULL,\n" +
	"  broadcast           TINYINT(1)    NOT NULL,\n" +
	stationContent +
	"  read_at             DATETIME(3)   NULL,\n" +
	"  created_at          DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" +
	"  PRIMARY KEY (user_id, message_id),\n" +
	"  KEY idx_user_published (user_id, published_at, message_id)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// stationCursorCreate keeps, per user who has read, the seq of the last
// message to all users the user's inbox has been brought up to.
const stationCursorCreate = "CREATE TABLE IF NOT EXISTS %s (\n" +
	"  user_id             VARCHAR(128)  NOT NULL,\n" +
	"  seq                 BIGINT        NOT NULL,\n" +
	"  first_read_at       DATETIME(3)   NOT NULL,\n" +
	"  updated_at          DATETIME(3)   NOT NULL,\n" +
	"  PRIMARY KEY (user_id)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// Station creates the station tables that do not exist yet and returns the
// station store on s's connections.
func (s *Sink) Station(ctx context.Context, opts ...StationOption) (*Station, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("opening station messages in mysql: %w", ErrClosed)
	}
	st := &Station{s: s, lookback: DefaultLookback, now: time.Now}
	for _, o := range opts {
		o(st)
	}
	db0 := s.dbs[broadcastDB]
	for _, q := range []string{stationMessageCreate, stationSeqCreate, "INSERT IGNORE INTO `" + stationSeqTable + "` (id, seq) VALUES (1, 0)"} {
		if _, err := db0.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("creating station tables in %s: %w", s.names[broadcastDB], err)
		}
	}
	for i, db := range s.dbs {
		for j := range s.cfg.TablesPerDatabase {
			for _, c := range []struct{ create, prefix string }{{stationInboxCreate, stationInboxPrefix}, {stationCursorCreate, stationCursorPrefix}} {
				name := fmt.Sprintf("%s_%d", c.prefix, j)
				if _, err := db.ExecContext(ctx, fmt.Sprintf(c.create, "`"+name+"`")); err != nil {
					return nil, fmt.Errorf("creating table %s.%s: %w", s.names[i], name, err)
				}
			}
		}
	}
	return st, nil
}

// Lookback returns how old a message to all users may be and still reach
// an inbox.
func (st *Station) Lookback() time.Duration { return st.lookback }

// stationRow is one station event as the tables store it: a publish, or a
// withdrawal (withdrawnAt set, no content).
type stationRow struct {
	messageID, userID, appID string
	broadcast                bool
	title, body, link        string
	publishedAt, expiresAt   any // time.Time or nil (NULL)
	withdrawnAt              any
}

func stationRowOf(env *schemas.Envelope) (stationRow, error) {
	switch env.Type {
	case schemas.TypeStationMessagePublished:
		var m schemas.StationMessagePublished
		if err := env.DecodePayload(&m); err != nil {
			return stationRow{}, err
		}
		r := stationRow{messageID: m.MessageID, userID: m.UserID, appID: env.AppID, broadcast: m.Audience == schemas.AudienceAll,
			title: m.Title, body: m.Body, link: m.Link, publishedAt: sqlTime(m.PublishedAt)}
		if !m.ExpiresAt.IsZero() {
			r.expiresAt = sqlTime(m.ExpiresAt)
		}
		return r, nil
	case schemas.TypeStationMessageWithdrawn:
		var w schemas.StationMessageWithdrawn
		if err := env.DecodePayload(&w); err != nil {
			return stationRow{}, err
		}
		return stationRow{messageID: w.MessageID, userID: w.UserID, appID: env.AppID, broadcast: w.Audience == schemas.AudienceAll,
			withdrawnAt: sqlTime(w.WithdrawnAt)}, nil
	}
	return stationRow{}, fmt.Errorf("writing event %s of type %s to mysql station tables: %w", env.EventID, env.TypeVersion(), ErrUnsupportedType)
}

// stationUpdates is the ON DUPLICATE KEY UPDATE of a station upsert. The
// app that first stored a message owns it: another app's publish or
// withdrawal of the same message_id changes nothing. A publish (published_at
// set) corrects title, body and link; published_at and expires_at are kept
// from the first publish (a row made by an early withdrawal has none yet);
// the first withdrawal stays, and nothing undoes it. MySQL assigns left to
// right, so expires_at goes before published_at, whose old value it tests.
// own adds a condition on the stored row.
func stationUpdates(own string) string {
	owner := "app_id = VALUES(app_id)" + own
	content := owner + " AND VALUES(published_at) IS NOT NULL"
	return "title = IF(" + content + ", VALUES(title), title), " +
		"body = IF(" + content + ", VALUES(body), body), " +
		"link = IF(" + content + ", VALUES(link), link), " +
		"expires_at = IF(" + owner + " AND published_at IS NULL, VALUES(expires_at), expires_at), " +
		"published_at = IF(" + owner + " AND published_at IS NULL, VALUES(published_at), published_at), " +
		"withdrawn_at = IF(" + owner + " AND withdrawn_at IS NULL, VALUES(withdrawn_at), withdrawn_at)"
}

var (
	broadcastUpsertHead = "INSERT INTO `" + stationMessageTable + "` (message_id, seq, app_id, title, body, link, published_at, expires_at, withdrawn_at) VALUES "
	broadcastUpsertTail = " ON DUPLICATE KEY UPDATE " + stationUpdates("")
	// A message to one user never overwrites a message to all users that
	// a read delivered under the same id.
	directUpsertTail = " ON DUPLICATE KEY UPDATE " + stationUpdates(" AND broadcast = 0")
)

func directUpsertHead(j int) string {
	return fmt.Sprintf("INSERT INTO `%s_%d` (user_id, message_id, broadcast, app_id, title, body, link, published_at, expires_at, withdrawn_at) VALUES ", stationInboxPrefix, j)
}

// tuples returns n placeholder tuples of k values, comma-separated.
func tuples(n, k int) string {
	t := "(" + strings.Repeat("?,", k-1) + "?)"
	return strings.TrimSuffix(strings.Repeat(t+",", n), ",")
}

// WriteBatch stores station.message.published and .withdrawn events:
// messages to all users once, in station_message, and messages to one
// user in the user's station_inbox_<j>. Writing the same batch again
// changes nothing. A batch holding another type is refused before
// anything is written ([ErrUnsupportedType]). Within a batch, events apply
// in their order.
func (st *Station) WriteBatch(ctx context.Context, events []*schemas.Envelope) error {
	s := st.s
	if s.closed.Load() {
		return fmt.Errorf("writing station messages to mysql: %w", ErrClosed)
	}
	var broadcasts []stationRow
	direct := map[shard][]stationRow{}
	for _, env := range events {
		r, err := stationRowOf(env)
		if err != nil {
			return err
		}
		if r.broadcast {
			broadcasts = append(broadcasts, r)
			continue
		}
		db, j := s.cfg.Route(r.userID)
		direct[shard{db, j}] = append(direct[shard{db, j}], r)
	}
	// Tables in one order, rows in key order (the events of one key keep
	// theirs), so that concurrent batches lock alike.
	byDB := map[int][]shard{}
	for sh, rows := range direct {
		byDB[sh.db] = append(byDB[sh.db], sh)
		slices.SortStableFunc(rows, func(a, b stationRow) int {
			return cmp.Or(strings.Compare(a.userID, b.userID), strings.Compare(a.messageID, b.messageID))
		})
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(fn func() error) {
		wg.Go(func() {
			if err := retrying(ctx, fn); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	if len(broadcasts) > 0 {
		run(func() error { return st.writeBroadcasts(ctx, broadcasts) })
	}
	for db, shards := range byDB {
		slices.SortFunc(shards, func(a, b shard) int { return a.table - b.table })
		run(func() error { return st.writeDirect(ctx, db, shards, direct) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeBroadcasts stores messages to all users in one transaction that
// first locks the station_seq row, and numbers the rows after it. A row
// already stored keeps its seq (the numbers given to replays are skipped).
func (st *Station) writeBroadcasts(ctx context.Context, rows []stationRow) error {
	s := st.s
	where := s.names[broadcastDB] + "." + stationMessageTable
	return inTx(ctx, s.dbs[broadcastDB], "writing station messages to "+where, func(tx *sql.Tx) error {
		return writeBroadcastsTx(ctx, tx, where, rows)
	})
}

// writeBroadcastsTx is the transaction of writeBroadcasts.
func writeBroadcastsTx(ctx context.Context, tx *sql.Tx, where string, rows []stationRow) error {
	var seq int64
	if err := tx.QueryRowContext(ctx, "SELECT seq FROM `"+stationSeqTable+"` WHERE id = 1 FOR UPDATE").Scan(&seq); err != nil {
		return fmt.Errorf("writing station messages to %s: locking the sequence: %w", where, err)
	}
	for lo := 0; lo < len(rows); lo += stationBatchRows {
		chunk := rows[lo:min(lo+stationBatchRows, len(rows))]
		args := make([]any, 0, 9*len(chunk))
		for _, r := range chunk {
			seq++
			args = append(args, r.messageID, seq, r.appID, r.title, r.body, r.link, r.publishedAt, r.expiresAt, r.withdrawnAt)
		}
		if _, err := tx.ExecContext(ctx, broadcastUpsertHead+tuples(len(chunk), 9)+broadcastUpsertTail, args...); err != nil {
			return fmt.Errorf("writing station messages to %s: %w", where, err)
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE `"+stationSeqTable+"` SET seq = ? WHERE id = 1", seq); err != nil {
		return fmt.Errorf("writing station messages to %s: advancing the sequence: %w", where, err)
	}
	return nil
}

// inTx runs fn in a transaction on db and commits it, or rolls it back
// when fn fails. what says what the transaction does, for errors.
func inTx(ctx context.Context, db *sql.DB, what string, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s: beginning transaction: %w", what, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%s: committing: %w", what, err)
	}
	return nil
}

// writeDirect stores one database's messages to one user in one
// transaction.
func (st *Station) writeDirect(ctx context.Context, db int, shards []shard, rows map[shard][]stationRow) error {
	s := st.s
	return inTx(ctx, s.dbs[db], "writing station messages to "+s.names[db], func(tx *sql.Tx) error {
		for _, sh := range shards {
			all := rows[sh]
			for lo := 0; lo < len(all); lo += stationBatchRows {
				chunk := all[lo:min(lo+stationBatchRows, len(all))]
				args := make([]any, 0, 10*len(chunk))
				for _, r := range chunk {
					args = append(args, r.userID, r.messageID, 0, r.appID, r.title, r.body, r.link, r.publishedAt, r.expiresAt, r.withdrawnAt)
				}
				if _, err := tx.ExecContext(ctx, directUpsertHead(sh.table)+tuples(len(chunk), 10)+directUpsertTail, args...); err != nil {
					return fmt.Errorf("writing station messages to %s.%s_%d: %w", s.names[db], stationInboxPrefix, sh.table, err)
				}
			}
		}
		return nil
	})
}

// nullTime returns t, or nil (NULL) when t is not valid.
func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
