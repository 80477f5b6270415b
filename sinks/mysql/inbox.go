package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// deliverRows is how many messages to all users one delivery step reads
// and inserts at a time.
const deliverRows = 500

// maxInIDs bounds the ids of one IN list.
const maxInIDs = 1000

// visible is the condition on station_inbox_<j> (alias-free) of a message
// a user sees at ? (given twice): published, not expired, and, for a
// message to one user, not withdrawn. A message to all users is withdrawn
// in station_message.
const visible = "published_at <= ? AND (expires_at IS NULL OR expires_at > ?) AND withdrawn_at IS NULL"

// inboxTables returns the user's shard database and the quoted names of
// the user's inbox and cursor tables.
func (st *Station) inboxTables(userID string) (db int, inbox, cursor string) {
	db, j := st.s.cfg.Route(userID)
	return db, fmt.Sprintf("`%s_%d`", stationInboxPrefix, j), fmt.Sprintf("`%s_%d`", stationCursorPrefix, j)
}

func (st *Station) clock() time.Time { return sqlTime(st.now()) }

func (st *Station) check(what string) error {
	if st.s.closed.Load() {
		return fmt.Errorf("%s: %w", what, ErrClosed)
	}
	return nil
}

// deliver brings the user's inbox up to date: one row for each message to
// all users stored after the user's cursor that the user may still see
// (published within the lookback, not expired, not withdrawn), then the
// cursor moves past every message it read. When nothing was stored after
// the cursor it writes nothing: two point reads.
//
// The messages are read before the user's cursor row is locked, so that a
// transaction holding the lock never waits for a connection (the first
// shard database holds both the messages and users' inboxes, on one
// pool). Under the lock the cursor must still be where the messages were
// read from; if another delivery moved it, nothing is written and the
// messages after the new cursor are read again. Concurrent deliveries to
// one user thus take turns, and a row is inserted only if absent, so each
// message reaches an inbox once.
func (st *Station) deliver(ctx context.Context, userID string, now time.Time) error {
	s := st.s
	dbi, _, cursorT := st.inboxTables(userID)
	db := s.dbs[dbi]
	var w int64
	err := db.QueryRowContext(ctx, "SELECT seq FROM "+cursorT+" WHERE user_id = ?", userID).Scan(&w)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("reading the inbox cursor of %s in %s: %w", userID, s.names[dbi], err)
	}
	from := now.Add(-st.lookback)
	for made := false; ; {
		b, err := st.deliverable(ctx, w, now, from)
		if err != nil || b.read == 0 {
			return err
		}
		if !made {
			// The user's first delivery makes the cursor row; every
			// delivery then locks it (an existing row, not a gap, so two
			// first deliveries do not deadlock).
			if _, err := db.ExecContext(ctx, "INSERT IGNORE INTO "+cursorT+" (user_id, seq, first_read_at, updated_at) VALUES (?, 0, ?, ?)",
				userID, now, now); err != nil {
				return fmt.Errorf("creating the inbox cursor of %s in %s: %w", userID, s.names[dbi], err)
			}
			made = true
		}
		var at int64
		if err := retrying(ctx, func() (err error) { at, err = st.deliverTx(ctx, dbi, userID, w, b, now); return err }); err != nil {
			return err
		}
		switch {
		case at != w:
			w = at // another delivery moved the cursor: read on from there
		case b.read < deliverRows:
			return nil
		default:
			w = b.last
		}
	}
}

// deliverTx inserts batch b, read after seq w, into the user's inbox and
// moves the cursor to b.last, if the cursor is still at w. It returns
// where it found the cursor.
func (st *Station) deliverTx(ctx context.Context, dbi int, userID string, w int64, b deliveryBatch, now time.Time) (int64, error) {
	s := st.s
	_, inboxT, cursorT := st.inboxTables(userID)
	where := fmt.Sprintf("delivering station messages to %s in %s", userID, s.names[dbi])
	var at int64
	err := inTx(ctx, s.dbs[dbi], where, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, "SELECT seq FROM "+cursorT+" WHERE user_id = ? FOR UPDATE", userID).Scan(&at); err != nil {
			return fmt.Errorf("%s: locking the cursor: %w", where, err)
		}
		if at != w {
			return nil
		}
		if len(b.ids) > 0 {
			args := make([]any, 0, 4*len(b.ids))
			for i, id := range b.ids {
				args = append(args, userID, id, b.published[i], b.expires[i])
			}
			q := "INSERT INTO " + inboxT + " (user_id, message_id, published_at, expires_at, broadcast, app_id, title, body, link) VALUES " +
				strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, 1, '', '', '', ''),", len(b.ids)), ",") +
				" ON DUPLICATE KEY UPDATE message_id = message_id" // present: a direct message or an earlier delivery; keep it
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
		}
		if _, err := tx.ExecContext(ctx, "UPDATE "+cursorT+" SET seq = ?, updated_at = ? WHERE user_id = ?", b.last, now, userID); err != nil {
			return fmt.Errorf("%s: moving the cursor: %w", where, err)
		}
		return nil
	})
	return at, err
}

// deliveryBatch is up to deliverRows messages to all users read after a
// cursor: those a user may still receive, the last seq read and how many
// were read.
type deliveryBatch struct {
	ids                []string
	published, expires []any
	last               int64
	read               int
}

// deliverable reads up to deliverRows messages to all users after seq w
// and keeps those a user may still receive at now.
func (st *Station) deliverable(ctx context.Context, w int64, now, from time.Time) (deliveryBatch, error) {
	s := st.s
	b := deliveryBatch{last: w}
	rows, err := s.dbs[broadcastDB].QueryContext(ctx, "SELECT message_id, seq, published_at, expires_at, withdrawn_at FROM `"+stationMessageTable+
		"` WHERE seq > ? ORDER BY seq LIMIT ?", w, deliverRows)
	if err != nil {
		return b, fmt.Errorf("reading station messages from %s: %w", s.names[broadcastDB], err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var pub, exp, wd sql.NullTime
		if err := rows.Scan(&id, &b.last, &pub, &exp, &wd); err != nil {
			return b, fmt.Errorf("reading station messages from %s: %w", s.names[broadcastDB], err)
		}
		b.read++
		if !pub.Valid || wd.Valid || exp.Valid && !exp.Time.After(now) || pub.Time.Before(from) {
			continue // withdrawn before its publish, withdrawn, expired, or too old
		}
		b.ids = append(b.ids, id)
		b.published = append(b.published, pub.Time)
		var e any
		if exp.Valid {
			e = exp.Time
		}
		b.expires = append(b.expires, e)
	}
	if err := rows.Err(); err != nil {
		return b, fmt.Errorf("reading station messages from %s: %w", s.names[broadcastDB], err)
	}
	return b, nil
}

// broadcastContent is what station_message holds of a message to all users
// for an inbox page.
type broadcastContent struct {
	title, body, link string
	withdrawn         bool
}

// broadcasts reads the content of the given messages to all users.
func (st *Station) broadcasts(ctx context.Context, ids []string) (map[string]broadcastContent, error) {
	s := st.s
	out := make(map[string]broadcastContent, len(ids))
	for lo := 0; lo < len(ids); lo += maxInIDs {
		chunk := ids[lo:min(lo+maxInIDs, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := s.dbs[broadcastDB].QueryContext(ctx, "SELECT message_id, title, body, link, withdrawn_at IS NOT NULL FROM `"+
			stationMessageTable+"` WHERE message_id IN ("+placeholders(len(chunk))+")", args...)
		if err != nil {
			return nil, fmt.Errorf("reading station messages from %s: %w", s.names[broadcastDB], err)
		}
		for rows.Next() {
			var id string
			var c broadcastContent
			if err := rows.Scan(&id, &c.title, &c.body, &c.link, &c.withdrawn); err != nil {
				rows.Close()
				return nil, fmt.Errorf("reading station messages from %s: %w", s.names[broadcastDB], err)
			}
			out[id] = c
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("reading station messages from %s: %w", s.names[broadcastDB], err)
		}
	}
	return out, nil
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// inboxRow is one row of station_inbox_<j> as a page reads it.
type inboxRow struct {
	msg       sinks.InboxMessage
	broadcast bool
}

// Inbox delivers pending messages to all users, then returns one page of
// the user's visible messages, newest first. A page may hold fewer than
// limit messages when messages to all users on it were withdrawn; only a
// page without Next is the last.
func (st *Station) Inbox(ctx context.Context, userID string, after sinks.InboxCursor, limit int) (sinks.InboxPage, error) {
	if err := st.check("reading an inbox"); err != nil {
		return sinks.InboxPage{}, err
	}
	limit = max(limit, 1)
	now := st.clock()
	if err := st.deliver(ctx, userID, now); err != nil {
		return sinks.InboxPage{}, err
	}
	page := sinks.InboxPage{Messages: []sinks.InboxMessage{}}
	cur := after
	for {
		want := limit - len(page.Messages)
		rows, err := st.inboxRows(ctx, userID, cur, want+1, now)
		if err != nil {
			return sinks.InboxPage{}, err
		}
		var ids []string
		for _, r := range rows {
			if r.broadcast {
				ids = append(ids, r.msg.MessageID)
			}
		}
		content, err := st.broadcasts(ctx, ids)
		if err != nil {
			return sinks.InboxPage{}, err
		}
		for _, r := range rows {
			if len(page.Messages) == limit {
				// A row follows the last message: the page has a next.
				last := page.Messages[len(page.Messages)-1]
				page.Next = sinks.InboxCursor{PublishedAt: last.PublishedAt, MessageID: last.MessageID}
				return page, nil
			}
			cur = sinks.InboxCursor{PublishedAt: r.msg.PublishedAt, MessageID: r.msg.MessageID}
			if r.broadcast {
				c, ok := content[r.msg.MessageID]
				if !ok || c.withdrawn {
					continue
				}
				r.msg.Title, r.msg.Body, r.msg.Link = c.title, c.body, c.link
			}
			page.Messages = append(page.Messages, r.msg)
		}
		if len(rows) <= want {
			return page, nil // the inbox ends here
		}
	}
}

// inboxRows reads up to n visible rows of the user's inbox after cur.
func (st *Station) inboxRows(ctx context.Context, userID string, cur sinks.InboxCursor, n int, now time.Time) ([]inboxRow, error) {
	s := st.s
	dbi, inboxT, _ := st.inboxTables(userID)
	q := "SELECT message_id, broadcast, title, body, link, published_at, expires_at, read_at FROM " + inboxT +
		" WHERE user_id = ? AND " + visible
	args := []any{userID, now, now}
	if !cur.IsZero() {
		at := sqlTime(cur.PublishedAt)
		q += " AND (published_at < ? OR (published_at = ? AND message_id < ?))"
		args = append(args, at, at, cur.MessageID)
	}
	q += " ORDER BY published_at DESC, message_id DESC LIMIT ?"
	args = append(args, n)
	rows, err := s.dbs[dbi].QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("reading the inbox of %s from %s: %w", userID, s.names[dbi], err)
	}
	defer rows.Close()
	var out []inboxRow
	for rows.Next() {
		var r inboxRow
		var exp, read sql.NullTime
		if err := rows.Scan(&r.msg.MessageID, &r.broadcast, &r.msg.Title, &r.msg.Body, &r.msg.Link, &r.msg.PublishedAt, &exp, &read); err != nil {
			return nil, fmt.Errorf("reading the inbox of %s from %s: %w", userID, s.names[dbi], err)
		}
		r.msg.Audience = schemas.AudienceUser
		if r.broadcast {
			r.msg.Audience = schemas.AudienceAll
		}
		r.msg.PublishedAt = r.msg.PublishedAt.UTC()
		r.msg.ExpiresAt, r.msg.ReadAt = nullTime(exp), nullTime(read)
		r.msg.Read = read.Valid
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the inbox of %s from %s: %w", userID, s.names[dbi], err)
	}
	return out, nil
}

// UnreadCount counts the user's visible unread messages without writing:
// the unread rows of the user's inbox and the messages to all users the
// user's next read would deliver. The cursor and the unread rows are read
// in one statement, so they agree (a delivery moves both in one
// transaction): a message is counted once, as a row or as pending.
func (st *Station) UnreadCount(ctx context.Context, userID string) (int64, error) {
	if err := st.check("counting unread messages"); err != nil {
		return 0, err
	}
	s := st.s
	now := st.clock()
	dbi, inboxT, cursorT := st.inboxTables(userID)
	rows, err := s.dbs[dbi].QueryContext(ctx,
		"SELECT 0, '', seq FROM "+cursorT+" WHERE user_id = ? UNION ALL "+
			"SELECT 1, message_id, broadcast FROM "+inboxT+" WHERE user_id = ? AND read_at IS NULL AND "+visible,
		userID, userID, now, now)
	if err != nil {
		return 0, fmt.Errorf("counting unread messages of %s in %s: %w", userID, s.names[dbi], err)
	}
	var (
		w      int64
		direct int64
		ids    []string
	)
	for rows.Next() {
		var kind int
		var id string
		var v int64
		if err := rows.Scan(&kind, &id, &v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("counting unread messages of %s in %s: %w", userID, s.names[dbi], err)
		}
		switch {
		case kind == 0:
			w = v
		case v == 0:
			direct++
		default:
			ids = append(ids, id)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return 0, fmt.Errorf("counting unread messages of %s in %s: %w", userID, s.names[dbi], err)
	}
	// Delivered rows have seq <= w and pending messages seq > w, so the
	// two parts never count a message twice.
	live := "SELECT COUNT(*) FROM `" + stationMessageTable + "` WHERE published_at <= ? AND (expires_at IS NULL OR expires_at > ?) AND withdrawn_at IS NULL AND "
	from := now.Add(-st.lookback)
	var total int64
	for first, lo := true, 0; first || lo < len(ids); first, lo = false, lo+maxInIDs {
		chunk := ids[lo:min(lo+maxInIDs, len(ids))]
		args := []any{now, now}
		var conds []string
		if first {
			conds = append(conds, "(seq > ? AND published_at >= ?)")
			args = append(args, w, from)
		}
		if len(chunk) > 0 {
			conds = append(conds, "(seq <= ? AND message_id IN ("+placeholders(len(chunk))+"))")
			args = append(args, w)
			for _, id := range chunk {
				args = append(args, id)
			}
		}
		var n int64
		if err := s.dbs[broadcastDB].QueryRowContext(ctx, live+"("+strings.Join(conds, " OR ")+")", args...).Scan(&n); err != nil {
			return 0, fmt.Errorf("counting unread station messages in %s: %w", s.names[broadcastDB], err)
		}
		total += n
	}
	return direct + total, nil
}

// MarkRead marks one message of the user's inbox read, delivering pending
// messages to all users first. Marking a read message again returns the
// first read time and changes nothing.
func (st *Station) MarkRead(ctx context.Context, userID, messageID string) (time.Time, error) {
	if err := st.check("marking a message read"); err != nil {
		return time.Time{}, err
	}
	s := st.s
	now := st.clock()
	if err := st.deliver(ctx, userID, now); err != nil {
		return time.Time{}, err
	}
	dbi, inboxT, _ := st.inboxTables(userID)
	var res sql.Result
	err := retrying(ctx, func() (err error) {
		res, err = s.dbs[dbi].ExecContext(ctx, "UPDATE "+inboxT+" SET read_at = ? WHERE user_id = ? AND message_id = ? AND read_at IS NULL AND published_at <= ?",
			now, userID, messageID, now)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("marking message %s of %s read in %s: %w", messageID, userID, s.names[dbi], err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return now, nil
	}
	var read sql.NullTime
	err = s.dbs[dbi].QueryRowContext(ctx, "SELECT read_at FROM "+inboxT+" WHERE user_id = ? AND message_id = ? AND published_at <= ?",
		userID, messageID, now).Scan(&read)
	switch {
	case errors.Is(err, sql.ErrNoRows) || err == nil && !read.Valid:
		return time.Time{}, fmt.Errorf("marking message %s of %s read: %w", messageID, userID, ErrNotFound)
	case err != nil:
		return time.Time{}, fmt.Errorf("marking message %s of %s read in %s: %w", messageID, userID, s.names[dbi], err)
	}
	return read.Time.UTC(), nil
}

// MarkAllRead marks every visible unread message of the user's inbox read,
// delivering pending messages to all users first, and returns how many it
// marked. Messages to all users withdrawn after their delivery are hidden
// and stay as they are.
func (st *Station) MarkAllRead(ctx context.Context, userID string) (int64, error) {
	if err := st.check("marking messages read"); err != nil {
		return 0, err
	}
	s := st.s
	now := st.clock()
	if err := st.deliver(ctx, userID, now); err != nil {
		return 0, err
	}
	dbi, inboxT, _ := st.inboxTables(userID)
	unread, err := scanRows(ctx, s.dbs[dbi], "SELECT message_id FROM "+inboxT+" WHERE user_id = ? AND broadcast = 1 AND read_at IS NULL AND "+visible,
		[]any{userID, now, now}, scanOne[string], nil)
	if err != nil {
		return 0, fmt.Errorf("reading the unread messages of %s from %s: %w", userID, s.names[dbi], err)
	}
	content, err := st.broadcasts(ctx, unread)
	if err != nil {
		return 0, err
	}
	q := "UPDATE " + inboxT + " SET read_at = ? WHERE user_id = ? AND read_at IS NULL AND " + visible
	args := []any{now, userID, now, now}
	var hidden []any
	for _, id := range unread {
		if c, ok := content[id]; !ok || c.withdrawn {
			hidden = append(hidden, id)
		}
	}
	if len(hidden) > 0 {
		q += " AND message_id NOT IN (" + placeholders(len(hidden)) + ")"
		args = append(args, hidden...)
	}
	var res sql.Result
	err = retrying(ctx, func() (err error) {
		res, err = s.dbs[dbi].ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("marking the messages of %s read in %s: %w", userID, s.names[dbi], err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
