package coupon

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

//go:embed claim.lua
var claimLua string

var claimScript = redis.NewScript(claimLua)

// scripts lists every script the store runs, for Load.
var scripts = []*redis.Script{claimScript, stateScript, limitScript, unscheduleScript}

// ClaimInput is one claim handed to the atomic step.
type ClaimInput struct {
	AppID, EventID, BatchID, UserID string
	// Precheck is the rejection reason found by Precheck, or "".
	Precheck string
	// Def is the batch definition (nil when unknown).
	Def *schemas.BatchDefined
}

// Outcome is the decision on one claim.
type Outcome struct {
	Granted bool
	Reason  string
	Seq     int64     // position in the batch's stock when granted
	At      time.Time // when the decision was first made
	// Replayed is true when the decision was remembered from an earlier
	// delivery of the same event.
	Replayed bool
}

// Store holds the coupon processor's state in Redis: batch stock and
// claim decisions (claim.lua), users' coupons and their operations
// (state.lua), timer schedules, and rate-limit buckets (ratelimit.lua).
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithKeyPrefix sets the prefix of every key, overriding the default "pf".
func WithKeyPrefix(p string) StoreOption { return func(s *Store) { s.prefix = p } }

// WithDecisionTTL sets how long decisions are remembered for deduplication,
// overriding the default of 8 days. It must exceed the retention of the
// claims topic so that any redelivery finds its decision.
func WithDecisionTTL(d time.Duration) StoreOption { return func(s *Store) { s.ttl = d } }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts ...StoreOption) *Store {
	s := &Store{rdb: rdb, prefix: "pf", ttl: 8 * 24 * time.Hour}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Load makes sure every script is cached in Redis (EVALSHA needs them).
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading coupon scripts: %w", err)
		}
	}
	return nil
}

// retryNoScript runs f, and once more after loading the scripts if Redis
// lost its script cache (a restart). f must be idempotent.
func (s *Store) retryNoScript(ctx context.Context, f func() error) error {
	return stream.RetryNoScript(ctx, s.Load, f)
}

func (s *Store) batchKey(batch string) string { return s.prefix + ":cpn:{" + batch + "}" }

// GrantedKey returns the key counting a batch's grants (for reports and checks).
func (s *Store) GrantedKey(batch string) string { return s.batchKey(batch) + ":granted" }

// Granted returns how many coupons of the batch were granted.
func (s *Store) Granted(ctx context.Context, batch string) (int64, error) {
	n, err := s.rdb.Get(ctx, s.GrantedKey(batch)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// GrantedMany returns how many coupons of each batch were granted, in the
// order of batches, in one pipelined round trip (one GET per batch, so it
// works on Redis Cluster, where the batches' counters live in different
// slots). A batch never claimed counts 0.
func (s *Store) GrantedMany(ctx context.Context, batches []string) ([]int64, error) {
	return s.counters(ctx, "reading granted counts", len(batches), func(i int) string { return s.GrantedKey(batches[i]) })
}

// BatchUser names one user's holding of one batch, for UserHeld.
type BatchUser struct{ BatchID, UserID string }

// UserHeld returns how many coupons of each batch each user was granted
// (the count the per-user limit is checked against), in the order of
// pairs, in one pipelined round trip.
func (s *Store) UserHeld(ctx context.Context, pairs []BatchUser) ([]int64, error) {
	return s.counters(ctx, "reading users' held counts", len(pairs), func(i int) string {
		return s.batchKey(pairs[i].BatchID) + ":u:" + pairs[i].UserID
	})
}

// counters reads n integer counters (absent = 0) with one pipelined GET each.
func (s *Store) counters(ctx context.Context, what string, n int, key func(i int) string) ([]int64, error) {
	if n == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, n)
	for i := range n {
		cmds[i] = pipe.Get(ctx, key(i))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]int64, n)
	for i, c := range cmds {
		v, err := c.Int64()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return nil, fmt.Errorf("%s: %s: %w", what, key(i), err)
		default:
			out[i] = v
		}
	}
	return out, nil
}

// Claim decides claims in order, in one pipelined round trip. fenceField and
// epoch identify the caller's ownership of its partition (epoch 0 turns
// fencing off). It returns stream.ErrFenced if a newer owner has written.
func (s *Store) Claim(ctx context.Context, fenceField string, epoch int64, now time.Time, in []ClaimInput) ([]Outcome, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out, err := s.claim(ctx, fenceField, epoch, now, in)
	if err != nil && isNoScript(err) {
		// Redis restarted and lost its script cache: load and retry once.
		if lerr := s.Load(ctx); lerr != nil {
			return nil, lerr
		}
		out, err = s.claim(ctx, fenceField, epoch, now, in)
	}
	return out, err
}

func isNoScript(err error) bool { return stream.IsNoScript(err) }

// maxRun bounds the claims one script call decides, so that a call holds
// Redis for at most a few milliseconds.
const maxRun = 500

func (s *Store) claim(ctx context.Context, fenceField string, epoch int64, now time.Time, in []ClaimInput) ([]Outcome, error) {
	nowMs := strconv.FormatInt(now.UnixMilli(), 10)
	ttl := strconv.FormatInt(int64(s.ttl/time.Second), 10)
	epochS := strconv.FormatInt(epoch, 10)

	// One script call per run of claims of the same batch (all keys of a
	// call share the batch's hash slot). Claims keep their order within a
	// batch; claims of different batches touch different keys.
	type run struct {
		idx []int
		cmd *redis.Cmd
	}
	var order []string
	runs := map[string][]*run{}
	for i, c := range in {
		rs := runs[c.BatchID]
		if len(rs) == 0 || len(rs[len(rs)-1].idx) == maxRun {
			if len(rs) == 0 {
				order = append(order, c.BatchID)
			}
			rs = append(rs, &run{})
			runs[c.BatchID] = rs
		}
		r := rs[len(rs)-1]
		r.idx = append(r.idx, i)
	}
	pipe := s.rdb.Pipeline()
	for _, batch := range order {
		bk := s.batchKey(batch)
		for _, r := range runs[batch] {
			// The definition in force when the poll was handled: the same
			// pointer for every claim of the batch in this call.
			def := in[r.idx[0]].Def
			var total, limit, userExpiry int64
			if def != nil {
				total, limit = def.TotalStock, def.PerUserLimit
				// A user's count must outlive every claim that can still be
				// granted: those occur before ValidUntil (plus clock skew).
				userExpiry = def.ValidUntil.Add(30 * 24 * time.Hour).Unix()
			}
			keys := make([]string, 0, 2+2*len(r.idx))
			keys = append(keys, bk+":granted", bk+":fence")
			args := make([]any, 0, 7+len(r.idx))
			args = append(args, fenceField, epochS, total, limit, nowMs, ttl, userExpiry)
			for _, i := range r.idx {
				c := in[i]
				keys = append(keys, bk+":d:"+c.AppID+":"+c.EventID, bk+":u:"+c.UserID)
				args = append(args, c.Precheck)
			}
			r.cmd = pipe.EvalSha(ctx, claimScript.Hash(), keys, args...)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		// Exec returns the first command error; any failure fails the batch,
		// which the runtime retries (decisions already made are remembered).
		return nil, fmt.Errorf("running claim script: %w", err)
	}
	out := make([]Outcome, len(in))
	for _, batch := range order {
		for _, r := range runs[batch] {
			res, err := r.cmd.StringSlice()
			if err != nil {
				return nil, fmt.Errorf("reading claim script result: %w", err)
			}
			if len(res) == 1 && res[0] == "fenced" {
				return nil, fmt.Errorf("claims of batch %s: %w", batch, stream.ErrFenced)
			}
			if len(res) != 1+2*len(r.idx) || res[0] != "ok" {
				return nil, fmt.Errorf("reading claim script result: %d values for %d claims", len(res), len(r.idx))
			}
			for j, i := range r.idx {
				o, err := parseDecision(res[2+2*j])
				if err != nil {
					return nil, err
				}
				o.Replayed = res[1+2*j] == "dup"
				out[i] = o
			}
		}
	}
	return out, nil
}

// parseDecision reads "g|<seq>|<ms>" or "r|<reason>|<ms>".
func parseDecision(s string) (Outcome, error) {
	parts := strings.SplitN(s, "|", 3)
	if len(parts) != 3 {
		return Outcome{}, fmt.Errorf("parsing remembered decision %q: malformed", s)
	}
	ms, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return Outcome{}, fmt.Errorf("parsing remembered decision %q: %w", s, err)
	}
	o := Outcome{At: time.UnixMilli(ms).UTC()}
	switch parts[0] {
	case "g":
		o.Granted = true
		if o.Seq, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
			return Outcome{}, fmt.Errorf("parsing remembered decision %q: %w", s, err)
		}
	case "r":
		o.Reason = parts[1]
	default:
		return Outcome{}, fmt.Errorf("parsing remembered decision %q: unknown kind", s)
	}
	return o, nil
}
