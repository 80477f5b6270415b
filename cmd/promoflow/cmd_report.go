package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/promoflow/promoflow/sinks/clickhouse"
)

// reportStderr receives report's row count and time when the rows go to
// stdout as CSV.
var reportStderr io.Writer = os.Stderr

// reportFlags describes each report parameter's flag.
var reportFlags = []struct {
	param clickhouse.Param
	usage string
}{
	{clickhouse.ParamBatch, "only this coupon batch"},
	{clickhouse.ParamActivity, "only this lottery activity"},
	{clickhouse.ParamSince, "only facts at or after this: a duration ago (24h) or an RFC 3339 time"},
	{clickhouse.ParamUntil, "only facts before this: a duration ago (1h) or an RFC 3339 time"},
	{clickhouse.ParamLimit, "at most this many rows; 0 for all"},
	{clickhouse.ParamBucket, "time bucket: hour or day"},
}

func init() {
	register(&command{
		name:    "report",
		summary: "analysts' reports from ClickHouse: top batches, funnel, active users, draws, budget burn",
		usage:   "[<report>] [--config FILE] [--batch ID] [--activity ID] [--since T] [--until T] [--limit N] [--bucket hour|day] [--csv] [--out FILE]",
		help: `Runs one of the analysts' reports on the ClickHouse database of the
configuration (clickhouse.addr, clickhouse.database) and prints it as an
aligned table (numbers right-aligned) followed by the row count and the
query time. --csv writes CSV to stdout instead, --out FILE to a file. With
no report name it lists the reports. Every report reads the views the
ClickHouse sink creates when it starts, with FINAL, so replayed results
count once (docs/analytics.md has each view and the SQL of each report).

A report takes only the flags listed with it. --since and --until bound
the time of the facts counted (a claim's decision, an operation, an
entry, an award); the funnel counts each step when it happened.

` + reportList() + `
Examples:
  promoflow report top-claimed --since 24h
  promoflow report funnel --batch D11-PHONE-50
  promoflow report budget-burn --bucket hour --since 2026-11-11T00:00:00+08:00 --csv > burn.csv
  promoflow report draw-stats --activity A-DRAW-1 --sql
  promoflow report recommendation-conversion --limit 10`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			batch := fs.String(string(clickhouse.ParamBatch), "", reportFlags[0].usage)
			activity := fs.String(string(clickhouse.ParamActivity), "", reportFlags[1].usage)
			since := fs.String(string(clickhouse.ParamSince), "", reportFlags[2].usage)
			until := fs.String(string(clickhouse.ParamUntil), "", reportFlags[3].usage)
			limit := fs.Int(string(clickhouse.ParamLimit), clickhouse.DefaultLimit, reportFlags[4].usage)
			bucket := fs.String(string(clickhouse.ParamBucket), clickhouse.BucketDay, reportFlags[5].usage)
			asCSV := fs.Bool("csv", false, "write CSV to stdout instead of a table")
			out := fs.String("out", "", "write CSV to this file instead")
			showSQL := fs.Bool("sql", false, "print the report's SQL and its parameters, and run nothing")
			timeout := fs.Duration("timeout", time.Minute, "give up on the query after this long")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					_, err := io.WriteString(cmdStdout, reportList())
					return err
				}
				if len(args) > 1 {
					return usagef("report takes one report name, got %q", args)
				}
				rep, ok := clickhouse.LookupReport(args[0])
				if !ok {
					return usagef("unknown report %q; the reports are %s", args[0], strings.Join(reportNames(), ", "))
				}
				var bad []string
				fs.Visit(func(f *flag.Flag) {
					for _, rf := range reportFlags {
						if f.Name == string(rf.param) && !rep.Takes(rf.param) {
							bad = append(bad, "--"+f.Name)
						}
					}
				})
				if len(bad) > 0 {
					return usagef("report %s takes no %s (it takes %s)", rep.Name, strings.Join(bad, ", "), flagsOf(rep))
				}
				now := time.Now()
				p := clickhouse.Params{Batch: *batch, Activity: *activity, Limit: *limit, Bucket: *bucket}
				var err error
				if p.Since, err = parseWhen(*since, now); err != nil {
					return usagef("--since: %v", err)
				}
				if p.Until, err = parseWhen(*until, now); err != nil {
					return usagef("--until: %v", err)
				}
				if !p.Since.IsZero() && !p.Until.IsZero() && !p.Until.After(p.Since) {
					return usagef("--until must be after --since")
				}
				switch {
				case *limit < 0:
					return usagef("--limit must be 0 (every row) or more, got %d", *limit)
				case *limit == 0:
					p.Limit = -1
				}
				if *bucket != clickhouse.BucketHour && *bucket != clickhouse.BucketDay {
					return usagef("--bucket must be hour or day, got %q", *bucket)
				}
				if *showSQL {
					return printReportSQL(cmdStdout, rep, p)
				}
				if *timeout <= 0 {
					return usagef("--timeout must be positive")
				}
				cfg, err := loadConfig(*cfgPath)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, *timeout)
				defer cancel()
				ch, err := clickhouse.OpenReader(ctx, cfg.ClickHouse)
				if err != nil {
					return fmt.Errorf("%w\n(check clickhouse.addr and clickhouse.database in --config, or PROMOFLOW_CLICKHOUSE_ADDR and PROMOFLOW_CLICKHOUSE_DATABASE; the ClickHouse sink creates the database and its views when it first starts)", err)
				}
				defer ch.Close()
				start := time.Now()
				res, err := ch.Report(ctx, rep, p)
				if err != nil {
					if errors.Is(err, context.DeadlineExceeded) {
						return fmt.Errorf("report %s: no answer within --timeout %s: %w", rep.Name, *timeout, err)
					}
					return err
				}
				took := time.Since(start)
				summary := fmt.Sprintf("%d %s in %s\n", len(res.Rows), plural(len(res.Rows), "row", "rows"), took.Round(time.Millisecond))
				switch {
				case *out != "":
					if err := writeCSVFile(*out, res); err != nil {
						return err
					}
					_, err = fmt.Fprintf(cmdStdout, "wrote %s to %s", strings.TrimSuffix(summary, "\n"), *out+"\n")
					return err
				case *asCSV:
					if err := writeCSV(cmdStdout, res); err != nil {
						return err
					}
					_, err = io.WriteString(reportStderr, summary)
					return err
				}
				if err := writeTable(cmdStdout, res); err != nil {
					return err
				}
				_, err = io.WriteString(cmdStdout, summary)
				return err
			}
		},
	})
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func reportNames() []string {
	var names []string
	for _, r := range clickhouse.Reports() {
		names = append(names, r.Name)
	}
	return names
}

// flagsOf lists the flags rep takes.
func flagsOf(rep clickhouse.Report) string {
	var flags []string
	for _, p := range rep.Params {
		flags = append(flags, "--"+string(p))
	}
	return strings.Join(flags, " ")
}

// reportList lists the registered reports with their descriptions and
// flags.
func reportList() string {
	var b strings.Builder
	b.WriteString("Reports:\n")
	width := 0
	for _, r := range clickhouse.Reports() {
		width = max(width, len(r.Name))
	}
	indent := strings.Repeat(" ", width+4)
	for _, r := range clickhouse.Reports() {
		lines := wrap(r.Description, 76-len(indent))
		fmt.Fprintf(&b, "  %-*s  %s\n", width, r.Name, lines[0])
		for _, l := range lines[1:] {
			b.WriteString(indent + l + "\n")
		}
		b.WriteString(indent + "flags: " + flagsOf(r) + "\n")
	}
	return b.String()
}

// wrap splits s into lines of at most n bytes where it can, at spaces.
func wrap(s string, n int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(s) {
		if line != "" && len(line)+1+len(w) > n {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// printReportSQL prints rep's SQL and the values of its placeholders for
// p, for an analyst to run or adapt.
func printReportSQL(w io.Writer, rep clickhouse.Report, p clickhouse.Params) error {
	values, err := rep.Values(p)
	if err != nil {
		return usagef("%v", err)
	}
	fmt.Fprintf(w, "-- %s: %s\n-- parameters:\n", rep.Name, rep.Description)
	for i, param := range rep.Params {
		v := fmt.Sprint(values[i])
		switch x := values[i].(type) {
		case string:
			v = "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(x) + "'"
		case uint64:
			if (param == clickhouse.ParamSince || param == clickhouse.ParamUntil) && x != 0 && x != math.MaxInt64 {
				v += " (" + time.UnixMilli(int64(x)).UTC().Format(time.RFC3339Nano) + ")"
			}
		}
		fmt.Fprintf(w, "--   %s = %s\n", param.Placeholder(), cell(v))
	}
	_, err = fmt.Fprintf(w, "%s\n", rep.SQL)
	return err
}

// cell makes a value safe to print in a terminal: control and other
// unprintable characters are shown escaped.
func cell(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

// displayWidth is the number of terminal columns s takes: East Asian wide
// and fullwidth characters take two.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		n++
		if wide(r) {
			n++
		}
	}
	return n
}

// wide reports whether r is an East Asian wide or fullwidth character.
func wide(r rune) bool {
	switch {
	case r < 0x1100:
		return false
	case r <= 0x115f, r >= 0x2e80 && r <= 0xa4cf && r != 0x303f, r >= 0xac00 && r <= 0xd7a3,
		r >= 0xf900 && r <= 0xfaff, r >= 0xfe30 && r <= 0xfe4f, r >= 0xff00 && r <= 0xff60,
		r >= 0xffe0 && r <= 0xffe6, r >= 0x1f300 && r <= 0x1f64f, r >= 0x1f900 && r <= 0x1f9ff,
		r >= 0x20000 && r <= 0x3fffd:
		return true
	}
	return false
}

// writeTable prints res as a table: a header, a rule, and the rows, each
// column as wide as its widest value, numbers right-aligned.
func writeTable(w io.Writer, res *clickhouse.Result) error {
	cells := make([][]string, 0, len(res.Rows)+1)
	header := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		header[i] = cell(c.Name)
	}
	cells = append(cells, header)
	for _, row := range res.Rows {
		line := make([]string, len(row))
		for i, v := range row {
			line[i] = cell(v)
		}
		cells = append(cells, line)
	}
	widths := make([]int, len(res.Columns))
	for _, line := range cells {
		for i, v := range line {
			widths[i] = max(widths[i], displayWidth(v))
		}
	}
	var b strings.Builder
	emit := func(line []string) {
		var l strings.Builder
		for i, v := range line {
			if i > 0 {
				l.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-displayWidth(v))
			if res.Columns[i].Numeric {
				l.WriteString(pad + v)
			} else {
				l.WriteString(v + pad)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	emit(cells[0])
	rule := make([]string, len(widths))
	for i, n := range widths {
		rule[i] = strings.Repeat("-", n)
	}
	b.WriteString(strings.Join(rule, "  ") + "\n")
	for _, line := range cells[1:] {
		emit(line)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCSV writes res as CSV with a header. A text value that a
// spreadsheet would run as a formula (starting with =, +, -, @, tab or
// carriage return) is prefixed with a single quote.
func writeCSV(w io.Writer, res *clickhouse.Result) error {
	cw := csv.NewWriter(w)
	header := make([]string, len(res.Columns))
	for i, c := range res.Columns {
		header[i] = c.Name
	}
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	for _, row := range res.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			if !res.Columns[i].Numeric && v != "" && strings.ContainsRune("=+-@\t\r", firstRune(v)) {
				v = "'" + v
			}
			rec[i] = v
		}
		if err := cw.Write(rec); err != nil {
			return fmt.Errorf("writing csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("writing csv: %w", err)
	}
	return nil
}

func firstRune(s string) rune {
	r, _ := utf8.DecodeRuneInString(s)
	return r
}

// writeCSVFile writes res to path as CSV, replacing it only once complete.
func writeCSVFile(path string, res *clickhouse.Result) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if err := writeCSV(f, res); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
