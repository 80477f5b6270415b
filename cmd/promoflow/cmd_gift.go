package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

const giftHelp = `Gift exchange ("Christmas gift matching"): an activity of kind gift_exchange
(define it with promoflow lottery define). The activity is --activity ID or the
first argument after the action.

  import   reads a member list (--file, - for stdin) and checks every row: the
           user id (the schema's pattern), name at most 200 characters, note at
           most 500, no user id twice, the column count, well-formed JSON.
           An import is all or nothing. If any row is rejected, it prints each
           one (line, user id, reason) and the counts, publishes NOTHING and
           exits with status 1. Otherwise it publishes every member
           (gift.member.updated, action add) in ONE Kafka transaction, with a
           progress line on stderr, and prints a summary; the processors read
           committed records only, so they see the whole list or none of it,
           and an error or Ctrl-C aborts the transaction. Two imports of one
           activity at the same time fence each other: the older one fails
           and publishes nothing. --dry-run only checks and reports.
           Event ids derive from the import id and the user id, and the default
           --import-id from the activity and the list, so importing the same
           file again changes nothing (re-add a removed member with gift edit).
           Formats (--format, or inferred from the content): csv with columns
           user_id,name,note (name and note optional; a first row starting with
           user_id is a header, which may order the columns), json (an array of
           objects with user_id, name, note) or jsonl (one object per line).
  edit     publishes one change of --user: --name and/or --note (action update;
           creates the member if needed), or --remove. Name and note are stored
           together: when only one of them is given, the other is kept from the
           system of record (MySQL). A removal of a member who has already sent
           or received a gift is refused by the processor and dead-lettered with
           reason member_locked (and one that would leave the last member with
           nobody to give to, with would_strand): see them with
           promoflow dlq list --reason member_locked,would_strand
  send     publishes one gift send of --user, what an app's "send gift" button
           publishes (for demos and tests). The match shows in gift results.
  results  lists the gift sends stored in MySQL (gift.match.decided), oldest
           first: sender, receiver, matched or rejected with the reason.
           Filters: --sender, --receiver, --status matched|rejected, --limit.
  members  lists the members stored in MySQL (gift.member.recorded). --user
           shows one; --pending lists the active members who have not sent a
           gift yet (have not drawn), the ones to remind; --status
           active|removed; --limit.

results and members print an aligned table, or with --json one JSON object per
line.

Examples:
  promoflow gift import --activity xmas-gifts --file staff.csv
  promoflow gift import xmas-gifts --file staff.jsonl --dry-run
  promoflow gift import --activity xmas-gifts --file - --format json < staff.json
  promoflow gift edit --activity xmas-gifts --user u17 --name "Ann B."
  promoflow gift edit --activity xmas-gifts --user u17 --remove
  promoflow gift send --activity xmas-gifts --user u17
  promoflow gift results --activity xmas-gifts --sender u17
  promoflow gift results --activity xmas-gifts --status rejected --json
  promoflow gift members --activity xmas-gifts --pending
  promoflow gift members --activity xmas-gifts --user u17 --json`

func init() {
	register(&command{
		name:    "gift",
		summary: "gift exchange: import members (all or nothing), edit one, send, list results and members",
		usage:   "import|edit|send|results|members [ACTIVITY] [flags]   (flags may come before or after the action)",
		help:    giftHelp,
		flags:   giftFlags,
	})
}

// giftActionFlags lists the flags each action takes besides --config,
// --brokers and --activity.
var giftActionFlags = map[string][]string{
	"import":  {"app", "file", "format", "import-id", "dry-run", "quiet"},
	"edit":    {"app", "user", "name", "note", "remove"},
	"send":    {"app", "user"},
	"results": {"sender", "receiver", "status", "limit", "json"},
	"members": {"user", "status", "pending", "limit", "json"},
}

// giftArgs are the parsed flags of the gift command.
type giftArgs struct {
	cfgPath, brokers, activity, app string
	file, format, importID          string
	dryRun, quiet                   bool
	user, name, note                string
	remove                          bool
	sender, receiver, status        string
	limit                           int
	pending, json                   bool
	set                             map[string]bool
}

func giftFlags(fs *flag.FlagSet) func(context.Context, []string) error {
	var a giftArgs
	fs.StringVar(&a.cfgPath, "config", "", "YAML configuration file")
	fs.StringVar(&a.brokers, "brokers", "", "comma-separated brokers (overrides config)")
	fs.StringVar(&a.activity, "activity", "", "the gift-exchange activity id")
	fs.StringVar(&a.app, "app", "promoflow-admin", "import, edit, send: app_id the events are published under")
	fs.StringVar(&a.file, "file", "", "import: the member list, - for stdin")
	fs.StringVar(&a.format, "format", "", "import: csv, json or jsonl (default: inferred from the content)")
	fs.StringVar(&a.importID, "import-id", "", "import: names the import in every member's record (at most 64 characters; default derived from the activity and the list)")
	fs.BoolVar(&a.dryRun, "dry-run", false, "import: check and report; publish nothing")
	fs.BoolVar(&a.quiet, "quiet", false, "import: no progress line")
	fs.StringVar(&a.user, "user", "", "edit, send: the member; members: only this member")
	fs.StringVar(&a.name, "name", "", "edit: the member's new name")
	fs.StringVar(&a.note, "note", "", "edit: the member's new note (free text for the organisers)")
	fs.BoolVar(&a.remove, "remove", false, "edit: remove the member (refused once they sent or received)")
	fs.StringVar(&a.sender, "sender", "", "results: only sends by this user")
	fs.StringVar(&a.receiver, "receiver", "", "results: only sends to this user")
	fs.StringVar(&a.status, "status", "", "results: matched or rejected; members: active or removed")
	fs.IntVar(&a.limit, "limit", 0, "results, members: print at most N (0: all)")
	fs.BoolVar(&a.pending, "pending", false, "members: only active members who have not sent a gift yet")
	fs.BoolVar(&a.json, "json", false, "results, members: one JSON object per line")
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("want an action: import, edit, send, results or members")
		}
		action := args[0]
		allowed, ok := giftActionFlags[action]
		if !ok {
			return usagef("unknown gift action %q: want import, edit, send, results or members", action)
		}
		if len(args) > 2 || len(args) == 2 && a.activity != "" {
			return usagef("unexpected argument %q", args[len(args)-1])
		}
		if len(args) == 2 {
			a.activity = args[1]
		}
		a.set = map[string]bool{}
		fs.Visit(func(f *flag.Flag) { a.set[f.Name] = true })
		for name := range a.set {
			switch name {
			case "config", "brokers", "activity":
				continue
			}
			if !slices.Contains(allowed, name) {
				return usagef("--%s does not apply to gift %s", name, action)
			}
		}
		if a.activity == "" {
			return usagef("gift %s needs an activity (--activity or an argument)", action)
		}
		if a.limit < 0 {
			return usagef("--limit %d: want 0 or more", a.limit)
		}
		switch action {
		case "import":
			return giftImport(ctx, &a)
		case "edit":
			return giftEdit(ctx, &a)
		case "send":
			return giftSend(ctx, &a)
		case "results":
			return giftResults(ctx, &a)
		default:
			return giftMembers(ctx, &a)
		}
	}
}

// giftCheck validates an event of the activity, import and app as the
// processors will, so that a bad --activity, --import-id or --app is a
// usage error before anything is read or published.
func giftCheck(app string, p schemas.Payload) error {
	env, err := schemas.New("check", app, time.Now(), p)
	if err == nil {
		_, err = schemas.Validate(env)
	}
	var ie *schemas.InvalidError
	if errors.As(err, &ie) {
		detail := ie.Detail
		if _, field, ok := strings.Cut(detail, "payload."); ok {
			detail = field
		}
		return usagef("%s", detail)
	}
	return err
}

// giftStderr receives the import's progress lines (a buffer in tests).
var giftStderr io.Writer = os.Stderr

// giftMaxReported bounds the rejected rows import prints; the counts cover
// all of them.
const giftMaxReported = 1000

func giftImport(ctx context.Context, a *giftArgs) error {
	switch a.format {
	case "", producers.FormatCSV, producers.FormatJSON, producers.FormatJSONL:
	default:
		return usagef("--format %q: want csv, json or jsonl", a.format)
	}
	if a.file == "" {
		return usagef("gift import needs --file (- for stdin)")
	}
	check := schemas.MemberUpdated{ActivityID: a.activity, UserID: "check", Action: schemas.MemberAdd, ImportID: a.importID}
	if err := giftCheck(a.app, check); err != nil {
		return err
	}
	cfg, err := loadConfigBrokers(a.cfgPath, a.brokers)
	if err != nil {
		return err
	}
	in := io.Reader(os.Stdin)
	name := "stdin"
	if a.file != "-" {
		f, err := os.Open(a.file)
		if err != nil {
			return err
		}
		defer f.Close()
		in, name = f, a.file
	}
	out := cmdStdout
	members, rejected, err := producers.ParseMembers(in, a.format)
	if err != nil {
		return fmt.Errorf("%s: %w; nothing was published", name, err)
	}
	rows := len(members) + len(rejected)
	if len(rejected) > 0 {
		writeRejectedRows(out, name, rejected)
		fmt.Fprintf(out, "\n%s rows read: %s valid, %s rejected. Nothing was published: an import is all or nothing; fix the rows above and import again.\n",
			giftThousands(rows), giftThousands(len(members)), giftThousands(len(rejected)))
		return fmt.Errorf("%s of %s rows rejected; nothing was published", giftThousands(len(rejected)), giftThousands(rows))
	}
	if len(members) == 0 {
		return fmt.Errorf("%s holds no members; nothing was published", name)
	}
	importID := a.importID
	if importID == "" {
		importID = defaultImportID(a.activity, members)
	}
	if a.dryRun {
		fmt.Fprintf(out, "dry run: %s members of %s are valid (import id %s); nothing was published\n", giftThousands(len(members)), a.activity, importID)
		return nil
	}

	start := time.Now()
	var progress func(done, total int)
	endProgress := func() {}
	if !a.quiet {
		progress, endProgress = newImportProgress(giftStderr)
	}
	err = producers.ImportMembers(ctx, producers.Config{Brokers: cfg.Kafka.Brokers, AppID: a.app}, a.activity, importID, members, progress,
		producers.WithClientOpts(cfg.kafkaOpts()...))
	endProgress()
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(out, "imported %s members into %s in one transaction\nimport id %s\nelapsed   %s (%s members/s)\n",
		giftThousands(len(members)), a.activity, importID, elapsed.Round(time.Millisecond), giftThousands(int(float64(len(members))/max(elapsed.Seconds(), 1e-3))))
	return nil
}

// writeRejectedRows prints the rejected rows, escaped for the terminal:
// the file is untrusted.
func writeRejectedRows(out io.Writer, name string, rejected []producers.RowError) {
	fmt.Fprintf(out, "rejected rows of %s:\n", dlqEscape([]byte(name), 200, false))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "LINE\tUSER ID\tREASON")
	for i, r := range rejected {
		if i == giftMaxReported {
			fmt.Fprintf(w, "…\t\t%s more rejected rows not shown\n", giftThousands(len(rejected)-i))
			break
		}
		user := "-"
		if r.UserID != "" {
			user = dlqEscape([]byte(r.UserID), 40, false)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\n", r.Line, user, dlqEscape([]byte(r.Reason), 200, false))
	}
	w.Flush()
}

// defaultImportID derives the import id from the activity and the list, so
// that importing the same file again publishes the same event ids.
func defaultImportID(activity string, members []producers.Member) string {
	h := sha256.New()
	h.Write([]byte(activity))
	for _, m := range members {
		h.Write([]byte{0})
		h.Write([]byte(m.UserID))
		h.Write([]byte{0})
		h.Write([]byte(m.Name))
		h.Write([]byte{0})
		h.Write([]byte(m.Note))
	}
	return "import-" + hex.EncodeToString(h.Sum(nil)[:8])
}

// newImportProgress returns a progress function printing
// "imported 45,000/100,000 (45%)": rewritten in place on a terminal,
// otherwise one line per second at most, and always the last one; and a
// function that ends a line left open on the terminal.
func newImportProgress(w io.Writer) (progress func(done, total int), end func()) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	var mu sync.Mutex
	var last time.Time
	open := false
	progress = func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		line := importProgressLine(done, total)
		switch {
		case done == total:
			if tty {
				line = "\r" + line
			}
			fmt.Fprintf(w, "%s, committing\n", line)
			open = false
		case tty:
			fmt.Fprintf(w, "\r%s", line)
			open = true
		case time.Since(last) >= time.Second:
			fmt.Fprintln(w, line)
			last = time.Now()
		}
	}
	end = func() {
		mu.Lock()
		defer mu.Unlock()
		if open {
			fmt.Fprintln(w)
		}
	}
	return progress, end
}

func importProgressLine(done, total int) string {
	pct := 100
	if total > 0 {
		pct = done * 100 / total
	}
	return fmt.Sprintf("imported %s/%s (%d%%)", giftThousands(done), giftThousands(total), pct)
}

// thousands formats n with comma thousands separators: 45,000.
func giftThousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// giftCount is "1 member" or "1,000 members".
func giftCount(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return giftThousands(n) + " " + many
}

// giftEventID is a fresh event id for one change published from the CLI.
func giftEventID(kind string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("cli-gift-%s-%d-%s", kind, time.Now().UnixNano(), hex.EncodeToString(b))
}

func giftEdit(ctx context.Context, a *giftArgs) error {
	if a.user == "" {
		return usagef("gift edit needs --user")
	}
	hasName, hasNote := a.set["name"], a.set["note"]
	m := schemas.MemberUpdated{ActivityID: a.activity, UserID: a.user, Action: schemas.MemberUpdate, Name: a.name, Note: a.note}
	switch {
	case a.remove && (hasName || hasNote):
		return usagef("--remove cannot be combined with --name or --note")
	case a.remove:
		m = schemas.MemberUpdated{ActivityID: a.activity, UserID: a.user, Action: schemas.MemberRemove}
	case !hasName && !hasNote:
		return usagef("gift edit needs --name, --note or --remove")
	}
	if err := giftCheck(a.app, m); err != nil {
		return err
	}
	cfg, err := loadConfigBrokers(a.cfgPath, a.brokers)
	if err != nil {
		return err
	}
	out := cmdStdout
	if m.Action == schemas.MemberUpdate && hasName != hasNote {
		// An update replaces both: keep the one not given.
		kept, err := storedMember(ctx, cfg, a.activity, a.user)
		if err != nil {
			return fmt.Errorf("reading %s's stored record to keep the field not given: %w (pass both --name and --note to edit without reading MySQL)", a.user, err)
		}
		switch {
		case kept == nil:
		case hasName:
			m.Note = kept.Note
			fmt.Fprintf(out, "keeping the stored note %q\n", dlqEscape([]byte(kept.Note), 80, true))
		default:
			m.Name = kept.Name
			fmt.Fprintf(out, "keeping the stored name %q\n", dlqEscape([]byte(kept.Name), 80, true))
		}
	}
	return giftPublish(ctx, cfg, a.app, "edit", func(p *producers.Producer, id string) error {
		if err := p.UpdateGiftMember(ctx, id, m); err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s %s of %s in %s (event %s)\n", schemas.TypeGiftMemberUpdated, m.Action, a.user, a.activity, id)
		if m.Action == schemas.MemberRemove {
			fmt.Fprintf(out, "a removal of a member who has sent or received is refused: check with promoflow gift members --activity %s --user %s, or promoflow dlq list --reason member_locked,would_strand\n", a.activity, a.user)
		}
		return nil
	})
}

// storedMember reads one member's record from MySQL, or nil when none is
// stored.
func storedMember(ctx context.Context, cfg *Config, activity, user string) (*schemas.MemberRecorded, error) {
	s, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	ms, err := s.GiftMembers(ctx, sinks.MemberFilter{ActivityID: activity, UserID: user, Limit: 1})
	if err != nil || len(ms) == 0 {
		return nil, err
	}
	return &ms[0], nil
}

func giftSend(ctx context.Context, a *giftArgs) error {
	if a.user == "" {
		return usagef("gift send needs --user")
	}
	if err := giftCheck(a.app, schemas.SendRequested{ActivityID: a.activity, UserID: a.user}); err != nil {
		return err
	}
	cfg, err := loadConfigBrokers(a.cfgPath, a.brokers)
	if err != nil {
		return err
	}
	out := cmdStdout
	return giftPublish(ctx, cfg, a.app, "send", func(p *producers.Producer, id string) error {
		if err := p.SendGift(ctx, id, a.activity, a.user); err != nil {
			return err
		}
		fmt.Fprintf(out, "published %s of %s in %s (event %s)\nsee the match with promoflow gift results --activity %s --sender %s\n",
			schemas.TypeGiftSendRequested, a.user, a.activity, id, a.activity, a.user)
		return nil
	})
}

func giftPublish(ctx context.Context, cfg *Config, app, kind string, publish func(*producers.Producer, string) error) error {
	p, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: app}, producers.WithClientOpts(cfg.kafkaOpts()...))
	if err != nil {
		return err
	}
	defer p.Close()
	return publish(p, giftEventID(kind))
}

// giftTime formats a stored time for the tables.
func giftTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func giftResults(ctx context.Context, a *giftArgs) error {
	switch a.status {
	case "", schemas.MatchMatched, schemas.MatchRejected:
	default:
		return usagef("--status %q: want matched or rejected", a.status)
	}
	cfg, err := loadConfig(a.cfgPath)
	if err != nil {
		return err
	}
	s, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		return fmt.Errorf("opening the system of record: %w", err)
	}
	defer s.Close()
	return writeGiftResults(ctx, s, sinks.GiftFilter{ActivityID: a.activity, Sender: a.sender, Receiver: a.receiver, Status: a.status, Limit: a.limit}, a.json, cmdStdout)
}

func writeGiftResults(ctx context.Context, r sinks.LotteryReader, f sinks.GiftFilter, asJSON bool, out io.Writer) error {
	matches, err := r.GiftMatches(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		for _, m := range matches {
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		return nil
	}
	if len(matches) == 0 {
		_, err := fmt.Fprintf(out, "no gift sends of %s match\n", f.ActivityID)
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DECIDED AT\tSENDER\tRECEIVER\tSTATUS\tREASON")
	matched := 0
	for _, m := range matches {
		if m.Status == schemas.MatchMatched {
			matched++
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", giftTime(m.DecidedAt), giftCell(m.SenderID, 40), giftCell(m.ReceiverID, 40), giftCell(m.Status, 10), giftCell(m.Reason, 24))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s: %s matched, %s rejected", giftCount(len(matches), "send", "sends"), giftThousands(matched), giftThousands(len(matches)-matched))
	if f.Limit > 0 && len(matches) == f.Limit {
		fmt.Fprintf(out, " (stopped at --limit %d)", f.Limit)
	}
	_, err = fmt.Fprintln(out)
	return err
}

// giftCell escapes a stored value for a table cell; "-" stands for empty.
func giftCell(s string, limit int) string {
	if s == "" {
		return "-"
	}
	return dlqEscape([]byte(s), limit, false)
}

func giftMembers(ctx context.Context, a *giftArgs) error {
	switch a.status {
	case "", schemas.MemberActive, schemas.MemberRemoved:
	default:
		return usagef("--status %q: want active or removed", a.status)
	}
	if a.pending && a.status == schemas.MemberRemoved {
		return usagef("--pending lists active members; it cannot be combined with --status removed")
	}
	cfg, err := loadConfig(a.cfgPath)
	if err != nil {
		return err
	}
	s, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		return fmt.Errorf("opening the system of record: %w", err)
	}
	defer s.Close()
	return writeGiftMembers(ctx, s, sinks.MemberFilter{ActivityID: a.activity, UserID: a.user, Status: a.status, Pending: a.pending, Limit: a.limit}, a.json, cmdStdout)
}

func writeGiftMembers(ctx context.Context, r sinks.LotteryReader, f sinks.MemberFilter, asJSON bool, out io.Writer) error {
	members, err := r.GiftMembers(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(out)
		for _, m := range members {
			if err := enc.Encode(m); err != nil {
				return err
			}
		}
		return nil
	}
	if len(members) == 0 {
		msg := fmt.Sprintf("no members of %s match", f.ActivityID)
		if f.Pending {
			msg += " (--pending: active members who have not sent a gift yet)"
		}
		_, err := fmt.Fprintln(out, msg)
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "USER\tNAME\tSTATUS\tIMPORT\tUPDATED AT\tNOTE")
	for _, m := range members {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", giftCell(m.UserID, 40), giftCell(m.Name, 40), giftCell(m.Status, 10),
			giftCell(m.ImportID, 30), giftTime(m.UpdatedAt), giftCell(m.Note, 60))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%s", giftCount(len(members), "member", "members"))
	if f.Pending {
		fmt.Fprint(out, map[bool]string{true: " has", false: " have"}[len(members) == 1]+" not sent a gift yet")
	}
	if f.Limit > 0 && len(members) == f.Limit {
		fmt.Fprintf(out, " (stopped at --limit %d)", f.Limit)
	}
	_, err = fmt.Fprintln(out)
	return err
}
