package schemas

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The embedded JSON Schema files are the contract. Validating each event
// with a general JSON Schema engine costs ~25µs (a generic decode plus an
// interpreter walk), four times per claim in a running pipeline, so the
// files are also compiled into the checks below, which implement exactly
// the subset of JSON Schema the files use and refuse to compile any other
// keyword. The general engine stays the reference: it validates the files
// themselves at load, and FuzzDecodeMatchesReference checks that both agree
// on arbitrary input.

type ruleKind int

const (
	kindAny ruleKind = iota
	kindObject
	kindString
	kindInteger
	kindArray
)

type rule struct {
	path           string // where the rule sits, for error messages
	kind           ruleKind
	pattern        *matcher
	patternSrc     string
	minLen, maxLen int // -1 = none
	enum           map[string]bool
	dateTime       bool
	hasMin, hasMax bool
	min, max       int64
	obj            *objRule
	// items, minItems and maxItems constrain an array (-1 = no bound).
	items              *rule
	minItems, maxItems int
}

type objRule struct {
	path     string
	names    []string // declared property order, for stable errors
	props    map[string]*rule
	required []string
	closed   bool
}

// annotation keywords carry no assertion.
var annotations = map[string]bool{"$schema": true, "$id": true, "title": true, "description": true, "x-promoflow-key": true}

func compileRule(path string, v any) (*rule, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: schema is not an object", path)
	}
	r := &rule{path: path, minLen: -1, maxLen: -1, minItems: -1, maxItems: -1}
	for k, val := range m {
		switch {
		case annotations[k]:
		case k == "type":
			switch val {
			case "object":
				r.kind = kindObject
			case "string":
				r.kind = kindString
			case "integer":
				r.kind = kindInteger
			case "array":
				r.kind = kindArray
			default:
				return nil, fmt.Errorf("%s: unsupported type %v", path, val)
			}
		case k == "properties", k == "required", k == "additionalProperties", k == "items":
			// handled with the object or array below
		case k == "pattern":
			m, err := compilePattern(val.(string))
			if err != nil {
				return nil, fmt.Errorf("%s: pattern: %w", path, err)
			}
			r.pattern, r.patternSrc = m, val.(string)
		case k == "minLength", k == "maxLength", k == "minimum", k == "maximum", k == "minItems", k == "maxItems":
			n, err := strconv.ParseInt(fmt.Sprint(val), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: %w", path, k, err)
			}
			switch k {
			case "minLength":
				r.minLen = int(n)
			case "maxLength":
				r.maxLen = int(n)
			case "minimum":
				r.hasMin, r.min = true, n
			case "maximum":
				r.hasMax, r.max = true, n
			case "minItems":
				r.minItems = int(n)
			case "maxItems":
				r.maxItems = int(n)
			}
		case k == "format":
			if val != "date-time" {
				return nil, fmt.Errorf("%s: unsupported format %v", path, val)
			}
			r.dateTime = true
		case k == "enum":
			r.enum = map[string]bool{}
			for _, e := range val.([]any) {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("%s: enum values must be strings", path)
				}
				r.enum[s] = true
			}
			if r.kind == kindAny {
				r.kind = kindString
			}
		default:
			return nil, fmt.Errorf("%s: keyword %q is not supported by the compiled checks (schemas/fastcheck.go)", path, k)
		}
	}
	if r.kind == kindAny && r.enum != nil {
		r.kind = kindString
	}
	if r.kind == kindObject {
		o := &objRule{path: path, props: map[string]*rule{}}
		if props, ok := m["properties"].(map[string]any); ok {
			for name, pv := range props {
				pr, err := compileRule(path+"."+name, pv)
				if err != nil {
					return nil, err
				}
				o.props[name] = pr
				o.names = append(o.names, name)
			}
			sort.Strings(o.names)
		}
		if req, ok := m["required"].([]any); ok {
			for _, x := range req {
				o.required = append(o.required, x.(string))
			}
		}
		if ap, ok := m["additionalProperties"]; ok {
			if ap != false {
				return nil, fmt.Errorf("%s: only additionalProperties: false is supported", path)
			}
			o.closed = true
		}
		r.obj = o
	} else if _, ok := m["properties"]; ok {
		return nil, fmt.Errorf("%s: properties without type object", path)
	}
	if it, ok := m["items"]; ok {
		if r.kind != kindArray {
			return nil, fmt.Errorf("%s: items without type array", path)
		}
		ir, err := compileRule(path+"[]", it)
		if err != nil {
			return nil, err
		}
		r.items = ir
	}
	if (r.minItems >= 0 || r.maxItems >= 0) && r.kind != kindArray {
		return nil, fmt.Errorf("%s: minItems/maxItems without type array", path)
	}
	return r, nil
}

// check validates raw against o and returns its members.
func (o *objRule) check(raw []byte) (members, error) {
	path := o.path
	m, valid, isObject := scanDocument(raw)
	if !valid || !isObject {
		return nil, fmt.Errorf("%s: want an object", path)
	}
	return m, o.checkMembers(m)
}

func (o *objRule) unconstrained() bool {
	return len(o.props) == 0 && len(o.required) == 0 && !o.closed
}

// checkMembers validates an object's members against o.
func (o *objRule) checkMembers(m members) error {
	path := o.path
	for _, req := range o.required {
		if _, ok := m.get(req); !ok {
			return fmt.Errorf("%s: missing property %q", path, req)
		}
	}
	for _, name := range o.names {
		v, ok := m.get(name)
		if !ok {
			continue
		}
		if err := o.props[name].check(v); err != nil {
			return err
		}
	}
	if o.closed {
		var extra []string
		for _, mb := range m {
			if _, ok := o.props[string(mb.name)]; !ok {
				extra = append(extra, string(mb.name))
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return fmt.Errorf("%s: property %q is not allowed", path, truncateString(extra[0], 40))
		}
	}
	return nil
}

func (r *rule) check(raw []byte) error {
	path := r.path
	switch r.kind {
	case kindObject:
		if r.obj.unconstrained() {
			// Part of a document already checked to be valid JSON: an
			// object is all this rule asks for (the envelope's payload,
			// which its own schema checks next).
			if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
				return fmt.Errorf("%s: want an object", path)
			}
			return nil
		}
		_, err := r.obj.check(raw)
		return err
	case kindString:
		raw = bytes.TrimSpace(raw)
		if len(raw) >= 2 && raw[0] == '"' && bytes.IndexByte(raw, '\\') < 0 {
			// No escapes: check the bytes in place, without a copy.
			return r.checkBytes(raw[1 : len(raw)-1])
		}
		s, err := rawString(raw)
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		return r.checkBytes([]byte(s))
	case kindInteger:
		_, err := r.integer(raw)
		return err
	case kindArray:
		return r.checkArray(raw)
	}
	return nil
}

// checkArray validates an array (part of a document already checked to be
// valid JSON) element by element.
func (r *rule) checkArray(raw []byte) error {
	path := r.path
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return fmt.Errorf("%s: want an array", path)
	}
	n := 0
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] != ']' {
		end, ok := scanValue(raw, i, 1)
		if !ok {
			return fmt.Errorf("%s: want an array", path)
		}
		n++
		if r.maxItems >= 0 && n > r.maxItems {
			return fmt.Errorf("%s: more than %d items", path, r.maxItems)
		}
		if r.items != nil {
			if err := r.items.check(raw[i:end]); err != nil {
				return fmt.Errorf("%s[%d]%s", path, n-1, strings.TrimPrefix(err.Error(), r.items.path))
			}
		}
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	if r.minItems >= 0 && n < r.minItems {
		return fmt.Errorf("%s: fewer than %d items", path, r.minItems)
	}
	return nil
}

func (r *rule) checkBytes(s []byte) error {
	path := r.path
	if r.minLen >= 0 || r.maxLen >= 0 {
		n := utf8.RuneCount(s)
		if r.minLen >= 0 && n < r.minLen {
			return fmt.Errorf("%s: shorter than %d characters", path, r.minLen)
		}
		if r.maxLen >= 0 && n > r.maxLen {
			return fmt.Errorf("%s: longer than %d characters", path, r.maxLen)
		}
	}
	if r.enum != nil && !r.enum[string(s)] {
		return fmt.Errorf("%s: %q is not one of the allowed values", path, truncateString(string(s), 40))
	}
	if r.pattern != nil && !r.pattern.Match(s) {
		return fmt.Errorf("%s: %q does not match %s", path, truncateString(string(s), 40), r.patternSrc)
	}
	if r.dateTime {
		if _, err := parseDateTime(string(s)); err != nil {
			return fmt.Errorf("%s: %q is not an RFC 3339 date-time", path, truncateString(string(s), 40))
		}
	}
	return nil
}

func (r *rule) integer(raw []byte) (int64, error) {
	path := r.path
	s := string(bytes.TrimSpace(raw))
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || (len(s) > 1 && (s[0] == '0' || (s[0] == '-' && s[1] == '0'))) {
		return 0, fmt.Errorf("%s: want an integer, got %s", path, truncateString(s, 40))
	}
	if r.hasMin && n < r.min {
		return 0, fmt.Errorf("%s: %d is below the minimum %d", path, n, r.min)
	}
	if r.hasMax && n > r.max {
		return 0, fmt.Errorf("%s: %d is above the maximum %d", path, n, r.max)
	}
	return n, nil
}

// rawString decodes a JSON string value, avoiding json.Unmarshal when it
// has no escapes (the whole document was already checked to be valid JSON).
func rawString(raw []byte) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return "", fmt.Errorf("want a string")
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", err
	}
	return s, nil
}

// parseDateTime accepts RFC 3339 date-times (what both JSON Schema's
// date-time format and Go's time.Time decoding accept).
func parseDateTime(s string) (time.Time, error) {
	if !rfc3339Shape(s) {
		return time.Time{}, fmt.Errorf("not RFC 3339")
	}
	return time.Parse(time.RFC3339Nano, s)
}

// rfc3339Shape checks YYYY-MM-DDTHH:MM:SS[.F+](Z|±HH:MM) digit by digit;
// time.Parse alone also takes one-digit hours.
func rfc3339Shape(s string) bool {
	digits := func(from, to int) bool {
		for i := from; i < to; i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if len(s) < 20 || !digits(0, 4) || s[4] != '-' || !digits(5, 7) || s[7] != '-' || !digits(8, 10) ||
		s[10] != 'T' || !digits(11, 13) || s[13] != ':' || !digits(14, 16) || s[16] != ':' || !digits(17, 19) {
		return false
	}
	i := 19
	if s[i] == '.' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		if j == i+1 {
			return false
		}
		i = j
	}
	rest := s[i:]
	if rest == "Z" {
		return true
	}
	return len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
		rest[1] >= '0' && rest[1] <= '9' && rest[2] >= '0' && rest[2] <= '9' &&
		rest[4] >= '0' && rest[4] <= '9' && rest[5] >= '0' && rest[5] <= '9'
}

func truncateString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
