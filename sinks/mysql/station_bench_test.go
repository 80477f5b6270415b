package mysql_test

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// BenchmarkInbox measures inbox reads as the HTTP API makes them, over the
// default 2x4 layout with 200 messages to all users (plus 2 to each of the
// active users): a page of 20 for an active user whose inbox is up to date
// (a cursor read, a check for new messages, the page, the content of its
// messages to all users: four point reads), a first read after the 200
// messages (which delivers them: 200 rows inserted), and the unread count
// of a user who never read. It reports reads/s, p50 and p99, and the ratio
// to the raw limit measured in the same run: primary-key point selects
// straight on MariaDB, one at a time.
func BenchmarkInbox(b *testing.B) {
	const broadcasts, active = 200, 1000
	e := newStation(b)
	var events []*schemas.Envelope
	for i := range broadcasts {
		events = append(events, e.broadcast(fmt.Sprintf("b%03d", i), e.at(time.Duration(-i)*time.Minute), time.Time{}))
	}
	for u := range active {
		for k := range 2 {
			events = append(events, e.direct(fmt.Sprintf("d%d-%d", u, k), fmt.Sprintf("active-%d", u), e.at(time.Duration(-k)*time.Second)))
		}
	}
	e.write(events...)
	for u := range active {
		if _, err := e.st.Inbox(e.ctx, fmt.Sprintf("active-%d", u), sinks.InboxCursor{}, 1); err != nil {
			b.Fatal(err)
		}
	}

	// The raw limit: primary-key point selects, one at a time, measured
	// right before each case (the machine's load moves).
	raw := func() float64 {
		const n = 3000
		start := time.Now()
		for i := range n {
			db := e.r.dbs[i%len(e.r.dbs)]
			var seq int64
			err := db.QueryRowContext(e.ctx, fmt.Sprintf("SELECT seq FROM station_cursor_%d WHERE user_id = ?", i%e.r.cfg.TablesPerDatabase),
				fmt.Sprintf("active-%d", i%active)).Scan(&seq)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				b.Fatal(err)
			}
		}
		return n / time.Since(start).Seconds()
	}

	b.Run("Active", func(b *testing.B) {
		measureInbox(b, raw(), func(i int) error {
			p, err := e.st.Inbox(e.ctx, fmt.Sprintf("active-%d", i*7919%active), sinks.InboxCursor{}, 20)
			if err == nil && len(p.Messages) != 20 {
				err = fmt.Errorf("page of %d", len(p.Messages))
			}
			return err
		})
	})
	fresh := 0
	b.Run("FirstRead", func(b *testing.B) {
		measureInbox(b, raw(), func(int) error {
			fresh++
			p, err := e.st.Inbox(e.ctx, fmt.Sprintf("fresh-%d", fresh), sinks.InboxCursor{}, 20)
			if err == nil && len(p.Messages) != 20 {
				err = fmt.Errorf("page of %d", len(p.Messages))
			}
			return err
		})
	})
	b.Run("UnreadNeverRead", func(b *testing.B) {
		measureInbox(b, raw(), func(i int) error {
			n, err := e.st.UnreadCount(e.ctx, fmt.Sprintf("idle-%d", i))
			if err == nil && n != broadcasts {
				err = fmt.Errorf("%d unread", n)
			}
			return err
		})
	})
}

// measureInbox runs read once per iteration and reports reads/s, p50 and
// p99, the raw point-select rate and the ratio of the two.
func measureInbox(b *testing.B, raw float64, read func(i int) error) {
	lat := timed(b, read)
	slices.Sort(lat)
	rate := float64(len(lat)) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "reads/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(raw, "raw-selects/s")
	b.ReportMetric(rate/raw, "x-raw")
}
