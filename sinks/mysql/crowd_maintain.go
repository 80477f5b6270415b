package mysql

import (
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Backup modes of routine tables past the retention.
const (
	// BackupArchive moves the table whole into <database>_archive (RENAME
	// TABLE: instant, atomic, no copy); operators export or drop it there.
	BackupArchive = "archive"
	// BackupDump writes the table's rows to <dir>/<database>/<table>.tsv.gz,
	// checks the count, then drops the table.
	BackupDump = "dump"
	// BackupNone drops the table without a backup.
	BackupNone = "none"
)

// MaintainLock names the advisory lock (GET_LOCK, server-wide) one
// maintenance run holds on a shard database, so that two instances never
// maintain it at once.
func MaintainLock(database string) string { return "promoflow_crowds_maintain:" + database }

// MaintainOptions configures a maintenance run.
type MaintainOptions struct {
	// Backup is BackupArchive (the default), BackupDump or BackupNone.
	Backup string
	// DumpDir is where BackupDump writes; required with it.
	DumpDir string
	// DryRun reports what would be done and does nothing.
	DryRun bool
}

// MaintainReport says what a maintenance run did (or, dry, would do).
type MaintainReport struct {
	// Created are the routine tables created ahead, database.table.
	Created []string `json:"created"`
	// BackedUp are the tables backed up, with where to: an archive table or
	// a dump file, and the rows it held.
	BackedUp []string `json:"backed_up"`
	// Dropped are the routine tables dropped (moved, for the archive).
	Dropped []string `json:"dropped"`
	// Locked are the shard databases another run was maintaining.
	Locked []string `json:"locked,omitempty"`
	// Kept is how many routine tables are within the window.
	Kept int `json:"kept"`
}

// Maintain creates the routine tables of today and the next ahead days
// that do not exist, and backs up and drops whole the routine tables older
// than the retention (never deleting rows one by one). It takes an
// advisory lock per shard database and skips a database another run
// holds. Running it again changes nothing.
func (c *Crowds) Maintain(ctx context.Context, o MaintainOptions) (MaintainReport, error) {
	if o.Backup == "" {
		o.Backup = BackupArchive
	}
	switch o.Backup {
	case BackupArchive, BackupNone:
	case BackupDump:
		if o.DumpDir == "" {
			return MaintainReport{}, errors.New("crowds maintenance: backup dump needs a dump directory")
		}
	default:
		return MaintainReport{}, fmt.Errorf("crowds maintenance: backup must be archive, dump or none, got %q", o.Backup)
	}
	var rep MaintainReport
	days := make([]string, 0, c.ahead+1)
	for i := 0; i <= c.ahead; i++ {
		days = append(days, c.day(i))
	}
	oldest := c.day(-c.retention)
	for i := range c.s.dbs {
		if err := c.maintainDB(ctx, i, days, oldest, o, &rep); err != nil {
			return rep, err
		}
	}
	if !o.DryRun {
		for _, db := range c.s.dbs {
			if _, err := db.ExecContext(ctx, "DELETE FROM `"+crowdDayRowsTable+"` WHERE day < ?", oldest); err != nil {
				return rep, fmt.Errorf("crowds maintenance: forgetting old row counts: %w", err)
			}
		}
	}
	return rep, nil
}

func (c *Crowds) maintainDB(ctx context.Context, i int, days []string, oldest string, o MaintainOptions, rep *MaintainReport) error {
	name := c.dbNames[i]
	conn, err := c.s.dbs[i].Conn(ctx)
	if err != nil {
		return fmt.Errorf("crowds maintenance of %s: %w", name, err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", MaintainLock(name)).Scan(&got); err != nil {
		return fmt.Errorf("crowds maintenance of %s: taking the lock: %w", name, err)
	}
	if got.Int64 != 1 {
		rep.Locked = append(rep.Locked, name)
		return nil
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK(?)", MaintainLock(name))

	existing := map[string]bool{}
	rows, err := conn.QueryContext(ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE ?", crowdRoutinePrefix+"%")
	if err != nil {
		return fmt.Errorf("crowds maintenance of %s: listing tables: %w", name, err)
	}
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("crowds maintenance of %s: listing tables: %w", name, err)
		}
		existing[t] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("crowds maintenance of %s: listing tables: %w", name, err)
	}

	for _, day := range days {
		for t := range CrowdTables {
			if c.dbIndex(t) != i {
				continue
			}
			table := CrowdRoutineTable(day, t)
			if existing[table] {
				continue
			}
			rep.Created = append(rep.Created, name+"."+table)
			if o.DryRun {
				continue
			}
			if _, err := conn.ExecContext(ctx, fmt.Sprintf(crowdMemberCreate, "`"+table+"`")); err != nil {
				return fmt.Errorf("crowds maintenance: creating %s.%s: %w", name, table, err)
			}
		}
	}

	var old []string
	for t := range existing {
		day, ok := routineDay(t)
		if !ok {
			continue // not ours
		}
		if day < oldest {
			old = append(old, t)
		} else {
			rep.Kept++
		}
	}
	slices.Sort(old)
	for _, t := range old {
		if o.DryRun {
			rep.Dropped = append(rep.Dropped, name+"."+t)
			continue
		}
		c.mu.Lock()
		delete(c.created, t)
		c.mu.Unlock()
		switch o.Backup {
		case BackupArchive:
			archive := name + "_archive"
			if _, err := conn.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+archive+"`"); err != nil {
				return fmt.Errorf("crowds maintenance: creating %s: %w", archive, err)
			}
			if _, err := conn.ExecContext(ctx, "RENAME TABLE `"+t+"` TO `"+archive+"`.`"+t+"`"); err != nil {
				return fmt.Errorf("crowds maintenance: archiving %s.%s: %w", name, t, err)
			}
			rep.BackedUp = append(rep.BackedUp, name+"."+t+" → "+archive+"."+t)
		case BackupDump:
			path, n, err := dumpTable(ctx, conn, name, t, o.DumpDir)
			if err != nil {
				return err
			}
			rep.BackedUp = append(rep.BackedUp, fmt.Sprintf("%s.%s → %s (%d rows)", name, t, path, n))
			if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS `"+t+"`"); err != nil {
				return fmt.Errorf("crowds maintenance: dropping %s.%s: %w", name, t, err)
			}
		case BackupNone:
			if _, err := conn.ExecContext(ctx, "DROP TABLE IF EXISTS `"+t+"`"); err != nil {
				return fmt.Errorf("crowds maintenance: dropping %s.%s: %w", name, t, err)
			}
		}
		rep.Dropped = append(rep.Dropped, name+"."+t)
	}
	return nil
}

// routineDay returns the day of a routine table's name.
func routineDay(table string) (string, bool) {
	rest, ok := strings.CutPrefix(table, crowdRoutinePrefix)
	if !ok || len(rest) != len("20060102_00") || rest[8] != '_' {
		return "", false
	}
	if _, err := time.Parse("20060102", rest[:8]); err != nil {
		return "", false
	}
	return rest[:8], true
}

// DumpColumns are the columns of a dump file, tab-separated, one row per
// line (ids never hold tabs or newlines: the schemas forbid them).
const DumpColumns = "crowd_id\tuser_id\tapp_id\tremoved\trecorded_at"

// dumpTable writes table's rows to dir/database/table.tsv.gz (written to a
// temporary file, synced, then renamed), checks the row count against the
// table's, and returns the path and the count.
func dumpTable(ctx context.Context, conn *sql.Conn, database, table, dir string) (string, int64, error) {
	fail := func(err error) (string, int64, error) {
		return "", 0, fmt.Errorf("crowds maintenance: dumping %s.%s: %w", database, table, err)
	}
	dest := filepath.Join(dir, database)
	if err := os.MkdirAll(dest, 0o750); err != nil {
		return fail(err)
	}
	path := filepath.Join(dest, table+".tsv.gz")
	f, err := os.CreateTemp(dest, table+".*.tmp")
	if err != nil {
		return fail(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	zw := gzip.NewWriter(bw)
	fmt.Fprintln(zw, DumpColumns)
	rows, err := conn.QueryContext(ctx, "SELECT crowd_id, user_id, app_id, removed, recorded_at FROM `"+table+"` ORDER BY crowd_id, user_id")
	if err != nil {
		return fail(err)
	}
	var n int64
	for rows.Next() {
		var crowd, user, app string
		var removed int
		var at time.Time
		if err := rows.Scan(&crowd, &user, &app, &removed, &at); err != nil {
			rows.Close()
			return fail(err)
		}
		fmt.Fprintf(zw, "%s\t%s\t%s\t%d\t%s\n", crowd, user, app, removed, at.UTC().Format("2006-01-02T15:04:05.000Z"))
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	var count int64
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+table+"`").Scan(&count); err != nil {
		return fail(err)
	}
	if count != n {
		return fail(fmt.Errorf("dumped %d rows but the table holds %d; not dropping it", n, count))
	}
	if err := zw.Close(); err != nil {
		return fail(err)
	}
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		return fail(err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fail(err)
	}
	return path, n, nil
}
