package coupon

import (
	"context"
	_ "embed"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

//go:embed ratelimit.lua
var limitLua string

var limitScript = redis.NewScript(limitLua)

// RateLimit is a token bucket: it holds up to Burst tokens and refills at
// Rate tokens per second; each self-claim takes one. The zero value (or a
// zero Rate or Burst) turns the limit off.
type RateLimit struct {
	Rate  float64
	Burst int64
}

// On reports whether the limit is in force.
func (l RateLimit) On() bool { return l.Rate > 0 && l.Burst > 0 }

// Bucket is a token bucket's state.
type Bucket struct {
	// Known is false for a bucket never used (or expired): it starts full.
	Known  bool
	Tokens float64
	// Last is when the bucket was last refilled.
	Last time.Time
}

// Take is the bucket rule ratelimit.lua implements: refill for the time
// since Last (never backwards), then take up to want whole tokens. It
// returns how many were taken and the bucket after.
func Take(b Bucket, l RateLimit, now time.Time, want int64) (int64, Bucket) {
	burst := float64(l.Burst)
	tokens, last := burst, now.UnixMilli()
	if b.Known {
		tokens, last = b.Tokens, b.Last.UnixMilli()
	}
	if n := now.UnixMilli(); n > last {
		tokens = math.Min(burst, tokens+float64(n-last)*l.Rate/1000)
		last = n
	}
	got := min(want, int64(math.Floor(tokens)))
	got = max(got, 0)
	tokens -= float64(got)
	return got, Bucket{Known: true, Tokens: tokens, Last: time.UnixMilli(last).UTC()}
}

// BucketRequest asks one bucket for tokens.
type BucketRequest struct {
	Key   string
	Limit RateLimit
	Want  int64
}

// UserBucket returns the key of a user's claim bucket (in the user's slot).
func (s *Store) UserBucket(user string) string { return s.prefix + ":crl:u:{" + user + "}" }

// AppBucket returns the key of an app's claim bucket.
func (s *Store) AppBucket(app string) string { return s.prefix + ":crl:a:{" + app + "}" }

// TakeTokens takes tokens from buckets in one pipelined round trip (one
// script call per bucket: each key is its own slot) and returns how many
// each gave.
func (s *Store) TakeTokens(ctx context.Context, now time.Time, reqs []BucketRequest) ([]int64, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.Cmd, len(reqs))
	nowS := strconv.FormatInt(now.UnixMilli(), 10)
	err := s.retryNoScript(ctx, func() error {
		pipe := s.rdb.Pipeline()
		for i, r := range reqs {
			cmds[i] = pipe.EvalSha(ctx, limitScript.Hash(), []string{r.Key},
				strconv.FormatFloat(r.Limit.Rate, 'f', -1, 64), r.Limit.Burst, nowS, r.Want)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("running rate-limit script: %w", err)
	}
	out := make([]int64, len(reqs))
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil {
			return nil, fmt.Errorf("reading rate-limit script result: %w", err)
		}
		out[i] = n
	}
	return out, nil
}
