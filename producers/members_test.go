package producers_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

func TestParseMembers(t *testing.T) {
	long := func(n int) string { return strings.Repeat("é", n) }
	type m = producers.Member
	type re = producers.RowError
	for _, tc := range []struct {
		name    string
		format  string
		in      string
		want    []m
		wantRej []re
	}{
		{name: "csv without header", format: "csv",
			in:   "u1,Ann,dept 7\nu2,Bob\nu3\n",
			want: []m{{"u1", "Ann", "dept 7"}, {"u2", "Bob", ""}, {"u3", "", ""}}},
		{name: "csv with header", format: "csv",
			in:   "user_id,name,note\r\nu1,Ann,dept 7\r\nu2,,\r\n",
			want: []m{{"u1", "Ann", "dept 7"}, {"u2", "", ""}}},
		{name: "csv header in another order and case, inferred", format: "",
			in:   "\xEF\xBB\xBFUser_ID , Note,name\nu1,the note,Ann\n",
			want: []m{{"u1", "Ann", "the note"}}},
		{name: "csv white space and blank lines", format: "csv",
			in:   "\n  u1 ,  Ann B.  , x \n\n\nu2@example.com, \"Bob, Jr.\"\n",
			want: []m{{"u1", "Ann B.", "x"}, {"u2@example.com", "Bob, Jr.", ""}}},
		{name: "csv hostile quoted strings", format: "csv",
			in: "u1,\"Ann \"\"The Boss\"\" O'Neil\",\"line one\nline two, with comma\"\nu2,\"<script>alert(1)</script>\",\"\x1b[31mred\u202e\"\nu3,'; DROP TABLE members; --,\"\"\n",
			want: []m{{"u1", `Ann "The Boss" O'Neil`, "line one\nline two, with comma"},
				{"u2", "<script>alert(1)</script>", "\x1b[31mred\u202e"}, {"u3", "'; DROP TABLE members; --", ""}}},
		{name: "csv wrong column counts", format: "csv",
			in:      "u1,a,b,c\nu2,Bob\nu3,\"a\",b,c,d\nuser_id,name\n",
			want:    []m{{"u2", "Bob", ""}, {"user_id", "name", ""}},
			wantRej: []re{{1, "u1", "4 columns, want at most 3 (user_id,name,note)"}, {3, "u3", "5 columns, want at most 3 (user_id,name,note)"}}},
		{name: "csv with header counts columns", format: "csv",
			in:      "user_id,name\nu1\nu2,Bob,x\nu3,Cy\n",
			want:    []m{{"u3", "Cy", ""}},
			wantRej: []re{{2, "u1", "1 columns, the header has 2"}, {3, "u2", "3 columns, the header has 2"}}},
		{name: "csv duplicates name the first line", format: "csv",
			in:      "user_id\nu1\nu2\nu1\n u1 \nU1\n",
			want:    []m{{"u1", "", ""}, {"u2", "", ""}, {"U1", "", ""}},
			wantRej: []re{{4, "u1", "user id repeated: first on line 2"}, {5, "u1", "user id repeated: first on line 2"}}},
		{name: "csv bad ids and lengths", format: "csv",
			in:   "u 1\n,Nobody\n-u2\n" + strings.Repeat("x", 129) + "\nu3," + long(201) + "\nu4,Ann," + long(501) + "\nu5," + long(200) + "," + long(500) + "\n",
			want: []m{{"u5", long(200), long(500)}},
			wantRej: []re{
				{1, "u 1", `user_id: "u 1" does not match ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`},
				{2, "", "user_id is empty"},
				{3, "-u2", `user_id: "-u2" does not match ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`},
				{4, strings.Repeat("x", 129), `user_id: "` + strings.Repeat("x", 40) + `…" does not match ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`},
				{5, "u3", "name: longer than 200 characters"},
				{6, "u4", "note: longer than 500 characters"},
			}},
		{name: "csv invalid utf-8", format: "csv",
			in:      "u1,Ann\xff\nu\xfe2,Bob\nu3,\"ok\"\n",
			want:    []m{{"u3", "ok", ""}},
			wantRej: []re{{1, "u1", "name: invalid UTF-8"}, {2, "u\uFFFD2", "user_id: invalid UTF-8"}}},
		{name: "csv stray quotes go on at the next line", format: "csv",
			in:      "u1,An\"n\nu2,\"Bob\"x\nu3,Cy\n",
			want:    []m{{"u3", "Cy", ""}},
			wantRej: []re{{1, "", `malformed CSV: bare " in non-quoted-field`}, {2, "", `malformed CSV: extraneous or missing " in quoted-field`}}},
		{name: "csv unterminated quote", format: "csv",
			in:      "u1,Ann\nu2,\"Bob\nu3,Cy\n",
			want:    []m{{"u1", "Ann", ""}},
			wantRej: []re{{2, "", `malformed CSV: extraneous or missing " in quoted-field`}}},
		{name: "empty", format: "", in: " \n\n"},
		{name: "csv blank rows", format: "csv", in: "u1\n , \n,,\n\t\nu2\n", want: []m{{"u1", "", ""}, {"u2", "", ""}}},
		{name: "json array", format: "json",
			in:   "[\n  {\"user_id\": \"u1\", \"name\": \"Ann\", \"note\": \"a\\nb \\u2028\\\"q\\\"\"},\n  {\"user_id\": 12345},\n\n  {\"user_id\": \"u3\", \"note\": null}\n]\n",
			want: []m{{"u1", "Ann", "a\nb \u2028\"q\""}, {"12345", "", ""}, {"u3", "", ""}}},
		{name: "json array inferred, bad rows", format: "",
			in: `  [{"user_id":"u1"},{"user_id":"u1","name":"again"},` + "\n" +
				`{"user_id":"u2","email":"x@y"},` + "\n" + `"u3",` + "\n" + `{"user_id":1.5},{"user_id":"u4","name":7},{"user_id":true},` + "\n" +
				`{"user_id":"u5","name":"` + long(201) + `"}, {"name":"no id"}]`,
			want: []m{{"u1", "", ""}},
			wantRej: []re{
				{1, "u1", "user id repeated: first on line 1"},
				{2, "u2", `unknown field "email"`},
				{3, "", "want an object with user_id, name and note"},
				{4, "", "user_id: want a string or an integer, got 1.5"},
				{4, "u4", "name: want a string, got a number"},
				{4, "", "user_id: want a string or an integer, got true"},
				{5, "u5", "name: longer than 200 characters"},
				{5, "", "user_id is empty"},
			}},
		{name: "json invalid utf-8 in a string", format: "json",
			in:      "[{\"user_id\":\"u1\",\"name\":\"\xff\"},{\"user_id\":\"u2\"}]",
			want:    []m{{"u2", "", ""}},
			wantRej: []re{{1, "", "invalid UTF-8"}}},
		{name: "jsonl", format: "jsonl",
			in:   "{\"user_id\":\"u1\",\"name\":\"Ann\"}\r\n\n{\"user_id\":\"u2\",\"note\":\"x,y\"}\n",
			want: []m{{"u1", "Ann", ""}, {"u2", "", "x,y"}}},
		{name: "jsonl inferred, bad lines", format: "",
			in:   "{\"user_id\":\"u1\"}\n{\"user_id\":\"u2\"\n{\"user_id\":\"u3\"} {}\n[1]\n{\"user_id\":\"u4\",\"name\":\"\xc3\"}\n{\"user_id\":\"u1\"}\n{\"user_id\":\"u5\"}",
			want: []m{{"u1", "", ""}, {"u5", "", ""}},
			wantRej: []re{
				{2, "", "malformed JSON"},
				{3, "", "malformed JSON"},
				{4, "", "want an object with user_id, name and note"},
				{5, "", "invalid UTF-8"},
				{6, "u1", "user id repeated: first on line 1"},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rej, err := producers.ParseMembers(strings.NewReader(tc.in), tc.format)
			if err != nil {
				t.Fatalf("ParseMembers: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("members\n got %q\nwant %q", got, tc.want)
			}
			if !reflect.DeepEqual(rej, tc.wantRej) {
				t.Errorf("rejected\n got %q\nwant %q", rej, tc.wantRej)
			}
		})
	}
}

func TestParseMembersUnreadable(t *testing.T) {
	for _, tc := range []struct{ name, format, in, want string }{
		{"unknown format", "xml", "<members/>", `unknown format "xml"`},
		{"json not an array", "json", `{"user_id":"u1"}`, "want an array of objects"},
		{"json broken off", "json", "[{\"user_id\":\"u1\"},\n{\"user_id\":", "the array is not closed"},
		{"json syntax error", "json", "[{\"user_id\":\"u1\"},\n{\"user_id\" \"u2\"}]", "line 2: invalid character"},
		{"json data after the array", "json", "[]\n[]", "line 2: data after the array"},
		{"csv header with an unknown column", "csv", "user_id,email\nu1,a@b\n", `line 1: header: unknown column "email"`},
		{"csv header repeats a column", "csv", "user_id,name,name\n", "header: column name twice"},
		{"read error", "csv", "", "reading members: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r = strings.NewReader(tc.in)
			var err error
			if tc.name == "read error" {
				_, _, err = producers.ParseMembers(failingReader{}, tc.format)
			} else {
				_, _, err = producers.ParseMembers(r, tc.format)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func FuzzParseMembers(f *testing.F) {
	for _, s := range []string{
		"user_id,name,note\nu1,Ann,x\nu2,\"B, \"\"b\"\"\",\"multi\nline\"\n",
		"u1\nu1\n\"u2\nu3,a,b,c\n",
		"[{\"user_id\":\"u1\",\"name\":\"Ann\"},{\"user_id\":2},{}]",
		"{\"user_id\":\"u1\"}\n{bad\n{\"user_id\":\"u1\",\"x\":1}\n",
		"\xEF\xBB\xBFuser_id\n\xff\xfe\n",
		"[\n", "\"", "user_id,", "[{\"user_id\":\"u1\"}]]",
	} {
		for _, format := range []uint8{0, 1, 2, 3} {
			f.Add([]byte(s), format)
		}
	}
	formats := []string{"", producers.FormatCSV, producers.FormatJSON, producers.FormatJSONL}
	f.Fuzz(func(t *testing.T, data []byte, format uint8) {
		members, rej, err := producers.ParseMembers(strings.NewReader(string(data)), formats[int(format)%len(formats)])
		if err != nil {
			if members != nil || rej != nil {
				t.Fatalf("error %v with %d members and %d rejections", err, len(members), len(rej))
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range members {
			if seen[m.UserID] {
				t.Fatalf("user %q accepted twice", m.UserID)
			}
			seen[m.UserID] = true
			env, err := schemas.New("e-1", "fuzz", time.Now(), schemas.MemberUpdated{ActivityID: "a", UserID: m.UserID, Action: schemas.MemberAdd, Name: m.Name, Note: m.Note})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := schemas.Validate(env); err != nil {
				t.Fatalf("accepted member %q fails validation: %v", m, err)
			}
		}
		lines := strings.Count(string(data), "\n") + 1
		for i, r := range rej {
			if r.Line < 1 || r.Line > lines || r.Reason == "" {
				t.Fatalf("rejection %+v: line outside [1,%d] or no reason", r, lines)
			}
			if i > 0 && r.Line < rej[i-1].Line {
				t.Fatalf("rejections out of line order: %+v after %+v", r, rej[i-1])
			}
		}
	})
}

func TestMemberEventID(t *testing.T) {
	a := producers.MemberEventID("imp-1", "u1")
	if a != producers.MemberEventID("imp-1", "u1") {
		t.Fatal("not deterministic")
	}
	for _, other := range []string{producers.MemberEventID("imp-2", "u1"), producers.MemberEventID("imp-1", "u2"), producers.MemberEventID("imp-1u", "1")} {
		if other == a {
			t.Fatalf("%s collides", other)
		}
	}
	env, err := schemas.New(producers.MemberEventID(strings.Repeat("i", 64), strings.Repeat("u", 128)), testApp, time.Now(),
		schemas.MemberUpdated{ActivityID: "a", UserID: "u", Action: schemas.MemberAdd})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := schemas.Validate(env); err != nil {
		t.Fatalf("event id %s is not valid: %v", env.EventID, err)
	}
}

func members(n int, prefix string) []producers.Member {
	out := make([]producers.Member, n)
	for i := range out {
		out[i] = producers.Member{UserID: fmt.Sprintf("%s%05d", prefix, i), Name: fmt.Sprintf("Member %d", i), Note: "dept, \"7\""}
	}
	return out
}

// readCommitted reads topic from its start to its end offsets at the time
// of the call with a read_committed consumer, as the processors read, and
// returns the data records. Control records (transaction markers) are kept
// so that reaching the end is observed even when every record was aborted.
func readCommitted(t testing.TB, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	ctx := testenv.Context(t, 20*time.Second)
	ends, err := admin(t, addrs).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("listing end offsets: %v", err)
	}
	left := map[int32]int64{}
	at := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
			at[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %d records so far, partitions %v not read to their end", topic, len(out), left)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetching %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset >= end-1 {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

func TestImportMembersIsOneTransaction(t *testing.T) {
	addrs := kafka(t)
	ctx := testenv.Context(t, time.Minute)
	const n = 10_000
	var (
		mu    sync.Mutex
		calls [][2]int
	)
	err := producers.ImportMembers(ctx, producers.Config{Brokers: addrs, AppID: testApp}, "xmas-2026", "imp-1", members(n, "user-"), func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, [2]int{done, total})
	})
	if err != nil {
		t.Fatalf("ImportMembers: %v", err)
	}

	mu.Lock()
	if len(calls) == 0 || len(calls) > 101 || calls[len(calls)-1] != [2]int{n, n} {
		t.Errorf("%d progress calls ending with %v, want at most 101 ending with [%d %d]", len(calls), calls[len(calls)-1:], n, n)
	}
	for i := 1; i < len(calls); i++ {
		if calls[i][0] <= calls[i-1][0] || calls[i][1] != n {
			t.Fatalf("progress %v after %v", calls[i], calls[i-1])
		}
	}
	mu.Unlock()

	recs := readCommitted(t, addrs, "lottery.requests")
	if len(recs) != n {
		t.Fatalf("a read_committed consumer sees %d events, want %d", len(recs), n)
	}
	users := map[string]bool{}
	for _, r := range recs {
		if !r.Attrs.IsTransactional() || r.ProducerID != recs[0].ProducerID || r.ProducerEpoch != recs[0].ProducerEpoch || r.Partition != recs[0].Partition {
			t.Fatalf("record %d@%d: transactional %v producer %d/%d, want all in one transaction on one partition",
				r.Partition, r.Offset, r.Attrs.IsTransactional(), r.ProducerID, r.ProducerEpoch)
		}
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		var m schemas.MemberUpdated
		if err := env.DecodePayload(&m); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != "xmas-2026" || env.Type != schemas.TypeGiftMemberUpdated || env.AppID != testApp ||
			m.Action != schemas.MemberAdd || m.ImportID != "imp-1" || m.ActivityID != "xmas-2026" || env.EventID != producers.MemberEventID("imp-1", m.UserID) {
			t.Fatalf("record key %q: %+v %+v", r.Key, env, m)
		}
		if header(r, producers.HeaderType) != schemas.TypeGiftMemberUpdated {
			t.Fatalf("type header %q", header(r, producers.HeaderType))
		}
		users[m.UserID] = true
	}
	if len(users) != n {
		t.Fatalf("%d distinct users, want %d", len(users), n)
	}
	// One commit marker after the records: one transaction.
	ends, err := admin(t, addrs).ListEndOffsets(ctx, "lottery.requests")
	if err != nil {
		t.Fatal(err)
	}
	if end, _ := ends.Lookup("lottery.requests", recs[0].Partition); end.Offset != n+1 {
		t.Errorf("partition end offset %d, want %d records and one commit marker", end.Offset, n+1)
	}
}

func TestImportMembersCancelledPublishesNothing(t *testing.T) {
	addrs := kafka(t)
	ctx, cancel := context.WithCancel(testenv.Context(t, time.Minute))
	defer cancel()
	const n = 10_000
	var maxDone int
	err := producers.ImportMembers(ctx, producers.Config{Brokers: addrs, AppID: testApp}, "xmas-2026", "imp-1", members(n, "user-"), func(done, total int) {
		maxDone = max(maxDone, done)
		if done >= n/2 {
			cancel()
		}
	}, producers.WithMaxBufferedRecords(1000))
	if !errors.Is(err, producers.ErrImportAborted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("ImportMembers: %v, want ErrImportAborted and context.Canceled", err)
	}
	if maxDone < n/2 || maxDone == n {
		t.Fatalf("cancelled after %d acknowledgements, want mid-way", maxDone)
	}
	if recs := readCommitted(t, addrs, "lottery.requests"); len(recs) != 0 {
		t.Fatalf("a read_committed consumer sees %d events of an aborted import, want none", len(recs))
	}
	// The activity's next import is not held up by the aborted one.
	if err := producers.ImportMembers(testenv.Context(t, 30*time.Second), producers.Config{Brokers: addrs, AppID: testApp}, "xmas-2026", "imp-2", members(10, "other-"), nil); err != nil {
		t.Fatalf("import after the aborted one: %v", err)
	}
	if recs := readCommitted(t, addrs, "lottery.requests"); len(recs) != 10 {
		t.Fatalf("a read_committed consumer sees %d events, want the 10 of the second import", len(recs))
	}
}

func TestImportMembersFencedByANewerImport(t *testing.T) {
	addrs := kafka(t)
	ctx := testenv.Context(t, time.Minute)
	cfg := producers.Config{Brokers: addrs, AppID: testApp}
	var newer error
	var once sync.Once
	// The newer import runs to completion while the older one is mid-way.
	err := producers.ImportMembers(ctx, cfg, "xmas-2026", "imp-old", members(2000, "old-"), func(done, total int) {
		once.Do(func() { newer = producers.ImportMembers(ctx, cfg, "xmas-2026", "imp-new", members(50, "new-"), nil) })
	}, producers.WithMaxBufferedRecords(100))
	if newer != nil {
		t.Fatalf("newer import: %v", newer)
	}
	if !errors.Is(err, producers.ErrImportAborted) || !errors.Is(err, producers.ErrImportFenced) {
		t.Fatalf("older import: %v, want ErrImportAborted and ErrImportFenced", err)
	}
	recs := readCommitted(t, addrs, "lottery.requests")
	if len(recs) != 50 {
		t.Fatalf("a read_committed consumer sees %d events, want the newer import's 50", len(recs))
	}
	for _, r := range recs {
		if !strings.Contains(string(r.Value), `"import_id":"imp-new"`) {
			t.Fatalf("record of the fenced import visible: %s", r.Value)
		}
	}
}

func TestImportMembersRefusesBadInputBeforePublishing(t *testing.T) {
	addrs := kafka(t)
	ctx := testenv.Context(t, 30*time.Second)
	cfg := producers.Config{Brokers: addrs, AppID: testApp}
	for _, tc := range []struct {
		name, activity, importID string
		members                  []producers.Member
		want                     string
	}{
		{"no members", "a1", "imp", nil, "no members"},
		{"empty import id", "a1", "", members(2, "u"), "empty import id"},
		{"import id too long", "a1", strings.Repeat("i", 65), members(2, "u"), "import_id: longer than 64"},
		{"bad activity", "a 1", "imp", members(2, "u"), "activity_id"},
		{"bad member", "a1", "imp", append(members(2, "u"), producers.Member{UserID: "bad id"}), "member 3"},
		{"repeated member", "a1", "imp", append(members(2, "u"), members(1, "u")...), `member 3: user id "u00000" repeats member 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := producers.ImportMembers(ctx, cfg, tc.activity, tc.importID, tc.members, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ImportMembers: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := producers.ImportMembers(ctx, producers.Config{AppID: testApp}, "a1", "imp", members(1, "u"), nil); !errors.Is(err, producers.ErrInvalidConfig) {
		t.Fatalf("ImportMembers without brokers: %v, want ErrInvalidConfig", err)
	}
	if recs := consumeAll(t, addrs, allTopics(t)...); len(recs) != 0 {
		t.Fatalf("%d records produced, want none", len(recs))
	}
}
