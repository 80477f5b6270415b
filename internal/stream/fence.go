package stream

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Fencer hands out fencing epochs: each call for the same (group, topic,
// partition) returns a strictly larger number.
type Fencer interface {
	Acquire(ctx context.Context, group, topic string, partition int32) (int64, error)
}

// RedisFencer keeps epochs in Redis counters (INCR), one key per group and
// partition.
type RedisFencer struct {
	Client redis.UniversalClient
	// Prefix starts every key, overriding the default "promoflow".
	Prefix string
}

// Acquire increments and returns the partition's epoch.
func (f *RedisFencer) Acquire(ctx context.Context, group, topic string, partition int32) (int64, error) {
	prefix := f.Prefix
	if prefix == "" {
		prefix = "promoflow"
	}
	key := fmt.Sprintf("%s:epoch:{%s}:%s", prefix, group, fenceField(topic, partition))
	n, err := f.Client.Incr(ctx, key).Result()
	if err != nil {
		return 0, fmt.Errorf("acquiring fencing epoch for %s: %w", key, err)
	}
	return n, nil
}

func fenceField(topic string, partition int32) string {
	return topic + "/" + strconv.Itoa(int(partition))
}
