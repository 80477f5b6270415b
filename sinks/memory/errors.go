package memory

import "github.com/promoflow/promoflow/sinks"

// ErrUnsupportedType is wrapped by WriteBatch when the batch holds an event
// whose (type, version) has no schema; nothing of the batch is stored.
// Schema-valid events are always accepted. It is [sinks.ErrUnsupportedType].
var ErrUnsupportedType = sinks.ErrUnsupportedType

// ErrClosed is wrapped by WriteBatch after Close. It is [sinks.ErrClosed].
var ErrClosed = sinks.ErrClosed

// ErrNotFound is wrapped by Activity and Draw when the activity has no such
// record. It is [sinks.ErrNotFound].
var ErrNotFound = sinks.ErrNotFound
