package referral

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

//go:embed step.lua
var stepLua string

var stepScript = redis.NewScript(stepLua)

// maxRun bounds the events one script call decides, so that a call holds
// Redis for at most a few milliseconds (each may walk a chain).
const maxRun = 500

// Store holds the referral state in Redis. Every key of an activity
// carries the activity as a hash tag ({<activity>}), so the script's keys
// share one slot and it runs unchanged on Redis Cluster:
//
//	<prefix>:ref:{<activity>}:inv    hash invitee -> inviter (the bindings)
//	<prefix>:ref:{<activity>}:st     hash invitee -> b (bound) | c (counts toward the inviter)
//	<prefix>:ref:{<activity>}:n      hash inviter -> invitees counted
//	<prefix>:ref:{<activity>}:rw     hash inviter|threshold -> when the reward was granted (ms)
//	<prefix>:ref:{<activity>}:d      hash <app>\0<event> -> the remembered decision
//	<prefix>:ref:{<activity>}:fence  hash topic/partition -> highest epoch seen
//
// The keys expire together, the decision TTL after the later of the
// activity's ends_at and qualify_until.
type Store struct {
	rdb      redis.UniversalClient
	prefix   string
	ttl      time.Duration
	maxDepth int
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithKeyPrefix sets the prefix of every key, overriding the default "pf".
func WithKeyPrefix(p string) StoreOption { return func(s *Store) { s.prefix = p } }

// WithDecisionTTL sets how long an activity's state is kept after its
// qualification window ends (decisions must outlive the events topic's
// retention so that any redelivery finds them), overriding the default of
// 8 days.
func WithDecisionTTL(d time.Duration) StoreOption { return func(s *Store) { s.ttl = d } }

// WithMaxChainDepth bounds the cycle check's walk up an inviter's chain,
// overriding the default of DefaultMaxChainDepth (100).
func WithMaxChainDepth(n int) StoreOption { return func(s *Store) { s.maxDepth = n } }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts ...StoreOption) *Store {
	s := &Store{rdb: rdb, prefix: "pf", ttl: 8 * 24 * time.Hour, maxDepth: DefaultMaxChainDepth}
	for _, o := range opts {
		o(s)
	}
	return s
}

// key returns the key of one part of an activity's state.
func (s *Store) key(activity, part string) string {
	return s.prefix + ":ref:{" + activity + "}:" + part
}

// Load makes sure the script is cached in Redis (EVALSHA needs it).
func (s *Store) Load(ctx context.Context) error {
	if err := stepScript.Load(ctx, s.rdb).Err(); err != nil {
		return fmt.Errorf("loading referral script: %w", err)
	}
	return nil
}

// StateEnd returns when def's state may go from Redis: the decision TTL
// after the later of ends_at and qualify_until. Events decided after it
// are refused as ended, so that an event with a backdated occurred_at
// cannot bind again once the bindings are gone.
func (s *Store) StateEnd(def *schemas.ReferralActivityDefined) time.Time {
	return def.QualifyEnd().Add(s.ttl)
}

// Kinds of Op.
const (
	OpBind    = 'b'
	OpQualify = 'q'
)

// Op is one click, registration or qualification handed to the atomic step.
type Op struct {
	Kind           byte // OpBind or OpQualify
	AppID, EventID string
	Invitee        string
	// Inviter is the token's inviter (OpBind).
	Inviter string
	// Precheck is the refusal found by PrecheckBind or PrecheckQualify, or "".
	Precheck string
}

// Outcome is the decision on one Op.
type Outcome struct {
	Step
	// At is when the decision was first made.
	At time.Time
	// Replayed is true when the decision was remembered from an earlier
	// delivery of the same event.
	Replayed bool
}

// Params are what the step needs of the activity and the caller.
type Params struct {
	// FenceField and Epoch identify the caller's ownership of its
	// partition (Epoch 0 turns fencing off).
	FenceField string
	Epoch      int64
	Now        time.Time
	// ExpireAt is when the keys expire; one not after Now is raised to Now
	// plus the decision TTL, so that it never deletes live state.
	ExpireAt time.Time
	// NeedsQualify says invitees count only once qualified.
	NeedsQualify bool
	// Rewards are the thresholds in force, ascending.
	Rewards []schemas.ReferralReward
}

// ParamsFor returns the Params of def (nil: an unknown activity, whose
// refusals are remembered for the decision TTL).
func (s *Store) ParamsFor(def *schemas.ReferralActivityDefined, fenceField string, epoch int64, now time.Time) Params {
	p := Params{FenceField: fenceField, Epoch: epoch, Now: now}
	if def != nil {
		p.ExpireAt = s.StateEnd(def)
		p.NeedsQualify = def.QualifyingAction != schemas.QualifyNone
		p.Rewards = def.Rewards
	}
	return p
}

// Step decides ops of ONE activity in order, one script call per maxRun
// of them, pipelined in one round trip. It returns an error wrapping
// stream.ErrFenced if a newer owner of the partition has written.
func (s *Store) Step(ctx context.Context, activity string, p Params, ops []Op) ([]Outcome, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	var out []Outcome
	err := s.retryNoScript(ctx, func() error {
		var err error
		out, err = s.step(ctx, activity, p, ops)
		return err
	})
	return out, err
}

func (s *Store) step(ctx context.Context, activity string, p Params, ops []Op) ([]Outcome, error) {
	keys := []string{s.key(activity, "fence"), s.key(activity, "inv"), s.key(activity, "st"), s.key(activity, "n"), s.key(activity, "rw"), s.key(activity, "d")}
	exp := p.ExpireAt
	if !exp.After(p.Now) {
		exp = p.Now.Add(s.ttl)
	}
	needs := "0"
	if p.NeedsQualify {
		needs = "1"
	}
	head := []any{p.FenceField, p.Epoch, p.Now.UnixMilli(), exp.Unix(), needs, formatRewards(p.Rewards), s.maxDepth}
	res, err := stream.EvalRuns(ctx, s.rdb, stepScript, keys, head, len(ops), maxRun, func(i int) []any {
		o := ops[i]
		return []any{string(o.Kind), o.AppID + "\x00" + o.EventID, o.Invitee, o.Inviter, o.Precheck}
	})
	if err != nil {
		return nil, fmt.Errorf("running referral script for activity %s: %w", activity, err)
	}
	out := make([]Outcome, 0, len(ops))
	for i, r := range res {
		op := ops[i]
		o, err := parseDecision(r[1], op)
		if err != nil {
			return nil, fmt.Errorf("event %s of activity %s: %w", op.EventID, activity, err)
		}
		o.Replayed = r[0] == "dup"
		out = append(out, o)
	}
	return out, nil
}

// formatRewards renders rewards as "threshold=batch;..." (batch ids hold
// neither '=' nor ';').
func formatRewards(rewards []schemas.ReferralReward) string {
	var b strings.Builder
	for i, r := range rewards {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strconv.FormatInt(r.Threshold, 10))
		b.WriteByte('=')
		b.WriteString(r.BatchID)
	}
	return b.String()
}

func parseRewards(s string) ([]schemas.ReferralReward, error) {
	if s == "" {
		return nil, nil
	}
	var out []schemas.ReferralReward
	for _, spec := range strings.Split(s, ";") {
		t, batch, ok := strings.Cut(spec, "=")
		n, err := strconv.ParseInt(t, 10, 64)
		if !ok || err != nil || batch == "" {
			return nil, fmt.Errorf("malformed reward %q", spec)
		}
		out = append(out, schemas.ReferralReward{Threshold: n, BatchID: batch})
	}
	return out, nil
}

// parseDecision reads a remembered decision (see step.lua) on op. A
// decision of the other kind than op's is an error: the event id was used
// for two different facts.
func parseDecision(v string, op Op) (Outcome, error) {
	parts := strings.Split(v, "|")
	bad := func(why string) (Outcome, error) {
		return Outcome{}, fmt.Errorf("parsing remembered referral decision %q: %s", v, why)
	}
	if len(parts) < 4 {
		return bad("malformed")
	}
	ms, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return bad("bad time")
	}
	o := Outcome{At: time.UnixMilli(ms).UTC()}
	switch {
	case parts[0] == "r" && len(parts) == 4:
		o.Reason, o.Inviter = parts[2], parts[3]
		if o.Reason == "" {
			return bad("refusal without a reason")
		}
		return o, nil
	case parts[0] == "b" && len(parts) == 5 && op.Kind == OpBind:
		o.Inviter = op.Inviter
		o.Counted = parts[2] == "1"
	case parts[0] == "q" && len(parts) == 5 && op.Kind == OpQualify:
		o.Inviter, o.Counted = parts[2], true
	default:
		return bad("not a decision on a " + string(op.Kind))
	}
	if o.Successful, err = strconv.ParseInt(parts[3], 10, 64); err != nil {
		return bad("bad count")
	}
	if o.Rewards, err = parseRewards(parts[4]); err != nil {
		return bad(err.Error())
	}
	return o, nil
}

// Binding returns invitee's inviter in activity, or "" (for reports and
// tests).
func (s *Store) Binding(ctx context.Context, activity, invitee string) (string, error) {
	v, err := s.rdb.HGet(ctx, s.key(activity, "inv"), invitee).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading the inviter of %s in %s: %w", invitee, activity, err)
	}
	return v, nil
}

// Bindings returns every invitee -> inviter of activity (for tests and
// audits of small activities).
func (s *Store) Bindings(ctx context.Context, activity string) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.key(activity, "inv")).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the bindings of %s: %w", activity, err)
	}
	return m, nil
}

// Counts returns every inviter's count of invitees that count (for tests
// and audits of small activities).
func (s *Store) Counts(ctx context.Context, activity string) (map[string]int64, error) {
	m, err := s.rdb.HGetAll(ctx, s.key(activity, "n")).Result()
	if err != nil {
		return nil, fmt.Errorf("reading the counts of %s: %w", activity, err)
	}
	out := make(map[string]int64, len(m))
	for k, v := range m {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("reading the counts of %s: %s holds %q", activity, k, v)
		}
		out[k] = n
	}
	return out, nil
}

// retryNoScript runs f, and once more after loading the script if Redis
// lost its script cache (a restart).
func (s *Store) retryNoScript(ctx context.Context, f func() error) error {
	err := f()
	if err != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		if lerr := s.Load(ctx); lerr != nil {
			return errors.Join(err, lerr)
		}
		err = f()
	}
	return err
}
