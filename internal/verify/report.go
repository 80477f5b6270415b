package verify

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status is a check's outcome.
type Status string

// The outcomes of a check.
const (
	StatusOK      Status = "ok"
	StatusBreach  Status = "BREACH"
	StatusSkipped Status = "skipped"
)

// MaxExamples bounds the examples a check lists.
const MaxExamples = 10

// Check is the outcome of one check.
type Check struct {
	// ID is the check's number (1–4).
	ID int `json:"id"`
	// Name says what the check checks.
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Why a skipped check was skipped.
	Why string `json:"why,omitempty"`
	// Breaches counts what broke the check (0 when ok).
	Breaches int64 `json:"breaches"`
	// Counts are the check's figures, by name.
	Counts map[string]int64 `json:"counts"`
	// Summary are the figures as sentences, for people.
	Summary []string `json:"summary"`
	// Examples are at most MaxExamples breaches.
	Examples []string `json:"examples"`
	// Info is what is worth knowing but is no breach.
	Info []string `json:"info"`
}

func newCheck(id int, name string) *Check {
	return &Check{ID: id, Name: name, Status: StatusOK, Counts: map[string]int64{}, Summary: []string{}, Examples: []string{}, Info: []string{}}
}

func (c *Check) skip(why string) {
	c.Status, c.Why = StatusSkipped, why
}

// breach counts n breaches, with an example when there is room.
func (c *Check) breach(n int64, example string) {
	if n <= 0 {
		return
	}
	c.Status = StatusBreach
	c.Breaches += n
	c.example(example)
}

func (c *Check) example(s string) {
	if s != "" && len(c.Examples) < MaxExamples {
		c.Examples = append(c.Examples, s)
	}
}

func (c *Check) summary(format string, args ...any) {
	c.Summary = append(c.Summary, fmt.Sprintf(format, args...))
}

func (c *Check) info(format string, args ...any) {
	c.Info = append(c.Info, fmt.Sprintf(format, args...))
}

// Report is the outcome of a verification.
type Report struct {
	// Since and Until bound the records of checks 1 and 4 (zero: open).
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Campaign, when set, is the batch or activity the checks were narrowed to.
	Campaign string `json:"campaign,omitempty"`
	// CampaignKind is "batch", "activity" or "unknown" when Campaign is set.
	CampaignKind string `json:"campaign_kind,omitempty"`
	// Checks are the four checks, in order.
	Checks []*Check `json:"checks"`
	// Breached counts the checks with status BREACH.
	Breached int `json:"breached"`
	// Took is how long the verification ran.
	Took time.Duration `json:"took_ns"`
}

// OK reports whether no check found a breach.
func (r *Report) OK() bool { return r.Breached == 0 }

func (r *Report) finish() {
	r.Breached = 0
	for _, c := range r.Checks {
		if c.Status == StatusBreach {
			r.Breached++
		}
	}
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}

// WriteText writes the report for people: one block per check, then the
// verdict.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	rng := "everything"
	switch {
	case !r.Since.IsZero() && !r.Until.IsZero():
		rng = "from " + r.Since.UTC().Format(time.RFC3339) + " to " + r.Until.UTC().Format(time.RFC3339)
	case !r.Since.IsZero():
		rng = "since " + r.Since.UTC().Format(time.RFC3339)
	case !r.Until.IsZero():
		rng = "until " + r.Until.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(&b, "verify: records %s", rng)
	if r.Campaign != "" {
		fmt.Fprintf(&b, ", campaign %s (%s)", safe(r.Campaign), r.CampaignKind)
	}
	b.WriteString("\n")
	for _, c := range r.Checks {
		fmt.Fprintf(&b, "\n%d. %-52s %s\n", c.ID, c.Name, c.Status)
		if c.Status == StatusSkipped {
			fmt.Fprintf(&b, "   %s\n", c.Why)
			continue
		}
		for _, s := range c.Summary {
			fmt.Fprintf(&b, "   %s\n", printable(s))
		}
		if len(c.Examples) > 0 {
			fmt.Fprintf(&b, "   examples:\n")
			for _, e := range c.Examples {
				fmt.Fprintf(&b, "     %s\n", printable(e))
			}
		}
		for _, s := range c.Info {
			fmt.Fprintf(&b, "   info: %s\n", printable(s))
		}
	}
	ran := 0
	for _, c := range r.Checks {
		if c.Status != StatusSkipped {
			ran++
		}
	}
	if r.OK() {
		fmt.Fprintf(&b, "\nok: %d of %d checks ran, no breach (%s)\n", ran, len(r.Checks), r.Took.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&b, "\nBREACH: %d of %d checks that ran found breaches (%s)\n", r.Breached, ran, r.Took.Round(time.Millisecond))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// byCount formats counts as "a 3, b 1", largest first.
func byCount(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k, n := range m {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := m[keys[i]], m[keys[j]]
		return a > b || a == b && keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", safe(k), m[k])
	}
	return strings.Join(parts, ", ")
}

// withBy appends " (by...)" when by is not empty.
func withBy(n int64, by map[string]int64) string {
	if s := byCount(by); s != "" {
		return fmt.Sprintf("%d (%s)", n, s)
	}
	return fmt.Sprint(n)
}

// printable escapes, as a last guard, the control and format characters
// (terminal escapes, bidirectional overrides) a line might still carry.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// safe renders what came from the data (ids, reasons, header values) so
// that it cannot disturb a terminal or a line-based reader: printable ASCII
// as it is, anything else escaped (\xHH for bytes that are not UTF-8,
// \uHHHH otherwise), the whole in double quotes when anything was escaped
// or it contains a space or a quote; at most 80 characters.
func safe(s string) string {
	const limit = 80
	var b strings.Builder
	quote := s == ""
	n := 0
	for i := 0; i < len(s); {
		if n >= limit {
			b.WriteString("…")
			break
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
			quote = true
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
			quote = true
		case r == ' ':
			b.WriteByte(' ')
			quote = true
		case r > 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
			quote = true
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
			quote = true
		}
		n++
		i += size
	}
	if quote {
		return `"` + b.String() + `"`
	}
	return b.String()
}
