package clickhouse_test

import (
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/promoflow/promoflow/sinks/clickhouse"
)

var (
	placeholder = regexp.MustCompile(`@[A-Za-z_][A-Za-z0-9_]*`)
	reportName  = regexp.MustCompile(`^[a-z]+(-[a-z]+)*$`)
)

// TestReportRegistry checks every registered report: a unique kebab-case
// name, a description, one SELECT, and placeholders that are exactly those
// of the parameters it declares, so that a flag it takes always reaches
// the SQL and the SQL never waits for one it does not take.
func TestReportRegistry(t *testing.T) {
	reports := clickhouse.Reports()
	if len(reports) == 0 {
		t.Fatal("no reports registered")
	}
	seen := map[string]bool{}
	for _, r := range reports {
		if !reportName.MatchString(r.Name) {
			t.Errorf("report name %q is not lowercase words joined by '-'", r.Name)
		}
		if seen[r.Name] {
			t.Errorf("report %s registered twice", r.Name)
		}
		seen[r.Name] = true
		if strings.TrimSpace(r.Description) == "" {
			t.Errorf("report %s has no description", r.Name)
		}
		if !strings.HasPrefix(r.SQL, "SELECT ") || strings.Contains(r.SQL, ";") {
			t.Errorf("report %s: SQL is not one SELECT statement:\n%s", r.Name, r.SQL)
		}
		used := placeholder.FindAllString(r.SQL, -1)
		slices.Sort(used)
		used = slices.Compact(used)
		var declared []string
		for _, p := range r.Params {
			declared = append(declared, p.Placeholder())
		}
		slices.Sort(declared)
		if !slices.Equal(used, declared) {
			t.Errorf("report %s: SQL uses %v, its parameters are %v", r.Name, used, declared)
		}
		if got, ok := clickhouse.LookupReport(r.Name); !ok || got.Name != r.Name {
			t.Errorf("LookupReport(%q) = %v, %v", r.Name, got.Name, ok)
		}
	}
	if _, ok := clickhouse.LookupReport("no-such-report"); ok {
		t.Error("LookupReport found no-such-report")
	}
	// Reports returns a copy: changing it leaves the registry alone.
	reports[0].Name = "changed"
	if clickhouse.Reports()[0].Name == "changed" {
		t.Error("Reports returned the registry itself")
	}
}

func TestReportArgs(t *testing.T) {
	all := clickhouse.Report{Name: "all", Params: []clickhouse.Param{
		clickhouse.ParamBatch, clickhouse.ParamActivity, clickhouse.ParamSince, clickhouse.ParamUntil,
		clickhouse.ParamLimit, clickhouse.ParamBucket,
	}}
	since := time.Date(2026, 11, 11, 0, 0, 0, 250e6, time.UTC)
	cases := []struct {
		name    string
		p       clickhouse.Params
		want    map[string]any
		wantErr string
	}{
		{"defaults", clickhouse.Params{}, map[string]any{
			"batch": "", "activity": "", "since_ms": uint64(0), "until_ms": uint64(math.MaxInt64),
			"limit": uint64(clickhouse.DefaultLimit), "bucket": "day",
		}, ""},
		{"set", clickhouse.Params{Batch: "B'1", Activity: "A", Since: since, Until: since.Add(time.Hour), Limit: 7, Bucket: "hour"},
			map[string]any{
				"batch": "B'1", "activity": "A", "since_ms": uint64(since.UnixMilli()), "until_ms": uint64(since.Add(time.Hour).UnixMilli()),
				"limit": uint64(7), "bucket": "hour",
			}, ""},
		{"every row", clickhouse.Params{Limit: -1}, map[string]any{"limit": uint64(math.MaxInt64)}, ""},
		{"before the epoch", clickhouse.Params{Since: time.Unix(-5, 0)}, map[string]any{"since_ms": uint64(0)}, ""},
		{"bad bucket", clickhouse.Params{Bucket: "week"}, nil, "bucket must be hour or day"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args, err := all.Args(c.p)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("Args = %v, want an error containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			for _, a := range args {
				nv := a.(driver.NamedValue)
				got[nv.Name] = nv.Value
			}
			for k, v := range c.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
	// A report binds only what it declares.
	args, err := clickhouse.Report{Name: "one", Params: []clickhouse.Param{clickhouse.ParamLimit}}.Args(clickhouse.Params{Batch: "x"})
	if err != nil || len(args) != 1 {
		t.Errorf("Args of a limit-only report = %v, %v; want the limit alone", args, err)
	}
}
