package lottery

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
)

// Store holds the lottery's state in Redis: participants, stock, seeds,
// draws and gift-exchange matches. Every key of an activity carries the
// activity as a hash tag ({<activity>}), so a script's keys share one slot
// and run unchanged on Redis Cluster.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration

	seedsOnce sync.Once
	seeds     *seeds
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithKeyPrefix sets the prefix of every key, overriding the default "pf".
func WithKeyPrefix(p string) StoreOption { return func(s *Store) { s.prefix = p } }

// WithDecisionTTL sets how long an activity's state is kept after its
// join window ends (decisions must outlive the requests topic's retention
// so that any redelivery finds them), overriding the default of 8 days.
func WithDecisionTTL(d time.Duration) StoreOption { return func(s *Store) { s.ttl = d } }

// NewStore returns a Store on rdb.
func NewStore(rdb redis.UniversalClient, opts ...StoreOption) *Store {
	s := &Store{rdb: rdb, prefix: "pf", ttl: 8 * 24 * time.Hour}
	for _, o := range opts {
		o(s)
	}
	return s
}

// key returns the key of one part of an activity's state.
func (s *Store) key(activity, part string) string {
	return s.prefix + ":lot:{" + activity + "}:" + part
}

// scripts lists every script the store runs, for Load.
var scripts []*redis.Script

// Load makes sure every script is cached in Redis (EVALSHA needs them).
func (s *Store) Load(ctx context.Context) error {
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading lottery scripts: %w", err)
		}
	}
	return nil
}

func isNoScript(err error) bool { return stream.IsNoScript(err) }

// retryNoScript runs f, and once more after loading the scripts if Redis
// lost its script cache (a restart).
func (s *Store) retryNoScript(ctx context.Context, f func() error) error {
	return stream.RetryNoScript(ctx, s.Load, f)
}
