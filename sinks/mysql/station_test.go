package mysql_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// stationEnv is a station store over fresh databases with a clock the test
// moves.
type stationEnv struct {
	t    testing.TB
	ctx  context.Context
	sink *mysql.Sink
	st   *mysql.Station
	r    *reader
	now  atomic.Int64 // Unix milliseconds
	base time.Time
}

func newStation(t testing.TB, opts ...mysql.StationOption) *stationEnv {
	t.Helper()
	s, r := newSink(t, mysql.Config{})
	e := &stationEnv{t: t, ctx: testenv.Context(t, 2*time.Minute), sink: s, r: r}
	e.base = time.Now().UTC().Truncate(time.Millisecond)
	e.now.Store(e.base.UnixMilli())
	st, err := s.Station(e.ctx, append([]mysql.StationOption{mysql.WithClock(e.clock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	return e
}

func (e *stationEnv) clock() time.Time             { return time.UnixMilli(e.now.Load()).UTC() }
func (e *stationEnv) at(d time.Duration) time.Time { return e.base.Add(d) }
func (e *stationEnv) advance(d time.Duration)      { e.now.Add(d.Milliseconds()) }

// event builds a validated, decoded envelope as the sink stage gets it.
func (e *stationEnv) event(eventID, app string, p schemas.Payload) *schemas.Envelope {
	e.t.Helper()
	env, err := schemas.New(eventID, app, time.Now(), p)
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := schemas.Validate(env)
	if err != nil {
		e.t.Fatalf("%+v: %v", p, err)
	}
	if env, err = schemas.Decode(b); err != nil {
		e.t.Fatal(err)
	}
	return env
}

func (e *stationEnv) broadcast(id string, published time.Time, expires time.Time) *schemas.Envelope {
	return e.event("pub-"+id, "ops", schemas.StationMessagePublished{MessageID: id, Audience: schemas.AudienceAll,
		Title: "title " + id, Body: "body " + id, Link: "/m/" + id, PublishedAt: published, ExpiresAt: expires})
}

func (e *stationEnv) direct(id, user string, published time.Time) *schemas.Envelope {
	return e.event("pub-"+id, "ops", schemas.StationMessagePublished{MessageID: id, Audience: schemas.AudienceUser, UserID: user,
		Title: "title " + id, Body: "body " + id, PublishedAt: published})
}

func (e *stationEnv) withdraw(id, user, app string) *schemas.Envelope {
	w := schemas.StationMessageWithdrawn{MessageID: id, Audience: schemas.AudienceAll, WithdrawnAt: e.clock()}
	if user != "" {
		w.Audience, w.UserID = schemas.AudienceUser, user
	}
	return e.event("wd-"+id+"-"+app, app, w)
}

func (e *stationEnv) write(events ...*schemas.Envelope) {
	e.t.Helper()
	if err := e.st.WriteBatch(e.ctx, events); err != nil {
		e.t.Fatal(err)
	}
}

// ids reads the whole inbox in pages of n and returns its message ids.
func (e *stationEnv) ids(user string, n int) []string {
	e.t.Helper()
	var out []string
	var after sinks.InboxCursor
	for range 1000 {
		p, err := e.st.Inbox(e.ctx, user, after, n)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(p.Messages) > n {
			e.t.Fatalf("page of %d messages for limit %d", len(p.Messages), n)
		}
		for _, m := range p.Messages {
			out = append(out, m.MessageID)
		}
		if p.Next.IsZero() {
			return out
		}
		after = p.Next
	}
	e.t.Fatal("the inbox never ends")
	return nil
}

func (e *stationEnv) unread(user string) int64 {
	e.t.Helper()
	n, err := e.st.UnreadCount(e.ctx, user)
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// count runs a COUNT query (its %d the table index) on every shard table
// of the inbox family and adds the results up.
func (e *stationEnv) count(q string) int64 {
	e.t.Helper()
	var total int64
	for _, db := range e.r.dbs {
		for j := range e.r.cfg.TablesPerDatabase {
			var n int64
			if err := db.QueryRowContext(e.ctx, fmt.Sprintf(q, j)).Scan(&n); err != nil {
				e.t.Fatal(err)
			}
			total += n
		}
	}
	return total
}

func (e *stationEnv) broadcastRows() int64 {
	e.t.Helper()
	var n int64
	if err := e.r.dbs[0].QueryRowContext(e.ctx, "SELECT COUNT(*) FROM station_message").Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func TestIntegrationStationBroadcastStoredOnce(t *testing.T) {
	e := newStation(t)
	b := e.broadcast("m1", e.at(-time.Minute), time.Time{})
	e.write(b, b)
	e.write(b) // a replayed batch
	if n := e.broadcastRows(); n != 1 {
		t.Fatalf("%d station_message rows for one message to all users, want 1", n)
	}
	// Stored once, in the first shard database only, and in no inbox.
	var n int64
	if err := e.r.dbs[1].QueryRowContext(e.ctx, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'station_message'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("station_message in the second database: %d, %v", n, err)
	}
	if n := e.count("SELECT COUNT(*) FROM station_inbox_%d"); n != 0 {
		t.Fatalf("%d inbox rows before any read", n)
	}

	// A correction changes the content, not the time it was published.
	fix := e.event("pub-m1-fix", "ops", schemas.StationMessagePublished{MessageID: "m1", Audience: schemas.AudienceAll,
		Title: "fixed", Body: "fixed body", PublishedAt: e.at(time.Hour)})
	e.write(fix)
	// Another app cannot take the message over.
	e.write(e.event("pub-m1-evil", "evil", schemas.StationMessagePublished{MessageID: "m1", Audience: schemas.AudienceAll,
		Title: "hijacked", Body: "x", PublishedAt: e.at(-time.Minute)}))
	e.write(e.withdraw("m1", "", "evil"))
	p, err := e.st.Inbox(e.ctx, "u1", sinks.InboxCursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 1 || p.Messages[0].Title != "fixed" || !p.Messages[0].PublishedAt.Equal(e.at(-time.Minute)) ||
		p.Messages[0].Audience != schemas.AudienceAll || p.Messages[0].Link != "" {
		t.Fatalf("inbox %+v", p.Messages)
	}
	if n := e.broadcastRows(); n != 1 {
		t.Fatalf("%d station_message rows, want 1", n)
	}

	// A message to one user, twice: one row.
	d := e.direct("d1", "u1", e.at(-time.Second))
	e.write(d, d)
	e.write(d)
	if n := e.count("SELECT COUNT(*) FROM station_inbox_%d WHERE message_id = 'd1'"); n != 1 {
		t.Fatalf("%d rows for one message to one user, want 1", n)
	}
}

func TestIntegrationStationOnlyReadersCostRows(t *testing.T) {
	e := newStation(t)
	const users, readers, messages = 1000, 100, 3
	for i := range messages {
		e.write(e.broadcast(fmt.Sprintf("b%d", i), e.at(time.Duration(-i)*time.Minute), time.Time{}))
	}
	for i := range readers {
		if got := e.ids(fmt.Sprintf("user-%d", i*7), 10); len(got) != messages {
			t.Fatalf("reader %d sees %v", i, got)
		}
	}
	// Everyone else only asks how much is unread: no row is written.
	for i := range users {
		u := fmt.Sprintf("user-%d", i)
		if n := e.unread(u); n != messages {
			t.Fatalf("%s has %d unread, want %d", u, n, messages)
		}
	}
	if n := e.count("SELECT COUNT(DISTINCT user_id) FROM station_inbox_%d"); n != readers {
		t.Fatalf("%d users have inbox rows, want the %d readers", n, readers)
	}
	if n := e.count("SELECT COUNT(*) FROM station_inbox_%d"); n != readers*messages {
		t.Fatalf("%d inbox rows, want %d", n, readers*messages)
	}
	if n := e.count("SELECT COUNT(*) FROM station_cursor_%d"); n != readers {
		t.Fatalf("%d cursor rows, want %d", n, readers)
	}
	if n := e.broadcastRows(); n != messages {
		t.Fatalf("%d station_message rows, want %d", n, messages)
	}
}

func TestIntegrationStationConcurrentReadsDeliverOnce(t *testing.T) {
	e := newStation(t)
	const messages = 40
	var events []*schemas.Envelope
	for i := range messages {
		events = append(events, e.broadcast(fmt.Sprintf("b%02d", i), e.at(time.Duration(-i)*time.Second), time.Time{}))
	}
	e.write(events...)
	// carol's shard is the first database, which also holds the messages
	// to all users (and shares their connection pool); hot-user's the
	// second.
	for _, user := range []string{"carol", "hot-user"} {
		var wg sync.WaitGroup
		errs := make(chan error, 150)
		start := make(chan struct{})
		for g := range 50 {
			wg.Go(func() {
				<-start
				var err error
				switch g % 3 {
				case 0:
					var p sinks.InboxPage
					if p, err = e.st.Inbox(e.ctx, user, sinks.InboxCursor{}, messages); err == nil && len(p.Messages) != messages {
						err = fmt.Errorf("read %d messages, want %d", len(p.Messages), messages)
					}
				case 1:
					_, err = e.st.MarkRead(e.ctx, user, fmt.Sprintf("b%02d", g%messages))
				default:
					_, err = e.st.UnreadCount(e.ctx, user)
				}
				errs <- err
			})
		}
		started := time.Now()
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if d := time.Since(started); d > 10*time.Second {
			t.Errorf("50 concurrent reads of %s took %s", user, d)
		}
		if n := e.count(fmt.Sprintf("SELECT COUNT(*) FROM station_inbox_%%d WHERE user_id = '%s'", user)); n != messages {
			t.Fatalf("%d inbox rows of %s for %d messages", n, user, messages)
		}
	}
	if n := e.count("SELECT COUNT(*) - COUNT(DISTINCT user_id, message_id) FROM station_inbox_%d"); n != 0 {
		t.Fatalf("%d duplicate inbox rows", n)
	}
}

func TestIntegrationStationReadState(t *testing.T) {
	e := newStation(t)
	e.write(e.broadcast("b1", e.at(-3*time.Minute), time.Time{}), e.broadcast("b2", e.at(-2*time.Minute), time.Time{}),
		e.direct("d1", "alice", e.at(-time.Minute)), e.direct("d-bob", "bob", e.at(-time.Minute)))

	// Before the first read: all pending, nothing written.
	if n := e.unread("alice"); n != 3 {
		t.Fatalf("unread before the first read: %d, want 3", n)
	}
	if n := e.count("SELECT COUNT(*) FROM station_inbox_%d WHERE user_id = 'alice'"); n != 1 {
		t.Fatalf("alice has %d rows before reading, want her one direct message", n)
	}
	if got := e.ids("alice", 10); !slices.Equal(got, []string{"d1", "b2", "b1"}) {
		t.Fatalf("inbox %v", got)
	}
	if n := e.unread("alice"); n != 3 {
		t.Fatalf("unread after reading the list: %d, want 3 (listing reads nothing)", n)
	}

	e.advance(time.Second)
	at, err := e.st.MarkRead(e.ctx, "alice", "b2")
	if err != nil || !at.Equal(e.clock()) {
		t.Fatalf("MarkRead = %v, %v", at, err)
	}
	e.advance(time.Second)
	if again, err := e.st.MarkRead(e.ctx, "alice", "b2"); err != nil || !again.Equal(at) {
		t.Fatalf("marking again = %v, %v; want the first read time %v", again, err, at)
	}
	if n := e.unread("alice"); n != 2 {
		t.Fatalf("unread after one read: %d, want 2", n)
	}
	for _, bad := range []string{"nope", "d-bob"} { // unknown, and another user's
		if _, err := e.st.MarkRead(e.ctx, "alice", bad); !errors.Is(err, sinks.ErrNotFound) {
			t.Fatalf("MarkRead(%s) = %v, want ErrNotFound", bad, err)
		}
	}
	p, err := e.st.Inbox(e.ctx, "alice", sinks.InboxCursor{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range p.Messages {
		if m.Read != (m.MessageID == "b2") || (m.ReadAt != nil) != m.Read {
			t.Fatalf("message %s: read %v at %v", m.MessageID, m.Read, m.ReadAt)
		}
	}

	// A message to all users published after alice's first read: pending
	// (counted, not yet in her rows) until her next read, then on top.
	e.write(e.broadcast("b3", e.at(time.Second), time.Time{}))
	e.advance(time.Second)
	if n := e.unread("alice"); n != 3 {
		t.Fatalf("unread with a new message pending: %d, want 3", n)
	}
	if n := e.count("SELECT COUNT(*) FROM station_inbox_%d WHERE message_id = 'b3'"); n != 0 {
		t.Fatalf("b3 delivered before a read: %d rows", n)
	}
	if got := e.ids("alice", 10); !slices.Equal(got, []string{"b3", "d1", "b2", "b1"}) {
		t.Fatalf("inbox after a new message: %v", got)
	}
	// A message can be marked read before any listing delivered it.
	e.write(e.broadcast("b4", e.at(2*time.Second), time.Time{}))
	e.advance(time.Second)
	if _, err := e.st.MarkRead(e.ctx, "alice", "b4"); err != nil {
		t.Fatal(err)
	}
	if n, err := e.st.MarkAllRead(e.ctx, "alice"); err != nil || n != 3 {
		t.Fatalf("MarkAllRead = %d, %v; want 3", n, err)
	}
	if n := e.unread("alice"); n != 0 {
		t.Fatalf("unread after marking all: %d", n)
	}
	if n := e.unread("bob"); n != 5 {
		t.Fatalf("bob's unread: %d, want 5 (4 to all users, 1 to him)", n)
	}
}

func TestIntegrationStationWithdrawnExpiredScheduled(t *testing.T) {
	e := newStation(t, mysql.WithLookback(24*time.Hour))
	e.write(
		e.broadcast("early", e.at(-time.Minute), time.Time{}),
		e.broadcast("expiring", e.at(-time.Minute), e.at(time.Hour)),
		e.broadcast("withdrawn-before-read", e.at(-time.Minute), time.Time{}),
		e.broadcast("withdrawn-after-read", e.at(-time.Minute), time.Time{}),
		e.broadcast("scheduled", e.at(2*time.Hour), time.Time{}),
		e.broadcast("too-old", e.at(-25*time.Hour), time.Time{}),
		e.direct("d-withdrawn", "carol", e.at(-time.Minute)),
		e.direct("d-kept", "carol", e.at(-time.Minute)),
	)
	// A withdrawal that arrives before its publish wins over it.
	e.write(e.withdraw("ghost", "", "ops"))
	e.write(e.broadcast("ghost", e.at(-time.Minute), time.Time{}))
	e.write(e.withdraw("withdrawn-before-read", "", "ops"))

	want := []string{"withdrawn-after-read", "expiring", "early", "d-withdrawn", "d-kept"}
	if got := e.ids("carol", 2); !slices.Equal(got, want) {
		t.Fatalf("inbox %v, want %v", got, want)
	}
	if n := e.count("SELECT COUNT(*) FROM station_inbox_%d WHERE message_id IN ('withdrawn-before-read', 'ghost', 'too-old')"); n != 0 {
		t.Fatalf("%d rows delivered for withdrawn or old messages", n)
	}
	e.write(e.withdraw("withdrawn-after-read", "", "ops"), e.withdraw("d-withdrawn", "carol", "ops"))
	e.write(e.withdraw("d-kept", "carol", "evil")) // not the owner: nothing happens
	want = []string{"expiring", "early", "d-kept"}
	if got := e.ids("carol", 2); !slices.Equal(got, want) {
		t.Fatalf("inbox after withdrawals %v, want %v", got, want)
	}
	if n := e.unread("carol"); n != 3 {
		t.Fatalf("unread %d, want 3", n)
	}
	if n := e.unread("dave"); n != 2 {
		t.Fatalf("unread of a user who never read %d, want 2", n)
	}

	e.advance(time.Hour) // "expiring" expires
	if got := e.ids("carol", 10); !slices.Equal(got, []string{"early", "d-kept"}) {
		t.Fatalf("inbox after expiry %v", got)
	}
	if n := e.unread("dave"); n != 1 {
		t.Fatalf("dave's unread after expiry %d, want 1", n)
	}
	e.advance(time.Hour) // "scheduled" is due
	if n := e.unread("carol"); n != 3 {
		t.Fatalf("carol's unread once scheduled is due %d, want 3", n)
	}
	if got := e.ids("dave", 10); !slices.Equal(got, []string{"scheduled", "early"}) {
		t.Fatalf("dave's first read %v", got)
	}
	if n, err := e.st.MarkAllRead(e.ctx, "carol"); err != nil || n != 3 {
		t.Fatalf("MarkAllRead = %d, %v; want the 3 visible", n, err)
	}
}

func TestIntegrationStationPaging(t *testing.T) {
	e := newStation(t)
	var events []*schemas.Envelope
	var want []string
	for i := range 30 {
		// Pairs share a publish time: the message id breaks the tie.
		at := e.at(time.Duration(-i/2) * time.Minute)
		id := fmt.Sprintf("m%02d", 99-i)
		if i%3 == 0 {
			events = append(events, e.direct(id, "pat", at))
		} else {
			events = append(events, e.broadcast(id, at, time.Time{}))
		}
		want = append(want, id)
	}
	e.write(events...)
	for _, n := range []int{1, 7, 10, 30, 100} {
		if got := e.ids("pat", n); !slices.Equal(got, want) {
			t.Fatalf("pages of %d: %v, want %v", n, got, want)
		}
	}
	// Withdrawn messages to all users inside a page are skipped and the
	// page filled from further on.
	var keep []string
	for i, id := range want {
		if i%3 != 0 && i > 3 && i < 20 {
			e.write(e.withdraw(id, "", "ops"))
			continue
		}
		keep = append(keep, id)
	}
	p, err := e.st.Inbox(e.ctx, "pat", sinks.InboxCursor{}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Messages) != 5 || p.Next.IsZero() {
		t.Fatalf("first page %d messages, next %v", len(p.Messages), p.Next)
	}
	for _, n := range []int{1, 4, 50} {
		if got := e.ids("pat", n); !slices.Equal(got, keep) {
			t.Fatalf("pages of %d after withdrawals: %v, want %v", n, got, keep)
		}
	}
}

// TestIntegrationStationNoMessageSkipped races writers storing messages to
// all users against readers moving their cursors: if a reader's cursor
// could pass a message committed late, that message would never reach the
// reader. After the race every reader must hold every message once.
func TestIntegrationStationNoMessageSkipped(t *testing.T) {
	e := newStation(t)
	const writers, batches, perBatch, readers = 3, 15, 4, 8
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for b := range batches {
				var events []*schemas.Envelope
				for i := range perBatch {
					id := fmt.Sprintf("w%d-b%02d-%d", w, b, i)
					events = append(events, e.broadcast(id, e.at(-time.Minute), time.Time{}))
				}
				if err := e.st.WriteBatch(e.ctx, events); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var rwg sync.WaitGroup
	for r := range readers {
		rwg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.st.Inbox(e.ctx, fmt.Sprintf("reader-%d", r), sinks.InboxCursor{}, 1); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	rwg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const total = writers * batches * perBatch
	for r := range readers {
		u := fmt.Sprintf("reader-%d", r)
		if got := e.ids(u, 100); len(got) != total {
			t.Fatalf("%s holds %d messages after the race, want %d", u, len(got), total)
		}
	}
	if n := e.count("SELECT COUNT(*) FROM station_inbox_%d"); n != readers*total {
		t.Fatalf("%d inbox rows, want %d", n, readers*total)
	}
}
