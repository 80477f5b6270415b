package memory_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/memory"
	"github.com/promoflow/promoflow/sinks/mysql"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// reader reads the sink's rows through its listing methods.
type reader struct{ s *memory.Sink }

func (r reader) GrantRows(context.Context) (map[string]sinktest.GrantRow, int, error) {
	rows := map[string]sinktest.GrantRow{}
	gs := r.s.Grants()
	for _, g := range gs {
		rows[g.ResultID] = sinktest.GrantRow{AppID: g.AppID, GrantDecided: g.GrantDecided}
	}
	return rows, len(gs), nil
}

func (r reader) ResultRows(_ context.Context, eventType string) (map[string]sinktest.ResultRow, int, error) {
	rows := map[string]sinktest.ResultRow{}
	if eventType == schemas.TypeNotificationRequested {
		reminders := r.s.Reminders()
		for _, n := range reminders {
			rows[n.NotificationID] = sinktest.ResultRow{ResultID: n.NotificationID, AppID: n.AppID, Result: n.NotificationRequested}
		}
		return rows, len(reminders), nil
	}
	results := r.s.Results(eventType)
	for _, res := range results {
		rows[res.ResultID] = sinktest.ResultRow{ResultID: res.ResultID, AppID: res.AppID, Result: res.Payload}
	}
	return rows, len(results), nil
}

func (r reader) CouponStates(context.Context) (map[string]sinktest.CouponState, int, error) {
	rows := map[string]sinktest.CouponState{}
	coupons := r.s.Coupons()
	for _, c := range coupons {
		rows[c.CouponID] = sinktest.CouponState{AppID: c.AppID, CouponRow: c.CouponRow}
	}
	return rows, len(coupons), nil
}

func (r reader) ShardRows(context.Context) ([]int, error) {
	var out []int
	for _, db := range r.s.ShardCounts() {
		out = append(out, db...)
	}
	return out, nil
}

// newSink returns an empty sink of three databases of three tables.
func newSink(t *testing.T) *memory.Sink {
	s, err := memory.New(t.Context(), memory.Config{Databases: 3, TablesPerDatabase: 3})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) (sinktest.Sink, sinktest.Reader) {
		s := newSink(t)
		return s, reader{s}
	})
}

func TestLotteryReader(t *testing.T) {
	sinktest.RunLotteryReader(t, func(t *testing.T) sinktest.LotterySink { return newSink(t) })
}

func TestCouponReader(t *testing.T) {
	sinktest.RunCouponReader(t, func(t *testing.T) (sinktest.CouponSink, sinktest.Reader) {
		s := newSink(t)
		return s, reader{s}
	})
}

func TestRoutesLikeMySQL(t *testing.T) {
	mc := mysql.Config{Shards: make([]string, 8), TablesPerDatabase: 8}
	s, err := memory.New(t.Context(), memory.FromMySQL(mc))
	if err != nil {
		t.Fatal(err)
	}
	events := sinktest.Grants(t, "route", 500)
	if err := s.WriteBatch(t.Context(), events); err != nil {
		t.Fatal(err)
	}
	counts := s.ShardCounts()
	if len(counts) != 8 || len(counts[0]) != 8 {
		t.Fatalf("ShardCounts() is %dx%d, want 8x8", len(counts), len(counts[0]))
	}
	for _, g := range s.Grants() {
		db, table := mc.Route(g.UserID)
		if g.Database != db || g.Table != table {
			t.Errorf("user %s stored in (%d, %d), mysql routes to (%d, %d)", g.UserID, g.Database, g.Table, db, table)
		}
		if got := s.UserGrants(g.UserID); !slices.ContainsFunc(got, func(u memory.Grant) bool { return u.ResultID == g.ResultID }) {
			t.Errorf("UserGrants(%s) = %v, missing result %s", g.UserID, got, g.ResultID)
		}
	}
	if s.Count() != len(events) {
		t.Errorf("Count() = %d, want %d", s.Count(), len(events))
	}
}

func TestDefaultsMatchMySQL(t *testing.T) {
	var c memory.Config
	c.Defaults()
	if want := memory.FromMySQL(mysql.Config{}); c != want {
		t.Errorf("defaults %+v, mysql defaults %+v", c, want)
	}
	if err := (memory.Config{Databases: -1, TablesPerDatabase: 4}).Validate(); err == nil {
		t.Error("Validate accepted -1 databases")
	}
}

func TestKeepsEveryKnownEventOnce(t *testing.T) {
	s, err := memory.New(t.Context(), memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	grants := sinktest.Grants(t, "raw", 4)
	claim, err := schemas.New("claim-1", "app-0", sinktest.Epoch, schemas.ClaimRequested{BatchID: "b", UserID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	batch := append(append([]*schemas.Envelope{}, grants...), claim, claim)
	for range 2 {
		if err := s.WriteBatch(t.Context(), batch); err != nil {
			t.Fatalf("writing grants and a claim: %v", err)
		}
	}
	if s.EventCount() != 5 || s.Count() != 4 {
		t.Errorf("EventCount() = %d, Count() = %d; want 5 events and 4 grants", s.EventCount(), s.Count())
	}
	unknown := *claim
	unknown.Type = "coupon.unknown"
	if err := s.WriteBatch(t.Context(), []*schemas.Envelope{&unknown}); !errors.Is(err, memory.ErrUnsupportedType) {
		t.Errorf("writing an event without a schema: got %v, want ErrUnsupportedType", err)
	}
}

func TestCampaignReader(t *testing.T) {
	sinktest.RunCampaignReader(t, func(t *testing.T) sinktest.CampaignSink { return newSink(t) })
}

func TestThroughputReader(t *testing.T) {
	sinktest.RunThroughputReader(t, func(t *testing.T) sinktest.ThroughputSink { return newSink(t) })
}
