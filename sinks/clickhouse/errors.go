package clickhouse

import (
	"errors"

	"github.com/promoflow/promoflow/sinks"
)

// ErrUnsupportedType is wrapped by WriteBatch when the batch holds an event
// whose (type, version) has no schema; nothing of the batch is written.
// Schema-valid events are always accepted (into events_raw at least). It is
// [sinks.ErrUnsupportedType].
var ErrUnsupportedType = sinks.ErrUnsupportedType

// ErrClosed is wrapped by WriteBatch after Close. It is [sinks.ErrClosed].
var ErrClosed = sinks.ErrClosed

// ErrNoView is wrapped by Sink.Report when a table or view the report
// reads does not exist in the database: the sink never started against it,
// or the report reads a view that a later release creates.
var ErrNoView = errors.New("a table or view the report reads does not exist")
