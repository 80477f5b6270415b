package producers

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/schemas"
)

// Member list formats ParseMembers reads.
const (
	// FormatCSV is comma-separated user_id,name,note, name and note
	// optional, with or without a header row.
	FormatCSV = "csv"
	// FormatJSON is one JSON array of objects with the fields user_id,
	// name and note.
	FormatJSON = "json"
	// FormatJSONL is one such JSON object per line.
	FormatJSONL = "jsonl"
)

// DefaultImportTransactionTimeout is how long Kafka lets an import's
// transaction stay open before aborting it, unless overridden with
// WithClientOpts(kgo.TransactionTimeout(...)). While it is open,
// read_committed consumers of the activity's partition wait at its start, so
// an importer that dies mid-way holds them up for at most this long.
const DefaultImportTransactionTimeout = time.Minute

// importEndTimeout bounds the commit or abort of an import, which runs even
// after the caller's context ends: leaving a transaction open would hold up
// every read_committed consumer of the partition.
const importEndTimeout = 30 * time.Second

// ErrImportAborted is wrapped by ImportMembers when it aborted its
// transaction (a record failed, the context ended, another import fenced it):
// no member of the import is visible to read_committed consumers.
var ErrImportAborted = errors.New("import aborted: nothing was published")

// ErrImportFenced is wrapped (with ErrImportAborted) by ImportMembers when
// another import of the same activity started while this one ran. Both use
// the activity's transactional id, so the newer one fences the older.
var ErrImportFenced = errors.New("fenced by a newer import of the same activity")

// Member is one row of a gift-exchange member list.
type Member struct {
	UserID string `json:"user_id"`
	Name   string `json:"name,omitempty"`
	Note   string `json:"note,omitempty"`
}

// RowError is a row of a member list that ParseMembers rejected.
type RowError struct {
	// Line is the 1-based line of the input where the row starts.
	Line int `json:"line"`
	// UserID is the row's user id as written (trimmed, invalid UTF-8
	// replaced by U+FFFD), when it has one.
	UserID string `json:"user_id,omitempty"`
	// Reason says what is wrong, for people.
	Reason string `json:"reason"`
}

// Error formats the row error as `line N: user "U": reason`.
func (e RowError) Error() string {
	if e.UserID == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d: user %q: %s", e.Line, e.UserID, e.Reason)
}

// memberBOM starts files saved by spreadsheet programs.
var memberBOM = []byte{0xEF, 0xBB, 0xBF}

// ParseMembers reads a gift-exchange member list in format (FormatCSV,
// FormatJSON or FormatJSONL; "" infers it from the content: a list starting
// with [ is JSON, with { JSON Lines, anything else CSV) and returns the
// members it accepts, in input order, and the rows it rejects, in line order.
//
// CSV columns are user_id, name and note, the last two optional. A first row
// whose first field is user_id is a header; it may then name the columns in
// any order (user_id first) and every row must have as many. JSON objects
// have the fields user_id (a string, or an integer written as a number),
// name and note, and no others. Blank lines (and CSV rows of blank fields)
// are skipped, values are trimmed of surrounding white space, and a leading
// UTF-8 byte order mark is dropped.
//
// A row is rejected when it is not well-formed (wrong column count,
// malformed JSON, invalid UTF-8), when its user id repeats an earlier row's
// (the reason names the first line), or when the gift.member.updated event
// it becomes fails schemas.Validate: the rules are exactly the schema's
// (user id pattern, name at most 200 characters, note at most 500).
//
// The error is for a list that cannot be read at all: an I/O error, an
// unknown format, a JSON list that is not an array or breaks off, a CSV
// header naming unknown columns. Rows are then not reported.
func ParseMembers(r io.Reader, format string) ([]Member, []RowError, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("reading members: %w", err)
	}
	data = bytes.TrimPrefix(data, memberBOM)
	if format == "" {
		format = sniffMemberFormat(data)
	}
	p := newMemberParser()
	switch format {
	case FormatCSV:
		err = p.csv(data)
	case FormatJSON:
		err = p.jsonArray(data)
	case FormatJSONL:
		p.jsonLines(data)
	default:
		return nil, nil, fmt.Errorf("reading members: unknown format %q (want %s, %s or %s)", format, FormatCSV, FormatJSON, FormatJSONL)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading members as %s: %w", format, err)
	}
	return p.members, p.rejected, nil
}

// sniffMemberFormat infers the format of a member list from its first
// non-blank byte.
func sniffMemberFormat(data []byte) string {
	t := bytes.TrimLeft(data, " \t\r\n")
	switch {
	case len(t) > 0 && t[0] == '[':
		return FormatJSON
	case len(t) > 0 && t[0] == '{':
		return FormatJSONL
	}
	return FormatCSV
}

// Placeholders the rows are validated with: a member's event is the same
// whatever the activity, import and app, as long as those are valid, and
// ImportMembers checks them before it publishes.
const (
	memberCheckActivity = "check"
	memberCheckApp      = "check"
	memberCheckEventID  = "check"
)

type memberParser struct {
	members  []Member
	rejected []RowError
	seen     map[string]int // user id -> first line
	now      time.Time
}

func newMemberParser() *memberParser {
	return &memberParser{seen: map[string]int{}, now: time.Now()}
}

func (p *memberParser) reject(line int, userID, reason string) {
	p.rejected = append(p.rejected, RowError{Line: line, UserID: userID, Reason: reason})
}

// row checks one parsed row and keeps it or rejects it.
func (p *memberParser) row(line int, m Member) {
	m = Member{UserID: strings.TrimSpace(m.UserID), Name: strings.TrimSpace(m.Name), Note: strings.TrimSpace(m.Note)}
	for _, f := range []struct{ name, v string }{{"user_id", m.UserID}, {"name", m.Name}, {"note", m.Note}} {
		if !utf8.ValidString(f.v) {
			// Encoding would silently replace the bytes; say so instead.
			p.reject(line, strings.ToValidUTF8(m.UserID, "\uFFFD"), f.name+": invalid UTF-8")
			return
		}
	}
	if m.UserID != "" {
		if first, ok := p.seen[m.UserID]; ok {
			p.reject(line, m.UserID, fmt.Sprintf("user id repeated: first on line %d", first))
			return
		}
		p.seen[m.UserID] = line
	}
	if err := checkMember(m, p.now); err != nil {
		p.reject(line, m.UserID, memberReason(m, err))
		return
	}
	p.members = append(p.members, m)
}

// checkMember validates the gift.member.updated event m becomes.
func checkMember(m Member, now time.Time) error {
	env, err := schemas.New(memberCheckEventID, memberCheckApp, now, memberEvent(memberCheckActivity, "", m))
	if err != nil {
		return err
	}
	_, err = schemas.Validate(env)
	return err
}

func memberEvent(activityID, importID string, m Member) schemas.MemberUpdated {
	return schemas.MemberUpdated{
		ActivityID: activityID, UserID: m.UserID, Action: schemas.MemberAdd,
		Name: m.Name, Note: m.Note, ImportID: importID,
	}
}

// memberReason turns a validation error into a row's reason: the schema's
// words about the payload field, without the event's type.
func memberReason(m Member, err error) string {
	if m.UserID == "" {
		return "user_id is empty"
	}
	var ie *schemas.InvalidError
	if !errors.As(err, &ie) {
		return err.Error()
	}
	if _, field, ok := strings.Cut(ie.Detail, "payload."); ok {
		return field
	}
	return ie.Detail
}

// csv reads comma-separated rows. A malformed row (a stray quote) is
// rejected and reading goes on at the next line.
func (p *memberParser) csv(data []byte) error {
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	// cols maps a row's fields to user_id, name and note; without a
	// header, a row has one to three fields in that order.
	var cols []string
	first := true
	for {
		before := cr.InputOffset()
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var perr *csv.ParseError
		if errors.As(err, &perr) {
			if cr.InputOffset() == before {
				return err // no progress: cannot go on
			}
			p.reject(perr.StartLine, "", "malformed CSV: "+perr.Err.Error())
			first = false
			continue
		}
		if err != nil {
			return err
		}
		if blankCSVRecord(rec) {
			continue // "  " or ",,": the blank rows spreadsheets leave
		}
		line, _ := cr.FieldPos(0)
		if first {
			first = false
			if strings.EqualFold(strings.TrimSpace(rec[0]), "user_id") {
				if cols, err = memberCSVHeader(rec); err != nil {
					return fmt.Errorf("line %d: %w", line, err)
				}
				continue
			}
		}
		var m Member
		switch {
		case cols != nil && len(rec) != len(cols):
			p.reject(line, memberCSVUserID(rec, cols), fmt.Sprintf("%d columns, the header has %d", len(rec), len(cols)))
			continue
		case cols == nil && len(rec) > 3:
			p.reject(line, memberCSVUserID(rec, nil), fmt.Sprintf("%d columns, want at most 3 (user_id,name,note)", len(rec)))
			continue
		}
		for i, v := range rec {
			switch memberCSVColumn(cols, i) {
			case "user_id":
				m.UserID = v
			case "name":
				m.Name = v
			case "note":
				m.Note = v
			}
		}
		p.row(line, m)
	}
}

func blankCSVRecord(rec []string) bool {
	for _, v := range rec {
		if strings.TrimSpace(v) != "" {
			return false
		}
	}
	return true
}

var memberColumns = []string{"user_id", "name", "note"}

// memberCSVColumn names field i of a row.
func memberCSVColumn(cols []string, i int) string {
	if cols == nil {
		return memberColumns[i]
	}
	return cols[i]
}

// memberCSVUserID is the user id of a row rejected for its shape, for the report.
func memberCSVUserID(rec []string, cols []string) string {
	for i := range rec {
		if (cols == nil && i == 0) || (cols != nil && i < len(cols) && cols[i] == "user_id") {
			return strings.ToValidUTF8(strings.TrimSpace(rec[i]), "\uFFFD")
		}
	}
	return ""
}

func memberCSVHeader(rec []string) ([]string, error) {
	cols := make([]string, len(rec))
	seen := map[string]bool{}
	for i, h := range rec {
		c := strings.ToLower(strings.TrimSpace(h))
		switch {
		case c != "user_id" && c != "name" && c != "note":
			return nil, fmt.Errorf("header: unknown column %q (the columns are user_id, name and note)", strings.ToValidUTF8(h, "\uFFFD"))
		case seen[c]:
			return nil, fmt.Errorf("header: column %s twice", c)
		}
		seen[c] = true
		cols[i] = c
	}
	return cols, nil
}

// jsonArray reads one JSON array of member objects. An element that is not
// a member object is rejected; the array itself must be well-formed.
func (p *memberParser) jsonArray(data []byte) error {
	lines := memberLineCounter{data: data, line: 1}
	dec := json.NewDecoder(bytes.NewReader(data))
	syntax := func(err error) error {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("line %d: %w", lines.at(int(se.Offset)), err)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return errors.New("the array is not closed")
		}
		return err
	}
	tok, err := dec.Token()
	if err != nil {
		return syntax(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return errors.New("want an array of objects with user_id, name and note")
	}
	for dec.More() {
		start := skipJSONSeparators(data, int(dec.InputOffset()))
		line := lines.at(start)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return syntax(err)
		}
		p.jsonRow(line, raw)
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("line %d: data after the array", lines.at(skipJSONSeparators(data, int(dec.InputOffset()))))
	}
	return nil
}

// skipJSONSeparators returns the offset of the first byte at or after off that
// is neither white space nor a comma: where the next array element starts.
func skipJSONSeparators(data []byte, off int) int {
	for off < len(data) {
		switch data[off] {
		case ' ', '\t', '\r', '\n', ',':
			off++
			continue
		}
		break
	}
	return off
}

// memberLineCounter maps increasing byte offsets to 1-based line numbers.
type memberLineCounter struct {
	data []byte
	off  int
	line int
}

func (c *memberLineCounter) at(off int) int {
	off = min(off, len(c.data))
	if off < c.off { // not increasing: count again from the start
		c.off, c.line = 0, 1
	}
	c.line += bytes.Count(c.data[c.off:off], []byte{'\n'})
	c.off = off
	return c.line
}

// jsonLines reads one member object per line.
func (p *memberParser) jsonLines(data []byte) {
	for n := 1; len(data) > 0; n++ {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		data = rest
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !utf8.Valid(line) {
			p.reject(n, "", "invalid UTF-8")
			continue
		}
		if !json.Valid(line) {
			p.reject(n, "", "malformed JSON")
			continue
		}
		p.jsonRow(n, line)
	}
}

// memberJSON is a member object; unknown fields are refused.
type memberJSON struct {
	UserID memberJSONID `json:"user_id"`
	Name   string       `json:"name"`
	Note   string       `json:"note"`
}

// memberJSONID is a user id written as a string or, as exports of numeric ids
// often are, as an integer.
type memberJSONID string

func (id *memberJSONID) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] != '"' && b[0] != 'n' { // null leaves it empty
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil || strings.ContainsAny(string(n), ".eE+-") {
			return fmt.Errorf("user_id: want a string or an integer, got %s", memberTruncate(string(b), 40))
		}
		*id = memberJSONID(n)
		return nil
	}
	var s *string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("user_id: want a string or an integer, got %s", memberTruncate(string(b), 40))
	}
	if s != nil {
		*id = memberJSONID(*s)
	}
	return nil
}

// jsonRow decodes one valid JSON value as a member.
func (p *memberParser) jsonRow(line int, raw []byte) {
	if !utf8.Valid(raw) {
		p.reject(line, "", "invalid UTF-8")
		return
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		p.reject(line, "", "want an object with user_id, name and note")
		return
	}
	var m memberJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		var uid struct {
			UserID any `json:"user_id"`
		}
		_ = json.Unmarshal(raw, &uid)
		s, _ := uid.UserID.(string)
		p.reject(line, strings.TrimSpace(s), memberJSONReason(err))
		return
	}
	p.row(line, Member{UserID: string(m.UserID), Name: m.Name, Note: m.Note})
}

// memberJSONReason says what is wrong with a member object, without Go's
// type names.
func memberJSONReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s: want a string, got a %s", te.Field, te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func memberTruncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// MemberEventID is the event id of the gift.member.updated event that
// ImportMembers publishes for userID in import importID: "gift-import-"
// and 32 hex digits of sha256(importID, userID). Running the same import
// again publishes the same event ids, which the processor has already
// decided, so it changes nothing.
func MemberEventID(importID, userID string) string {
	h := sha256.New()
	h.Write([]byte(importID))
	h.Write([]byte{0})
	h.Write([]byte(userID))
	var sum [sha256.Size]byte
	return "gift-import-" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// ImportTransactionalID is the Kafka transactional id of the imports of
// activityID. Sharing it makes a newer import of the activity fence an older
// one still running: at most one import of an activity commits at a time.
func ImportTransactionalID(activityID string) string {
	return "promoflow-gift-import-" + activityID
}

// ImportMembers publishes every member as a gift.member.updated event
// (action add, import_id importID, event id MemberEventID(importID, user),
// occurring now) to the topic topics.yaml routes it to, keyed by
// activityID, in ONE Kafka transaction: read_committed consumers, as the
// processors are, see all of the members or none of them. cfg and opts are
// those of New (brokers, app id, client id, linger, buffering, and TLS or
// SASL through WithClientOpts); the client is transactional, with id
// ImportTransactionalID(activityID).
//
// Every event is validated before the transaction begins; an invalid
// activity id, import id or member (use ParseMembers to report every bad
// row) fails the import with the *schemas.InvalidError and publishes
// nothing, as does a repeated user id.
//
// progress, if not nil, is called with the members Kafka has acknowledged
// so far, each time another 1% (at least one member) is, and last with
// (total, total), before the commit, which makes them visible. It runs on
// the client's callback goroutine, one call at a time, and must be quick.
//
// On any failure after the transaction began (a record not acknowledged,
// ctx ending, another import of the activity fencing this one) the
// transaction is aborted and the error wraps ErrImportAborted (and
// ErrImportFenced when fenced). The commit and the abort themselves run
// even after ctx ends, for at most 30s. If the commit's outcome is unknown
// (the coordinator did not answer), the error says so; running the same
// import again is then safe.
func ImportMembers(ctx context.Context, cfg Config, activityID, importID string, members []Member, progress func(done, total int), opts ...Option) error {
	if len(members) == 0 {
		return fmt.Errorf("importing members of %s: no members", activityID)
	}
	if importID == "" {
		return fmt.Errorf("importing members of %s: empty import id", activityID)
	}
	// The transactional id goes last: nothing may override it. The
	// caller's options may override the timeout.
	all := make([]Option, 0, len(opts)+2)
	all = append(all, WithClientOpts(kgo.TransactionTimeout(DefaultImportTransactionTimeout)))
	all = append(all, opts...)
	all = append(all, WithClientOpts(kgo.TransactionalID(ImportTransactionalID(activityID))))
	p, err := New(cfg, all...)
	if err != nil {
		return err
	}
	defer p.Close()

	recs, err := p.importRecords(activityID, importID, members)
	if err != nil {
		return fmt.Errorf("importing members of %s: %w", activityID, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("importing members of %s: %w", activityID, err)
	}
	run := &importRun{total: len(recs), progress: progress}
	run.step = max(1, run.total/100)
	run.next = run.step

	if err := p.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("importing members of %s: beginning the transaction: %w", activityID, err)
	}
	for _, rec := range recs {
		if ctx.Err() != nil || run.failed() {
			break
		}
		p.cl.Produce(ctx, rec, run.promise)
	}
	// Flush returns early only when ctx ends; the records still in flight
	// are then waited for by AbortBufferedRecords below.
	_ = p.cl.Flush(ctx)

	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), importEndTimeout)
	defer cancel()
	cause := run.err()
	if cause == nil && ctx.Err() != nil {
		cause = ctx.Err()
	}
	if cause == nil && int(run.acked.Load()) != run.total {
		cause = fmt.Errorf("%d of %d members acknowledged", run.acked.Load(), run.total)
	}
	if cause == nil {
		err := p.cl.EndTransaction(endCtx, kgo.TryCommit)
		if err == nil {
			return nil
		}
		cause = fmt.Errorf("committing: %w", err)
		if !errors.Is(err, kerr.OperationNotAttempted) && !errors.Is(err, kerr.TransactionAbortable) && !importFenced(err) {
			// The commit may or may not have happened, and an abort now
			// cannot tell: it only fences whatever is still open.
			aerr := p.cl.EndTransaction(endCtx, kgo.TryAbort)
			return fmt.Errorf("importing members of %s: %w; the outcome is unknown (aborting: %v): check the members, and run the same import again if they are missing", activityID, cause, aerr)
		}
	}
	return p.abortImport(endCtx, activityID, cause)
}

// abortImport aborts the open transaction because of cause.
func (p *Producer) abortImport(ctx context.Context, activityID string, cause error) error {
	sentinels := ErrImportAborted
	if importFenced(cause) {
		sentinels = fmt.Errorf("%w, %w", ErrImportAborted, ErrImportFenced)
	}
	if err := p.cl.AbortBufferedRecords(ctx); err != nil {
		return fmt.Errorf("importing members of %s: %w; aborting: %v (Kafka aborts the transaction after its timeout)", activityID, cause, err)
	}
	if err := p.cl.EndTransaction(ctx, kgo.TryAbort); err != nil && !importFenced(err) {
		// A fenced producer's transaction was aborted by the newer one.
		return fmt.Errorf("importing members of %s: %w; aborting: %v (Kafka aborts the transaction after its timeout)", activityID, cause, err)
	}
	return fmt.Errorf("importing members of %s: %w: %w", activityID, sentinels, cause)
}

// importFenced reports whether err says a newer producer with the same
// transactional id took over.
func importFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.InvalidProducerIDMapping)
}

// importRecords validates every member's event and builds its record.
func (p *Producer) importRecords(activityID, importID string, members []Member) ([]*kgo.Record, error) {
	now := time.Now()
	seen := make(map[string]int, len(members))
	recs := make([]*kgo.Record, len(members))
	for i, m := range members {
		if j, ok := seen[m.UserID]; ok {
			return nil, fmt.Errorf("member %d: user id %q repeats member %d", i+1, m.UserID, j+1)
		}
		seen[m.UserID] = i
		env, err := p.envelope(MemberEventID(importID, m.UserID), now, memberEvent(activityID, importID, m))
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i+1, err)
		}
		if recs[i], err = p.prepare(env); err != nil {
			return nil, fmt.Errorf("member %d: %w", i+1, err)
		}
	}
	return recs, nil
}

// importRun counts an import's acknowledgements and keeps its first error.
type importRun struct {
	total    int
	progress func(done, total int)
	acked    atomic.Int64
	bad      atomic.Bool // a record failed

	mu         sync.Mutex
	first      error
	step, next int // guarded by mu: progress is reported at next acks
}

func (r *importRun) promise(rec *kgo.Record, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.first == nil {
			r.first = fmt.Errorf("producing to %s: %w", rec.Topic, err)
			r.bad.Store(true)
		}
		return
	}
	n := int(r.acked.Add(1))
	if r.progress != nil && (n >= r.next || n == r.total) {
		r.next = n + r.step
		r.progress(n, r.total)
	}
}

func (r *importRun) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first
}

func (r *importRun) failed() bool { return r.bad.Load() }
