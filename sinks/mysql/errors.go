package mysql

import "github.com/promoflow/promoflow/sinks"

// ErrUnsupportedType is wrapped by WriteBatch when the batch holds an event of
// a type the sink has no table for; nothing of the batch is written. It is
// [sinks.ErrUnsupportedType], so callers can match it for any sink.
var ErrUnsupportedType = sinks.ErrUnsupportedType

// ErrClosed is wrapped by WriteBatch after Close. It is [sinks.ErrClosed].
var ErrClosed = sinks.ErrClosed

// ErrNotFound is wrapped by Activity and Draw when the activity has no such
// record. It is [sinks.ErrNotFound].
var ErrNotFound = sinks.ErrNotFound
