package schemas

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Payloads are decoded on every record by every stage. Decode has already
// split the payload into members and checked each against its schema, so a
// flat struct of string, integer and time fields can be filled from those
// members directly instead of running encoding/json's reflection decoder
// again. Anything else falls back to json.Unmarshal.

type fieldKind int

const (
	fieldString fieldKind = iota + 1
	fieldInt
	fieldTime
)

type fieldPlan struct {
	index int
	kind  fieldKind
}

// plan maps a struct's JSON names to its fields; nil if the struct has a
// field the fast path does not handle.
type plan map[string]fieldPlan

var plans sync.Map // reflect.Type -> plan

var timeType = reflect.TypeOf(time.Time{})

func planFor(t reflect.Type) plan {
	if p, ok := plans.Load(t); ok {
		return p.(plan)
	}
	p := plan{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || f.Anonymous {
			p = nil
			break
		}
		if name == "" {
			name = f.Name
		}
		var k fieldKind
		switch {
		case f.Type == timeType:
			k = fieldTime
		case f.Type.Kind() == reflect.String:
			k = fieldString
		case f.Type.Kind() == reflect.Int64 || f.Type.Kind() == reflect.Int:
			k = fieldInt
		default:
			p = nil
		}
		if p == nil {
			break
		}
		p[name] = fieldPlan{index: i, kind: k}
	}
	plans.Store(t, p)
	return p
}

// fill sets the fields of the struct v points to from ms; it reports false
// (having changed nothing that matters) when the fast path does not apply.
func fill(v any, ms members) bool {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
		return false
	}
	p := planFor(rv.Elem().Type())
	if p == nil {
		return false
	}
	sv := rv.Elem()
	for _, m := range ms {
		fp, ok := p[string(m.name)]
		if !ok {
			return false
		}
		f := sv.Field(fp.index)
		switch fp.kind {
		case fieldString:
			s, err := rawString(m.value)
			if err != nil {
				return false
			}
			f.SetString(s)
		case fieldInt:
			n, err := strconv.ParseInt(string(m.value), 10, 64)
			if err != nil || f.OverflowInt(n) {
				return false
			}
			f.SetInt(n)
		case fieldTime:
			s, err := rawString(m.value)
			if err != nil {
				return false
			}
			t, err := parseDateTime(s)
			if err != nil {
				return false
			}
			f.Set(reflect.ValueOf(t))
		}
	}
	return true
}

// decodePayload is DecodePayload's work: the fast path when Decode left the
// payload's members, else encoding/json.
func (e *Envelope) decodePayload(v any) error {
	if e.payloadMembers != nil {
		// Work on a zero copy so a fallback starts clean.
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Pointer && !rv.IsNil() {
			tmp := reflect.New(rv.Elem().Type())
			if fill(tmp.Interface(), e.payloadMembers) {
				rv.Elem().Set(tmp.Elem())
				return nil
			}
		}
	}
	return json.Unmarshal(e.Payload, v)
}
