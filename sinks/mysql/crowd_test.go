package mysql_test

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// crowdEnv is a crowd store over fresh databases with a clock the test
// moves.
type crowdEnv struct {
	tb    testing.TB
	ctx   context.Context
	sink  *mysql.Sink
	r     *reader
	c     *mysql.Crowds
	now   atomic.Int64 // Unix milliseconds
	n     int
	names []string
}

func newCrowds(t *testing.T, start time.Time) *crowdEnv {
	t.Helper()
	s, r := newSink(t, mysql.Config{Databases: 2})
	e := &crowdEnv{tb: t, ctx: testenv.Context(t, 3*time.Minute), sink: s, r: r}
	e.now.Store(start.UnixMilli())
	c, err := s.Crowds(e.ctx, mysql.WithCrowdClock(func() time.Time { return time.UnixMilli(e.now.Load()) }, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	for i := range 2 {
		e.names = append(e.names, fmt.Sprintf("%s_%d", s.Config().DatabasePrefix, i))
	}
	t.Cleanup(func() {
		for _, name := range e.names {
			_, _ = r.dbs[0].Exec("DROP DATABASE IF EXISTS `" + name + "_archive`")
		}
	})
	return e
}

func (e *crowdEnv) setDay(day string) {
	d, err := time.Parse("20060102", day)
	if err != nil {
		e.tb.Fatal(err)
	}
	e.now.Store(d.Add(12 * time.Hour).UnixMilli())
}

func (e *crowdEnv) event(app string, p schemas.Payload) *schemas.Envelope {
	e.tb.Helper()
	e.n++
	env, err := schemas.New(fmt.Sprintf("e-%d", e.n), app, time.UnixMilli(e.now.Load()), p)
	if err != nil {
		e.tb.Fatal(err)
	}
	b, err := schemas.Validate(env)
	if err != nil {
		e.tb.Fatalf("%+v: %v", p, err)
	}
	if env, err = schemas.Decode(b); err != nil {
		e.tb.Fatal(err)
	}
	return env
}

func (e *crowdEnv) member(app, crowd, user, trigger, day string) *schemas.Envelope {
	return e.event(app, schemas.CrowdMembershipRecorded{CrowdID: crowd, UserID: user, Trigger: trigger, ComputeDay: day,
		RecordedAt: time.UnixMilli(e.now.Load())})
}

func (e *crowdEnv) computed(app, crowd, day string, members int64) *schemas.Envelope {
	return e.event(app, schemas.CrowdComputed{CrowdID: crowd, Trigger: schemas.CrowdRoutine, ComputeDay: day, Members: members,
		ComputedAt: time.UnixMilli(e.now.Load())})
}

func (e *crowdEnv) write(events ...*schemas.Envelope) {
	e.tb.Helper()
	if err := e.c.WriteBatch(e.ctx, events); err != nil {
		e.tb.Fatal(err)
	}
}

// tableRows counts a crowd's rows in a table of a shard database, read
// directly as an operator would.
func (e *crowdEnv) tableRows(db int, table, crowd string) int {
	e.tb.Helper()
	var n int
	err := e.r.dbs[db].QueryRowContext(e.ctx, "SELECT COUNT(*) FROM `"+table+"` WHERE crowd_id = ?", crowd).Scan(&n)
	if err != nil {
		e.tb.Fatalf("counting %s in %s: %v", crowd, table, err)
	}
	return n
}

func (e *crowdEnv) tables(db int, like string) []string {
	e.tb.Helper()
	rows, err := e.r.dbs[db].QueryContext(e.ctx, "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_name LIKE ? ORDER BY table_name", e.names[db], like)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			e.tb.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func (e *crowdEnv) all(crowd string, page int) []string {
	e.tb.Helper()
	var out []string
	after := ""
	for {
		got, err := e.c.Members(e.ctx, crowd, after, page)
		if err != nil {
			e.tb.Fatalf("members of %s after %q: %v", crowd, after, err)
		}
		if len(got) == 0 {
			return out
		}
		out = append(out, got...)
		after = got[len(got)-1]
	}
}

func users(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%06d", prefix, i)
	}
	return out
}

// TestIntegrationCrowdRouting checks that manual crowds land in
// crowd_manual_<crc32(app)%100> and routine crowds in that day's
// crowd_routine_<day>_<crc32(app)%100>, in shard database table % 2, that
// the locator finds them, and that a replayed batch changes nothing.
func TestIntegrationCrowdRouting(t *testing.T) {
	e := newCrowds(t, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	apps := []string{"shop", "live", "mini-program", "app-7"}
	tables := map[int]bool{}
	for _, app := range apps {
		tables[mysql.CrowdTable(app)] = true
	}
	if len(tables) < 3 {
		t.Fatalf("the test's apps share tables: %v", tables)
	}
	if got := len(e.tables(0, "crowd\\_manual\\_%")) + len(e.tables(1, "crowd\\_manual\\_%")); got != 100 {
		t.Errorf("%d manual tables, want 100", got)
	}
	var batch []*schemas.Envelope
	for i, app := range apps {
		for _, u := range users("u", 10+i) {
			batch = append(batch, e.member(app, "m-"+app, u, schemas.CrowdManual, ""))
			batch = append(batch, e.member(app, "r-"+app, u, schemas.CrowdRoutine, "20261122"))
		}
		batch = append(batch, e.computed(app, "r-"+app, "20261122", int64(10+i)))
	}
	e.write(batch...)
	e.write(batch...) // a redelivery
	for i, app := range apps {
		tbl := mysql.CrowdTable(app)
		db := tbl % 2
		if got := e.tableRows(db, mysql.CrowdManualTable(tbl), "m-"+app); got != 10+i {
			t.Errorf("%s: %d rows in %s, want %d", app, got, mysql.CrowdManualTable(tbl), 10+i)
		}
		if got := e.tableRows(db, mysql.CrowdRoutineTable("20261122", tbl), "r-"+app); got != 10+i {
			t.Errorf("%s: %d rows in %s, want %d", app, got, mysql.CrowdRoutineTable("20261122", tbl), 10+i)
		}
		// Nowhere else: the other database has no table of that index.
		if got := e.tables(1-db, mysql.CrowdManualTable(tbl)); len(got) != 0 {
			t.Errorf("%s: %v also in database %d", app, got, 1-db)
		}
		for _, crowd := range []string{"m-" + app, "r-" + app} {
			c, err := e.c.Crowd(e.ctx, crowd)
			if err != nil {
				t.Fatal(err)
			}
			if c.AppID != app {
				t.Errorf("locator: %+v", c)
			}
			if got := e.all(crowd, 3); !slices.Equal(got, users("u", 10+i)) {
				t.Errorf("%s: members %v", crowd, got)
			}
		}
		st, err := e.c.Status(e.ctx, "r-"+app)
		if err != nil || st.Day != "20261122" || st.LastComputeDay != "20261122" {
			t.Errorf("status %+v %v", st, err)
		}
	}
	if _, err := e.c.Members(e.ctx, "nobody", "", 10); !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("unknown crowd: %v, want ErrNotFound", err)
	}
	if ok, err := e.c.IsMember(e.ctx, "nobody", "u000001"); ok || !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("IsMember of unknown crowd: %v %v", ok, err)
	}
}

// TestIntegrationCrowdOwner: a crowd belongs to the app and trigger of its
// first event; later events under another app or trigger, in the same
// batch or a later one, are skipped and the crowd stays as it was.
func TestIntegrationCrowdOwner(t *testing.T) {
	e := newCrowds(t, time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	if mysql.CrowdTable("shop") == mysql.CrowdTable("live") {
		t.Fatal("the test's apps share a table")
	}
	e.write(e.member("shop", "vip", "u1", schemas.CrowdManual, ""), e.member("live", "vip", "u2", schemas.CrowdManual, ""))
	e.write(e.member("live", "vip", "u3", schemas.CrowdManual, ""), e.member("shop", "vip", "u4", schemas.CrowdRoutine, "20261122"),
		e.computed("live", "vip", "20261122", 1), e.member("shop", "vip", "u5", schemas.CrowdManual, ""))
	c, err := e.c.Crowd(e.ctx, "vip")
	if err != nil || c.AppID != "shop" || c.Trigger != schemas.CrowdManual || c.Day != "" {
		t.Fatalf("crowd %+v %v", c, err)
	}
	if got := e.all("vip", 10); !slices.Equal(got, []string{"u1", "u5"}) {
		t.Fatalf("members %v, want u1 and u5 (the others came under another app or trigger)", got)
	}
	if n := e.tableRows(mysql.CrowdTable("live")%2, mysql.CrowdManualTable(mysql.CrowdTable("live")), "vip"); n != 0 {
		t.Fatalf("%d rows of vip in live's table", n)
	}
}

// TestIntegrationCrowdDays checks that readers switch to a routine crowd's
// day only once crowd.computed arrived and the store holds its members,
// whichever comes last, through replays; that a 25,000-member crowd pages
// completely; and manual removals.
func TestIntegrationCrowdDays(t *testing.T) {
	e := newCrowds(t, time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	const app, crowd = "shop", "vip"
	day1 := users("a", 25000)
	var first, rest []*schemas.Envelope
	for i, u := range day1 {
		ev := e.member(app, crowd, u, schemas.CrowdRoutine, "20261121")
		if i%3 == 0 {
			rest = append(rest, ev)
		} else {
			first = append(first, ev)
		}
	}
	e.write(first...)
	if _, err := e.c.Members(e.ctx, crowd, "", 10); !errors.Is(err, sinks.ErrNotFound) {
		t.Fatalf("before crowd.computed: %v, want ErrNotFound (not computed yet)", err)
	}
	e.write(e.computed(app, crowd, "20261121", int64(len(day1))))
	e.write(first[:500]...) // replays do not count
	if _, err := e.c.Members(e.ctx, crowd, "", 10); !errors.Is(err, sinks.ErrNotFound) {
		t.Fatalf("computed but rows missing: %v, want ErrNotFound", err)
	}
	st, _ := e.c.Status(e.ctx, crowd)
	if st.PendingDay != "20261121" || st.PendingRows != int64(len(first)) || st.PendingMembers != int64(len(day1)) {
		t.Errorf("status %+v", st)
	}
	e.write(rest...)
	if got := e.all(crowd, 1000); !slices.Equal(got, day1) {
		t.Fatalf("day 1: %d members, want all %d in order", len(got), len(day1))
	}

	// Day 2, half written: readers stay on day 1.
	e.setDay("20261122")
	day2 := users("b", 300)
	var two []*schemas.Envelope
	for _, u := range day2 {
		two = append(two, e.member(app, crowd, u, schemas.CrowdRoutine, "20261122"))
	}
	e.write(append([]*schemas.Envelope{e.computed(app, crowd, "20261122", 300)}, two[:150]...)...)
	if ok, _ := e.c.IsMember(e.ctx, crowd, "a000007"); !ok {
		t.Error("half of day 2 written: day 1 no longer read")
	}
	e.write(two[150:]...)
	if got := e.all(crowd, 64); !slices.Equal(got, day2) {
		t.Fatalf("day 2: %d members", len(got))
	}
	if ok, _ := e.c.IsMember(e.ctx, crowd, "a000007"); ok {
		t.Error("day 2 complete: day 1 still read")
	}
	// A late crowd.computed of day 1 does not move readers back.
	e.write(e.computed(app, crowd, "20261121", int64(len(day1))))
	if c, _ := e.c.Crowd(e.ctx, crowd); c.Day != "20261122" {
		t.Errorf("late crowd.computed moved the crowd back to %s", c.Day)
	}

	// Manual removals: the newest row wins whatever the delivery order.
	add := e.member(app, "m", "u1", schemas.CrowdManual, "")
	e.now.Add(1000)
	rm := e.event(app, schemas.CrowdMembershipRecorded{CrowdID: "m", UserID: "u1", Trigger: schemas.CrowdManual, Op: schemas.CrowdRemove, RecordedAt: time.UnixMilli(e.now.Load())})
	e.write(add, e.member(app, "m", "u2", schemas.CrowdManual, ""))
	e.write(rm)
	e.write(add) // redelivered late
	if got := e.all("m", 10); !slices.Equal(got, []string{"u2"}) {
		t.Errorf("manual crowd after a removal and a late add: %v", got)
	}
}

// TestIntegrationCrowdMaintain checks create-ahead, retention with an
// archive and with a dump, idempotent re-runs, a dry run and the lock.
func TestIntegrationCrowdMaintain(t *testing.T) {
	e := newCrowds(t, time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC))
	const app, crowd = "shop", "daily"
	tbl := mysql.CrowdTable(app)
	db := tbl % 2
	// Ten days of a routine crowd, each written on its day.
	for d := 1; d <= 10; d++ {
		day := fmt.Sprintf("202611%02d", d)
		e.setDay(day)
		var evs []*schemas.Envelope
		for _, u := range users(fmt.Sprintf("d%02d-", d), 20+d) {
			evs = append(evs, e.member(app, crowd, u, schemas.CrowdRoutine, day))
		}
		e.write(append(evs, e.computed(app, crowd, day, int64(len(evs))))...)
	}
	// Today is the 10th: keep the 3rd..10th (retention 7 days), create
	// the 10th..13th.
	dry, err := e.c.Maintain(e.ctx, mysql.MaintainOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.tables(0, "crowd\\_routine\\_%")) + len(e.tables(1, "crowd\\_routine\\_%"))
	if len(dry.Dropped) != 2 || len(dry.Created) != 4*100-1 {
		t.Errorf("dry run: %d to drop, %d to create; want 2 and 399", len(dry.Dropped), len(dry.Created))
	}
	if after := len(e.tables(0, "crowd\\_routine\\_%")) + len(e.tables(1, "crowd\\_routine\\_%")); after != before {
		t.Errorf("a dry run changed the tables: %d → %d", before, after)
	}

	rep, err := e.c.Maintain(e.ctx, mysql.MaintainOptions{Backup: mysql.BackupArchive})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Created) != 399 || len(rep.Dropped) != 2 || len(rep.BackedUp) != 2 {
		t.Errorf("report: %d created, %d backed up, %d dropped", len(rep.Created), len(rep.BackedUp), len(rep.Dropped))
	}
	for d := 10; d <= 13; d++ {
		for tb := range 100 {
			name := mysql.CrowdRoutineTable(fmt.Sprintf("202611%02d", d), tb)
			if len(e.tables(tb%2, strings.ReplaceAll(name, "_", "\\_"))) != 1 {
				t.Fatalf("%s was not created ahead in database %d", name, tb%2)
			}
		}
	}
	for d := 1; d <= 2; d++ {
		name := mysql.CrowdRoutineTable(fmt.Sprintf("202611%02d", d), tbl)
		if len(e.tables(db, strings.ReplaceAll(name, "_", "\\_"))) != 0 {
			t.Errorf("%s was not dropped", name)
		}
		var n int
		if err := e.r.dbs[db].QueryRowContext(e.ctx, "SELECT COUNT(*) FROM `"+e.names[db]+"_archive`.`"+name+"`").Scan(&n); err != nil || n != 20+d {
			t.Errorf("archive of %s: %d rows (%v), want %d", name, n, err, 20+d)
		}
	}
	if got := e.all(crowd, 7); len(got) != 30 {
		t.Errorf("the crowd's current day after maintenance: %d members, want 30", len(got))
	}
	// A late row of a dropped day does not bring its table back.
	e.write(e.member(app, crowd, "late", schemas.CrowdRoutine, "20261101"))
	if got := e.tables(db, strings.ReplaceAll(mysql.CrowdRoutineTable("20261101", tbl), "_", "\\_")); len(got) != 0 {
		t.Errorf("a late row recreated %v", got)
	}

	again, err := e.c.Maintain(e.ctx, mysql.MaintainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Created)+len(again.Dropped)+len(again.BackedUp) != 0 {
		t.Errorf("a second run changed something: %+v", again)
	}

	// Two days later, with a dump: the 3rd and 4th go to files.
	e.setDay("20261112")
	dir := t.TempDir()
	rep, err = e.c.Maintain(e.ctx, mysql.MaintainOptions{Backup: mysql.BackupDump, DumpDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Dropped: the 3rd and 4th (only the crowd's table existed); created:
	// the 100 tables of each of the 14th and 15th.
	if len(rep.Dropped) != 2 || len(rep.BackedUp) != 2 || len(rep.Created) != 200 {
		t.Errorf("report: %d created, %d backed up, %d dropped; want 200, 2, 2", len(rep.Created), len(rep.BackedUp), len(rep.Dropped))
	}
	for d := 3; d <= 4; d++ {
		name := mysql.CrowdRoutineTable(fmt.Sprintf("202611%02d", d), tbl)
		path := filepath.Join(dir, e.names[db], name+".tsv.gz")
		lines := readDump(t, path)
		if len(lines) != 1+20+d || lines[0] != mysql.DumpColumns || !strings.HasPrefix(lines[1], crowd+"\td") {
			t.Errorf("%s: %d lines, first %q", path, len(lines), lines[:min(2, len(lines))])
		}
		if len(e.tables(db, strings.ReplaceAll(name, "_", "\\_"))) != 0 {
			t.Errorf("%s was not dropped after its dump", name)
		}
	}

	// The lock: while another session holds it on a database, a run skips it.
	conn, err := e.r.dbs[0].Conn(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var got sql.NullInt64
	if err := conn.QueryRowContext(e.ctx, "SELECT GET_LOCK(?, 0)", mysql.MaintainLock(e.names[0])).Scan(&got); err != nil || got.Int64 != 1 {
		t.Fatalf("taking the lock: %v %v", got, err)
	}
	e.setDay("20261113")
	rep, err = e.c.Maintain(e.ctx, mysql.MaintainOptions{Backup: mysql.BackupNone})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.Locked, e.names[:1]) {
		t.Errorf("locked: %v, want %v", rep.Locked, e.names[:1])
	}
	for _, c := range rep.Created {
		if strings.HasPrefix(c, e.names[0]+".") {
			t.Errorf("created %s in the locked database", c)
		}
	}
	conn.ExecContext(e.ctx, "DO RELEASE_LOCK(?)", mysql.MaintainLock(e.names[0]))
}

func readDump(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
