package stream

import (
	"context"
	"errors"
	"strings"
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
