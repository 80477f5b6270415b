package sinks

import "errors"

// ErrUnsupportedType is wrapped by WriteBatch when the batch holds an event
// whose type the sink has no table for. The batch is refused before anything
// is written, and retrying it cannot succeed: the caller should send the
// event to the dead-letter topic instead of retrying.
var ErrUnsupportedType = errors.New("unsupported event type")

// ErrClosed is wrapped by WriteBatch when it is called after Close.
var ErrClosed = errors.New("sink closed")
