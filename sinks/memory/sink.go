package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// Grant is one stored coupon grant: the row coupon_grant_<Table> of shard
// database <Database> would hold in MySQL. Times are in UTC, truncated to
// the millisecond as MySQL stores them.
type Grant struct {
	Database int
	Table    int
	AppID    string
	schemas.GrantDecided
}

// Sink keeps results in memory. It is safe for concurrent use.
type Sink struct {
	cfg Config
	mu  sync.RWMutex
	// grants[db*TablesPerDatabase+table] maps result ids to rows.
	grants []map[string]Grant
	// results[type][result id] holds the lottery and gift-exchange
	// results.
	results map[string]map[string]Result
	// events holds the key of every event written, as ClickHouse's
	// events_raw holds the events.
	events map[eventKey]struct{}
	couponTables
	closed bool
}

// eventKey identifies an event: producers choose event ids unique per app.
type eventKey struct{ typ, app, id string }

// known lists the (type, version) pairs the sink accepts: all with a schema.
var known = func() map[schemas.TypeVersion]bool {
	m := map[schemas.TypeVersion]bool{}
	for _, tv := range schemas.Known() {
		m[tv] = true
	}
	return m
}()

// New returns an empty sink laid out by cfg; unset fields take their
// defaults.
func New(_ context.Context, cfg Config) (*Sink, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating memory sink config: %w", err)
	}
	s := &Sink{
		cfg:          cfg,
		grants:       make([]map[string]Grant, cfg.Databases*cfg.TablesPerDatabase),
		results:      map[string]map[string]Result{},
		events:       map[eventKey]struct{}{},
		couponTables: newCouponTables(cfg.Databases * cfg.TablesPerDatabase),
	}
	for typ := range resultTypes {
		s.results[typ] = map[string]Result{}
	}
	for i := range s.grants {
		s.grants[i] = map[string]Grant{}
	}
	return s, nil
}

// Name returns "memory".
func (s *Sink) Name() string { return "memory" }

// Config returns the sink's layout with defaults applied.
func (s *Sink) Config() Config { return s.cfg }

// WriteBatch upserts one row per result, so writing the same batch twice
// leaves exactly one row per result. Like the ClickHouse sink it keeps every
// event (once per type, app and event id) and makes rows of results only
// (grant decisions, the lottery and gift-exchange results, coupon
// operations and the states they leave, coupon expiry reminders), so it can
// stand in for either sink. Coupon states and reminders follow MySQL's
// rules: the highest seq wins, and the first reminder of a user, batch and
// day. It refuses the whole batch, storing nothing, if
// an event's (type, version) has no schema ([ErrUnsupportedType]) or a
// result does not decode.
func (s *Sink) WriteBatch(ctx context.Context, events []*schemas.Envelope) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("writing batch to memory: %w", err)
	}
	type result struct {
		typ string
		Result
	}
	var (
		rows      = make([]Grant, 0, len(events))
		results   []result
		reminders []Reminder
	)
	for _, env := range events {
		if !known[env.TypeVersion()] {
			return fmt.Errorf("writing event %s of type %s to memory: %w", env.EventID, env.TypeVersion(), ErrUnsupportedType)
		}
		if decode, ok := resultTypes[env.Type]; ok {
			id, p, err := decode(env)
			if err != nil {
				return fmt.Errorf("writing %s results to memory: decoding event %s: %w", env.Type, env.EventID, err)
			}
			results = append(results, result{env.Type, Result{ResultID: id, AppID: env.AppID, Payload: p}})
			continue
		}
		if env.Type == schemas.TypeNotificationRequested {
			r, ok, err := s.reminder(env)
			if err != nil {
				return fmt.Errorf("writing coupon reminders to memory: decoding event %s: %w", env.EventID, err)
			}
			if ok {
				reminders = append(reminders, r)
			}
			continue
		}
		if env.Type != schemas.TypeCouponGrantDecided {
			continue
		}
		var g schemas.GrantDecided
		if err := env.DecodePayload(&g); err != nil {
			return fmt.Errorf("writing coupon grants to memory: decoding event %s: %w", env.EventID, err)
		}
		g.ClaimedAt = g.ClaimedAt.UTC().Truncate(time.Millisecond)
		g.DecidedAt = g.DecidedAt.UTC().Truncate(time.Millisecond)
		db, table := s.cfg.Route(g.UserID)
		rows = append(rows, Grant{Database: db, Table: table, AppID: env.AppID, GrantDecided: g})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("writing batch to memory: %w", ErrClosed)
	}
	for _, env := range events {
		s.events[eventKey{env.Type, env.AppID, env.EventID}] = struct{}{}
	}
	for _, g := range rows {
		s.grants[g.Database*s.cfg.TablesPerDatabase+g.Table][g.ResultID] = g
	}
	for _, r := range results {
		s.results[r.typ][r.ResultID] = r.Result
		if op, ok := r.Payload.(schemas.StateChanged); ok {
			s.keepCoupon(r.AppID, op)
		}
	}
	for _, r := range reminders {
		s.keepReminder(r)
	}
	return nil
}

// EventCount returns the number of distinct events stored, of every type.
func (s *Sink) EventCount() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.events)
}

// Count returns the number of stored coupon grants.
func (s *Sink) Count() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, m := range s.grants {
		n += len(m)
	}
	return n
}

// CountGrants returns Count, for callers that count any sink's results.
func (s *Sink) CountGrants(context.Context) (int64, error) { return int64(s.Count()), nil }

// ShardCounts returns the number of rows in every shard:
// counts[db][table].
func (s *Sink) ShardCounts() [][]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([][]int, s.cfg.Databases)
	for db := range out {
		out[db] = make([]int, s.cfg.TablesPerDatabase)
		for t := range out[db] {
			out[db][t] = len(s.grants[db*s.cfg.TablesPerDatabase+t])
		}
	}
	return out
}

// Grants returns every stored row, ordered by result id.
func (s *Sink) Grants() []Grant {
	return all(s, s.grants, compareGrants)
}

// UserGrants returns userID's rows, ordered by result id, reading only the
// shard Route names, as a service reading MySQL would.
func (s *Sink) UserGrants(userID string) []Grant {
	db, table := s.cfg.Route(userID)
	s.mu.RLock()
	var out []Grant
	for _, g := range s.grants[db*s.cfg.TablesPerDatabase+table] {
		if g.UserID == userID {
			out = append(out, g)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, compareGrants)
	return out
}

func compareGrants(a, b Grant) int { return strings.Compare(a.ResultID, b.ResultID) }

// Close stops the sink taking writes; the stored rows stay readable.
// Calling it again returns nil.
func (s *Sink) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
