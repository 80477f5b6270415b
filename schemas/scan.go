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

// splitObject splits a JSON object into its members without decoding the
// values. b must already be known to be valid JSON (json.Valid); it reports
// false if b is not an object.
func splitObject(b []byte) (members, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	ms := make(members, 0, 8)
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return ms, true
	}
	for i < len(b) {
		// name
		end := stringEnd(b, i)
		raw := b[i:end]
		var name []byte
		if bytes.IndexByte(raw, '\\') < 0 {
			name = raw[1 : len(raw)-1]
		} else {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, false
			}
			name = []byte(s)
		}
		i = skipSpace(b, end)
		i = skipSpace(b, i+1) // ':'
		vend := valueEnd(b, i)
		ms = append(ms, member{name: name, value: b[i:vend]})
		i = skipSpace(b, vend)
		if i >= len(b) || b[i] == '}' {
			break
		}
		i = skipSpace(b, i+1) // ','
	}
	return ms, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the string starting at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return len(b)
}

// valueEnd returns the index after the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = stringEnd(b, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return len(b)
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
			j++
		}
		return j
	}
}
