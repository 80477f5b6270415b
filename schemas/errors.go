package schemas

import (
	"errors"
	"fmt"
)

// Reason is a short machine-readable code saying why an event was refused.
// It is written to the dead-letter topic's promoflow.dlq.reason header.
type Reason string

// Reasons an event can be refused.
const (
	// ReasonTooLarge: the encoded event exceeds the size limit.
	ReasonTooLarge Reason = "too_large"
	// ReasonInvalidUTF8: the bytes are not valid UTF-8.
	ReasonInvalidUTF8 Reason = "invalid_utf8"
	// ReasonMalformed: the bytes are not one JSON object.
	ReasonMalformed Reason = "malformed_json"
	// ReasonInvalidEnvelope: the envelope misses or misspells a field.
	ReasonInvalidEnvelope Reason = "invalid_envelope"
	// ReasonUnknownType: no schema exists for the (type, version) pair.
	ReasonUnknownType Reason = "unknown_type"
	// ReasonInvalidPayload: the payload does not match its schema.
	ReasonInvalidPayload Reason = "invalid_payload"
	// ReasonWrongTopic: the event type is not one the topic carries.
	ReasonWrongTopic Reason = "wrong_topic"
	// ReasonKeyMismatch: the envelope key is not the payload's key field.
	ReasonKeyMismatch Reason = "key_mismatch"
	// ReasonFutureEvent: occurred_at is further in the future than the allowed clock skew.
	ReasonFutureEvent Reason = "future_event"
)

// ErrInvalid is matched by every *InvalidError with errors.Is.
var ErrInvalid = errors.New("invalid event")

// InvalidError reports why an event was refused. Callers route the event to
// the dead-letter topic with Reason and Detail.
type InvalidError struct {
	Reason Reason
	Detail string
}

func (e *InvalidError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("invalid event: %s", e.Reason)
	}
	return fmt.Sprintf("invalid event: %s: %s", e.Reason, e.Detail)
}

// Is reports whether target is ErrInvalid.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(r Reason, format string, args ...any) *InvalidError {
	return &InvalidError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of an *InvalidError in err's chain, or "" if there is none.
func ReasonOf(err error) Reason {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ""
}
