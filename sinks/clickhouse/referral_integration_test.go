package clickhouse_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// TestIntegrationClickHouseReferralViews writes the referral scenario twice
// and reads the funnel per activity and the standing per inviter.
func TestIntegrationClickHouseReferralViews(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	events := sinktest.ReferralEvents(t)
	for range 2 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	query := func(q string, scan func() (string, []any)) []string {
		t.Helper()
		res, err := r.conn.Query(ctx, fmt.Sprintf(q, "`"+r.db+"`"))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		var out []string
		for res.Next() {
			format, ptrs := scan()
			if err := res.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			vals := make([]any, len(ptrs))
			for i, p := range ptrs {
				switch p := p.(type) {
				case *string:
					vals[i] = *p
				case *uint64:
					vals[i] = *p
				case *float64:
					vals[i] = *p
				}
			}
			out = append(out, fmt.Sprintf(format, vals...))
		}
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out)
		return out
	}
	funnel := query("SELECT activity_id, clicks, registrations, refused, bound, qualified, rewards, rewarded_inviters, conversion "+
		"FROM %s.referral_activity_funnel", func() (string, []any) {
		var a string
		var c, rg, rf, b, q, rw, ri uint64
		var conv float64
		return "%s clicks=%d registrations=%d refused=%d bound=%d qualified=%d rewards=%d rewarded_inviters=%d conversion=%.3f",
			[]any{&a, &c, &rg, &rf, &b, &q, &rw, &ri, &conv}
	})
	want := []string{
		"ref-1 clicks=5 registrations=1 refused=3 bound=3 qualified=2 rewards=1 rewarded_inviters=1 conversion=0.667",
		"ref-2 clicks=1 registrations=0 refused=0 bound=1 qualified=1 rewards=0 rewarded_inviters=0 conversion=1.000",
	}
	if !slices.Equal(funnel, want) {
		t.Errorf("referral_activity_funnel:\n got %q\nwant %q", funnel, want)
	}
	inviters := query("SELECT activity_id, inviter_id, invitees, qualified, rewards FROM %s.referral_inviter_stats", func() (string, []any) {
		var a, i string
		var n, q, rw uint64
		return "%s %s invitees=%d qualified=%d rewards=%d", []any{&a, &i, &n, &q, &rw}
	})
	want = []string{
		"ref-1 a invitees=2 qualified=2 rewards=1",
		"ref-1 b invitees=1 qualified=0 rewards=0",
		"ref-2 a invitees=1 qualified=1 rewards=0",
	}
	if !slices.Equal(inviters, want) {
		t.Errorf("referral_inviter_stats:\n got %q\nwant %q", inviters, want)
	}
}
