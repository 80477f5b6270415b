package verify

import (
	"encoding/json"
	"unicode/utf8"
)

// eventHead is what check 1 reads of an event: its identity, its type,
// and the payload's members that name its result and campaign.
type eventHead struct {
	eventID, typ, appID           string
	resultID, batchID, activityID string
	op                            string
}

// maxDepth bounds the nesting readHead follows; deeper documents are
// refused (the schemas refuse them too).
const maxDepth = 512

// readHead reads the head of one JSON object without decoding the rest:
// it walks the whole document once, checking it is valid JSON, and keeps
// the string values of the members it needs (the last of repeated keys, as
// encoding/json does). ok is false when b is not one valid JSON object.
// It does what json.Unmarshal into the few fields needed would do, several
// times faster: check 1 reads every input and result record.
func readHead(b []byte) (h eventHead, ok bool) {
	s := scanner{b: b}
	s.space()
	ok = s.object(0, func(key []byte, s *scanner) bool {
		switch string(key) {
		case "event_id":
			return s.stringInto(&h.eventID)
		case "type":
			return s.stringInto(&h.typ)
		case "app_id":
			return s.stringInto(&h.appID)
		case "payload":
			// The last payload counts, and one that is no object names
			// nothing.
			h.resultID, h.batchID, h.activityID, h.op = "", "", "", ""
			if s.peek() != '{' {
				return s.value(1)
			}
			return s.object(1, func(key []byte, s *scanner) bool {
				switch string(key) {
				case "result_id":
					return s.stringInto(&h.resultID)
				case "batch_id":
					return s.stringInto(&h.batchID)
				case "activity_id":
					return s.stringInto(&h.activityID)
				case "op":
					return s.stringInto(&h.op)
				}
				return s.value(2)
			})
		}
		return s.value(1)
	})
	if !ok {
		return eventHead{}, false
	}
	s.space()
	if s.i != len(s.b) {
		return eventHead{}, false
	}
	return h, true
}

// scanner walks JSON text by the grammar of RFC 8259.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// object reads an object at s.i, calling member with each key (raw, as
// written between the quotes) with the scanner at its value, which member
// must read.
func (s *scanner) object(depth int, member func(key []byte, s *scanner) bool) bool {
	if depth > maxDepth || s.peek() != '{' {
		return false
	}
	s.i++
	s.space()
	if s.peek() == '}' {
		s.i++
		return true
	}
	for {
		s.space()
		start := s.i
		raw, escaped, ok := s.str()
		if !ok {
			return false
		}
		key := raw
		if escaped {
			var k string
			if json.Unmarshal(s.b[start:s.i], &k) != nil {
				return false
			}
			key = []byte(k)
		}
		s.space()
		if s.peek() != ':' {
			return false
		}
		s.i++
		s.space()
		if !member(key, s) {
			return false
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			return false
		}
	}
}

// stringInto reads a value that should be a string into v; any other
// valid value leaves v empty (the field does not name anything).
func (s *scanner) stringInto(v *string) bool {
	if s.peek() != '"' {
		*v = ""
		return s.value(1)
	}
	start := s.i
	raw, escaped, ok := s.str()
	if !ok {
		return false
	}
	if !escaped && utf8.Valid(raw) {
		*v = string(raw)
		return true
	}
	// Escapes, or bytes that are not UTF-8 (which encoding/json replaces).
	return json.Unmarshal(s.b[start:s.i], v) == nil
}

// str reads a string at s.i and returns its raw bytes between the quotes,
// and whether it holds escapes.
func (s *scanner) str() (raw []byte, escaped, ok bool) {
	if s.peek() != '"' {
		return nil, false, false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw = s.b[start:s.i]
			s.i++
			return raw, escaped, true
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return nil, false, false
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return nil, false, false
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHexDigit(h) {
						return nil, false, false
					}
				}
				s.i += 5
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		default:
			s.i++
		}
	}
	return nil, false, false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// value skips any value at s.i.
func (s *scanner) value(depth int) bool {
	if depth > maxDepth {
		return false
	}
	switch c := s.peek(); {
	case c == '{':
		return s.object(depth, func(_ []byte, s *scanner) bool { return s.value(depth + 1) })
	case c == '[':
		s.i++
		s.space()
		if s.peek() == ']' {
			s.i++
			return true
		}
		for {
			s.space()
			if !s.value(depth + 1) {
				return false
			}
			s.space()
			switch s.peek() {
			case ',':
				s.i++
			case ']':
				s.i++
				return true
			default:
				return false
			}
		}
	case c == '"':
		_, _, ok := s.str()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return false
}

func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits reads one or more digits.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}
