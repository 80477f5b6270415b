package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// RetryNoScript runs f, and once more after load if Redis answered NOSCRIPT
// (it lost its script cache, in a restart or a failover). f must be
// idempotent: the stateful processors' scripts are, by event id.
func RetryNoScript(ctx context.Context, load func(context.Context) error, f func() error) error {
	err := f()
	if IsNoScript(err) {
		if lerr := load(ctx); lerr != nil {
			return errors.Join(err, lerr)
		}
		err = f()
	}
	return err
}

// IsNoScript reports whether err is Redis's NOSCRIPT reply to an EVALSHA of
// a script it does not hold.
func IsNoScript(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOSCRIPT")
}

// EvalRuns runs script over n items of one hash-tagged set of keys, in
// calls of at most size items, all pipelined in one round trip. Each call
// gets head, then args(i) for each of its items i, and answers either
// "fenced" alone (a newer owner of the partition has written: ErrFenced) or
// "ok" followed by two values per item. EvalRuns returns the two values of
// every item, in order. Callers wrap it in RetryNoScript.
func EvalRuns(ctx context.Context, rdb redis.Cmdable, script *redis.Script, keys []string, head []any, n, size int, args func(i int) []any) ([][2]string, error) {
	pipe := rdb.Pipeline()
	var cmds []*redis.Cmd
	for lo := 0; lo < n; lo += size {
		call := append(make([]any, 0, len(head)+5*min(size, n-lo)), head...)
		for i := lo; i < min(lo+size, n); i++ {
			call = append(call, args(i)...)
		}
		cmds = append(cmds, pipe.EvalSha(ctx, script.Hash(), keys, call...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([][2]string, 0, n)
	for i, cmd := range cmds {
		res, err := cmd.StringSlice()
		if err != nil {
			return nil, err
		}
		if len(res) == 1 && res[0] == "fenced" {
			return nil, ErrFenced
		}
		want := min(size, n-i*size)
		if len(res) != 1+2*want || res[0] != "ok" {
			return nil, fmt.Errorf("script answered %d values for %d items", len(res), want)
		}
		for j := range want {
			out = append(out, [2]string{res[1+2*j], res[2+2*j]})
		}
	}
	return out, nil
}
