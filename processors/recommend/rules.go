package recommend

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow/schemas"
)

// DefaultRulesYAML is the rules file used when none is configured: the
// example of docs/recommendations.md.
//
//go:embed default_rules.yaml
var DefaultRulesYAML []byte

// MaxRulesBytes bounds a rules file.
const MaxRulesBytes = 1 << 20

// Limits of a rules file.
const (
	maxFilters    = 200
	maxListValues = 1000
	maxBands      = 32
	maxWeight     = 1000
	maxQuantity   = 100 // per_quantity counts at most this many items
	// maxEventWeight bounds what one event adds, however many filters
	// multiply it, so that profile weights stay finite.
	maxEventWeight = 1e9
	maxTopN        = 20
	maxDuration    = 3650 * 24 * time.Hour
)

// Rules are the recommendation rules in force, compiled from a rules file by
// ParseRules: which behaviour events count and how much, how the profile
// decays, and how coupon batches are ranked. They are immutable; a reload
// replaces them whole. docs/recommendations.md is the reference.
type Rules struct {
	// Revision identifies the file: "r-" and the first 12 hex digits of
	// the SHA-256 of its bytes. Every recommendation records it.
	Revision string

	// HalfLife is the profile's decay: an event's weight halves every
	// HalfLife after it occurred.
	HalfLife time.Duration
	// Window is how far back events count: an older event is ignored, a
	// profile entry not updated for longer is forgotten, and a profile
	// idle for longer expires.
	Window time.Duration
	// PriceBands are the lower bounds of the price bands, in minor units,
	// from 0 up.
	PriceBands []int64
	// MaxEntries bounds a profile's entries (categories, brands, models
	// and bands); the weakest go first.
	MaxEntries int
	// MaxEvents bounds the event ids remembered per user for deduplication.
	MaxEvents int

	// Actions are the weights of the actions that count, by action.
	Actions map[string]Action
	// Filters adjust or drop events, in order.
	Filters []Filter

	// TopN is how many batches are recommended to a user.
	TopN int
	// MinAffinity is the least affinity a batch needs to be recommended.
	MinAffinity float64
	// MinScore is the least expected value (minor units) a batch needs.
	MinScore float64
	// UnscopedAffinity is the affinity of a batch without any scope (every
	// item), for a user with a profile.
	UnscopedAffinity float64
	// DefaultPrice stands for the user's prices when the profile has none.
	DefaultPrice int64
	// LowStock: a batch with fewer coupons left scores less, linearly.
	LowStock int64
	// LowTime: a batch with less time left before it ends scores less,
	// linearly; 0 turns it off.
	LowTime time.Duration
	// MinInterval: a user's top N is re-emitted at most this often.
	MinInterval time.Duration

	// AutoGrant grants each user's top batch automatically.
	AutoGrant AutoGrant
}

// Action is how much one action counts.
type Action struct {
	// Weight is what one event of the action adds to the profile.
	Weight float64
	// PerQuantity multiplies the weight by the event's quantity (at most
	// 100; cart and order).
	PerQuantity bool
	// MinRating drops reviews rated below it, or without a rating (review).
	MinRating int64
}

// Filter adjusts the events it matches: Ignore drops them, otherwise their
// weight is multiplied by Multiply.
type Filter struct {
	Name     string
	Ignore   bool
	Multiply float64

	actions, categories, brands, models, apps map[string]bool
	minPrice, maxPrice                        int64
	minRating, maxRating                      int64
}

// AutoGrant is the auto-grant rule.
type AutoGrant struct {
	// Enabled turns auto-grant on.
	Enabled bool
	// Round is part of every grant's event id: each (round, user, batch)
	// is granted at most once; a new round may grant again.
	Round string
	// MinScore is the least expected value (minor units) the top batch
	// needs to be granted.
	MinScore float64
	// Batches, when not empty, are the only batches granted.
	Batches map[string]bool
}

// Grants reports whether the rule grants batch to a user whose top batch
// it is, at score (minor units).
func (a AutoGrant) Grants(batch string, score float64) bool {
	return a.Enabled && score >= a.MinScore && (len(a.Batches) == 0 || a.Batches[batch])
}

// The file's YAML shape. Durations are strings so that their errors name
// the field; optional numbers are pointers so that an explicit 0 is told
// apart from an absent value.
type rulesFile struct {
	Version   *int                  `yaml:"version"`
	Profile   profileFile           `yaml:"profile"`
	Actions   map[string]actionFile `yaml:"actions"`
	Filters   []filterFile          `yaml:"filters"`
	Scoring   scoringFile           `yaml:"scoring"`
	AutoGrant autoGrantFile         `yaml:"auto_grant"`
}

type profileFile struct {
	HalfLife   string  `yaml:"half_life"`
	Window     string  `yaml:"window"`
	PriceBands []int64 `yaml:"price_bands"`
	MaxEntries *int    `yaml:"max_entries"`
	MaxEvents  *int    `yaml:"max_events"`
}

type actionFile struct {
	Weight      *float64 `yaml:"weight"`
	PerQuantity bool     `yaml:"per_quantity"`
	MinRating   int64    `yaml:"min_rating"`
}

type filterFile struct {
	Name     string    `yaml:"name"`
	Match    matchFile `yaml:"match"`
	Ignore   bool      `yaml:"ignore"`
	Multiply *float64  `yaml:"multiply"`
}

type matchFile struct {
	Actions    []string `yaml:"actions"`
	Categories []string `yaml:"categories"`
	Brands     []string `yaml:"brands"`
	Models     []string `yaml:"models"`
	Apps       []string `yaml:"apps"`
	MinPrice   int64    `yaml:"min_price"`
	MaxPrice   int64    `yaml:"max_price"`
	MinRating  int64    `yaml:"min_rating"`
	MaxRating  int64    `yaml:"max_rating"`
}

type scoringFile struct {
	TopN             *int     `yaml:"top_n"`
	MinAffinity      *float64 `yaml:"min_affinity"`
	MinScore         *float64 `yaml:"min_score"`
	UnscopedAffinity *float64 `yaml:"unscoped_affinity"`
	DefaultPrice     *int64   `yaml:"default_price"`
	LowStock         *int64   `yaml:"low_stock"`
	LowTime          string   `yaml:"low_time"`
	MinInterval      string   `yaml:"min_interval"`
}

type autoGrantFile struct {
	Enabled  bool     `yaml:"enabled"`
	Round    string   `yaml:"round"`
	MinScore *float64 `yaml:"min_score"`
	Batches  []string `yaml:"batches"`
}

// Defaults of the optional fields (docs/recommendations.md).
var (
	defaultBands = []int64{0, 2000, 5000, 10000, 20000, 50000, 100000, 200000, 500000}
)

const (
	defaultHalfLife         = 72 * time.Hour
	defaultWindow           = 30 * 24 * time.Hour
	defaultMaxEntries       = 200
	defaultMaxEvents        = 10000
	defaultTopN             = 3
	defaultMinAffinity      = 0.05
	defaultMinScore         = 1
	defaultUnscopedAffinity = 0.5
	defaultPrice            = 10000
	defaultLowStock         = 100
	defaultLowTime          = 24 * time.Hour
	defaultRound            = "1"
)

var (
	batchIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	appIDPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	roundPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)
	// goTypes names the Go types yaml.v3 puts in its errors, for yamlError
	// to say what the file should hold instead.
	goTypes = regexp.MustCompile(` (in|into) (type )?(\[\])?(map\[string\])?\*?(recommend\.)?[a-zA-Z0-9]+`)
)

// actions lists the behaviour actions a rules file may name.
var actions = []string{schemas.ActionBrowse, schemas.ActionCart, schemas.ActionOrder, schemas.ActionReview}

// ParseRules parses and validates a rules file; name labels its errors
// (the path). Every problem is reported, each with its line and field, in
// one *RulesError wrapping ErrInvalidRules.
func ParseRules(name string, b []byte) (*Rules, error) {
	if len(b) > MaxRulesBytes {
		return nil, &RulesError{File: name, Problems: []Problem{{Msg: fmt.Sprintf("the file is %d bytes, more than %d", len(b), MaxRulesBytes)}}}
	}
	var f rulesFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &RulesError{File: name, Problems: []Problem{{Msg: "the file is empty"}}}
		}
		return nil, yamlError(name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &RulesError{File: name, Problems: []Problem{{Line: extra.Line, Msg: "more than one YAML document"}}}
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root) // decoded above, so it parses
	v := &validator{file: name, root: &root}
	r := v.compile(&f)
	if len(v.problems) > 0 {
		return nil, &RulesError{File: name, Problems: v.problems}
	}
	sum := sha256.Sum256(b)
	r.Revision = "r-" + hex.EncodeToString(sum[:])[:12]
	return r, nil
}

// DefaultRules returns the built-in rules (DefaultRulesYAML).
func DefaultRules() *Rules {
	r, err := ParseRules("default_rules.yaml", DefaultRulesYAML)
	if err != nil {
		panic(err) // a test parses the embedded file; this is a build defect
	}
	return r
}

// yamlError turns a YAML decoding error into a RulesError, one problem
// per line yaml.v3 reports, without Go type names.
func yamlError(name string, err error) error {
	var te *yaml.TypeError
	var msgs []string
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	re := &RulesError{File: name}
	for _, m := range msgs {
		p := Problem{Msg: goTypes.ReplaceAllStringFunc(m, plainType)}
		if rest, ok := strings.CutPrefix(p.Msg, "line "); ok {
			if n, tail, ok := strings.Cut(rest, ": "); ok {
				if l, err := strconv.Atoi(n); err == nil {
					p.Line, p.Msg = l, tail
				}
			}
		}
		re.Problems = append(re.Problems, p)
	}
	return re
}

// plainType says in words what a Go type in a yaml.v3 error holds.
func plainType(s string) string {
	if strings.HasPrefix(s, " in ") {
		return "" // " in type recommend.scoringFile": the line says where
	}
	t := s[strings.LastIndexByte(s, ' ')+1:]
	switch {
	case strings.HasPrefix(t, "[]"):
		return " into a list"
	case strings.HasPrefix(t, "map["), strings.Contains(t, "recommend."):
		return " into a mapping"
	case t == "bool":
		return " into true or false"
	case t == "string":
		return " into a string"
	}
	return " into a number"
}

// validator compiles a rulesFile, collecting problems with their places.
type validator struct {
	file     string
	root     *yaml.Node
	problems []Problem
}

// bad records a problem at path (dotted, with [i] for list items).
func (v *validator) bad(path string, format string, args ...any) {
	v.problems = append(v.problems, Problem{Line: lineOf(v.root, path), Field: path, Msg: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of the node at path, or of its closest ancestor
// present in the file (a missing field is reported where it belongs).
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, seg := range splitPath(path) {
		var next *yaml.Node
		switch {
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == seg {
					next = n.Content[i+1]
					if next.Kind == yaml.ScalarNode {
						line = n.Content[i].Line
					}
					break
				}
			}
		case n.Kind == yaml.SequenceNode && strings.HasPrefix(seg, "["):
			if i, err := strconv.Atoi(strings.Trim(seg, "[]")); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return line
		}
		n = next
		line = n.Line
	}
	return line
}

// splitPath splits "filters[2].match.brands[0]" into filters, [2], match, brands, [0].
func splitPath(path string) []string {
	var out []string
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			i := strings.IndexByte(part[1:], '[')
			if i < 0 {
				out = append(out, part)
				break
			}
			out = append(out, part[:i+1])
			part = part[i+1:]
		}
	}
	return out
}

func (v *validator) duration(path, s string, def time.Duration, allowZero bool) time.Duration {
	if s == "" {
		return def
	}
	d, err := ParseDuration(s)
	switch {
	case err != nil:
		v.bad(path, "%v", err)
	case d < 0 || (d == 0 && !allowZero):
		v.bad(path, "must be positive, got %s", s)
	case d > maxDuration:
		v.bad(path, "must be at most 3650d, got %s", s)
	}
	return d
}

// ParseDuration parses a Go duration ("72h", "90m", "1h30m") or a whole
// number of days ("30d").
func ParseDuration(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseInt(n, 10, 64)
		if err != nil || days < 0 || days > int64(maxDuration/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is not a duration: use a whole number of days (30d) or a Go duration (72h)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use a whole number of days (30d) or a Go duration (72h)", s)
	}
	return d, nil
}

func (v *validator) number(path string, p *float64, def, lo, hi float64) float64 {
	if p == nil {
		return def
	}
	x := *p
	if math.IsNaN(x) || x < lo || x > hi {
		v.bad(path, "must be between %g and %g, got %g", lo, hi, x)
	}
	return x
}

func (v *validator) integer(path string, p *int, def, lo, hi int) int {
	if p == nil {
		return def
	}
	if *p < lo || *p > hi {
		v.bad(path, "must be between %d and %d, got %d", lo, hi, *p)
	}
	return *p
}

func (v *validator) integer64(path string, p *int64, def, lo, hi int64) int64 {
	if p == nil {
		return def
	}
	if *p < lo || *p > hi {
		v.bad(path, "must be between %d and %d, got %d", lo, hi, *p)
	}
	return *p
}

// set compiles a list of values into a set, checking each.
func (v *validator) set(path string, vals []string, check func(string) string) map[string]bool {
	if len(vals) == 0 {
		return nil
	}
	if len(vals) > maxListValues {
		v.bad(path, "lists %d values, at most %d", len(vals), maxListValues)
	}
	m := make(map[string]bool, len(vals))
	for i, s := range vals {
		p := fmt.Sprintf("%s[%d]", path, i)
		if msg := check(s); msg != "" {
			v.bad(p, "%s", msg)
		} else if m[s] {
			v.bad(p, "%q is listed twice", s)
		}
		m[s] = true
	}
	return m
}

func scopeValue(s string) string {
	if s == "" || len(s) > 64 {
		return fmt.Sprintf("%q: must be 1 to 64 bytes, as in behaviour events and batch scopes", s)
	}
	return ""
}

func patternValue(re *regexp.Regexp, what string) func(string) string {
	return func(s string) string {
		if !re.MatchString(s) {
			return fmt.Sprintf("%q is not a valid %s (%s)", s, what, re)
		}
		return ""
	}
}

func actionValue(s string) string {
	if !slices.Contains(actions, s) {
		return fmt.Sprintf("unknown action %q (want %s)", s, strings.Join(actions, ", "))
	}
	return ""
}

func (v *validator) compile(f *rulesFile) *Rules {
	r := &Rules{}
	switch {
	case f.Version == nil:
		v.bad("version", "required: the rules format version, 1")
	case *f.Version != 1:
		v.bad("version", "unsupported version %d (this build reads version 1)", *f.Version)
	}

	p := f.Profile
	r.HalfLife = v.duration("profile.half_life", p.HalfLife, defaultHalfLife, false)
	r.Window = v.duration("profile.window", p.Window, defaultWindow, false)
	if r.HalfLife > 0 && r.Window > 0 && r.HalfLife > r.Window {
		v.bad("profile.half_life", "%s is longer than profile.window %s: events would be forgotten before they decay", r.HalfLife, r.Window)
	}
	r.PriceBands = p.PriceBands
	if p.PriceBands == nil {
		r.PriceBands = defaultBands
	}
	switch {
	case len(r.PriceBands) == 0 || len(r.PriceBands) > maxBands:
		v.bad("profile.price_bands", "needs 1 to %d lower bounds, got %d", maxBands, len(r.PriceBands))
	case r.PriceBands[0] != 0:
		v.bad("profile.price_bands[0]", "the first band must start at 0, got %d", r.PriceBands[0])
	default:
		for i := 1; i < len(r.PriceBands); i++ {
			if r.PriceBands[i] <= r.PriceBands[i-1] || r.PriceBands[i] > 100_000_000_000 {
				v.bad(fmt.Sprintf("profile.price_bands[%d]", i), "bounds must increase, up to 100000000000: %d after %d", r.PriceBands[i], r.PriceBands[i-1])
			}
		}
	}
	r.MaxEntries = v.integer("profile.max_entries", p.MaxEntries, defaultMaxEntries, 10, 10000)
	r.MaxEvents = v.integer("profile.max_events", p.MaxEvents, defaultMaxEvents, 100, 1_000_000)

	r.Actions = map[string]Action{}
	if len(f.Actions) == 0 {
		v.bad("actions", "required: at least one action must count (%s)", strings.Join(actions, ", "))
	}
	for _, name := range sortedKeys(f.Actions) {
		a := f.Actions[name]
		path := "actions." + name
		if msg := actionValue(name); msg != "" {
			v.bad(path, "%s", msg)
			continue
		}
		if a.Weight == nil {
			v.bad(path+".weight", "required: how much one %s counts (greater than 0, at most %d)", name, maxWeight)
			continue
		}
		if w := *a.Weight; !(w > 0 && w <= maxWeight) {
			v.bad(path+".weight", "must be greater than 0 and at most %d, got %g (leave the action out to ignore it)", maxWeight, w)
		}
		if a.PerQuantity && name != schemas.ActionCart && name != schemas.ActionOrder {
			v.bad(path+".per_quantity", "only cart and order events carry a quantity")
		}
		if a.MinRating != 0 && (name != schemas.ActionReview || a.MinRating < 1 || a.MinRating > 5) {
			v.bad(path+".min_rating", "is for review only, 1 to 5, got %d", a.MinRating)
		}
		r.Actions[name] = Action{Weight: *a.Weight, PerQuantity: a.PerQuantity, MinRating: a.MinRating}
	}

	if len(f.Filters) > maxFilters {
		v.bad("filters", "%d filters, at most %d", len(f.Filters), maxFilters)
	}
	for i, ff := range f.Filters {
		r.Filters = append(r.Filters, v.filter(fmt.Sprintf("filters[%d]", i), ff))
	}

	s := f.Scoring
	r.TopN = v.integer("scoring.top_n", s.TopN, defaultTopN, 1, maxTopN)
	r.MinAffinity = v.number("scoring.min_affinity", s.MinAffinity, defaultMinAffinity, 0, 1)
	r.MinScore = v.number("scoring.min_score", s.MinScore, defaultMinScore, 0, 1e11)
	r.UnscopedAffinity = v.number("scoring.unscoped_affinity", s.UnscopedAffinity, defaultUnscopedAffinity, 0, 1)
	r.DefaultPrice = v.integer64("scoring.default_price", s.DefaultPrice, defaultPrice, 0, 100_000_000_000)
	r.LowStock = v.integer64("scoring.low_stock", s.LowStock, defaultLowStock, 1, 1_000_000_000)
	r.LowTime = v.duration("scoring.low_time", s.LowTime, defaultLowTime, true)
	r.MinInterval = v.duration("scoring.min_interval", s.MinInterval, 0, true)

	g := f.AutoGrant
	r.AutoGrant = AutoGrant{Enabled: g.Enabled, Round: g.Round}
	if r.AutoGrant.Round == "" {
		r.AutoGrant.Round = defaultRound
	} else if !roundPattern.MatchString(g.Round) {
		v.bad("auto_grant.round", "%q is not a valid round (%s)", g.Round, roundPattern)
	}
	r.AutoGrant.MinScore = v.number("auto_grant.min_score", g.MinScore, 0, 0, 1e11)
	r.AutoGrant.Batches = v.set("auto_grant.batches", g.Batches, patternValue(batchIDPattern, "batch id"))
	return r
}

func (v *validator) filter(path string, ff filterFile) Filter {
	m := ff.Match
	flt := Filter{
		Name:       ff.Name,
		actions:    v.set(path+".match.actions", m.Actions, actionValue),
		categories: v.set(path+".match.categories", m.Categories, scopeValue),
		brands:     v.set(path+".match.brands", m.Brands, scopeValue),
		models:     v.set(path+".match.models", m.Models, scopeValue),
		apps:       v.set(path+".match.apps", m.Apps, patternValue(appIDPattern, "app id")),
		minPrice:   m.MinPrice, maxPrice: m.MaxPrice, minRating: m.MinRating, maxRating: m.MaxRating,
	}
	if len(ff.Name) > 200 {
		v.bad(path+".name", "longer than 200 bytes")
	}
	if flt.actions == nil && flt.categories == nil && flt.brands == nil && flt.models == nil && flt.apps == nil &&
		m.MinPrice == 0 && m.MaxPrice == 0 && m.MinRating == 0 && m.MaxRating == 0 {
		v.bad(path+".match", "required: at least one condition (actions, categories, brands, models, apps, min_price, max_price, min_rating, max_rating)")
	}
	if m.MinPrice < 0 || m.MaxPrice < 0 || (m.MaxPrice > 0 && m.MaxPrice < m.MinPrice) {
		v.bad(path+".match", "min_price %d and max_price %d: prices are at least 0, and max_price (0: no bound) at least min_price", m.MinPrice, m.MaxPrice)
	}
	for _, rt := range []struct {
		name string
		val  int64
	}{{"min_rating", m.MinRating}, {"max_rating", m.MaxRating}} {
		if rt.val != 0 && (rt.val < 1 || rt.val > 5) {
			v.bad(path+".match."+rt.name, "must be 1 to 5 (0: no bound), got %d", rt.val)
		}
	}
	if m.MaxRating > 0 && m.MaxRating < m.MinRating {
		v.bad(path+".match.max_rating", "%d is below min_rating %d", m.MaxRating, m.MinRating)
	}
	switch {
	case ff.Ignore && ff.Multiply != nil:
		v.bad(path, "give ignore: true or multiply, not both")
	case ff.Ignore:
	case ff.Multiply == nil:
		v.bad(path, "required: ignore: true (drop the events matched) or multiply: <factor>")
	default:
		if x := *ff.Multiply; !(x > 0 && x <= maxWeight) {
			v.bad(path+".multiply", "must be greater than 0 and at most %d, got %g (use ignore: true to drop events)", maxWeight, x)
		}
		flt.Multiply = *ff.Multiply
	}
	flt.Ignore = ff.Ignore
	return flt
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Skip reasons: why Weigh did not count an event.
const (
	SkipAction = "action"  // the action is not in the rules
	SkipOld    = "too_old" // occurred before the window
	SkipRating = "rating"  // a review below the action's min_rating
	SkipFilter = "filter"  // a filter with ignore: true matched
)

// Weigh returns what the behaviour event ev of app, occurred at at, adds
// to its user's profile at now, or 0 and the reason it does not count: its
// action's weight (times its quantity, at most 100, with per_quantity),
// times every multiply of the filters that match it, in order, unless one
// that matches says ignore first. An event older than the window does not
// count.
func (r *Rules) Weigh(app string, at time.Time, ev *schemas.BehaviourRecorded, now time.Time) (float64, string) {
	a, ok := r.Actions[ev.Action]
	if !ok {
		return 0, SkipAction
	}
	if now.Sub(at) > r.Window {
		return 0, SkipOld
	}
	if a.MinRating > 0 && ev.Rating < a.MinRating {
		return 0, SkipRating
	}
	w := a.Weight
	if a.PerQuantity && ev.Quantity > 1 {
		w *= float64(min(ev.Quantity, maxQuantity))
	}
	for i := range r.Filters {
		f := &r.Filters[i]
		if !f.matches(app, ev) {
			continue
		}
		if f.Ignore {
			return 0, SkipFilter
		}
		w *= f.Multiply
	}
	return min(w, maxEventWeight), ""
}

func (f *Filter) matches(app string, ev *schemas.BehaviourRecorded) bool {
	in := func(set map[string]bool, v string) bool { return set == nil || set[v] }
	return in(f.actions, ev.Action) && in(f.categories, ev.Category) && in(f.brands, ev.Brand) &&
		in(f.models, ev.Model) && in(f.apps, app) &&
		(f.minPrice == 0 || ev.Price >= f.minPrice) && (f.maxPrice == 0 || (ev.Price > 0 && ev.Price <= f.maxPrice)) &&
		(f.minRating == 0 || ev.Rating >= f.minRating) && (f.maxRating == 0 || (ev.Rating > 0 && ev.Rating <= f.maxRating))
}

// Profile field prefixes: one dimension of affinity each.
const (
	fieldCategory = "c:"
	fieldBrand    = "b:"
	fieldModel    = "m:"
	fieldBand     = "p:"
)

// Fields returns the profile entries an event adds its weight to: its
// category, brand and model (when given) and its price band (when it has a
// price).
func (r *Rules) Fields(ev *schemas.BehaviourRecorded) []string {
	out := make([]string, 0, 4)
	out = append(out, fieldCategory+ev.Category)
	if ev.Brand != "" {
		out = append(out, fieldBrand+ev.Brand)
	}
	if ev.Model != "" {
		out = append(out, fieldModel+ev.Model)
	}
	if ev.Price > 0 {
		out = append(out, fieldBand+strconv.Itoa(r.Band(ev.Price)))
	}
	return out
}

// Band returns the index of the price band of price.
func (r *Rules) Band(price int64) int {
	i, _ := slices.BinarySearch(r.PriceBands, price+1)
	return max(i-1, 0)
}

// bandPrice is the price a band stands for: its middle, and for the last
// band, which has no upper bound, 1.5 times its lower bound (or the default
// price when that is 0).
func (r *Rules) bandPrice(i int) int64 {
	lo := r.PriceBands[i]
	if i+1 < len(r.PriceBands) {
		return lo + (r.PriceBands[i+1]-lo)/2
	}
	if lo == 0 {
		return r.DefaultPrice
	}
	return lo + lo/2
}
