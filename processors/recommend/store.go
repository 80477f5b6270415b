package recommend

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
)

//go:embed profile.lua
var profileLua string

//go:embed top.lua
var topLua string

var (
	profileScript = redis.NewScript(profileLua)
	topScript     = redis.NewScript(topLua)
)

// DefaultDecisionTTL is how long event ids and decisions are remembered by
// default: above the behaviour topic's 7-day retention.
const DefaultDecisionTTL = 8 * 24 * time.Hour

// maxRun bounds the events of one profile.lua call, so that a call holds
// Redis for at most a few milliseconds.
const maxRun = 500

// Store keeps the recommendation state in Redis, every key of a user under
// the user's hash tag so that each script runs in one Cluster slot:
//
//	<prefix>:rec:{<user>}:prof   hash: profile entry -> "<weight>|<unix ms>"
//	<prefix>:rec:{<user>}:seen   zset: app|event_id -> when first added (deduplication)
//	<prefix>:rec:{<user>}:dec    hash: app|event_id of a trigger -> its decision
//	<prefix>:rec:{<user>}:top    hash: sig, at, set (the top N served to lookups)
//	<prefix>:rec:{<user>}:fence  hash: topic/partition -> highest epoch seen
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithKeyPrefix sets the prefix of every key, overriding the default "pf".
func WithKeyPrefix(p string) StoreOption { return func(s *Store) { s.prefix = p } }

// WithDecisionTTL sets how long event ids and decisions are remembered,
// overriding the default of 8 days. Keep it above the retention of the
// behaviour topic so that any redelivery is recognised.
func WithDecisionTTL(d time.Duration) StoreOption { return func(s *Store) { s.ttl = d } }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts ...StoreOption) *Store {
	s := &Store{rdb: rdb, prefix: "pf", ttl: DefaultDecisionTTL}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Load makes sure both scripts are cached in Redis (EVALSHA needs them).
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range []*redis.Script{profileScript, topScript} {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading recommendation scripts: %w", err)
		}
	}
	return nil
}

func (s *Store) userKey(user string) string { return s.prefix + ":rec:{" + user + "}" }

// TopKey returns the key of the user's top N (for tests and operators).
func (s *Store) TopKey(user string) string { return s.userKey(user) + ":top" }

// ProfileEvent is one behaviour event as it enters a profile.
type ProfileEvent struct {
	// ID is app|event_id, the event's identity.
	ID string
	At time.Time
	// Weight is what the rules made of it (Rules.Weigh).
	Weight float64
	// Fields are the profile entries it adds to (Rules.Fields).
	Fields []string
}

// UserEvents are one user's events of a batch, in order.
type UserEvents struct {
	UserID string
	Events []ProfileEvent
}

// Trigger is the id of the run's last event: the event a top N decided
// after the run is remembered by.
func (u *UserEvents) Trigger() string { return u.Events[len(u.Events)-1].ID }

// Applied is what adding a user's events left.
type Applied struct {
	// Entries is the user's whole profile after the events.
	Entries map[string]string
	// Remembered is the decision remembered for the trigger ("" if none).
	Remembered string
	// Dup says, per event, whether it had been added before.
	Dup []bool
	// Kept is the signature of the top N kept for lookups, KeptAt when it
	// was emitted; HasKept is false when there is none.
	Kept    string
	KeptAt  time.Time
	HasKept bool
}

// ProfileParams are the rules' parameters of the profile step.
type ProfileParams struct {
	HalfLife, Window      time.Duration
	MaxEntries, MaxEvents int
}

// ProfileParams returns the profile step's parameters of the rules.
func (r *Rules) ProfileParams() ProfileParams {
	return ProfileParams{HalfLife: r.HalfLife, Window: r.Window, MaxEntries: r.MaxEntries, MaxEvents: r.MaxEvents}
}

// Apply adds each user's events to the user's profile, each event at most
// once, in one pipelined round trip (one profile.lua call per user and run
// of at most 500 events). fenceField and epoch identify the caller's
// ownership of its partition (epoch 0 turns fencing off). It returns
// stream.ErrFenced if a newer owner has written.
func (s *Store) Apply(ctx context.Context, fenceField string, epoch int64, now time.Time, p ProfileParams, users []UserEvents) ([]Applied, error) {
	if len(users) == 0 {
		return nil, nil
	}
	var out []Applied
	err := s.retryNoScript(ctx, func() error {
		var err error
		out, err = s.apply(ctx, fenceField, epoch, now, p, users)
		return err
	})
	return out, err
}

func (s *Store) apply(ctx context.Context, fenceField string, epoch int64, now time.Time, p ProfileParams, users []UserEvents) ([]Applied, error) {
	ms := func(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
	common := []any{fenceField, strconv.FormatInt(epoch, 10), strconv.FormatInt(now.UnixMilli(), 10),
		ms(p.HalfLife), ms(s.ttl), ms(p.Window), p.MaxEntries, p.MaxEvents}
	type call struct {
		user, from int
		cmd        *redis.Cmd
	}
	var calls []call
	pipe := s.rdb.Pipeline()
	for ui, u := range users {
		k := s.userKey(u.UserID)
		keys := []string{k + ":prof", k + ":seen", k + ":dec", k + ":fence", k + ":top"}
		for from := 0; from < len(u.Events); from += maxRun {
			evs := u.Events[from:min(from+maxRun, len(u.Events))]
			trigger := ""
			if from+len(evs) == len(u.Events) {
				trigger = u.Trigger()
			}
			args := make([]any, 0, len(common)+2+len(evs)*8)
			args = append(args, common...)
			args = append(args, trigger, len(evs))
			for _, e := range evs {
				args = append(args, e.ID, e.At.UnixMilli(), strconv.FormatFloat(e.Weight, 'g', -1, 64), len(e.Fields))
				for _, f := range e.Fields {
					args = append(args, f)
				}
			}
			calls = append(calls, call{user: ui, from: from, cmd: pipe.EvalSha(ctx, profileScript.Hash(), keys, args...)})
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("running profile script: %w", err)
	}
	out := make([]Applied, len(users))
	for _, c := range calls {
		res, err := c.cmd.StringSlice()
		if err != nil {
			return nil, fmt.Errorf("reading profile script result: %w", err)
		}
		if len(res) == 1 && res[0] == "fenced" {
			return nil, fmt.Errorf("profile of user %s: %w", users[c.user].UserID, stream.ErrFenced)
		}
		if len(res) < 5 || res[0] != "ok" || len(res)%2 == 0 {
			return nil, fmt.Errorf("reading profile script result: %d values", len(res))
		}
		a := &out[c.user]
		for _, f := range res[2] {
			a.Dup = append(a.Dup, f == 'd')
		}
		// The last call of a user's runs has the trigger's decision and
		// the final profile.
		a.Remembered = res[1]
		a.Kept, a.HasKept = res[3], res[4] != ""
		if a.HasKept {
			ms, err := strconv.ParseInt(res[4], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("reading the kept top N of user %s: %w", users[c.user].UserID, err)
			}
			a.KeptAt = time.UnixMilli(ms)
		}
		a.Entries = make(map[string]string, (len(res)-5)/2)
		for i := 5; i+1 < len(res); i += 2 {
			a.Entries[res[i]] = res[i+1]
		}
	}
	return out, nil
}

// TopInput is one user's newly ranked top N, for Commit.
type TopInput struct {
	UserID, Trigger string
	Set             Set
}

// TopParams are the rules' parameters of the commit step.
type TopParams struct {
	// MinInterval is the least time between two emissions of a user's top N.
	MinInterval time.Duration
	// TTL is how long a top N is kept for lookups after it was emitted.
	TTL time.Duration
}

// Decision kinds of Commit.
const (
	// DecisionEmit: the top N replaced the one kept and is emitted.
	DecisionEmit = "emit"
	// DecisionSame: the top N did not change.
	DecisionSame = "same"
	// DecisionHeld: it changed within the min interval; the previous stays.
	DecisionHeld = "held"
)

// Decision is the commit step's decision on one user's top N.
type Decision struct {
	Kind string
	// Set is the top N emitted (DecisionEmit): the remembered one when the
	// trigger was decided before.
	Set Set
	// Replayed is true when the decision was remembered.
	Replayed bool
}

// ParseDecision reads a decision as top.lua remembers it.
func ParseDecision(s string) (Decision, error) {
	kind, body, _ := strings.Cut(s, "|")
	switch kind {
	case DecisionSame, DecisionHeld:
		return Decision{Kind: kind}, nil
	case DecisionEmit:
		d := Decision{Kind: kind}
		if err := json.Unmarshal([]byte(body), &d.Set); err != nil {
			return Decision{}, fmt.Errorf("parsing remembered top N: %w", err)
		}
		return d, nil
	}
	return Decision{}, fmt.Errorf("parsing remembered decision %.40q: unknown kind", s)
}

// Commit decides, in one pipelined round trip (one top.lua call per user),
// whether each user's new top N replaces the kept one and is emitted:
// when it differs from the kept one (by batches and their order) and the
// last emission is at least MinInterval old. Each decision is remembered
// with its trigger; a trigger decided before gets its first decision back.
func (s *Store) Commit(ctx context.Context, fenceField string, epoch int64, now time.Time, p TopParams, in []TopInput) ([]Decision, error) {
	if len(in) == 0 {
		return nil, nil
	}
	var out []Decision
	err := s.retryNoScript(ctx, func() error {
		var err error
		out, err = s.commit(ctx, fenceField, epoch, now, p, in)
		return err
	})
	return out, err
}

func (s *Store) commit(ctx context.Context, fenceField string, epoch int64, now time.Time, p TopParams, in []TopInput) ([]Decision, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(in))
	for i, t := range in {
		body, err := json.Marshal(t.Set)
		if err != nil {
			return nil, fmt.Errorf("encoding top N of user %s: %w", t.UserID, err)
		}
		k := s.userKey(t.UserID)
		cmds[i] = pipe.EvalSha(ctx, topScript.Hash(), []string{k + ":top", k + ":dec", k + ":fence"},
			fenceField, epoch, now.UnixMilli(), p.MinInterval.Milliseconds(), s.ttl.Milliseconds(), p.TTL.Milliseconds(),
			t.Trigger, t.Set.Signature(), body)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("running top script: %w", err)
	}
	out := make([]Decision, len(in))
	for i, c := range cmds {
		res, err := c.StringSlice()
		if err != nil {
			return nil, fmt.Errorf("reading top script result: %w", err)
		}
		if len(res) == 1 && res[0] == "fenced" {
			return nil, fmt.Errorf("top N of user %s: %w", in[i].UserID, stream.ErrFenced)
		}
		if len(res) != 2 {
			return nil, fmt.Errorf("reading top script result: %d values", len(res))
		}
		if res[0] == "new" && strings.HasPrefix(res[1], DecisionEmit+"|") {
			out[i] = Decision{Kind: DecisionEmit, Set: in[i].Set} // what was sent
			continue
		}
		d, err := ParseDecision(res[1])
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", in[i].UserID, err)
		}
		d.Replayed = res[0] == "dup"
		out[i] = d
	}
	return out, nil
}

// Top returns the user's top N kept for lookups, or nil when there is none:
// one HGET.
func (s *Store) Top(ctx context.Context, user string) (*Set, error) {
	b, err := s.rdb.HGet(ctx, s.TopKey(user), "set").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading recommendations of user %s: %w", user, err)
	}
	var set Set
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("decoding recommendations of user %s: %w", user, err)
	}
	return &set, nil
}

// Profile returns the user's stored profile entries (entry →
// "<weight>|<unix ms>", as ProfileAt reads them), for operators and tests.
func (s *Store) Profile(ctx context.Context, user string) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.userKey(user)+":prof").Result()
	if err != nil {
		return nil, fmt.Errorf("reading the profile of user %s: %w", user, err)
	}
	return m, nil
}

// retryNoScript runs f, and once more after loading the scripts if Redis
// lost its script cache (a restart). f must be idempotent.
func (s *Store) retryNoScript(ctx context.Context, f func() error) error {
	return stream.RetryNoScript(ctx, s.Load, f)
}
