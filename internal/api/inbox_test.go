package api

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// newStationStore returns a station store over fresh databases, dropped
// when the test ends.
func newStationStore(tb testing.TB) *mysql.Station {
	tb.Helper()
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		tb.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
	ctx := testenv.Context(tb, time.Minute)
	prefix := testenv.Name("apiinbox")
	store, err := mysql.New(ctx, mysql.Config{DSN: testenv.MySQLDSN(), DatabasePrefix: prefix, Databases: 2, TablesPerDatabase: 4})
	tb.Cleanup(func() {
		if store != nil {
			store.Close()
		}
		if db, err := sql.Open("mysql", testenv.MySQLDSN()); err == nil {
			for i := range 2 {
				db.Exec(fmt.Sprintf("DROP DATABASE IF EXISTS `%s_%d`", prefix, i))
			}
			db.Close()
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := store.Station(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func stationEvent(tb testing.TB, p schemas.Payload) *schemas.Envelope {
	tb.Helper()
	env, err := schemas.New("e-"+fmt.Sprint(time.Now().UnixNano()), "ops", time.Now(), p)
	if err != nil {
		tb.Fatal(err)
	}
	return env
}

func inboxServer(t *testing.T, inbox sinks.Inbox) *Server {
	t.Helper()
	s, err := New(Config{Coupons: &fakeCoupons{}, Batches: coupon.NewBatches(), Inbox: inbox})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func do(t *testing.T, s *Server, method, path string, into any) int {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	if into != nil && rec.Code == http.StatusOK {
		if err := json.Unmarshal(rec.Body.Bytes(), into); err != nil {
			t.Fatalf("%s %s: %v in %s", method, path, err, rec.Body)
		}
	}
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%s %s: content type %q", method, path, rec.Header().Get("Content-Type"))
	}
	return rec.Code
}

func TestInboxUnconfiguredIs503(t *testing.T) {
	s := inboxServer(t, nil)
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/users/u1/inbox"}, {"GET", "/v1/users/u1/inbox/unread-count"},
		{"POST", "/v1/users/u1/inbox/m1/read"}, {"POST", "/v1/users/u1/inbox/read-all"},
	} {
		if code := do(t, s, r.method, r.path, nil); code != http.StatusServiceUnavailable {
			t.Errorf("%s %s = %d, want 503", r.method, r.path, code)
		}
	}
}

func TestIntegrationInboxAPI(t *testing.T) {
	st := newStationStore(t)
	ctx := context.Background()
	at := time.Now().UTC().Truncate(time.Millisecond).Add(-time.Hour)
	var events []*schemas.Envelope
	for i := range 5 {
		events = append(events, stationEvent(t, schemas.StationMessagePublished{MessageID: fmt.Sprintf("b%d", i), Audience: schemas.AudienceAll,
			Title: fmt.Sprintf("sale %d", i), Body: "<b>escaped by clients</b>", Link: "https://shop.example/s", PublishedAt: at.Add(time.Duration(i) * time.Minute)}))
	}
	events = append(events, stationEvent(t, schemas.StationMessagePublished{MessageID: "d1", Audience: schemas.AudienceUser, UserID: "u1",
		Title: "your parcel", Body: "shipped", PublishedAt: at.Add(10 * time.Minute)}))
	if err := st.WriteBatch(ctx, events); err != nil {
		t.Fatal(err)
	}
	s := inboxServer(t, st)

	var unread UnreadResponse
	if code := do(t, s, "GET", "/v1/users/u1/inbox/unread-count", &unread); code != 200 || unread.Unread != 6 || unread.UserID != "u1" {
		t.Fatalf("unread-count = %d %+v", code, unread)
	}
	var ids []string
	path := "/v1/users/u1/inbox?limit=4"
	for path != "" {
		var page InboxResponse
		if code := do(t, s, "GET", path, &page); code != 200 {
			t.Fatalf("GET %s = %d", path, code)
		}
		for _, m := range page.Messages {
			ids = append(ids, m.MessageID)
			if m.Read || m.PublishedAt.IsZero() || m.Title == "" {
				t.Fatalf("message %+v", m)
			}
		}
		path = ""
		if page.Next != "" {
			path = "/v1/users/u1/inbox?limit=4&after=" + url.QueryEscape(page.Next)
		}
	}
	if got := strings.Join(ids, ","); got != "d1,b4,b3,b2,b1,b0" {
		t.Fatalf("inbox pages %s", got)
	}

	var read ReadResponse
	if code := do(t, s, "POST", "/v1/users/u1/inbox/b3/read", &read); code != 200 || read.MessageID != "b3" || read.ReadAt.IsZero() {
		t.Fatalf("read = %d %+v", code, read)
	}
	var again ReadResponse
	if code := do(t, s, "POST", "/v1/users/u1/inbox/b3/read", &again); code != 200 || !again.ReadAt.Equal(read.ReadAt) {
		t.Fatalf("read again = %d %+v, want the first read time %v", code, again, read.ReadAt)
	}
	if code := do(t, s, "POST", "/v1/users/u1/inbox/nope/read", nil); code != http.StatusNotFound {
		t.Fatalf("reading an unknown message = %d, want 404", code)
	}
	if code := do(t, s, "POST", "/v1/users/u2/inbox/d1/read", nil); code != http.StatusNotFound {
		t.Fatalf("reading another user's message = %d, want 404", code)
	}
	do(t, s, "GET", "/v1/users/u1/inbox/unread-count", &unread)
	if unread.Unread != 5 {
		t.Fatalf("unread after one read %d, want 5", unread.Unread)
	}
	var all ReadAllResponse
	if code := do(t, s, "POST", "/v1/users/u1/inbox/read-all", &all); code != 200 || all.Marked != 5 {
		t.Fatalf("read-all = %d %+v", code, all)
	}
	do(t, s, "GET", "/v1/users/u1/inbox/unread-count", &unread)
	if unread.Unread != 0 {
		t.Fatalf("unread after read-all %d", unread.Unread)
	}
	do(t, s, "GET", "/v1/users/u2/inbox/unread-count", &unread)
	if unread.Unread != 5 {
		t.Fatalf("u2's unread %d, want the 5 messages to all users", unread.Unread)
	}

	for _, bad := range []struct{ method, path string }{
		{"GET", "/v1/users/u1/inbox?limit=0"},
		{"GET", "/v1/users/u1/inbox?limit=101"},
		{"GET", "/v1/users/u1/inbox?limit=ten"},
		{"GET", "/v1/users/u1/inbox?limit=1&limit=2"},
		{"GET", "/v1/users/u1/inbox?after=yesterday"},
		{"GET", "/v1/users/u1/inbox?after=" + url.QueryEscape("1.m1' OR 1=1 --")},
		{"GET", "/v1/users/" + url.PathEscape("u{1}") + "/inbox"},
		{"GET", "/v1/users/" + strings.Repeat("u", 129) + "/inbox/unread-count"},
		{"POST", "/v1/users/u1/inbox/" + url.PathEscape("m 1") + "/read"},
		{"POST", "/v1/users/u1/inbox/" + strings.Repeat("m", 65) + "/read"},
	} {
		if code := do(t, s, bad.method, bad.path, nil); code != http.StatusBadRequest {
			t.Errorf("%s %s = %d, want 400", bad.method, bad.path, code)
		}
	}
}

// FuzzInboxQuery: any query string either is refused or gives a page
// request within the limits whose cursor the server could have handed out.
func FuzzInboxQuery(f *testing.F) {
	for _, s := range []string{"", "limit=5", "after=1732276800123.m1&limit=100", "limit=-1", "limit=1e2", "after=%00", "limit=5&limit=6", "after=.&after=1.a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseInboxQuery(v)
		if err != nil {
			return
		}
		if q.limit < 1 || q.limit > MaxInboxLimit {
			t.Fatalf("%q: limit %d", raw, q.limit)
		}
		if back, err := sinks.ParseInboxCursor(q.after.String()); err != nil || back != q.after {
			t.Fatalf("%q: cursor %+v does not round-trip: %+v, %v", raw, q.after, back, err)
		}
	})
}
