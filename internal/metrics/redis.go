package metrics

import (
	"context"
	"errors"
	"strings"

	"github.com/redis/go-redis/v9"
)

// InstrumentRedis counts the failed commands of rdb as store errors
// (store redis, op the command's name, or pipeline). A nil reply, a
// script-cache miss (NOSCRIPT, which go-redis answers by loading the
// script) and the connection handshake's refusals by older servers are not
// errors; nor is a call cancelled by its caller.
func (m *Metrics) InstrumentRedis(rdb redis.UniversalClient) {
	if m == nil || rdb == nil {
		return
	}
	rdb.AddHook(redisHook{m})
}

type redisHook struct{ m *Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if !handshake(cmd) && redisFailure(err) {
			h.m.StoreError("redis", cmd.Name())
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil {
			return nil
		}
		for _, c := range cmds {
			if !handshake(c) && redisFailure(c.Err()) {
				h.m.StoreError("redis", "pipeline")
				break
			}
		}
		if len(cmds) == 0 && redisFailure(err) {
			h.m.StoreError("redis", "pipeline")
		}
		return err
	}
}

// handshake reports whether cmd is part of go-redis's connection setup
// (HELLO, CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS), whose errors from
// older servers go-redis ignores.
func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client":
		return true
	}
	return false
}

func redisFailure(err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled):
		return false
	case strings.HasPrefix(err.Error(), "NOSCRIPT"):
		return false
	}
	return true
}
