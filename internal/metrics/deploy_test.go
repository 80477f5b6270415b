package metrics

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// promqlKeywords are the identifiers of PromQL that are not metric names.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "inf": true, "nan": true,
}

// promqlAggregations may be followed by a by or without clause before
// their parenthesis.
var promqlAggregations = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

// metricNames returns the metric names an expression selects: identifiers
// outside label matchers, ranges and strings that are neither functions,
// aggregations nor keywords. Grafana variables ($stage, $__rate_interval)
// are not names.
func metricNames(expr string) []string {
	var out []string
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (!first && c >= '0' && c <= '9')
	}
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\t' || expr[i] == '\n') {
			i++
		}
		return i
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '{':
			i = strings.IndexByte(expr[i:], '}') + i + 1 // label matchers (strings hold no '}' here)
		case c == '[':
			i = strings.IndexByte(expr[i:], ']') + i + 1
		case c == '$':
			i++
			for i < len(expr) && isIdent(expr[i], false) {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(expr) && isIdent(expr[j], false) {
				j++
			}
			word := expr[i:j]
			next := skipSpace(j)
			switch {
			case promqlKeywords[strings.ToLower(word)] && next < len(expr) && expr[next] == '(' &&
				word != "and" && word != "or" && word != "unless":
				// by (...), without (...), on (...), group_left (...): label lists.
				j = strings.IndexByte(expr[next:], ')') + next + 1
			case promqlKeywords[strings.ToLower(word)]:
			case next < len(expr) && expr[next] == '(',
				promqlAggregations[word] && (strings.HasPrefix(expr[next:], "by") || strings.HasPrefix(expr[next:], "without")):
				// A function or an aggregation.
			default:
				out = append(out, word)
			}
			i = j
		default:
			i++
		}
	}
	return out
}

func TestMetricNames(t *testing.T) {
	tests := []struct {
		expr string
		want []string
	}{
		{`sum by (stage, topic) (rate(promoflow_events_in_total{stage=~"$stage"}[$__rate_interval]))`, []string{"promoflow_events_in_total"}},
		{`histogram_quantile(0.99, sum by (le, stage) (rate(promoflow_end_to_end_latency_seconds_bucket{phase!="handle"}[5m]))) > 30`,
			[]string{"promoflow_end_to_end_latency_seconds_bucket"}},
		{`a_total / on (instance) group_left (version) b_info or c unless d offset 5m`, []string{"a_total", "b_info", "c", "d"}},
		{`count(x == 0) and bool y`, []string{"x", "y"}},
		{`up{job="promoflow"} == 0`, []string{"up"}},
		{`sum(rate(m{code=~"5.."}[1m])) / clamp_min(sum(increase(n[$__range])), 1)`, []string{"m", "n"}},
	}
	for _, tc := range tests {
		if got := metricNames(tc.expr); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.expr, got, tc.want)
		}
	}
}

// dashboardQueries returns every PromQL query of the dashboard: the panels'
// targets (rows' nested panels included) and the variables' label_values.
func dashboardQueries(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../deploy/grafana/promoflow-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	type panel struct {
		ID      int    `json:"id"`
		Type    string `json:"type"`
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var d struct {
		UID        string            `json:"uid"`
		Panels     []json.RawMessage `json:"panels"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid")
	}
	var out []string
	ids := map[int]bool{}
	var walk func([]json.RawMessage)
	walk = func(ps []json.RawMessage) {
		for _, raw := range ps {
			var p panel
			if err := json.Unmarshal(raw, &p); err != nil {
				t.Fatal(err)
			}
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("panel %q has an empty query", p.Title)
				}
				out = append(out, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	lv := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	for _, v := range d.Templating.List {
		if m := lv.FindStringSubmatch(v.Definition); m != nil {
			out = append(out, m[1])
		}
	}
	return out
}

// TestDashboardQueriesUseExportedMetrics parses the Grafana dashboard and
// checks that every query selects only metrics the registry exports, so
// that the dashboard cannot drift from the code, and that every promoflow_*
// metric has a panel.
func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	exported := exportedNames(t)
	used := map[string]bool{}
	queries := dashboardQueries(t)
	if len(queries) < 20 {
		t.Fatalf("only %d queries in the dashboard", len(queries))
	}
	for _, q := range queries {
		names := metricNames(q)
		if len(names) == 0 {
			t.Errorf("query %q selects no metric", q)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("query %q uses %s, which the registry does not export", q, n)
			}
			used[strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")] = true
		}
	}
	var missing []string
	for _, d := range New().Definitions() {
		if !used[d.Name] {
			missing = append(missing, d.Name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("no dashboard panel shows %v", missing)
	}
}

// TestAlertRulesUseExportedMetrics does the same for the alert rules.
func TestAlertRulesUseExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("../../deploy/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	exported := exportedNames(t)
	exported["up"] = true // Prometheus's own, per target
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			names := metricNames(r.Expr)
			if r.Alert == "" || len(names) == 0 {
				t.Errorf("rule %q: no name or no metric in %q", r.Alert, r.Expr)
			}
			for _, m := range names {
				if !exported[m] {
					t.Errorf("alert %s uses %s, which the registry does not export", r.Alert, m)
				}
			}
		}
	}
	if n < 8 {
		t.Errorf("only %d alert rules", n)
	}
}
