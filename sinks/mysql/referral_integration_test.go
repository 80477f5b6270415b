package mysql_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// TestIntegrationMySQLReferralReader writes the referral scenario twice
// (the second time as a redelivery) over nine shard tables and reads it
// back: an invitee's binding from its shard, an inviter's invitees from
// every shard with whether they count, its rewards, and the counts.
func TestIntegrationMySQLReferralReader(t *testing.T) {
	integration(t)
	s, _ := newSink(t, suiteLayout)
	ctx := testenv.Context(t, time.Minute)
	events := sinktest.ReferralEvents(t)
	for range 2 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.Binding(ctx, "ref-1", "v1")
	if err != nil || b.BoundInviterID != "a" || b.Status != schemas.ReferralBound || b.SourceEventID != "b1" {
		t.Errorf("Binding(v1) = %+v, %v; want bound to a by b1", b, err)
	}
	if _, err := s.Binding(ctx, "ref-1", "v4"); !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("Binding of a refused invitee: %v, want ErrNotFound", err)
	}
	inv, err := s.Invitees(ctx, "ref-1", "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv) != 2 || inv[0].InviteeID != "v1" || !inv[0].Counted || inv[1].InviteeID != "v2" || !inv[1].Counted || inv[0].BoundAt.Location() != time.UTC {
		t.Errorf("Invitees(a) = %+v, want v1 and v2, both counted", inv)
	}
	if inv, err := s.Invitees(ctx, "ref-1", "b"); err != nil || len(inv) != 1 || inv[0].InviteeID != "v3" || inv[0].Counted {
		t.Errorf("Invitees(b) = %+v, %v; want v3, not counted", inv, err)
	}
	if inv, err := s.Invitees(ctx, "ref-2", "a"); err != nil || len(inv) != 1 || !inv[0].Counted {
		t.Errorf("Invitees(ref-2, a) = %+v, %v; want w1, counted when bound", inv, err)
	}
	rw, err := s.Rewards(ctx, "ref-1", "a")
	if err != nil || len(rw) != 1 || rw[0].Threshold != 2 || rw[0].BatchID != "B2" {
		t.Errorf("Rewards(a) = %+v, %v", rw, err)
	}
	c, err := s.ReferralCounts(ctx, "ref-1")
	if err != nil {
		t.Fatal(err)
	}
	want := sinks.ReferralCounts{Clicks: 5, Registrations: 1, Bound: 3, Counted: 2, Rewards: 1, RefusedBy: map[string]int64{
		schemas.RefuseAlreadyBound: 1, schemas.RefuseBadToken: 1, schemas.RefuseSelfInvite: 1,
		schemas.RefuseAlreadyQualified: 1, schemas.RefuseNotBound: 1,
	}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("ReferralCounts = %+v, want %+v", c, want)
	}
}
