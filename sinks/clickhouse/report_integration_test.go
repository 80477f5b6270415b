package clickhouse_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/clickhouse"
)

// mergeTrees returns the MergeTree tables of r's database.
func mergeTrees(t *testing.T, r *reader) []string {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	rows, err := r.conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? AND engine LIKE '%MergeTree' ORDER BY name", r.db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("no MergeTree tables in the test database")
	}
	return names
}

// setMerges stops or starts the background merges of every table of r's
// database.
func setMerges(t *testing.T, r *reader, start bool) {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	verb := "STOP"
	if start {
		verb = "START"
	}
	for _, name := range mergeTrees(t, r) {
		if err := r.conn.Exec(ctx, "SYSTEM "+verb+" MERGES `"+r.db+"`.`"+name+"`"); err != nil {
			t.Fatal(err)
		}
	}
}

// mergeAll merges every table of r's database until each holds one row
// per key. OPTIMIZE returns without merging when a background merge holds
// the parts, so it asks until done.
func mergeAll(t *testing.T, r *reader) {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	for _, name := range mergeTrees(t, r) {
		q := "%s.`" + name + "`"
		for i := 0; ; i++ {
			if err := r.conn.Exec(ctx, "OPTIMIZE TABLE `"+r.db+"`.`"+name+"` FINAL"); err != nil {
				t.Fatal(err)
			}
			if r.count(t, ctx, "SELECT count() FROM "+q) == r.count(t, ctx, "SELECT count() FROM "+q+" FINAL") {
				break
			}
			if i == 50 {
				t.Fatalf("%s did not merge", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// writeStory writes st through the sink as the pipeline delivers it, at
// least once: a first batch, a second one that redelivers part of the
// first (some events twice within the batch), and a replay of a quarter of
// everything with the older revisions of definitions arriving last. It
// returns every event written.
func writeStory(t *testing.T, s *clickhouse.Sink, st *analyticsStory) []*schemas.Envelope {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	rng := rand.New(rand.NewPCG(7, 7))
	sample := func(events []*schemas.Envelope, percent int) []*schemas.Envelope {
		var out []*schemas.Envelope
		for _, e := range events {
			if rng.IntN(100) < percent {
				out = append(out, e)
			}
		}
		return out
	}
	half := len(st.events) / 2
	first, second := st.events[:half], st.events[half:]
	second = append(append(append([]*schemas.Envelope(nil), second...), sample(first, 30)...), sample(second, 10)...)
	rng.Shuffle(len(second), func(i, j int) { second[i], second[j] = second[j], second[i] })
	replay := append(sample(st.events, 25), st.late...)
	for _, batch := range [][]*schemas.Envelope{first, second, replay} {
		if err := s.WriteBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	return append(append([]*schemas.Envelope(nil), st.events...), st.late...)
}

// openReports opens the reader reports run on, over r's database.
func openReports(t *testing.T, r *reader) *clickhouse.Sink {
	t.Helper()
	rd, err := clickhouse.OpenReader(testenv.Context(t, 30*time.Second), clickhouse.Config{Addr: testenv.ClickHouseAddr(), Database: r.db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rd.Close() })
	return rd
}

// serverZone returns the server's time zone, in which ClickHouse cuts days.
func serverZone(t *testing.T, r *reader) *time.Location {
	t.Helper()
	var name string
	if err := r.conn.QueryRow(testenv.Context(t, 10*time.Second), "SELECT timezone()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	tz, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("server time zone %q: %v", name, err)
	}
	return tz
}

// reportCase is one run of a report.
type reportCase struct {
	name   string
	report string
	params clickhouse.Params
}

func (c reportCase) rep() clickhouse.Report {
	rep, _ := clickhouse.LookupReport(c.report)
	return rep
}

// reportCases runs every registered report (analyticsModel.expect must
// know each one) with its defaults, with every
// row, and with each parameter it takes set.
func reportCases(t *testing.T) []reportCase {
	t.Helper()
	since, until := d11.Add(6*time.Hour+123*time.Millisecond), d11.Add(40*time.Hour+877*time.Millisecond)
	var cases []reportCase
	for _, rep := range clickhouse.Reports() {
		name := rep.Name
		add := func(what string, p clickhouse.Params) { cases = append(cases, reportCase{name + " " + what, name, p}) }
		add("defaults", clickhouse.Params{})
		add("all rows", clickhouse.Params{Limit: -1})
		add("limit 3", clickhouse.Params{Limit: 3})
		if rep.Takes(clickhouse.ParamSince) {
			add("window", clickhouse.Params{Since: since, Until: until, Limit: -1})
			add("since", clickhouse.Params{Since: until, Limit: -1})
		}
		if rep.Takes(clickhouse.ParamBatch) {
			add("batch", clickhouse.Params{Batch: storyPct, Limit: -1})
			add("batch and window", clickhouse.Params{Batch: storyPhone, Since: since, Until: until, Limit: -1})
			add("hostile batch", clickhouse.Params{Batch: `x' OR 1=1 --`, Limit: -1})
		}
		if rep.Takes(clickhouse.ParamActivity) {
			add("activity", clickhouse.Params{Activity: storyDraw, Limit: -1})
		}
		if rep.Takes(clickhouse.ParamBucket) {
			add("hours", clickhouse.Params{Bucket: clickhouse.BucketHour, Limit: -1})
			add("hours in a window", clickhouse.Params{Bucket: clickhouse.BucketHour, Since: since, Until: until, Limit: -1})
		}
	}
	return cases
}

// checkReports runs every case and compares it with the model.
func checkReports(t *testing.T, s *clickhouse.Sink, m *analyticsModel, cases []reportCase) {
	t.Helper()
	ctx := testenv.Context(t, 60*time.Second)
	for _, c := range cases {
		rep, _ := clickhouse.LookupReport(c.report)
		res, err := s.Report(ctx, rep, c.params)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		want := m.expect(c.report, c.params)
		var cols []string
		for _, col := range res.Columns {
			cols = append(cols, col.Name)
		}
		if strings.Join(cols, ",") != strings.Join(want.columns, ",") {
			t.Errorf("%s: columns %v, want %v", c.name, cols, want.columns)
		}
		got, exp := joinRows(res.Rows), joinRows(want.rows)
		if got != exp {
			t.Errorf("%s: got %d rows\n%s\nwant %d rows\n%s", c.name, len(res.Rows), got, len(want.rows), exp)
		}
		if strings.HasSuffix(c.name, " defaults") {
			if len(res.Rows) == 0 {
				t.Errorf("%s returned no rows: the story does not exercise it", c.name)
			}
			t.Logf("%s:\n%s\n%s", c.name, strings.Join(cols, " | "), got)
		}
	}
}

func joinRows(rows [][]string) string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = strings.Join(r, " | ")
	}
	return strings.Join(lines, "\n")
}

// TestIntegrationReports writes a campaign's results through the sink, at
// least once (replays, redeliveries, definitions out of revision order),
// with the merges stopped so every copy stays in its own part, and checks
// every report against the same numbers computed in Go from the events;
// then merges everything and checks again.
func TestIntegrationReports(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	setMerges(t, r, false)
	st := newAnalyticsStory(t, 2026)
	all := writeStory(t, s, st)
	for _, table := range []string{"coupon_grants", "coupon_operations", "coupon_batches", "lottery_entries", "lottery_awards", "lottery_activities"} {
		raw := r.count(t, ctx, "SELECT count() FROM %s.`"+table+"`")
		final := r.count(t, ctx, "SELECT count() FROM %s.`"+table+"` FINAL")
		if raw <= final {
			t.Errorf("%s holds %d rows, %d with FINAL: the story wrote no duplicate to deduplicate", table, raw, final)
		}
	}
	m := newAnalyticsModel(t, serverZone(t, r), all)
	cases := reportCases(t)
	rd := openReports(t, r)
	checkReports(t, rd, m, cases)

	setMerges(t, r, true)
	mergeAll(t, r)
	checkReports(t, rd, m, cases)

	if _, err := s.Report(ctx, cases[0].rep(), clickhouse.Params{}); err == nil || !strings.Contains(err.Error(), "OpenReader") {
		t.Errorf("Report on a sink from New: %v, want an error pointing at OpenReader", err)
	}
}

// TestIntegrationReportOverAnotherView adds a report the way a later
// feature does, with one Report value over a view of its own (here a
// stand-in table, later_feature_stats): before the view exists the report fails with
// ErrNoView, after it returns its rows.
func TestIntegrationReportOverAnotherView(t *testing.T) {
	_, r := newSink(t)
	s := openReports(t, r)
	ctx := testenv.Context(t, 30*time.Second)
	rep := clickhouse.Report{
		Name:        "later-feature",
		Description: "per batch: users recommended a coupon, and of them those who claimed and redeemed it",
		Params:      []clickhouse.Param{clickhouse.ParamBatch, clickhouse.ParamLimit},
		SQL: "SELECT batch_id, recommended_users, claimed_users, redeemed_users,\n" +
			"  if(recommended_users = 0, toFloat64(0), redeemed_users / recommended_users) AS conversion\n" +
			"FROM later_feature_stats\n" +
			"WHERE (@batch = '' OR batch_id = @batch)\n" +
			"ORDER BY recommended_users DESC, batch_id\n" +
			"LIMIT @limit",
	}
	if _, err := s.Report(ctx, rep, clickhouse.Params{}); !errors.Is(err, clickhouse.ErrNoView) {
		t.Fatalf("report over a missing view: %v, want ErrNoView", err)
	}
	if err := r.conn.Exec(ctx, "CREATE TABLE `"+r.db+"`.later_feature_stats "+
		"(batch_id String, recommended_users UInt64, claimed_users UInt64, redeemed_users UInt64) ENGINE = Memory"); err != nil {
		t.Fatal(err)
	}
	batch, err := r.conn.PrepareBatch(ctx, "INSERT INTO `"+r.db+"`.later_feature_stats (batch_id, recommended_users, claimed_users, redeemed_users)")
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []struct {
		batch     string
		rec, c, u uint64
	}{{"B-1", 40, 10, 5}, {"B-2", 80, 8, 2}, {"B-3", 0, 0, 0}} {
		if err := batch.Append(row.batch, row.rec, row.c, row.u); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	res, err := s.Report(ctx, rep, clickhouse.Params{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := joinRows(res.Rows), "B-2 | 80 | 8 | 2 | 0.0250\nB-1 | 40 | 10 | 5 | 0.1250"; got != want {
		t.Errorf("rows\n%s\nwant\n%s", got, want)
	}
	res, err = s.Report(ctx, rep, clickhouse.Params{Batch: "B-3"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := joinRows(res.Rows), "B-3 | 0 | 0 | 0 | 0.0000"; got != want {
		t.Errorf("--batch B-3: rows\n%s\nwant\n%s", got, want)
	}
	for i, numeric := range []bool{false, true, true, true, true} {
		if res.Columns[i].Numeric != numeric {
			t.Errorf("column %s numeric = %v, want %v", res.Columns[i].Name, res.Columns[i].Numeric, numeric)
		}
	}
}
