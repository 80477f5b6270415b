package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// DefaultMaxBytes is the largest encoded event accepted by default (64 KiB).
const DefaultMaxBytes = 64 << 10

// DefaultMaxSkew is how far in the future occurred_at may be by default.
const DefaultMaxSkew = 5 * time.Minute

// Envelope is the versioned wrapper of every event. EventID is chosen by the
// producer and is the idempotency key of every decision made on the event.
type Envelope struct {
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	Version    int             `json:"version"`
	AppID      string          `json:"app_id"`
	OccurredAt time.Time       `json:"occurred_at"`
	Key        string          `json:"key"`
	Payload    json.RawMessage `json:"payload"`

	// payloadMembers are the payload's members as Decode validated them,
	// aliasing Payload, for DecodePayload's fast path.
	payloadMembers members
}

// TypeVersion returns the schema name of the envelope's payload.
func (e *Envelope) TypeVersion() TypeVersion { return TypeVersion{e.Type, e.Version} }

// DecodePayload unmarshals the payload into v. Decode has already validated
// the payload against its schema, so this fails only on a mismatched v.
func (e *Envelope) DecodePayload(v any) error {
	if err := e.decodePayload(v); err != nil {
		return invalid(ReasonInvalidPayload, "decoding %s payload: %v", e.Type, err)
	}
	return nil
}

// Encode returns the envelope's JSON encoding.
// It writes the fields directly (the processors encode every result, and
// json.Marshal spends most of its time re-scanning the payload); the output
// is what json.Marshal would produce, up to white space in the payload.
func (e *Envelope) Encode() ([]byte, error) {
	if !json.Valid(e.Payload) {
		return nil, fmt.Errorf("encoding envelope %s: payload is not valid JSON", e.EventID)
	}
	if y := e.OccurredAt.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("encoding envelope %s: occurred_at year %d outside [0,9999]", e.EventID, y)
	}
	b := make([]byte, 0, 160+len(e.EventID)+len(e.Key)+len(e.Payload))
	b = append(b, `{"event_id":`...)
	b = appendString(b, e.EventID)
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(e.Version), 10)
	b = append(b, `,"app_id":`...)
	b = appendString(b, e.AppID)
	b = append(b, `,"occurred_at":"`...)
	b = e.OccurredAt.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","key":`...)
	b = appendString(b, e.Key)
	b = append(b, `,"payload":`...)
	b = append(b, e.Payload...)
	return append(b, '}'), nil
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		q, _ := json.Marshal(s) // replaces invalid bytes as encoding/json does
		return append(b, q...)
	}
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0xE2 && i+2 < len(s) && s[i+1] == 0x80 && s[i+2]&^1 == 0xA8 {
			// U+2028 and U+2029, escaped like encoding/json does.
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[s[i+2]&0xf])
			i += 2
			start = i + 1
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		case '\b': // as encoding/json does since Go 1.22
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default: // other control characters and HTML-sensitive <, >, &
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// New builds an envelope for payload p, setting Type, Version and Key from
// p's schema. The caller supplies the idempotency key and the app.
func New(eventID, appID string, occurredAt time.Time, p Payload) (*Envelope, error) {
	var body []byte
	var err error
	if a, ok := p.(jsonAppender); ok {
		body = a.appendJSON(make([]byte, 0, 320))
	} else {
		body, err = json.Marshal(p)
	}
	if err != nil {
		return nil, fmt.Errorf("encoding %s payload: %w", p.EventType(), err)
	}
	return &Envelope{
		EventID:    eventID,
		Type:       p.EventType(),
		Version:    p.EventVersion(),
		AppID:      appID,
		OccurredAt: occurredAt.UTC(),
		Key:        p.PartitionKey(),
		Payload:    body,
	}, nil
}

// jsonAppender is implemented by payloads encoded on hot paths; the output
// equals json.Marshal's (TestAppendJSONMatchesMarshal).
type jsonAppender interface {
	appendJSON(b []byte) []byte
}

// appendTime appends t as encoding/json does (RFC 3339 with nanoseconds).
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// Payload is implemented by every typed event body.
type Payload interface {
	EventType() string
	EventVersion() int
	// PartitionKey returns the value the event is keyed by on its topic.
	PartitionKey() string
}

// Decoder decodes and validates raw events. The zero value uses the defaults.
type Decoder struct {
	// MaxBytes limits the encoded size, overriding DefaultMaxBytes.
	MaxBytes int
	// MaxSkew limits how far occurred_at may lie in the future, overriding
	// DefaultMaxSkew. A negative value disables the check.
	MaxSkew time.Duration
	// Now returns the current time, overriding time.Now (for tests).
	Now func() time.Time
}

// Decode decodes and validates b with the default Decoder.
func Decode(b []byte) (*Envelope, error) {
	var d Decoder
	return d.Decode(b)
}

// Decode checks b's size and encoding, validates the envelope and its payload
// against the embedded schemas and returns the envelope. Every failure is an
// *InvalidError whose Reason says what was wrong.
func (d *Decoder) Decode(b []byte) (*Envelope, error) {
	r, err := load()
	if err != nil {
		return nil, err
	}
	if err := d.precheck(b); err != nil {
		return nil, err
	}
	// The envelope keeps slices of the document (payload and its members),
	// so it gets a copy of its own: callers may reuse b.
	b = append([]byte(nil), b...)
	m, pm, valid, isObject := scanDocumentNested(b, "payload")
	if !valid {
		var v any // for encoding/json's description of what is wrong
		return nil, invalid(ReasonMalformed, "%v", json.Unmarshal(b, &v))
	}
	if !isObject {
		return nil, invalid(ReasonInvalidEnvelope, "want a JSON object")
	}
	if err := r.fastEnvelope.checkMembers(m); err != nil {
		return nil, invalid(ReasonInvalidEnvelope, "%v", err)
	}
	// Every field below was just validated, so these conversions succeed.
	field := func(name string) []byte { v, _ := m.get(name); return v }
	env := &Envelope{Payload: json.RawMessage(field("payload"))}
	env.EventID, _ = rawString(field("event_id"))
	env.Type, _ = rawString(field("type"))
	env.Version, _ = strconv.Atoi(string(field("version")))
	env.AppID, _ = rawString(field("app_id"))
	at, _ := rawString(field("occurred_at"))
	env.OccurredAt, _ = parseDateTime(at)
	env.Key, _ = rawString(field("key"))

	tv := env.TypeVersion()
	pr, ok := r.fastPayloads[tv]
	if !ok {
		return nil, invalid(ReasonUnknownType, "no schema for %s", tv)
	}
	if err := pr.checkMembers(pm); err != nil {
		return nil, invalid(ReasonInvalidPayload, "%s: %v", tv, err)
	}
	env.payloadMembers = pm
	if err := d.checkKeyAndTime(r, env, tv, func(field string) string {
		v, _ := pm.get(field)
		s, _ := rawString(v)
		return s
	}); err != nil {
		return nil, err
	}
	return env, nil
}

func (d *Decoder) precheck(b []byte) error {
	limit := d.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(b) > limit {
		return invalid(ReasonTooLarge, "%d bytes exceeds the limit of %d", len(b), limit)
	}
	if !utf8.Valid(b) {
		return invalid(ReasonInvalidUTF8, "event is not valid UTF-8")
	}
	return nil
}

func (d *Decoder) checkKeyAndTime(r *registry, env *Envelope, tv TypeVersion, field func(string) string) error {
	if f := r.keyFields[tv]; f != "" {
		if got := field(f); got != env.Key {
			return invalid(ReasonKeyMismatch, "key %q is not payload.%s %q", truncateString(env.Key, 64), f, truncateString(got, 64))
		}
	}
	if rule := keyRules[tv]; rule != nil {
		if err := rule(env.Key, field); err != nil {
			return err
		}
	}
	if d.MaxSkew >= 0 {
		skew := d.MaxSkew
		if skew == 0 {
			skew = DefaultMaxSkew
		}
		now := time.Now
		if d.Now != nil {
			now = d.Now
		}
		if env.OccurredAt.After(now().Add(skew)) {
			return invalid(ReasonFutureEvent, "occurred_at %s is more than %s ahead", env.OccurredAt.Format(time.RFC3339), skew)
		}
	}
	return nil
}

// decodeReference is Decode done by the general JSON Schema engine. It is
// the reference the compiled checks are tested against.
func (d *Decoder) decodeReference(b []byte) (*Envelope, error) {
	r, err := load()
	if err != nil {
		return nil, err
	}
	if err := d.precheck(b); err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, invalid(ReasonMalformed, "%v", err)
	}
	if err := r.envelope.Validate(doc); err != nil {
		return nil, invalid(ReasonInvalidEnvelope, "%s", firstLine(err))
	}
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return nil, invalid(ReasonInvalidEnvelope, "%v", err)
	}
	tv := env.TypeVersion()
	sch, ok := r.payloads[tv]
	if !ok {
		return nil, invalid(ReasonUnknownType, "no schema for %s", tv)
	}
	payload := doc.(map[string]any)["payload"]
	if err := sch.Validate(payload); err != nil {
		return nil, invalid(ReasonInvalidPayload, "%s: %s", tv, firstLine(err))
	}
	if err := d.checkKeyAndTime(r, &env, tv, func(field string) string {
		s, _ := payload.(map[string]any)[field].(string)
		return s
	}); err != nil {
		return nil, err
	}
	return &env, nil
}

// Validate checks an envelope built in Go exactly as a processor will check
// it after it crosses Kafka, and returns its encoding.
func Validate(e *Envelope) ([]byte, error) {
	b, err := e.Encode()
	if err != nil {
		return nil, invalid(ReasonMalformed, "encoding: %v", err)
	}
	if _, err := Decode(b); err != nil {
		return nil, err
	}
	return b, nil
}
