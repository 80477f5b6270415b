package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.CrowdReader = (*Crowds)(nil)

// CrowdTables is how many tables hold manual crowds, and how many hold
// each day of routine crowds: a crowd's table is crc32(app_id) % 100.
const CrowdTables = 100

// The crowd tables. crowd_locator lives in the first shard database; the
// member tables and their row counts in the shard database of their table
// index (index % databases).
const (
	crowdLocatorTable  = "crowd_locator"
	crowdDayRowsTable  = "crowd_day_rows"
	crowdManualPrefix  = "crowd_manual_"
	crowdRoutinePrefix = "crowd_routine_"
	// crowdRows bounds the rows of one INSERT.
	crowdRows = 2000
	// erNoSuchTable is MySQL's "table doesn't exist".
	erNoSuchTable = 1146
)

const crowdLocatorCreate = "CREATE TABLE IF NOT EXISTS `" + crowdLocatorTable + "` (\n" +
	"  crowd_id         VARCHAR(64) NOT NULL,\n" +
	"  app_id           VARCHAR(64) NOT NULL,\n" +
	"  trigger_type     VARCHAR(16) NOT NULL,\n" +
	"  last_compute_day CHAR(8)     NOT NULL DEFAULT '',\n" +
	"  ready_day        CHAR(8)     NOT NULL DEFAULT '',\n" +
	"  pending_day      CHAR(8)     NOT NULL DEFAULT '',\n" +
	"  pending_members  BIGINT      NOT NULL DEFAULT 0,\n" +
	"  updated_at       DATETIME(3) NOT NULL,\n" +
	"  PRIMARY KEY (crowd_id)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

const crowdDayRowsCreate = "CREATE TABLE IF NOT EXISTS `" + crowdDayRowsTable + "` (\n" +
	"  crowd_id VARCHAR(64) NOT NULL,\n" +
	"  day      CHAR(8)     NOT NULL,\n" +
	"  `rows`   BIGINT      NOT NULL,\n" +
	"  PRIMARY KEY (crowd_id, day)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// crowdMemberCreate is a member table; %s is its quoted name. Binary
// collation sorts user ids bytewise, as Go does, so a page's last id is
// the next page's after.
const crowdMemberCreate = "CREATE TABLE IF NOT EXISTS %s (\n" +
	"  crowd_id    VARCHAR(64)  NOT NULL,\n" +
	"  user_id     VARCHAR(128) NOT NULL,\n" +
	"  app_id      VARCHAR(64)  NOT NULL,\n" +
	"  removed     TINYINT      NOT NULL DEFAULT 0,\n" +
	"  recorded_at DATETIME(3)  NOT NULL,\n" +
	"  PRIMARY KEY (crowd_id, user_id)\n" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"

// CrowdTable returns the table index of an app's crowds.
func CrowdTable(appID string) int { return int(crc32.ChecksumIEEE([]byte(appID)) % CrowdTables) }

// CrowdManualTable names manual table t.
func CrowdManualTable(t int) string { return fmt.Sprintf("%s%02d", crowdManualPrefix, t) }

// CrowdRoutineTable names routine table t of day (YYYYMMDD).
func CrowdRoutineTable(day string, t int) string {
	return fmt.Sprintf("%s%s_%02d", crowdRoutinePrefix, day, t)
}

// Crowds stores crowd memberships (see docs/crowds.md) in day-sharded
// tables on its Sink's shard databases, and reads them (sinks.CrowdReader).
// It is safe for concurrent use.
type Crowds struct {
	s         *Sink
	retention int // days
	ahead     int // days
	loc       *time.Location
	now       func() time.Time
	log       *slog.Logger
	dbNames   []string // the shard databases' real names

	mu      sync.Mutex
	created map[string]bool // routine tables known to exist
}

// CrowdOption configures Crowds.
type CrowdOption func(*Crowds)

// WithCrowdRetention sets how many days of routine tables are kept
// (default 7): older ones are backed up and dropped by Maintain, and rows
// for those days are no longer written.
func WithCrowdRetention(days int) CrowdOption {
	return func(c *Crowds) {
		if days > 0 {
			c.retention = days
		}
	}
}

// WithCrowdAhead sets how many days ahead Maintain creates routine tables
// (default 3), and so how far ahead of today a compute day may be.
func WithCrowdAhead(days int) CrowdOption {
	return func(c *Crowds) {
		if days >= 0 {
			c.ahead = days
		}
	}
}

// WithCrowdClock sets the clock and the time zone days are cut in
// (default time.Now, UTC).
func WithCrowdClock(now func() time.Time, loc *time.Location) CrowdOption {
	return func(c *Crowds) {
		if now != nil {
			c.now = now
		}
		if loc != nil {
			c.loc = loc
		}
	}
}

// WithCrowdLogger sets the logger (default slog.Default()).
func WithCrowdLogger(l *slog.Logger) CrowdOption {
	return func(c *Crowds) {
		if l != nil {
			c.log = l
		}
	}
}

// Crowds opens the crowd store on s, creating the locator, the row counts
// and the 100 manual tables that do not exist yet. Routine day tables are
// created by Maintain, and on demand for a day within the window.
func (s *Sink) Crowds(ctx context.Context, opts ...CrowdOption) (*Crowds, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("opening crowds in mysql: %w", ErrClosed)
	}
	c := &Crowds{s: s, retention: 7, ahead: 3, loc: time.UTC, now: time.Now, log: slog.Default(), created: map[string]bool{}}
	for _, o := range opts {
		o(c)
	}
	c.dbNames = make([]string, len(s.dbs))
	for i, db := range s.dbs {
		if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&c.dbNames[i]); err != nil {
			return nil, fmt.Errorf("opening crowds in %s: %w", s.names[i], err)
		}
		if _, err := db.ExecContext(ctx, crowdDayRowsCreate); err != nil {
			return nil, fmt.Errorf("creating %s in %s: %w", crowdDayRowsTable, s.names[i], err)
		}
	}
	if _, err := s.dbs[0].ExecContext(ctx, crowdLocatorCreate); err != nil {
		return nil, fmt.Errorf("creating %s in %s: %w", crowdLocatorTable, s.names[0], err)
	}
	for t := range CrowdTables {
		if _, err := c.db(t).ExecContext(ctx, fmt.Sprintf(crowdMemberCreate, "`"+CrowdManualTable(t)+"`")); err != nil {
			return nil, fmt.Errorf("creating %s in %s: %w", CrowdManualTable(t), c.s.names[c.dbIndex(t)], err)
		}
	}
	return c, nil
}

func (c *Crowds) dbIndex(t int) int { return t % len(c.s.dbs) }
func (c *Crowds) db(t int) *sql.DB  { return c.s.dbs[c.dbIndex(t)] }

// today returns the day (YYYYMMDD) of now in the store's time zone.
func (c *Crowds) day(offset int) string {
	return c.now().In(c.loc).AddDate(0, 0, offset).Format("20060102")
}

// ensureRoutine creates routine table t of day when it is not known to
// exist.
func (c *Crowds) ensureRoutine(ctx context.Context, day string, t int) error {
	name := CrowdRoutineTable(day, t)
	c.mu.Lock()
	ok := c.created[name]
	c.mu.Unlock()
	if ok {
		return nil
	}
	if _, err := c.db(t).ExecContext(ctx, fmt.Sprintf(crowdMemberCreate, "`"+name+"`")); err != nil {
		return fmt.Errorf("creating %s in %s: %w", name, c.s.names[c.dbIndex(t)], err)
	}
	c.mu.Lock()
	c.created[name] = true
	c.mu.Unlock()
	return nil
}

// crowdRow is one membership to write.
type crowdRow struct {
	crowd, user, app string
	removed          int
	at               time.Time
}

// crowdLoc is what a batch says of a crowd for the locator.
type crowdLoc struct{ app, trigger, day string }

// crowdOwner is the app and trigger a crowd belongs to.
type crowdOwner struct{ app, trigger string }

// owners reads the app and trigger of the crowds ids that the locator
// already knows.
func (c *Crowds) owners(ctx context.Context, ids map[string]bool) (map[string]crowdOwner, error) {
	out := make(map[string]crowdOwner, len(ids))
	list := make([]any, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	for lo := 0; lo < len(list); lo += crowdRows {
		chunk := list[lo:min(lo+crowdRows, len(list))]
		err := retrying(ctx, func() error {
			rows, err := c.s.dbs[0].QueryContext(ctx, "SELECT crowd_id, app_id, trigger_type FROM `"+crowdLocatorTable+"` WHERE crowd_id IN ("+
				strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+")", chunk...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				var o crowdOwner
				if err := rows.Scan(&id, &o.app, &o.trigger); err != nil {
					return err
				}
				out[id] = o
			}
			return rows.Err()
		})
		if err != nil {
			return nil, fmt.Errorf("reading the crowd locator: %w", err)
		}
	}
	return out, nil
}

// crowdGroup is the rows of one crowd in one member table.
type crowdGroup struct {
	table int
	day   string // "" for manual
	crowd string
	rows  []crowdRow
}

// WriteBatch stores crowd.membership.recorded and crowd.computed events.
// Each crowd's rows go to its app's table in one transaction with the
// day's row count (rows added, never replays), so writing a batch again
// changes nothing. A routine row for a day older than the retention is
// skipped (its table is, or will be, backed up and dropped) and so is one
// for a day beyond the create-ahead window; both are logged. After the
// writes, a routine crowd whose crowd.computed arrived becomes readable at
// that day once the store holds its member count.
func (c *Crowds) WriteBatch(ctx context.Context, events []*schemas.Envelope) error {
	if c.s.closed.Load() {
		return fmt.Errorf("writing crowds to mysql: %w", ErrClosed)
	}
	type gkey struct {
		table      int
		day, crowd string
	}
	groups := map[gkey]*crowdGroup{}
	located := map[string]crowdLoc{}
	var computed []schemas.CrowdComputed
	computedApp := map[string]string{}
	oldest, newest := c.day(-c.retention), c.day(c.ahead)
	skipped := 0
	// Decode first: the crowds' owners are read in one query.
	type item struct {
		env *schemas.Envelope
		m   schemas.CrowdMembershipRecorded
		cc  *schemas.CrowdComputed
	}
	items := make([]item, len(events))
	ids := map[string]bool{}
	for i, env := range events {
		items[i].env = env
		switch env.Type {
		case schemas.TypeCrowdMembershipRecorded:
			if err := env.DecodePayload(&items[i].m); err != nil {
				return fmt.Errorf("writing crowds: event %s: %w", env.EventID, err)
			}
			ids[items[i].m.CrowdID] = true
		case schemas.TypeCrowdComputed:
			var cc schemas.CrowdComputed
			if err := env.DecodePayload(&cc); err != nil {
				return fmt.Errorf("writing crowds: event %s: %w", env.EventID, err)
			}
			items[i].cc = &cc
			ids[cc.CrowdID] = true
		default:
			return fmt.Errorf("writing crowds: %s: %w", env.Type, ErrUnsupportedType)
		}
	}
	// A crowd belongs to one app and has one trigger: those its first
	// event gave it (the locator's). Rows that say otherwise would land in
	// a table no reader looks at; they are skipped and logged.
	owners, err := c.owners(ctx, ids)
	if err != nil {
		return err
	}
	conflicts := map[string]int{}
	for _, it := range items {
		env := it.env
		if it.cc == nil {
			m := it.m
			if m.Trigger == schemas.CrowdRoutine && (m.ComputeDay < oldest || m.ComputeDay > newest) {
				skipped++
				continue
			}
			if o, ok := owners[m.CrowdID]; !ok {
				owners[m.CrowdID] = crowdOwner{env.AppID, m.Trigger}
			} else if o.app != env.AppID || o.trigger != m.Trigger {
				conflicts[m.CrowdID]++
				continue
			}
			t := CrowdTable(env.AppID)
			k := gkey{t, m.ComputeDay, m.CrowdID}
			g := groups[k]
			if g == nil {
				g = &crowdGroup{table: t, day: m.ComputeDay, crowd: m.CrowdID}
				groups[k] = g
			}
			r := crowdRow{crowd: m.CrowdID, user: m.UserID, app: env.AppID, at: m.RecordedAt.UTC()}
			if m.Op == schemas.CrowdRemove {
				r.removed = 1
			}
			g.rows = append(g.rows, r)
			if l := located[m.CrowdID]; m.ComputeDay >= l.day {
				located[m.CrowdID] = crowdLoc{env.AppID, m.Trigger, m.ComputeDay}
			}
			continue
		}
		cc := *it.cc
		if o, ok := owners[cc.CrowdID]; !ok {
			owners[cc.CrowdID] = crowdOwner{env.AppID, cc.Trigger}
		} else if o.app != env.AppID || o.trigger != cc.Trigger {
			conflicts[cc.CrowdID]++
			continue
		}
		computed = append(computed, cc)
		computedApp[cc.CrowdID] = env.AppID
	}
	if skipped > 0 {
		c.log.Warn("crowd rows outside the kept days skipped", "rows", skipped, "oldest_day", oldest, "newest_day", newest)
	}
	for id, n := range conflicts {
		o := owners[id]
		c.log.Error("crowd events of another app or trigger than the crowd's skipped (a crowd belongs to the app and trigger of its first event; use another crowd id)",
			"crowd", id, "events", n, "app", o.app, "trigger", o.trigger)
	}

	// Member rows, per shard database, in parallel; in one database, one
	// transaction per crowd and table, in table order.
	byDB := map[int][]*crowdGroup{}
	for _, g := range groups {
		byDB[c.dbIndex(g.table)] = append(byDB[c.dbIndex(g.table)], g)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, gs := range byDB {
		slices.SortFunc(gs, func(a, b *crowdGroup) int {
			return cmp.Or(cmp.Compare(a.table, b.table), strings.Compare(a.day, b.day), strings.Compare(a.crowd, b.crowd))
		})
		wg.Go(func() {
			for _, g := range gs {
				if err := retrying(ctx, func() error { return c.writeGroup(ctx, g) }); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := c.locate(ctx, located, computed, computedApp); err != nil {
		return err
	}
	touched := map[string]bool{}
	for id, l := range located {
		if l.trigger == schemas.CrowdRoutine {
			touched[id] = true
		}
	}
	for _, cc := range computed {
		touched[cc.CrowdID] = true
	}
	return c.promote(ctx, touched)
}

// writeGroup writes one crowd's rows of one table, and adds the rows it
// inserted (not the replays) to the day's count, in one transaction.
func (c *Crowds) writeGroup(ctx context.Context, g *crowdGroup) error {
	name := CrowdManualTable(g.table)
	if g.day != "" {
		name = CrowdRoutineTable(g.day, g.table)
		if err := c.ensureRoutine(ctx, g.day, g.table); err != nil {
			return err
		}
	}
	// The last row of a user in the batch wins; rows in user order.
	last := map[string]int{}
	for i, r := range g.rows {
		last[r.user] = i
	}
	rows := make([]crowdRow, 0, len(last))
	for i, r := range g.rows {
		if last[r.user] == i {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b crowdRow) int { return strings.Compare(a.user, b.user) })
	where := c.s.names[c.dbIndex(g.table)] + "." + name
	// A replay changes nothing, so it counts no affected row; a manual
	// row takes the newest removed flag.
	tail := " ON DUPLICATE KEY UPDATE crowd_id = crowd_id"
	if g.day == "" {
		tail = " ON DUPLICATE KEY UPDATE removed = IF(VALUES(recorded_at) >= recorded_at, VALUES(removed), removed)," +
			" recorded_at = GREATEST(recorded_at, VALUES(recorded_at))"
	}
	return inTx(ctx, c.db(g.table), "writing crowd "+g.crowd+" to "+where, func(tx *sql.Tx) error {
		var added int64
		for lo := 0; lo < len(rows); lo += crowdRows {
			chunk := rows[lo:min(lo+crowdRows, len(rows))]
			args := make([]any, 0, 5*len(chunk))
			for _, r := range chunk {
				args = append(args, r.crowd, r.user, r.app, r.removed, r.at)
			}
			res, err := tx.ExecContext(ctx, "INSERT INTO `"+name+"` (crowd_id, user_id, app_id, removed, recorded_at) VALUES "+
				tuples(len(chunk), 5)+tail, args...)
			if err != nil {
				return fmt.Errorf("writing crowd %s to %s: %w", g.crowd, where, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("writing crowd %s to %s: %w", g.crowd, where, err)
			}
			added += n
		}
		if g.day == "" || added == 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO `"+crowdDayRowsTable+"` (crowd_id, day, `rows`) VALUES (?, ?, ?)"+
			" ON DUPLICATE KEY UPDATE `rows` = `rows` + VALUES(`rows`)", g.crowd, g.day, added); err != nil {
			return fmt.Errorf("counting crowd %s rows in %s: %w", g.crowd, c.s.names[c.dbIndex(g.table)], err)
		}
		return nil
	})
}

// locate records each crowd's app, trigger and last compute day, and the
// pending day of each crowd.computed, in the locator. A crowd's app and
// trigger are those of its first event.
func (c *Crowds) locate(ctx context.Context, located map[string]crowdLoc, computed []schemas.CrowdComputed, apps map[string]string) error {
	now := c.now().UTC()
	ids := make([]string, 0, len(located))
	for id := range located {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	db := c.s.dbs[0]
	where := c.s.names[0] + "." + crowdLocatorTable
	for lo := 0; lo < len(ids); lo += crowdRows {
		chunk := ids[lo:min(lo+crowdRows, len(ids))]
		args := make([]any, 0, 5*len(chunk))
		for _, id := range chunk {
			l := located[id]
			args = append(args, id, l.app, l.trigger, l.day, now)
		}
		err := retrying(ctx, func() error {
			_, err := db.ExecContext(ctx, "INSERT INTO `"+crowdLocatorTable+"` (crowd_id, app_id, trigger_type, last_compute_day, updated_at) VALUES "+
				tuples(len(chunk), 5)+" ON DUPLICATE KEY UPDATE last_compute_day = GREATEST(last_compute_day, VALUES(last_compute_day)), updated_at = VALUES(updated_at)", args...)
			return err
		})
		if err != nil {
			return fmt.Errorf("locating crowds in %s: %w", where, err)
		}
	}
	for _, cc := range computed {
		err := retrying(ctx, func() error {
			_, err := db.ExecContext(ctx, "INSERT INTO `"+crowdLocatorTable+"` (crowd_id, app_id, trigger_type, pending_day, pending_members, updated_at) VALUES (?, ?, ?, ?, ?, ?)"+
				" ON DUPLICATE KEY UPDATE pending_members = IF(VALUES(pending_day) >= pending_day, VALUES(pending_members), pending_members),"+
				" pending_day = GREATEST(pending_day, VALUES(pending_day)), updated_at = VALUES(updated_at)",
				cc.CrowdID, apps[cc.CrowdID], cc.Trigger, cc.ComputeDay, cc.Members, now)
			return err
		})
		if err != nil {
			return fmt.Errorf("marking crowd %s computed in %s: %w", cc.CrowdID, where, err)
		}
	}
	return nil
}

// promote makes the pending day of each crowd readable once the store
// holds its member count. Every batch that may complete a day calls it, so
// whichever of the last rows and the crowd.computed is written last
// promotes the day.
func (c *Crowds) promote(ctx context.Context, ids map[string]bool) error {
	if len(ids) == 0 {
		return nil
	}
	list := make([]any, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	rows, err := c.s.dbs[0].QueryContext(ctx, "SELECT crowd_id, app_id, pending_day, pending_members FROM `"+crowdLocatorTable+
		"` WHERE pending_day > ready_day AND crowd_id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(list)), ",")+")", list...)
	if err != nil {
		return fmt.Errorf("reading pending crowds: %w", err)
	}
	type pending struct {
		crowd, app, day string
		members         int64
	}
	var ps []pending
	for rows.Next() {
		var p pending
		if err := rows.Scan(&p.crowd, &p.app, &p.day, &p.members); err != nil {
			rows.Close()
			return fmt.Errorf("reading pending crowds: %w", err)
		}
		ps = append(ps, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading pending crowds: %w", err)
	}
	for _, p := range ps {
		var n int64
		err := c.db(CrowdTable(p.app)).QueryRowContext(ctx, "SELECT `rows` FROM `"+crowdDayRowsTable+"` WHERE crowd_id = ? AND day = ?", p.crowd, p.day).Scan(&n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("counting crowd %s rows of %s: %w", p.crowd, p.day, err)
		}
		if n < p.members {
			continue
		}
		if _, err := c.s.dbs[0].ExecContext(ctx, "UPDATE `"+crowdLocatorTable+"` SET ready_day = ? WHERE crowd_id = ? AND ready_day < ?", p.day, p.crowd, p.day); err != nil {
			return fmt.Errorf("promoting crowd %s to %s: %w", p.crowd, p.day, err)
		}
		c.log.Info("crowd computed", "crowd", p.crowd, "day", p.day, "members", p.members)
	}
	return nil
}

// CrowdStatus is the locator's whole entry for a crowd, for operators.
type CrowdStatus struct {
	sinks.Crowd
	LastComputeDay string    `json:"last_compute_day,omitempty"`
	PendingDay     string    `json:"pending_day,omitempty"`
	PendingMembers int64     `json:"pending_members,omitempty"`
	PendingRows    int64     `json:"pending_rows,omitempty"`
	UpdatedAt      time.Time `json:"updated_at"`
}

// Status returns the locator's entry for a crowd, with the rows stored of
// its pending day.
func (c *Crowds) Status(ctx context.Context, crowdID string) (CrowdStatus, error) {
	var st CrowdStatus
	err := c.s.dbs[0].QueryRowContext(ctx, "SELECT app_id, trigger_type, ready_day, last_compute_day, pending_day, pending_members, updated_at FROM `"+
		crowdLocatorTable+"` WHERE crowd_id = ?", crowdID).Scan(&st.AppID, &st.Trigger, &st.Day, &st.LastComputeDay, &st.PendingDay, &st.PendingMembers, &st.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return CrowdStatus{}, fmt.Errorf("crowd %s: %w", crowdID, sinks.ErrNotFound)
	}
	if err != nil {
		return CrowdStatus{}, fmt.Errorf("reading crowd %s: %w", crowdID, err)
	}
	st.CrowdID = crowdID
	if st.PendingDay != "" && st.PendingDay > st.Day {
		err := c.db(CrowdTable(st.AppID)).QueryRowContext(ctx, "SELECT `rows` FROM `"+crowdDayRowsTable+"` WHERE crowd_id = ? AND day = ?", crowdID, st.PendingDay).Scan(&st.PendingRows)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return CrowdStatus{}, fmt.Errorf("counting crowd %s rows: %w", crowdID, err)
		}
	}
	return st, nil
}

// Crowd returns the crowd's locator entry (sinks.CrowdReader).
func (c *Crowds) Crowd(ctx context.Context, crowdID string) (sinks.Crowd, error) {
	var cr sinks.Crowd
	err := c.s.dbs[0].QueryRowContext(ctx, "SELECT app_id, trigger_type, ready_day FROM `"+crowdLocatorTable+"` WHERE crowd_id = ?", crowdID).
		Scan(&cr.AppID, &cr.Trigger, &cr.Day)
	if errors.Is(err, sql.ErrNoRows) {
		return sinks.Crowd{}, fmt.Errorf("crowd %s: %w", crowdID, sinks.ErrNotFound)
	}
	if err != nil {
		return sinks.Crowd{}, fmt.Errorf("reading crowd %s: %w", crowdID, err)
	}
	cr.CrowdID = crowdID
	return cr, nil
}

// table returns the member table a crowd is read from.
func (c *Crowds) table(ctx context.Context, crowdID string) (*sql.DB, string, error) {
	cr, err := c.Crowd(ctx, crowdID)
	if err != nil {
		return nil, "", err
	}
	return c.tableOf(cr)
}

// tableOf returns the member table of a located crowd.
func (c *Crowds) tableOf(cr sinks.Crowd) (*sql.DB, string, error) {
	crowdID := cr.CrowdID
	t := CrowdTable(cr.AppID)
	if cr.Trigger == schemas.CrowdManual {
		return c.db(t), CrowdManualTable(t), nil
	}
	if cr.Day == "" {
		return nil, "", fmt.Errorf("crowd %s has no complete compute day yet: %w", crowdID, sinks.ErrNotFound)
	}
	return c.db(t), CrowdRoutineTable(cr.Day, t), nil
}

// noTable turns a missing routine table (dropped by retention) into
// ErrNotFound.
func noTable(crowdID string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && me.Number == erNoSuchTable {
		return fmt.Errorf("crowd %s: its compute day's table was dropped (past the retention): %w", crowdID, sinks.ErrNotFound)
	}
	return fmt.Errorf("reading crowd %s: %w", crowdID, err)
}

// Members returns up to limit member ids greater than after, ascending
// (sinks.CrowdReader). A routine crowd is read at its ready day.
func (c *Crowds) Members(ctx context.Context, crowdID, after string, limit int) ([]string, error) {
	cr, err := c.Crowd(ctx, crowdID)
	if err != nil {
		return nil, err
	}
	return c.MembersOf(ctx, cr, after, limit)
}

// MembersOf is Members for a crowd already located (Crowd), read at cr.Day
// however the locator moves on: the notification planner pins a routine
// crowd's day for a whole campaign. A day dropped by the retention is an
// error wrapping sinks.ErrNotFound.
func (c *Crowds) MembersOf(ctx context.Context, cr sinks.Crowd, after string, limit int) ([]string, error) {
	crowdID := cr.CrowdID
	db, name, err := c.tableOf(cr)
	if err != nil {
		return nil, err
	}
	rows, err := db.QueryContext(ctx, "SELECT user_id FROM `"+name+"` WHERE crowd_id = ? AND user_id > ? AND removed = 0 ORDER BY user_id LIMIT ?", crowdID, after, max(limit, 1))
	if err != nil {
		return nil, noTable(crowdID, err)
	}
	defer rows.Close()
	out := make([]string, 0, limit)
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, noTable(crowdID, err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, noTable(crowdID, err)
	}
	return out, nil
}

// IsMember says whether userID is a member of the crowd
// (sinks.CrowdReader).
func (c *Crowds) IsMember(ctx context.Context, crowdID, userID string) (bool, error) {
	db, name, err := c.table(ctx, crowdID)
	if err != nil {
		return false, err
	}
	var one int
	err = db.QueryRowContext(ctx, "SELECT 1 FROM `"+name+"` WHERE crowd_id = ? AND user_id = ? AND removed = 0", crowdID, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, noTable(crowdID, err)
	}
	return true, nil
}
