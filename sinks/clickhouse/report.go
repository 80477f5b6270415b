package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// A Report is a named query for analysts (`promoflow report <name>`). Its
// SQL reads the views of the sink's database by unqualified name (the
// connection's default database) and takes its parameters as named
// placeholders that the driver binds as SQL literals:
//
//	@batch, @activity  String; '' when not given (so "(@batch = '' OR batch_id = @batch)")
//	@since_ms          UInt64, milliseconds since the epoch, inclusive; 0 when not given
//	@until_ms          UInt64, exclusive; the largest Int64 when not given
//	@limit             UInt64, the rows to return at most
//	@bucket            String, 'hour' or 'day'
//
// A report uses exactly the placeholders of the Params it declares (a test
// checks both ways). To add a report, add one entry to reports.
type Report struct {
	// Name is what `promoflow report` takes: lowercase words joined by '-'.
	Name string
	// Description says, in one line, what each row is and how rows are
	// ordered.
	Description string
	// Params are the parameters the report takes, in the order its help
	// lists them.
	Params []Param
	// SQL is one SELECT statement.
	SQL string
}

// Param is a report parameter, named like its command-line flag.
type Param string

// The report parameters.
const (
	ParamBatch    Param = "batch"
	ParamActivity Param = "activity"
	ParamSince    Param = "since"
	ParamUntil    Param = "until"
	ParamLimit    Param = "limit"
	ParamBucket   Param = "bucket"
)

// Placeholder returns the SQL placeholder of p ("@since_ms" for since).
func (p Param) Placeholder() string {
	switch p {
	case ParamSince, ParamUntil:
		return "@" + string(p) + "_ms"
	}
	return "@" + string(p)
}

// Takes reports whether r declares p.
func (r Report) Takes(p Param) bool { return slices.Contains(r.Params, p) }

// Buckets of ParamBucket.
const (
	BucketHour = "hour"
	BucketDay  = "day"
)

// DefaultLimit is the rows a report returns when Params.Limit is 0.
const DefaultLimit = 20

// Params are the values of a report's parameters; a report ignores those
// it does not declare.
type Params struct {
	// Batch and Activity narrow the report to one batch or activity when
	// not empty.
	Batch, Activity string
	// Since and Until bound the window [Since, Until) of the facts counted;
	// a zero time leaves that end open.
	Since, Until time.Time
	// Limit caps the rows: DefaultLimit when 0, every row when negative.
	Limit int
	// Bucket is BucketHour or BucketDay; "" means BucketDay.
	Bucket string
}

// The SQL conditions the reports share.
const (
	batchFilter    = "(@batch = '' OR batch_id = @batch)"
	activityFilter = "(@activity = '' OR activity_id = @activity)"
	windowFilter   = "happened_at_ms >= @since_ms AND happened_at_ms < @until_ms"
)

// funnelReport is the funnel columns over coupon_facts in the window,
// ordered by orderBy.
func funnelReport(orderBy string) string {
	return "SELECT batch_id,\n" + funnelColumns +
		"FROM coupon_facts\n" +
		"WHERE " + batchFilter + " AND " + windowFilter + "\n" +
		"GROUP BY batch_id\n" +
		"ORDER BY " + orderBy + "\n" +
		"LIMIT @limit"
}

var (
	funnelParams = []Param{ParamBatch, ParamSince, ParamUntil, ParamLimit}
	windowParams = []Param{ParamSince, ParamUntil, ParamLimit}
)

// reports is the registry, in the order `promoflow report` lists it.
var reports = []Report{
	{
		Name:        "top-claimed",
		Description: "the most-claimed coupon batches: claims (decisions on claims and issues), grants and the rest of the funnel, most claims first",
		Params:      funnelParams,
		SQL:         funnelReport("claims DESC, batch_id"),
	},
	{
		Name:        "top-redeemed",
		Description: "the most-redeemed coupon batches: coupons used (applied confirms), with grants and conversion (redeemed / grants), most redeemed first",
		Params:      funnelParams,
		SQL:         funnelReport("redeemed DESC, batch_id"),
	},
	{
		Name:        "funnel",
		Description: "claim → grant → lock → redeem per batch: claims, grants, rejections, coupons locked, redeemed and expired, and the rate of each step, by batch",
		Params:      funnelParams,
		SQL:         funnelReport("batch_id"),
	},
	{
		Name:        "active-users",
		Description: "the most active users: claims, grants, redemptions, lottery participations and wins; actions = claims + redemptions + participations, most first",
		Params:      windowParams,
		SQL: "SELECT user_id,\n" + userColumns +
			"FROM user_facts\n" +
			"WHERE " + windowFilter + "\n" +
			"GROUP BY user_id\n" +
			"ORDER BY actions DESC, user_id\n" +
			"LIMIT @limit",
	},
	{
		Name:        "draw-stats",
		Description: "per lottery activity: participants, entries, rejections by reason, winners by tier, and when it was drawn (time to draw from joining's start, delay after the scheduled time), most participants first",
		Params:      []Param{ParamActivity, ParamLimit},
		SQL: "SELECT activity_id, name, kind, participants, entries, rejected_entries, rejections, winners, tier_winners,\n" +
			"  if(drawn = 1, toString(drawn_at), '') AS draw_time, time_to_draw_s, draw_delay_ms\n" +
			"FROM lottery_activity_stats\n" +
			"WHERE " + activityFilter + "\n" +
			"ORDER BY participants DESC, activity_id\n" +
			"LIMIT @limit",
	},
	{
		Name:        "draw-rejections",
		Description: "rejected lottery participations per activity and reason (entries and distinct users), by activity, most first",
		Params:      []Param{ParamActivity, ParamSince, ParamUntil, ParamLimit},
		SQL: "SELECT activity_id, reason,\n" + rejectionColumns +
			"FROM lottery_entries FINAL\n" +
			"WHERE status = 'rejected' AND " + activityFilter + "\n" +
			"  AND recorded_at_ms >= @since_ms AND recorded_at_ms < @until_ms\n" +
			"GROUP BY activity_id, reason\n" +
			"ORDER BY activity_id, rejected_entries DESC, reason\n" +
			"LIMIT @limit",
	},
	{
		Name:        "draw-winners",
		Description: "winners per lottery activity and prize tier (drawn or instant), with the points awarded, by activity and tier",
		Params:      []Param{ParamActivity, ParamSince, ParamUntil, ParamLimit},
		SQL: "SELECT activity_id, tier_id, prize_kind,\n" + tierColumns +
			"FROM lottery_awards FINAL\n" +
			"WHERE " + activityFilter + " AND awarded_at_ms >= @since_ms AND awarded_at_ms < @until_ms\n" +
			"GROUP BY activity_id, tier_id, prize_kind\n" +
			"ORDER BY activity_id, tier_id\n" +
			"LIMIT @limit",
	},
	{
		Name:        "budget-burn",
		Description: "discount value granted and redeemed per batch and hour or day (minor units; see docs/analytics.md for how coupons are priced), by batch and time",
		Params:      []Param{ParamBatch, ParamSince, ParamUntil, ParamBucket, ParamLimit},
		SQL: "SELECT batch_id,\n" +
			"  if(@bucket = 'day', toStartOfDay(happened_at), toStartOfHour(happened_at)) AS bucket_start,\n" + budgetColumns +
			"FROM coupon_budget\n" +
			"WHERE " + batchFilter + " AND " + windowFilter + "\n" +
			"GROUP BY batch_id, bucket_start\n" +
			"ORDER BY batch_id, bucket_start\n" +
			"LIMIT @limit",
	},
	{
		Name:        "recommendation-conversion",
		Description: "per batch: users recommended a coupon, and of them those granted one and those who used one after it was first recommended to them; conversion = redeemed / recommended, most recommended first",
		Params:      []Param{ParamBatch, ParamLimit},
		SQL: "SELECT batch_id, recommended_users, claimed_users, redeemed_users,\n" +
			"  if(recommended_users = 0, toFloat64(0), redeemed_users / recommended_users) AS conversion\n" +
			"FROM recommendation_conversion\n" +
			"WHERE " + batchFilter + "\n" +
			"ORDER BY recommended_users DESC, batch_id\n" +
			"LIMIT @limit",
	},
}

// Reports returns the registered reports.
func Reports() []Report { return slices.Clone(reports) }

// LookupReport returns the report called name.
func LookupReport(name string) (Report, bool) {
	i := slices.IndexFunc(reports, func(r Report) bool { return r.Name == name })
	if i < 0 {
		return Report{}, false
	}
	return reports[i], true
}

// Values returns the value each of r's parameters takes for p, in the
// order of r.Params: strings for batch, activity and bucket, UInt64
// milliseconds for since and until, a UInt64 for limit.
func (r Report) Values(p Params) ([]any, error) {
	values := make([]any, 0, len(r.Params))
	for _, param := range r.Params {
		var v any
		switch param {
		case ParamBatch:
			v = p.Batch
		case ParamActivity:
			v = p.Activity
		case ParamSince:
			v = uint64(0)
			if !p.Since.IsZero() {
				v = uint64(max(p.Since.UnixMilli(), 0))
			}
		case ParamUntil:
			v = uint64(math.MaxInt64)
			if !p.Until.IsZero() {
				v = uint64(max(p.Until.UnixMilli(), 0))
			}
		case ParamLimit:
			switch {
			case p.Limit == 0:
				v = uint64(DefaultLimit)
			case p.Limit < 0:
				v = uint64(math.MaxInt64)
			default:
				v = uint64(p.Limit)
			}
		case ParamBucket:
			switch p.Bucket {
			case "", BucketDay:
				v = BucketDay
			case BucketHour:
				v = BucketHour
			default:
				return nil, fmt.Errorf("report %s: bucket must be %s or %s, got %q", r.Name, BucketHour, BucketDay, p.Bucket)
			}
		default:
			return nil, fmt.Errorf("report %s: unknown parameter %q", r.Name, param)
		}
		values = append(values, v)
	}
	return values, nil
}

// Args returns the named arguments that bind r's placeholders to p.
func (r Report) Args(p Params) ([]any, error) {
	values, err := r.Values(p)
	if err != nil {
		return nil, err
	}
	args := make([]any, len(values))
	for i, v := range values {
		args[i] = clickhouse.Named(r.placeholderName(r.Params[i]), v)
	}
	return args, nil
}

func (r Report) placeholderName(p Param) string { return p.Placeholder()[1:] }

// Column is one column of a report's result.
type Column struct {
	// Name is the column's name in the SQL.
	Name string
	// Type is its ClickHouse type.
	Type string
	// Numeric is true for integer and floating-point columns.
	Numeric bool
}

// Result is what a report returned, each value formatted as text:
// integers in decimal, floats with four decimals, times as
// "2006-01-02 15:04:05" in the zone the server gave them, strings as they
// are.
type Result struct {
	Columns []Column
	Rows    [][]string
}

// Report runs r with p and returns its rows. s must come from OpenReader,
// whose connections default to the configured database (a Sink from New
// names the database in every statement instead). A table or view the
// report reads that the database does not hold is [ErrNoView].
func (s *Sink) Report(ctx context.Context, r Report, p Params) (*Result, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("running report %s: %w", r.Name, ErrClosed)
	}
	if !s.reader {
		return nil, fmt.Errorf("running report %s: the sink was opened by New; open a reader with OpenReader", r.Name)
	}
	args, err := r.Args(p)
	if err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(ctx, r.SQL, args...)
	if err != nil {
		return nil, s.reportError(r, err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	res := &Result{Columns: make([]Column, len(types))}
	ptrs := make([]any, len(types))
	for i, ct := range types {
		st := ct.ScanType()
		res.Columns[i] = Column{Name: ct.Name(), Type: ct.DatabaseTypeName(), Numeric: numeric(st)}
		ptrs[i] = reflect.New(st).Interface()
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, s.reportError(r, err)
		}
		row := make([]string, len(ptrs))
		for i, ptr := range ptrs {
			row[i] = formatValue(reflect.ValueOf(ptr).Elem())
		}
		res.Rows = append(res.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, s.reportError(r, err)
	}
	return res, nil
}

func (s *Sink) reportError(r Report, err error) error {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) && ex.Code == codeUnknownTable {
		return fmt.Errorf("running report %s on %s: %w: %s (the ClickHouse sink creates the views when it starts: run it once against this database)",
			r.Name, s.cfg.Database, ErrNoView, ex.Message)
	}
	return fmt.Errorf("running report %s on %s: %w", r.Name, s.cfg.Database, err)
}

// codeUnknownTable is ClickHouse's UNKNOWN_TABLE error code.
const codeUnknownTable = 60

// numeric reports whether values of t are numbers.
func numeric(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// formatValue formats one scanned value (see Result).
func formatValue(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return FormatRate(v.Float())
	case reflect.String:
		return v.String()
	}
	if t, ok := v.Interface().(time.Time); ok {
		return t.Format(time.DateTime)
	}
	return fmt.Sprint(v.Interface())
}

// FormatRate formats a float as reports do: four decimals.
func FormatRate(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) }
