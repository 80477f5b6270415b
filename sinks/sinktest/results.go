package sinktest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// ResultRow is one stored result of one of [ResultTypes] as a [Reader]
// sees it: its id (a notification's notification_id), the app that
// published it, and the result, a value of its payload type
// (schemas.EntryRecorded, …) with times in UTC at millisecond precision.
type ResultRow struct {
	ResultID string
	AppID    string
	Result   schemas.Payload
}

// decoders decode the JSON of each result type strictly: a field the type
// does not have is an error.
var decoders = map[string]func([]byte) (schemas.Payload, error){
	schemas.TypeLotteryActivityCommitted: decodeStrict[schemas.ActivityCommitted],
	schemas.TypeLotteryEntryRecorded:     decodeStrict[schemas.EntryRecorded],
	schemas.TypeLotteryDrawCompleted:     decodeStrict[schemas.DrawCompleted],
	schemas.TypeLotteryPrizeAwarded:      decodeStrict[schemas.PrizeAwarded],
	schemas.TypeGiftMatchDecided:         decodeStrict[schemas.MatchDecided],
	schemas.TypeGiftMemberRecorded:       decodeStrict[schemas.MemberRecorded],
	schemas.TypeCouponStateChanged:       decodeStrict[schemas.StateChanged],
	schemas.TypeNotificationRequested:    decodeStrict[schemas.NotificationRequested],

	schemas.TypeReferralBound:                decodeStrict[schemas.ReferralBoundResult],
	schemas.TypeReferralQualificationDecided: decodeStrict[schemas.QualificationDecided],
	schemas.TypeReferralRewardGranted:        decodeStrict[schemas.RewardGranted],
	schemas.TypeRecommendationMade:           decodeStrict[schemas.RecommendationMade],
}

// resultID returns the id the result p is stored under: its result_id, or
// a notification's notification_id.
func resultID(p schemas.Payload) string {
	var id struct {
		ResultID         string `json:"result_id"`
		NotificationID   string `json:"notification_id"`
		RecommendationID string `json:"recommendation_id"`
	}
	if b, err := json.Marshal(p); err == nil {
		_ = json.Unmarshal(b, &id)
	}
	return cmp.Or(id.ResultID, id.NotificationID, id.RecommendationID)
}

func decodeStrict[T schemas.Payload](b []byte) (schemas.Payload, error) {
	var v T
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// columnFields maps the columns whose names are not their JSON fields':
// rank and trigger are reserved words in MySQL 8.
var columnFields = map[string]string{"draw_rank": "rank", "draw_trigger": "trigger", "rec_rank": "rank"}

// ColumnsRow returns the result of eventType (one of [ResultTypes]) stored
// as one row whose columns are cols, by name, for Readers that select every
// column of a result table. The columns are named after the result's JSON
// fields, except draw_rank and draw_trigger (rank and trigger), plus app_id;
// created_at is ignored, and due_day must be due_at's date in UTC. A time
// may be stored as x with its milliseconds in x_ms (which wins), and an
// optional one flagged by has_x (0: absent) or left NULL. Strings may come
// as []byte. Any other column is an error, so the table and the result type
// cannot drift apart unnoticed.
func ColumnsRow(eventType string, cols map[string]any) (ResultRow, error) {
	decode, ok := decoders[eventType]
	if !ok {
		return ResultRow{}, fmt.Errorf("%s is not a result type", eventType)
	}
	var (
		row    ResultRow
		dueDay any
	)
	fields := map[string]any{}
	for name, v := range cols {
		if b, ok := v.([]byte); ok {
			v = string(b)
		}
		switch {
		case name == "app_id":
			row.AppID, ok = v.(string)
			if !ok {
				return ResultRow{}, fmt.Errorf("app_id is %T, want a string", v)
			}
		case name == "due_day":
			dueDay = v
		case name == "created_at", strings.HasSuffix(name, "_ms"), strings.HasPrefix(name, "has_"):
		case v != nil:
			if f, ok := columnFields[name]; ok {
				name = f
			}
			fields[name] = v
		}
	}
	var absent []string
	for name, v := range cols {
		switch {
		case strings.HasSuffix(name, "_ms"):
			ms, ok := v.(uint64)
			if !ok {
				return ResultRow{}, fmt.Errorf("%s is %T, want uint64", name, v)
			}
			fields[strings.TrimSuffix(name, "_ms")] = time.UnixMilli(int64(ms)).UTC()
		case strings.HasPrefix(name, "has_") && fmt.Sprint(v) == "0":
			absent = append(absent, strings.TrimPrefix(name, "has_"))
		}
	}
	for _, name := range absent {
		delete(fields, name)
	}
	if dueDay != nil {
		day, ok := dueDay.(time.Time)
		dueAt, _ := fields["due_at"].(time.Time)
		if !ok || day.Format(time.DateOnly) != dueAt.UTC().Format(time.DateOnly) {
			return ResultRow{}, fmt.Errorf("due_day %v is not the date of due_at %v", dueDay, fields["due_at"])
		}
	}
	b, err := json.Marshal(fields)
	if err != nil {
		return ResultRow{}, err
	}
	if row.Result, err = decode(b); err != nil {
		return ResultRow{}, fmt.Errorf("decoding %s columns: %w", eventType, err)
	}
	row.ResultID = resultID(row.Result)
	return row, nil
}

// decodeResult returns the ResultRow an envelope made by Result should be
// stored as.
func decodeResult(tb testing.TB, env *schemas.Envelope) ResultRow {
	tb.Helper()
	decode, ok := decoders[env.Type]
	if !ok {
		tb.Fatalf("event %s: %s is not a result type", env.EventID, env.Type)
	}
	p, err := decode(env.Payload)
	if err != nil {
		tb.Fatalf("decoding generated %s: %v", env.Type, err)
	}
	p = stored(p)
	return ResultRow{ResultID: resultID(p), AppID: env.AppID, Result: p}
}

// stored returns a copy of the result p as a store keeps it: every time in
// UTC, truncated to the millisecond.
func stored[T any](p T) T {
	v := reflect.New(reflect.TypeOf(p)).Elem()
	v.Set(reflect.ValueOf(p))
	eachTime(v, func(t *time.Time) { *t = t.UTC().Truncate(time.Millisecond) })
	return v.Interface().(T)
}

// eachTime calls f with a pointer to every time.Time and non-nil *time.Time
// field of the struct v, which must be addressable. A *time.Time field is
// replaced by a pointer to a copy first, so f never changes what the
// original points to.
func eachTime(v reflect.Value, f func(*time.Time)) {
	for i := range v.NumField() {
		switch fv := v.Field(i); t := fv.Interface().(type) {
		case time.Time:
			f(fv.Addr().Interface().(*time.Time))
		case *time.Time:
			if t != nil {
				c := *t
				f(&c)
				fv.Set(reflect.ValueOf(&c))
			}
		}
	}
}

// notUTC returns those of p's times that are not in UTC, if p is a struct.
func notUTC(p any) []string {
	if reflect.TypeOf(p).Kind() != reflect.Struct {
		return nil
	}
	v := reflect.New(reflect.TypeOf(p)).Elem()
	v.Set(reflect.ValueOf(p))
	var out []string
	eachTime(v, func(t *time.Time) {
		if t.Location() != time.UTC {
			out = append(out, t.String())
		}
	})
	return out
}

// jsonOf returns v's JSON encoding, for comparing and printing results.
func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(b)
}

// diffResult describes how got differs from want, or returns "".
func diffResult(want, got ResultRow) string {
	var out string
	if want.AppID != got.AppID {
		out += fmt.Sprintf(" app_id=%q, want %q;", got.AppID, want.AppID)
	}
	if w, g := jsonOf(want.Result), jsonOf(got.Result); w != g || reflect.TypeOf(want.Result) != reflect.TypeOf(got.Result) {
		out += fmt.Sprintf(" stored %T %s, want %T %s;", got.Result, g, want.Result, w)
	}
	if bad := notUTC(got.Result); len(bad) > 0 {
		out += fmt.Sprintf(" times not in UTC: %v;", bad)
	}
	return out
}
