package mysql_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// BenchmarkCrowdSink writes routine crowd rows through the crowd store in
// batches of 5,000 (as the sink-crowd stage does) and reports rows/s, with
// the raw rate of the same multi-row INSERTs into a plain table, measured
// in the same run, as the limit.
func BenchmarkCrowdSink(b *testing.B) {
	e := newCrowdsB(b)
	const batch = 5000
	day := time.UnixMilli(e.now.Load()).UTC().Format("20060102")
	apps := []string{"shop", "live", "mini-program", "app-7"}
	evs := make([]*schemas.Envelope, 0, batch)
	n := 0
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		evs = evs[:0]
		for j := range batch {
			n++
			evs = append(evs, e.member(apps[j%len(apps)], fmt.Sprintf("c%d", j%8), fmt.Sprintf("u%09d", n), schemas.CrowdRoutine, day))
		}
		b.StartTimer()
		if err := e.c.WriteBatch(e.ctx, evs); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
	}
	rows := float64(b.N * batch)
	b.ReportMetric(rows/b.Elapsed().Seconds(), "rows/s")

	// The raw limit: the same rows as plain multi-row INSERTs, one table.
	db := e.r.dbs[0]
	if _, err := db.ExecContext(e.ctx, "CREATE TABLE raw_rows (crowd_id VARCHAR(64) NOT NULL, user_id VARCHAR(128) NOT NULL, app_id VARCHAR(64) NOT NULL, removed TINYINT NOT NULL, recorded_at DATETIME(3) NOT NULL, PRIMARY KEY (crowd_id, user_id)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"); err != nil {
		b.Fatal(err)
	}
	rawStart := time.Now()
	m := 0
	for i := 0; i < b.N; i++ {
		for lo := 0; lo < batch; lo += 2000 {
			q := "INSERT INTO raw_rows VALUES "
			args := make([]any, 0, 10000)
			for j := lo; j < min(lo+2000, batch); j++ {
				m++
				if j > lo {
					q += ","
				}
				q += "(?,?,?,?,?)"
				args = append(args, fmt.Sprintf("c%d", j%8), fmt.Sprintf("u%09d", m), "shop", 0, time.Now())
			}
			if _, err := db.ExecContext(e.ctx, q, args...); err != nil {
				b.Fatal(err)
			}
		}
	}
	raw := rows / time.Since(rawStart).Seconds()
	b.ReportMetric(raw, "raw-rows/s")
	b.ReportMetric(rows/b.Elapsed().Seconds()/raw, "ratio")
}

// newCrowdsB is newCrowds for a benchmark.
func newCrowdsB(b *testing.B) *crowdEnv {
	s, r := newSink(b, mysql.Config{Databases: 2})
	e := &crowdEnv{tb: b, ctx: b.Context(), sink: s, r: r}
	e.now.Store(time.Now().UnixMilli())
	c, err := s.Crowds(e.ctx)
	if err != nil {
		b.Fatal(err)
	}
	e.c = c
	return e
}
