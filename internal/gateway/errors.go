package gateway

import (
	"errors"

	"github.com/promoflow/promoflow/schemas"
)

// ErrTooManyEvents is returned by the batch parser when a request holds more
// events than Config.MaxBatch; the gateway answers 413.
var ErrTooManyEvents = errors.New("too many events in one request")

// ErrEmptyBatch is returned by the batch parser when a request holds no
// event at all (an empty array, or JSON lines that are all blank).
var ErrEmptyBatch = errors.New("the request holds no event")

// ErrMalformedBatch is returned by the batch parser when a JSON array body
// is not one well-formed JSON array, so its events cannot be told apart.
// (A malformed line of a JSON-lines body rejects that event only.)
var ErrMalformedBatch = errors.New("the body is not a JSON array of envelopes")

// ErrKeyTooShort is returned by New and Sign for a key shorter than
// MinKeyBytes.
var ErrKeyTooShort = errors.New("gateway key shorter than 32 bytes")

// errReplay is the replay cache's answer to a signature it has seen within
// the window.
var errReplay = errors.New("replayed signature")

// errReplayFull is the replay cache's answer when it holds ReplayCacheSize
// signatures that are all still inside the window: the request is refused
// (429) rather than forgetting a signature that could then be replayed.
var errReplayFull = errors.New("replay cache full")

// Reasons the gateway gives for an event besides the schemas.Reason values
// of validation and producers.ReasonNoTopic and producers.ReasonSendFailed.
const (
	// ReasonBatchRejected: the event is valid but was not published because
	// the batch was sent with ?atomic=true and another of its events is not.
	ReasonBatchRejected schemas.Reason = "batch_rejected"
)
