package clickhouse_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/sinks/clickhouse"
)

const analyticsDoc = "../../docs/analytics.md"

var sqlBlock = regexp.MustCompile("(?ms)^```sql\n(.*?)^```")

// TestIntegrationAnalyticsDocs runs every ```sql block of docs/analytics.md
// against ClickHouse with the analytics story written through the sink,
// and requires each to return rows, so the page cannot go stale; and it
// requires the page to document every report and every table and view
// the sink creates.
func TestIntegrationAnalyticsDocs(t *testing.T) {
	s, r := newSink(t)
	writeStory(t, s, newAnalyticsStory(t, 2026))
	body, err := os.ReadFile(analyticsDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(body)
	blocks := sqlBlock.FindAllStringSubmatch(doc, -1)
	if len(blocks) < 15 {
		t.Fatalf("%s has %d sql blocks, want at least 15", analyticsDoc, len(blocks))
	}
	ctx := testenv.Context(t, time.Minute)
	conn, err := ch.Open(&ch.Options{Protocol: ch.Native, Addr: []string{testenv.ClickHouseAddr()}, Auth: ch.Auth{Database: r.db}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for i, b := range blocks {
		query := strings.TrimSpace(b[1])
		first := strings.SplitN(query, "\n", 2)[0]
		if strings.Contains(strings.TrimSuffix(query, ";"), ";") || strings.Contains(query, "@") {
			t.Errorf("sql block %d (%s) must be one statement without placeholders", i+1, first)
			continue
		}
		rows, err := conn.Query(ctx, strings.TrimSuffix(query, ";"))
		if err != nil {
			t.Errorf("sql block %d fails:\n%s\n%v", i+1, query, err)
			continue
		}
		n := 0
		for rows.Next() {
			n++
		}
		if err := rows.Err(); err != nil {
			t.Errorf("sql block %d:\n%s\n%v", i+1, query, err)
		}
		rows.Close()
		if n == 0 {
			t.Errorf("sql block %d returned no rows:\n%s", i+1, query)
		}
	}
	t.Logf("ran %d sql blocks of %s", len(blocks), analyticsDoc)

	for _, rep := range clickhouse.Reports() {
		if !strings.Contains(doc, "### `"+rep.Name+"`") {
			t.Errorf("%s has no section \"### `%s`\" for the report", analyticsDoc, rep.Name)
		}
	}
	rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = currentDatabase()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		n++
		if strings.HasSuffix(name, "_final") {
			continue // documented as <table>_final
		}
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("%s does not document %s", analyticsDoc, name)
		}
	}
	if err := rows.Err(); err != nil || n < 20 {
		t.Fatalf("listing the tables: %v, %d tables", err, n)
	}
}
