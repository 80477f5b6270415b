package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// reportEnv is a ClickHouse database holding a small campaign, and a
// configuration file pointing at it.
type reportEnv struct {
	cfgFile string
	db      string
	tz      *time.Location
	day     time.Time
}

// newReportEnv writes, twice, through the real sink: two batches (a fixed
// 5.00 off and 10% capped at 8.00), five claims, two coupons locked and
// used, and a lottery activity with a formula for a name and one with a
// Chinese name.
func newReportEnv(t *testing.T) *reportEnv {
	t.Helper()
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
	ctx := testenv.Context(t, time.Minute)
	db := testenv.Name("pf")
	s, err := clickhouse.New(ctx, clickhouse.Config{Addr: testenv.ClickHouseAddr(), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	conn, err := chgo.Open(&chgo.Options{Addr: []string{testenv.ClickHouseAddr()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := conn.Exec(ctx, "DROP DATABASE IF EXISTS `"+db+"`"); err != nil {
			t.Errorf("dropping %s: %v", db, err)
		}
		_ = conn.Close()
	})
	var zone string
	if err := conn.QueryRow(ctx, "SELECT timezone()").Scan(&zone); err != nil {
		t.Fatal(err)
	}
	tz, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}

	at := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	n := 0
	next := func() time.Time { n++; return at.Add(time.Duration(n) * time.Minute) }
	var events []*schemas.Envelope
	for _, d := range []schemas.BatchDefinedV2{
		{BatchID: "B-FIX", Revision: 1, TotalStock: 10, PerUserLimit: 1, ValidFrom: at.Add(-time.Hour), ValidUntil: at.Add(time.Hour),
			Status: schemas.BatchActive, DiscountType: schemas.DiscountFixed, Amount: 500},
		{BatchID: "B-PCT", Revision: 1, TotalStock: 10, PerUserLimit: 1, ValidFrom: at.Add(-time.Hour), ValidUntil: at.Add(time.Hour),
			Status: schemas.BatchActive, DiscountType: schemas.DiscountPercent, Percent: 10, Cap: 800},
	} {
		env, err := schemas.New("def-"+d.BatchID, "shop", at.Add(-time.Hour), d)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, env)
	}
	decide := func(claim, batch, user, coupon string) {
		g := schemas.GrantDecided{ClaimEventID: claim, BatchID: batch, UserID: user, Status: schemas.StatusGranted, CouponID: coupon,
			GrantSeq: 1, ClaimedAt: next(), DecidedAt: next()}
		if coupon == "" {
			g.Status, g.Reason, g.GrantSeq = schemas.StatusRejected, schemas.RejectOutOfStock, 0
		}
		events = append(events, sinktest.Grant(t, "shop", g))
	}
	op := func(coupon, user, batch, op string, seq, amount int64) {
		at := next()
		events = append(events, sinktest.Result(t, "shop", at, schemas.StateChanged{
			ResultID: schemas.ResultID(schemas.TypeCouponStateChanged, "shop", coupon+op), CouponID: coupon, UserID: user, BatchID: batch,
			Op: op, Status: schemas.OpApplied, State: schemas.CouponUsed, Seq: seq, OrderID: "o-" + coupon, OrderAmount: amount,
			ValidFrom: at, ExpiresAt: at.Add(time.Hour), ChangedAt: at,
		}))
	}
	decide("c1", "B-FIX", "u-1", "k1")
	decide("c2", "B-FIX", "u-2", "k2")
	decide("c3", "B-FIX", "u-3", "")
	decide("c4", "B-PCT", "u-1", "k3")
	decide("c5", "B-PCT", "u-4", "")
	op("k1", "u-1", "B-FIX", schemas.OpLock, 2, 2000)
	op("k1", "u-1", "B-FIX", schemas.OpConfirm, 3, 0)
	op("k3", "u-1", "B-PCT", schemas.OpLock, 2, 12000)
	op("k3", "u-1", "B-PCT", schemas.OpConfirm, 3, 12000)
	for _, a := range []schemas.ActivityCommitted{
		{ActivityID: "A-1", Name: `=HYPERLINK("http://evil.example/")`, Revision: 1, Kind: schemas.KindInstantWin},
		{ActivityID: "A-2", Name: "双十一抽奖", Revision: 1, Kind: schemas.KindDraw},
	} {
		a.ResultID = schemas.ResultID(schemas.TypeLotteryActivityCommitted, "shop", a.ActivityID)
		a.SeedHash, a.Prizes, a.JoinFrom, a.JoinUntil, a.CommittedAt = "ab", "[]", at, at.Add(time.Hour), at
		events = append(events, sinktest.Result(t, "shop", at, a))
	}
	for i, user := range []string{"u-1", "u-2", "u-3"} {
		recorded := next()
		id := fmt.Sprintf("join-%d", i)
		events = append(events, sinktest.Result(t, "shop", recorded, schemas.EntryRecorded{
			ResultID: schemas.ResultID(schemas.TypeLotteryEntryRecorded, "shop", id), EntryEventID: id, ActivityID: "A-2",
			UserID: user, Status: schemas.EntryAccepted, Outcome: "", OccurredAt: recorded, RecordedAt: recorded,
		}))
	}
	for range 2 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(t.TempDir(), "promoflow.yaml")
	body := fmt.Sprintf("clickhouse:\n  addr: %s\n  database: %s\n", testenv.ClickHouseAddr(), db)
	if err := os.WriteFile(cfgFile, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	day := at.In(tz)
	return &reportEnv{cfgFile: cfgFile, db: db, tz: tz, day: time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, tz)}
}

// report runs `promoflow report args… --config` and returns its exit
// status, stdout and stderr (including the CSV summary).
func (e *reportEnv) report(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	old := reportStderr
	reportStderr = &errOut
	defer func() { reportStderr = old }()
	code := runMain(append(append([]string{"report"}, args...), "--config", e.cfgFile), &out, &errOut)
	return code, out.String(), errOut.String()
}

var summaryLine = regexp.MustCompile(`^(\d+) rows? in \d+(\.\d+)?(ns|µs|ms|s)$`)

// splitSummary returns the lines of a table and its summary line.
func splitSummary(t *testing.T, out string) ([]string, string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	last := lines[len(lines)-1]
	if !summaryLine.MatchString(last) {
		t.Fatalf("output does not end with a row count and time:\n%s", out)
	}
	return lines[:len(lines)-1], last
}

func TestIntegrationReportCommand(t *testing.T) {
	e := newReportEnv(t)

	t.Run("table", func(t *testing.T) {
		code, out, errOut := e.report(t, "funnel")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		table, summary := splitSummary(t, out)
		want := []string{
			"batch_id  claims  grants  rejections  locked  redeemed  expired  grant_rate  lock_rate  redeem_rate  conversion",
			"--------  ------  ------  ----------  ------  --------  -------  ----------  ---------  -----------  ----------",
			"B-FIX          3       2           1       1         1        0      0.6667     0.5000       1.0000      0.5000",
			"B-PCT          2       1           1       1         1        0      0.5000     1.0000       1.0000      1.0000",
		}
		if strings.Join(table, "\n") != strings.Join(want, "\n") {
			t.Errorf("table:\n%s\nwant\n%s", strings.Join(table, "\n"), strings.Join(want, "\n"))
		}
		if !strings.HasPrefix(summary, "2 rows in ") {
			t.Errorf("summary %q, want 2 rows", summary)
		}
		code, out, _ = e.report(t, "funnel", "--batch", "B-PCT")
		if table, _ := splitSummary(t, out); code != 0 || len(table) != 3 || !strings.HasPrefix(table[2], "B-PCT ") {
			t.Errorf("--batch B-PCT: exit %d\n%s", code, out)
		}
	})

	t.Run("wide characters align", func(t *testing.T) {
		code, out, errOut := e.report(t, "draw-stats")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		table, _ := splitSummary(t, out)
		// The last column is a number, so every line ends at the same
		// terminal column.
		for _, line := range table[1:] {
			if displayWidth(line) != displayWidth(table[0]) {
				t.Errorf("line %q is %d columns wide, the header %d:\n%s", line, displayWidth(line), displayWidth(table[0]), out)
			}
		}
		t.Logf("draw-stats:\n%s", out)
		if !strings.Contains(out, "双十一抽奖") {
			t.Errorf("the Chinese name is missing:\n%s", out)
		}
	})

	t.Run("csv", func(t *testing.T) {
		code, out, errOut := e.report(t, "budget-burn", "--csv")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("stdout is not CSV: %v\n%s", err, out)
		}
		day := e.day.Format(time.DateTime)
		want := [][]string{
			{"batch_id", "bucket_start", "grants", "granted_value", "redemptions", "redeemed_value"},
			// 5.00 off twice; one redemption of an order of 20.00 (its
			// lock's amount: the confirm has none).
			{"B-FIX", day, "2", "1000", "1", "500"},
			// 10% capped at 8.00; an order of 120.00 gives 12.00, capped.
			{"B-PCT", day, "1", "800", "1", "800"},
		}
		if fmt.Sprint(recs) != fmt.Sprint(want) {
			t.Errorf("csv %v, want %v", recs, want)
		}
		if !summaryLine.MatchString(strings.TrimSpace(errOut)) {
			t.Errorf("stderr %q, want the row count and time", errOut)
		}
	})

	t.Run("csv file, formulas defused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "draws.csv")
		code, out, errOut := e.report(t, "draw-stats", "--out", path, "--limit", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "wrote 2 rows in ") || !strings.HasSuffix(out, " to "+path+"\n") {
			t.Errorf("stdout %q", out)
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		recs, err := csv.NewReader(f).ReadAll()
		if err != nil || len(recs) != 3 {
			t.Fatalf("%s: %v, %d records", path, err, len(recs))
		}
		names := map[string]string{recs[1][0]: recs[1][1], recs[2][0]: recs[2][1]}
		if names["A-1"] != `'=HYPERLINK("http://evil.example/")` || names["A-2"] != "双十一抽奖" {
			t.Errorf("names %q", names)
		}
		if recs[1][0] != "A-2" || recs[1][3] != "3" {
			t.Errorf("first row %q, want A-2 with 3 participants", recs[1])
		}
	})

	t.Run("list", func(t *testing.T) {
		for _, args := range [][]string{nil, {"--help"}} {
			var out, errOut bytes.Buffer
			if code := runMain(append([]string{"report"}, args...), &out, &errOut); code != 0 {
				t.Fatalf("report %v: exit %d: %s", args, code, errOut.String())
			}
			for _, r := range clickhouse.Reports() {
				if !strings.Contains(out.String()+errOut.String(), "  "+r.Name+" ") {
					t.Errorf("report %v does not list %s:\n%s%s", args, r.Name, out.String(), errOut.String())
				}
			}
		}
	})

	t.Run("errors", func(t *testing.T) {
		cases := []struct {
			args []string
			code int
			want string
		}{
			{[]string{"no-such-report"}, 2, `unknown report "no-such-report"; the reports are top-claimed`},
			{[]string{"funnel", "draw-stats"}, 2, "one report name"},
			{[]string{"funnel", "--bucket", "hour"}, 2, "report funnel takes no --bucket (it takes --batch --since --until --limit)"},
			{[]string{"draw-stats", "--batch", "B", "--since", "1h"}, 2, "takes no --batch, --since"},
			{[]string{"budget-burn", "--bucket", "week"}, 2, `--bucket must be hour or day, got "week"`},
			{[]string{"funnel", "--since", "yesterday"}, 2, "--since: \"yesterday\" is neither a duration"},
			{[]string{"funnel", "--since", "1h", "--until", "2h"}, 2, "--until must be after --since"},
			{[]string{"funnel", "--limit", "-1"}, 2, "--limit must be 0 (every row) or more"},
			{[]string{"funnel", "--nope"}, 2, "flag provided but not defined: -nope"},
		}
		for _, c := range cases {
			code, _, errOut := e.report(t, c.args...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Errorf("report %q: exit %d, stderr:\n%s\nwant exit %d and %q", c.args, code, errOut, c.code, c.want)
			}
		}
	})

	t.Run("clickhouse unreachable", func(t *testing.T) {
		t.Setenv("PROMOFLOW_CLICKHOUSE_ADDR", "127.0.0.1:1")
		code, _, errOut := e.report(t, "funnel")
		if code != 1 || !strings.Contains(errOut, "connecting to clickhouse database "+e.db+" at 127.0.0.1:1") ||
			!strings.Contains(errOut, "check clickhouse.addr") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
	})

	t.Run("no views", func(t *testing.T) {
		t.Setenv("PROMOFLOW_CLICKHOUSE_DATABASE", "system")
		code, _, errOut := e.report(t, "funnel")
		if code != 1 || !strings.Contains(errOut, "does not exist") || !strings.Contains(errOut, "creates the views when it starts") {
			t.Errorf("exit %d, stderr:\n%s", code, errOut)
		}
	})

	t.Run("sql", func(t *testing.T) {
		t.Setenv("PROMOFLOW_CLICKHOUSE_ADDR", "127.0.0.1:1") // --sql connects to nothing
		code, out, errOut := e.report(t, "budget-burn", "--sql", "--batch", "B'1", "--since", "2026-11-11T00:00:00Z")
		rep, _ := clickhouse.LookupReport("budget-burn")
		if code != 0 || !strings.Contains(out, rep.SQL) || !strings.Contains(out, `@batch = 'B\'1'`) ||
			!strings.Contains(out, "@since_ms = 1794355200000 (2026-11-11T00:00:00Z)") {
			t.Errorf("exit %d\n%s%s", code, out, errOut)
		}
	})
}

func TestReportCells(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"tab\there", `tab\there`},
		{"line\nbreak\x1b[31m", `line\nbreak\x1b[31m`},
		{"双十一", "双十一"},
	}
	for _, c := range cases {
		if got := cell(c.in); got != c.want {
			t.Errorf("cell(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for s, w := range map[string]int{"abc": 3, "双十一": 6, "a双": 3, "ｆｕｌｌ": 8} {
		if got := displayWidth(s); got != w {
			t.Errorf("displayWidth(%q) = %d, want %d", s, got, w)
		}
	}
	res := &clickhouse.Result{
		Columns: []clickhouse.Column{{Name: "name"}, {Name: "n", Numeric: true}},
		Rows:    [][]string{{"=1+2", "-5"}, {"+x", "7"}, {"@SUM(A1)", "0"}, {"-dash", "1"}, {"ok", "2"}, {"", "3"}},
	}
	var b bytes.Buffer
	if err := writeCSV(&b, res); err != nil {
		t.Fatal(err)
	}
	want := "name,n\n'=1+2,-5\n'+x,7\n'@SUM(A1),0\n'-dash,1\nok,2\n,3\n"
	if b.String() != want {
		t.Errorf("csv:\n%s\nwant\n%s", b.String(), want)
	}
}

// FuzzReportOutput feeds hostile values to the table and CSV writers: the
// table never carries a control character but its line ends, has one line
// per row plus the header and the rule, and every line of a table whose
// last column is numeric is as wide as the header; the CSV reads back as
// the values, a formula's leading quote aside.
func FuzzReportOutput(f *testing.F) {
	f.Add("plain", "=1+2", int64(7))
	f.Add("双十一\x1b[31m", "line\nbreak,\"q\"", int64(-5))
	f.Add("\t", "\r\n", int64(0))
	f.Add("\xff\xfe", "@x", int64(1<<62))
	f.Fuzz(func(t *testing.T, a, b string, n int64) {
		res := &clickhouse.Result{
			Columns: []clickhouse.Column{{Name: "a"}, {Name: "b\x00"}, {Name: "n", Numeric: true}},
			Rows:    [][]string{{a, b, fmt.Sprint(n)}, {b, a, "1"}},
		}
		var tb bytes.Buffer
		if err := writeTable(&tb, res); err != nil {
			t.Fatal(err)
		}
		out := strings.TrimSuffix(tb.String(), "\n")
		lines := strings.Split(out, "\n")
		if len(lines) != len(res.Rows)+2 {
			t.Fatalf("%d lines for %d rows:\n%s", len(lines), len(res.Rows), out)
		}
		for _, l := range lines {
			for _, r := range l {
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
					t.Fatalf("control character %U in table line %q", r, l)
				}
			}
			if displayWidth(l) != displayWidth(lines[0]) {
				t.Fatalf("line %q is %d wide, the header %d", l, displayWidth(l), displayWidth(lines[0]))
			}
		}
		var cb bytes.Buffer
		if err := writeCSV(&cb, res); err != nil {
			return // invalid UTF-8 the csv package refuses is an error, not a panic
		}
		recs, err := csv.NewReader(&cb).ReadAll()
		if err != nil {
			t.Fatalf("the CSV does not read back: %v\n%q", err, cb.String())
		}
		for i, row := range res.Rows {
			for j, v := range row {
				// encoding/csv reads \r\n inside a quoted field as \n.
				got, want := recs[i+1][j], strings.ReplaceAll(v, "\r\n", "\n")
				if got != want && got != "'"+want {
					t.Fatalf("cell %d,%d = %q, want %q", i, j, got, want)
				}
			}
		}
	})
}
