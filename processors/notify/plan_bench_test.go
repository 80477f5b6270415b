package notify

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// BenchmarkPlanFromMySQL plans a campaign over a manual crowd of
// PROMOFLOW_BENCH_PLAN_USERS (default 1,000,000) users stored in the MariaDB
// crowd tables, through the planner on kfake with no sender running, and
// reports users/s planned; for reference, the raw rate of reading the same
// members in pages of 10,000 (MembersOf alone) in the same run.
func BenchmarkPlanFromMySQL(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("PROMOFLOW_BENCH_PLAN_USERS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	ctx := context.Background()
	name := testenv.Name("np")
	sink, err := mysql.New(ctx, mysql.Config{DSN: testenv.MySQLDSN(), DatabasePrefix: name, Databases: 2, TablesPerDatabase: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	defer func() {
		db, err := sql.Open("mysql", testenv.MySQLDSN())
		if err == nil {
			for i := range 2 {
				db.Exec(fmt.Sprintf("DROP DATABASE IF EXISTS `%s_%d`", name, i))
			}
			db.Close()
		}
	}()
	crowds, err := sink.Crowds(ctx)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	evs := make([]*schemas.Envelope, 0, 5000)
	for i := 0; i < n; i++ {
		m := schemas.CrowdMembershipRecorded{CrowdID: "big", UserID: userName(i), Trigger: schemas.CrowdManual, RecordedAt: now}
		env, err := schemas.New("m-"+strconv.Itoa(i), "shop", now, m)
		if err != nil {
			b.Fatal(err)
		}
		if evs = append(evs, env); len(evs) == cap(evs) || i == n-1 {
			if err := crowds.WriteBatch(ctx, evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	cr, err := crowds.Crowd(ctx, "big")
	if err != nil {
		b.Fatal(err)
	}
	rawStart := time.Now()
	after, read := "", 0
	for {
		page, err := crowds.MembersOf(ctx, cr, after, 10_000)
		if err != nil {
			b.Fatal(err)
		}
		read += len(page)
		if len(page) < 10_000 {
			break
		}
		after = page[len(page)-1]
	}
	raw := float64(read) / time.Since(rawStart).Seconds()

	h := newHarness(b, nil)
	h.run(NewPlanner(h.store, crowds, h.templates, WithPlannerLogger(quiet())).Stage(), false)
	b.ResetTimer()
	var elapsed time.Duration
	for i := range b.N {
		campaign := fmt.Sprintf("plan-%d", i)
		start := time.Now()
		h.request(campaign, "big", "spring")
		for {
			p, err := h.store.Progress(ctx, campaign)
			if err == nil && p.Status == StatusPlanned {
				if p.UsersPlanned != int64(n) {
					b.Fatalf("%+v", p)
				}
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("not planned: %+v %v", p, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		elapsed += time.Since(start)
	}
	b.StopTimer()
	rate := float64(n*b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "users/s")
	b.ReportMetric(raw, "raw-read-users/s")
	b.ReportMetric(rate/raw, "ratio")
	b.Logf("%d users planned from MariaDB at %.0f users/s (raw paged reads %.0f users/s, ratio %.2f); 10,000,000 users: %s",
		n, rate, raw, rate/raw, time.Duration(10_000_000/rate*float64(time.Second)).Round(time.Second))
}
