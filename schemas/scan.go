package schemas

import (
	"bytes"
	"encoding/json"
)

// member is one name/value pair of a JSON object, the value unparsed. The
// name aliases the document unless it had escapes.
type member struct {
	name  []byte
	value []byte
}

// members is an object's members in document order. Like encoding/json, a
// name given twice takes its last value.
type members []member

func (ms members) get(name string) ([]byte, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if string(ms[i].name) == name {
			return ms[i].value, true
		}
	}
	return nil, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// maxDepth matches encoding/json's nesting limit.
const maxDepth = 10000

// scanDocument validates b as one JSON value (its UTF-8 already checked)
// in a single pass and, when it is an object, returns its members. valid
// is false for malformed JSON; isObject is false for valid non-objects.
func scanDocument(b []byte) (ms members, valid, isObject bool) {
	ms, _, valid, isObject = scanDocumentNested(b, "")
	return ms, valid, isObject
}

// scanDocumentNested is scanDocument that also returns the members of the
// top-level member named nested when that is an object (the envelope's
// payload), in the same pass.
func scanDocumentNested(b []byte, nested string) (ms, inner members, valid, isObject bool) {
	i := skipSpace(b, 0)
	if i < len(b) && b[i] == '{' {
		ms = make(members, 0, 8)
		sc := objScan{nested: nested}
		end, ok := sc.object(b, i, 0, &ms)
		if !ok || skipSpace(b, end) != len(b) {
			return nil, nil, false, false
		}
		return ms, sc.inner, true, true
	}
	end, ok := scanValue(b, i, 0)
	if !ok || skipSpace(b, end) != len(b) {
		return nil, nil, false, false
	}
	return nil, nil, true, false
}

// objScan carries what the top-level object scan collects.
type objScan struct {
	nested string
	inner  members
}

// scanValue validates the value at b[i] and returns the index after it.
func scanValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) {
		return i, false
	}
	switch c := b[i]; {
	case c == '{':
		return (*objScan)(nil).object(b, i, depth, nil)
	case c == '[':
		if depth+1 > maxDepth {
			return i, false
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, true
		}
		for {
			end, ok := scanValue(b, i, depth+1)
			if !ok {
				return end, false
			}
			i = skipSpace(b, end)
			if i >= len(b) {
				return i, false
			}
			if b[i] == ']' {
				return i + 1, true
			}
			if b[i] != ',' {
				return i, false
			}
			i = skipSpace(b, i+1)
		}
	case c == '"':
		return scanString(b, i)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == 't':
		return scanLiteral(b, i, "true")
	case c == 'f':
		return scanLiteral(b, i, "false")
	case c == 'n':
		return scanLiteral(b, i, "null")
	}
	return i, false
}

// object validates the object at b[i]; with ms non-nil it also records
// the object's members, and (sc non-nil) those of the member sc.nested.
func (sc *objScan) object(b []byte, i, depth int, ms *members) (int, bool) {
	if depth+1 > maxDepth {
		return i, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, false
		}
		nend, ok := scanString(b, i)
		if !ok {
			return nend, false
		}
		var name []byte // decoded; only needed when recording members
		if ms != nil {
			raw := b[i:nend]
			if bytes.IndexByte(raw, '\\') < 0 {
				name = raw[1 : len(raw)-1]
			} else {
				var s string
				if err := json.Unmarshal(raw, &s); err != nil {
					return i, false
				}
				name = []byte(s)
			}
		}
		i = skipSpace(b, nend)
		if i >= len(b) || b[i] != ':' {
			return i, false
		}
		i = skipSpace(b, i+1)
		var vend int
		if sc != nil && ms != nil && i < len(b) && b[i] == '{' && string(name) == sc.nested {
			sc.inner = make(members, 0, 8) // a repeated name: the last one wins
			vend, ok = (*objScan)(nil).object(b, i, depth+1, &sc.inner)
		} else {
			if sc != nil && ms != nil && string(name) == sc.nested {
				sc.inner = nil // the last value is not an object
			}
			vend, ok = scanValue(b, i, depth+1)
		}
		if !ok {
			return vend, false
		}
		if ms != nil {
			*ms = append(*ms, member{name: name, value: b[i:vend]})
		}
		i = skipSpace(b, vend)
		if i >= len(b) {
			return i, false
		}
		if b[i] == '}' {
			return i + 1, true
		}
		if b[i] != ',' {
			return i, false
		}
		i = skipSpace(b, i+1)
	}
}

func scanString(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return j + 1, true
		case c < 0x20:
			return j, false
		case c == '\\':
			j++
			if j >= len(b) {
				return j, false
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if j+4 >= len(b) {
					return j, false
				}
				for k := j + 1; k <= j+4; k++ {
					if !isHex(b[k]) {
						return k, false
					}
				}
				j += 4
			default:
				return j, false
			}
		}
	}
	return len(b), false
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func scanNumber(b []byte, i int) (int, bool) {
	digits := func(j int) int {
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j
	}
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(i + 1)
	default:
		return i, false
	}
	if i < len(b) && b[i] == '.' {
		j := digits(i + 1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func scanLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i >= len(lit) && string(b[i:i+len(lit)]) == lit {
		return i + len(lit), true
	}
	return i, false
}
