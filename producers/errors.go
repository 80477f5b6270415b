package producers

import (
	"errors"
	"fmt"

	"github.com/promoflow/promoflow/schemas"
)

// ErrWrongApp is returned when an envelope's app_id is not the producer's
// AppID: an app may only publish under its own app_id, because downstream
// results are derived from (app_id, event_id) and a foreign app_id could
// collide with another app's events.
var ErrWrongApp = errors.New("envelope app_id is not the producer's app")

// ErrNoTopic is returned when topics.yaml does not name exactly one topic
// carrying the event's type and version, so the producer cannot route it.
var ErrNoTopic = errors.New("no single topic carries the event type")

// ErrUnknownTopic is returned by ProduceLines when LinesOptions.Topic names a
// topic that topics.yaml does not declare.
var ErrUnknownTopic = errors.New("topic is not declared in topics.yaml")

// ErrClosed is returned when publishing through a Producer after Close.
var ErrClosed = errors.New("producer closed")

// ErrInvalidConfig is matched by every error Config.Validate returns.
var ErrInvalidConfig = errors.New("invalid producer config")

// Reason codes ProduceLines reports besides the schemas.Reason values that
// validation yields (too_large, malformed_json, invalid_payload, ...).
const (
	// ReasonWrongApp: the envelope's app_id is not the producer's AppID
	// and LinesOptions.AllowAnyApp is false.
	ReasonWrongApp schemas.Reason = "wrong_app"
	// ReasonNoTopic: no single topic in topics.yaml carries the event's type.
	ReasonNoTopic schemas.Reason = "no_topic"
	// ReasonSendFailed: the event was valid but Kafka did not acknowledge it
	// (missing topic, cancelled context, broker unreachable until timeout).
	ReasonSendFailed schemas.Reason = "send_failed"
)

// LineError describes one line ProduceLines did not publish. It is also
// the error ProduceLines returns when LinesOptions.StopOnError stops it.
type LineError struct {
	// Line is the 1-based line number in the input, counting every line,
	// blank and comment lines included.
	Line int `json:"line"`
	// Reason is the machine-readable code: a schemas.Reason, or one of
	// ReasonWrongApp, ReasonNoTopic and ReasonSendFailed.
	Reason schemas.Reason `json:"reason"`
	// Detail says what was wrong, for people.
	Detail string `json:"detail"`
	// EventID is the line's event_id when it could be decoded.
	EventID string `json:"event_id,omitempty"`

	err error
}

// Error formats the line error as "line N: reason: detail".
func (e *LineError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Reason, e.Detail)
}

// Unwrap returns the underlying error: a *schemas.InvalidError for a line
// that failed validation, the client's error for a failed send.
func (e *LineError) Unwrap() error { return e.err }
