package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// item is one event of a request: its bytes as sent and, in a JSON-lines
// body, its 1-based line number.
type item struct {
	raw  []byte
	line int
}

// parseBatch splits a batch body into its events without validating them:
// a JSON array of values (ndjson false) or one value per line (ndjson true;
// blank lines are skipped). It never returns more than maxBatch items: past
// that it stops reading and fails with ErrTooManyEvents. JSON-lines items
// alias body.
//
// An array must be well-formed JSON, or its elements cannot be told apart
// (ErrMalformedBatch); an element that is not an envelope is left for
// validation to reject. A malformed line rejects only itself, later.
func parseBatch(body []byte, ndjson bool, maxBatch int) ([]item, error) {
	var items []item
	var err error
	if ndjson {
		items, err = parseLines(body, maxBatch)
	} else {
		items, err = parseArray(body, maxBatch)
	}
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, ErrEmptyBatch
	}
	return items, nil
}

func parseLines(body []byte, maxBatch int) ([]item, error) {
	var items []item
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if len(items) == maxBatch {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyEvents, maxBatch)
		}
		items = append(items, item{raw: line, line: n})
	}
	return items, nil
}

func parseArray(body []byte, maxBatch int) ([]item, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedBatch, syntaxOnly(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, fmt.Errorf("%w: the body does not start with [ (send JSON lines with Content-Type application/x-ndjson)", ErrMalformedBatch)
	}
	var items []item
	for dec.More() {
		if len(items) == maxBatch {
			return nil, fmt.Errorf("%w: more than %d", ErrTooManyEvents, maxBatch)
		}
		// RawMessage keeps the element's bytes as sent.
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: element %d: %v", ErrMalformedBatch, len(items), syntaxOnly(err))
		}
		items = append(items, item{raw: raw})
	}
	if _, err := dec.Token(); err != nil { // the closing ]
		return nil, fmt.Errorf("%w: %v", ErrMalformedBatch, syntaxOnly(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: data after the closing ]", ErrMalformedBatch)
	}
	return items, nil
}

// syntaxOnly describes a decoding error without Go type names.
func syntaxOnly(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s (at byte %d)", se.Error(), se.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of the body"
	}
	return err.Error()
}
