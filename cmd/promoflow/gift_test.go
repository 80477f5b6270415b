package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

const giftTopic = "lottery.requests"

func giftRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runMain(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func giftFile(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// giftReadCommitted reads topic from its start to its current end with a
// read_committed consumer, as the processors read, and returns the data
// records. Control records are kept so that the end is seen even when every
// record was aborted.
func giftReadCommitted(t *testing.T, brokers []string, adm *kadm.Client, topic string) []*kgo.Record {
	t.Helper()
	ctx := testenv.Context(t, 20*time.Second)
	left := map[int32]int64{}
	at := map[int32]kgo.Offset{}
	endOffsets(t, adm, topic).Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
			at[o.Partition] = kgo.NewOffset().AtStart()
		}
	})
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
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
			t.Fatalf("reading %s: %d records, partitions %v not read to their end", topic, len(out), left)
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

func giftMemberEvent(t *testing.T, r *kgo.Record) (*schemas.Envelope, schemas.MemberUpdated) {
	t.Helper()
	env, err := schemas.Decode(r.Value)
	if err != nil {
		t.Fatal(err)
	}
	var m schemas.MemberUpdated
	if env.Type == schemas.TypeGiftMemberUpdated {
		if err := env.DecodePayload(&m); err != nil {
			t.Fatal(err)
		}
	}
	return env, m
}

func TestGiftHelp(t *testing.T) {
	code, out, errOut := giftRun(t, "help", "gift")
	if code != 0 {
		t.Fatalf("help gift exited %d: %s", code, errOut)
	}
	for _, action := range []string{"import", "edit", "send", "results", "members"} {
		if !strings.Contains(out, "\n  "+action+" ") {
			t.Errorf("help does not describe %s", action)
		}
		if !strings.Contains(out, "  promoflow gift "+action+" ") {
			t.Errorf("help has no example of %s", action)
		}
	}
	for _, want := range []string{"all or nothing", "ONE Kafka transaction", "member_locked", "promoflow dlq list", "--pending", "--dry-run", "user_id,name,note", "jsonl"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	for _, action := range []string{"import", "edit", "send", "results", "members"} {
		code, out, errOut := giftRun(t, "gift", action, "-h")
		if code != 0 || !strings.Contains(out+errOut, "Usage: promoflow gift import|edit|send|results|members") {
			t.Errorf("gift %s -h exited %d:\n%s%s", action, code, out, errOut)
		}
	}
}

func TestGiftUsageErrors(t *testing.T) {
	clearConfigEnv(t)
	csv := giftFile(t, "m.csv", "u1\n")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"gift"}, "want an action"},
		{[]string{"gift", "shuffle", "--activity", "a"}, `unknown gift action "shuffle"`},
		{[]string{"gift", "import", "--file", csv}, "gift import needs an activity"},
		{[]string{"gift", "import", "a", "b"}, `unexpected argument "b"`},
		{[]string{"gift", "import", "--activity", "a"}, "needs --file"},
		{[]string{"gift", "import", "--activity", "a", "--file", csv, "--format", "xml"}, `--format "xml"`},
		{[]string{"gift", "import", "--activity", "a b", "--file", csv}, `activity_id: "a b" does not match`},
		{[]string{"gift", "import", "--activity", "a", "--file", csv, "--import-id", strings.Repeat("i", 65)}, "import_id: longer than 64 characters"},
		{[]string{"gift", "import", "--activity", "a", "--file", csv, "--user", "u1"}, "--user does not apply to gift import"},
		{[]string{"gift", "edit", "--activity", "a", "--name", "x"}, "needs --user"},
		{[]string{"gift", "edit", "--activity", "a", "--user", "u1"}, "needs --name, --note or --remove"},
		{[]string{"gift", "edit", "--activity", "a", "--user", "u1", "--remove", "--name", "x"}, "--remove cannot be combined"},
		{[]string{"gift", "edit", "--activity", "a", "--user", "u 1", "--remove"}, `user_id: "u 1" does not match`},
		{[]string{"gift", "send", "--activity", "a"}, "needs --user"},
		{[]string{"gift", "send", "--activity", "a", "--user", "u1", "--json"}, "--json does not apply to gift send"},
		{[]string{"gift", "results", "--activity", "a", "--status", "active"}, `--status "active": want matched or rejected`},
		{[]string{"gift", "results", "--activity", "a", "--pending"}, "--pending does not apply to gift results"},
		{[]string{"gift", "results", "--activity", "a", "--limit", "-1"}, "--limit -1"},
		{[]string{"gift", "members", "--activity", "a", "--status", "matched"}, `--status "matched": want active or removed`},
		{[]string{"gift", "members", "--activity", "a", "--pending", "--status", "removed"}, "--pending lists active members"},
	} {
		t.Run(strings.Join(tc.args[1:], " "), func(t *testing.T) {
			code, out, errOut := giftRun(t, tc.args...)
			if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "Usage: promoflow gift") {
				t.Errorf("exited %d, want 2 with %q and the usage; stdout:\n%s\nstderr:\n%s", code, tc.want, out, errOut)
			}
		})
	}
}

func TestGiftImportRejectedRowsPublishesNothing(t *testing.T) {
	clearConfigEnv(t)
	brokers, adm := testenv.KafkaWithTopics(t)
	file := giftFile(t, "staff.csv", "user_id,name,note\n"+
		"u1,Ann,dept 7\n"+
		"u 2,Bob,\n"+
		"u3,\"Cy, \"\"the\"\" third\",\"multi\nline\"\n"+
		"u1,Ann again,\n"+
		"\x1b[31mevil,Eve,\n"+
		"u4,"+strings.Repeat("n", 201)+",\n"+
		"u5,Fay,x,extra\n"+
		"u6,Gus,\n")
	for _, dry := range []bool{false, true} {
		args := []string{"gift", "import", "--brokers", strings.Join(brokers, ","), "--activity", "xmas", "--file", file}
		if dry {
			args = append(args, "--dry-run")
		}
		code, out, errOut := giftRun(t, args...)
		if code != 1 {
			t.Fatalf("dry %v: exited %d, want 1\nstdout:\n%s\nstderr:\n%s", dry, code, out, errOut)
		}
		for _, want := range []string{
			"LINE  USER ID",
			"3     u 2",
			`user_id: "u 2" does not match`,
			"6     u1",
			"user id repeated: first on line 2",
			`7     \u001b[31mevil`,
			"8     u4",
			"name: longer than 200 characters",
			"9     u5",
			"4 columns, the header has 3",
			"8 rows read: 3 valid, 5 rejected. Nothing was published",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("dry %v: report lacks %q:\n%s", dry, want, out)
			}
		}
		if strings.Contains(out, "\x1b") {
			t.Errorf("report prints a raw escape sequence from the file:\n%q", out)
		}
		if !strings.Contains(errOut, "5 of 8 rows rejected; nothing was published") {
			t.Errorf("stderr:\n%s", errOut)
		}
	}
	if n := totalOffsets(endOffsets(t, adm, giftTopic)); n != 0 {
		t.Fatalf("%s holds %d records (committed or not), want none", giftTopic, n)
	}
}

func TestGiftImportPublishesOneTransaction(t *testing.T) {
	clearConfigEnv(t)
	brokers, adm := testenv.KafkaWithTopics(t)
	const n = 2000
	var b strings.Builder
	b.WriteString("user_id,name,note\n")
	for i := range n {
		fmt.Fprintf(&b, "user-%04d,\"Member %d\",\"dept %d, floor \"\"%d\"\"\"\n", i, i, i%10, i%3)
	}
	file := giftFile(t, "staff.csv", b.String())
	args := []string{"gift", "import", "xmas", "--file", file, "--brokers", strings.Join(brokers, ",")}

	code, out, errOut := giftRun(t, append(args, "--dry-run")...)
	if code != 0 || !strings.Contains(out, "dry run: 2,000 members of xmas are valid") {
		t.Fatalf("dry run exited %d:\n%s%s", code, out, errOut)
	}
	if n := totalOffsets(endOffsets(t, adm, giftTopic)); n != 0 {
		t.Fatalf("the dry run published %d records", n)
	}

	var progress bytes.Buffer
	giftStderr = &progress
	code, out, errOut = giftRun(t, args...)
	giftStderr = os.Stderr
	if code != 0 {
		t.Fatalf("import exited %d:\n%s%s", code, out, errOut)
	}
	for _, want := range []string{"imported 2,000 members into xmas in one transaction", "import id import-", "members/s"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(progress.String(), "imported 2,000/2,000 (100%), committing\n") {
		t.Errorf("no final progress line on stderr:\n%s", progress.String())
	}
	recs := giftReadCommitted(t, brokers, adm, giftTopic)
	if len(recs) != n {
		t.Fatalf("a read_committed consumer sees %d events, want %d", len(recs), n)
	}
	first := map[string]bool{}
	var importID string
	for _, r := range recs {
		if !r.Attrs.IsTransactional() || r.ProducerID != recs[0].ProducerID || r.ProducerEpoch != recs[0].ProducerEpoch {
			t.Fatalf("record %d@%d is not in the one transaction", r.Partition, r.Offset)
		}
		env, m := giftMemberEvent(t, r)
		if string(r.Key) != "xmas" || m.Action != schemas.MemberAdd || m.ActivityID != "xmas" || env.AppID != "promoflow-admin" {
			t.Fatalf("record %s: %+v", r.Key, m)
		}
		if m.UserID == "user-0007" && (m.Name != "Member 7" || m.Note != `dept 7, floor "1"`) {
			t.Errorf("user-0007 published as %+v", m)
		}
		importID = m.ImportID
		first[env.EventID] = true
	}
	if len(first) != n {
		t.Fatalf("%d distinct event ids, want %d", len(first), n)
	}
	if got := totalOffsets(endOffsets(t, adm, giftTopic)); got != n+1 {
		t.Fatalf("%s ends at %d, want %d records and one commit marker", giftTopic, got, n+1)
	}

	// The same file again: the same import id and event ids, which the
	// processor has already decided.
	if code, out, errOut := giftRun(t, append(args, "--quiet")...); code != 0 || !strings.Contains(out, "import id "+importID) || errOut != "" {
		t.Fatalf("second import exited %d:\n%s%s", code, out, errOut)
	}
	recs = giftReadCommitted(t, brokers, adm, giftTopic)
	if len(recs) != 2*n {
		t.Fatalf("%d events after importing twice, want %d", len(recs), 2*n)
	}
	for _, r := range recs[n:] {
		if env, _ := giftMemberEvent(t, r); !first[env.EventID] {
			t.Fatalf("the second import published a new event id %s", env.EventID)
		}
	}
}

func TestGiftEditAndSendPublish(t *testing.T) {
	clearConfigEnv(t)
	brokers, _ := testenv.KafkaWithTopics(t)
	br := strings.Join(brokers, ",")
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"gift", "edit", "--activity", "xmas", "--user", "u1", "--name", "Ann B.", "--note", "line 1\nline 2", "--brokers", br}, "published gift.member.updated update of u1 in xmas"},
		{[]string{"gift", "--brokers", br, "edit", "xmas", "--user", "u2", "--remove"}, "dlq list --reason member_locked"},
		{[]string{"gift", "send", "--activity", "xmas", "--user", "u1", "--brokers", br}, "gift results --activity xmas --sender u1"},
	}
	for _, s := range steps {
		code, out, errOut := giftRun(t, s.args...)
		if code != 0 || !strings.Contains(out, s.want) {
			t.Fatalf("%q exited %d, want output with %q:\n%s%s", s.args, code, s.want, out, errOut)
		}
	}
	ctx := testenv.Context(t, 20*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(giftTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []string
	for len(got) < len(steps) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records", len(got), len(steps))
		}
		fs.EachRecord(func(r *kgo.Record) {
			env, m := giftMemberEvent(t, r)
			if env.Type == schemas.TypeGiftSendRequested {
				var s schemas.SendRequested
				if err := env.DecodePayload(&s); err != nil {
					t.Fatal(err)
				}
				got = append(got, "send "+s.UserID)
				return
			}
			got = append(got, fmt.Sprintf("%s %s %q %q", m.Action, m.UserID, m.Name, m.Note))
		})
	}
	sort.Strings(got)
	want := []string{`remove u2 "" ""`, "send u1", `update u1 "Ann B." "line 1\nline 2"`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("published %q, want %q", got, want)
	}
}

func TestGiftProgressLine(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{45_000, 100_000, "imported 45,000/100,000 (45%)"},
		{1, 3, "imported 1/3 (33%)"},
		{1_234_567, 1_234_567, "imported 1,234,567/1,234,567 (100%)"},
	} {
		if got := importProgressLine(tc.done, tc.total); got != tc.want {
			t.Errorf("%d/%d: %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", -12345: "-12,345", 100000: "100,000"} {
		if got := giftThousands(n); got != want {
			t.Errorf("giftThousands(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestIntegrationGiftResultsAndMembers writes gift results through the
// MySQL sink into the real MariaDB and reads them back with gift results
// and gift members.
func TestIntegrationGiftResultsAndMembers(t *testing.T) {
	clearConfigEnv(t)
	brokers, _ := testenv.KafkaWithTopics(t)
	name := testenv.Name("gift")
	cfgFile := giftFile(t, "promoflow.yaml", fmt.Sprintf(`kafka:
  brokers: [%s]
mysql:
  dsn: %q
  database_prefix: %q
  databases: 2
  tables_per_database: 2
`, strings.Join(brokers, ","), testenv.MySQLDSN(), name))
	t.Cleanup(func() {
		if db, err := sql.Open("mysql", testenv.MySQLDSN()); err == nil {
			for i := range 2 {
				db.Exec(fmt.Sprintf("DROP DATABASE IF EXISTS `%s_%d`", name, i))
			}
			db.Close()
		}
	})
	cfg, err := loadConfig(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, time.Minute)
	sink, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()

	t0 := time.Date(2026, 12, 24, 9, 0, 0, 0, time.UTC)
	note := "dept 7, \"floor\" 2\nsecond line \x1b[31m"
	type member struct{ user, name, note, status string }
	var events []*schemas.Envelope
	add := func(p schemas.Payload) {
		env, err := schemas.New(fmt.Sprintf("r%d", len(events)), "lottery", t0, p)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, env)
	}
	for i, m := range []member{
		{"alice", "Alice", note, schemas.MemberActive}, {"bob", "Bob", "", schemas.MemberActive},
		{"carol", "Carol", "", schemas.MemberActive}, {"dave", "Dave", "", schemas.MemberActive},
		{"erin", "Erin", "", schemas.MemberRemoved},
	} {
		add(schemas.MemberRecorded{ResultID: schemas.ResultID("gift-member", "xmas", m.user), ActivityID: "xmas", UserID: m.user,
			Name: m.name, Note: m.note, Status: m.status, ImportID: "imp-1", UpdatedAt: t0.Add(time.Duration(i) * time.Second)})
	}
	add(schemas.MemberRecorded{ResultID: schemas.ResultID("gift-member", "other", "zed"), ActivityID: "other", UserID: "zed", Status: schemas.MemberActive, UpdatedAt: t0})
	matches := []schemas.MatchDecided{
		{SenderID: "alice", ReceiverID: "bob", Status: schemas.MatchMatched},
		{SenderID: "bob", ReceiverID: "carol", Status: schemas.MatchMatched},
		{SenderID: "dave", ReceiverID: "alice", Status: schemas.MatchMatched},
		{SenderID: "dave", Status: schemas.MatchRejected, Reason: schemas.RejectAlreadySent},
		{SenderID: "erin", Status: schemas.MatchRejected, Reason: schemas.RejectNotAMember},
	}
	for i := range matches {
		m := &matches[i]
		m.SendEventID = fmt.Sprintf("send-%d", i)
		m.ResultID = schemas.ResultID("gift-match", "app", m.SendEventID)
		m.ActivityID = "xmas"
		m.DecidedAt = t0.Add(time.Duration(i+10) * time.Minute)
		add(*m)
	}
	add(schemas.MatchDecided{ResultID: schemas.ResultID("gift-match", "app", "other-1"), SendEventID: "other-1", ActivityID: "other",
		SenderID: "zed", ReceiverID: "alice", Status: schemas.MatchMatched, DecidedAt: t0})
	if err := sink.WriteBatch(ctx, events); err != nil {
		t.Fatalf("WriteBatch: %v", err)
	}

	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := giftRun(t, append(args, "--config", cfgFile)...)
		if code != 0 {
			t.Fatalf("%q exited %d:\n%s%s", args, code, out, errOut)
		}
		return out
	}
	rows := func(out string) []string {
		var r []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "2026-") {
				f := strings.Fields(l)
				r = append(r, strings.Join(f[1:], " "))
			}
		}
		return r
	}
	for _, tc := range []struct {
		args   []string
		want   []string
		footer string
	}{
		{[]string{"--activity", "xmas"}, []string{"alice bob matched -", "bob carol matched -", "dave alice matched -", "dave - rejected already_sent", "erin - rejected not_a_member"}, "5 sends: 3 matched, 2 rejected"},
		{[]string{"xmas", "--sender", "dave"}, []string{"dave alice matched -", "dave - rejected already_sent"}, "2 sends: 1 matched, 1 rejected"},
		{[]string{"--activity", "xmas", "--receiver", "alice"}, []string{"dave alice matched -"}, "1 send: 1 matched, 0 rejected"},
		{[]string{"--activity", "xmas", "--status", "rejected"}, []string{"dave - rejected already_sent", "erin - rejected not_a_member"}, "2 sends: 0 matched, 2 rejected"},
		{[]string{"--activity", "xmas", "--limit", "2"}, []string{"alice bob matched -", "bob carol matched -"}, "(stopped at --limit 2)"},
		{[]string{"--activity", "nobody"}, nil, "no gift sends of nobody match"},
	} {
		out := run(append([]string{"gift", "results"}, tc.args...)...)
		if got := rows(out); !reflect.DeepEqual(got, tc.want) || !strings.Contains(out, tc.footer) {
			t.Errorf("gift results %q: rows %q, want %q and footer %q:\n%s", tc.args, got, tc.want, tc.footer, out)
		}
	}
	out := run("gift", "results", "--activity", "xmas")
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[0], "DECIDED AT") || strings.Index(lines[0], "SENDER") != strings.Index(lines[1], "alice") ||
		strings.Index(lines[0], "STATUS") != strings.Index(lines[1], "matched") {
		t.Errorf("table not aligned:\n%s", out)
	}

	out = run("gift", "results", "--activity", "xmas", "--json")
	var got []schemas.MatchDecided
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m schemas.MatchDecided
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		got = append(got, m)
	}
	if !reflect.DeepEqual(got, matches) {
		t.Errorf("--json:\n got %+v\nwant %+v", got, matches)
	}

	memberRows := func(out string) []string {
		var r []string
		for _, l := range strings.Split(out, "\n")[1:] {
			if f := strings.Fields(l); len(f) >= 3 && (f[2] == schemas.MemberActive || f[2] == schemas.MemberRemoved) {
				r = append(r, f[0]+" "+f[2])
			}
		}
		return r
	}
	for _, tc := range []struct {
		args   []string
		want   []string
		footer string
	}{
		{[]string{"--activity", "xmas"}, []string{"alice active", "bob active", "carol active", "dave active", "erin removed"}, "\n5 members\n"},
		{[]string{"xmas", "--pending"}, []string{"carol active"}, "1 member has not sent a gift yet"},
		{[]string{"--activity", "xmas", "--status", "removed"}, []string{"erin removed"}, "1 member\n"},
		{[]string{"--activity", "xmas", "--user", "bob"}, []string{"bob active"}, "1 member\n"},
		{[]string{"--activity", "xmas", "--limit", "1"}, []string{"alice active"}, "(stopped at --limit 1)"},
		{[]string{"--activity", "other"}, []string{"zed active"}, "1 member\n"},
		{[]string{"--activity", "other", "--pending"}, nil, "no members of other match (--pending"},
	} {
		out := run(append([]string{"gift", "members"}, tc.args...)...)
		if got := memberRows(out); !reflect.DeepEqual(got, tc.want) || !strings.Contains(out, tc.footer) {
			t.Errorf("gift members %q: rows %q, want %q and footer %q:\n%s", tc.args, got, tc.want, tc.footer, out)
		}
	}
	out = run("gift", "members", "--activity", "xmas", "--user", "alice")
	if !strings.Contains(out, `dept 7, "floor" 2\nsecond line \u001b[31m`) || strings.Contains(out, "\x1b") {
		t.Errorf("the note is not escaped in the table:\n%s", out)
	}
	out = run("gift", "members", "--activity", "xmas", "--user", "alice", "--json")
	var rec schemas.MemberRecorded
	if err := json.Unmarshal([]byte(out), &rec); err != nil || rec.Note != note || rec.Name != "Alice" || rec.ImportID != "imp-1" {
		t.Errorf("--json: %v %+v", err, rec)
	}

	// An edit of the name alone keeps the stored note.
	out = run("gift", "edit", "--activity", "xmas", "--user", "alice", "--name", "Alice B.")
	if !strings.Contains(out, "keeping the stored note") {
		t.Errorf("edit output:\n%s", out)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(giftTopic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var edits []*kgo.Record
	for len(edits) == 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the edit was not published")
		}
		edits = append(edits, fs.Records()...)
	}
	if _, m := giftMemberEvent(t, edits[0]); m.Action != schemas.MemberUpdate || m.Name != "Alice B." || m.Note != note {
		t.Errorf("edit published %+v, want the new name and the stored note", m)
	}
}
