package verify

import (
	"context"
	"strings"
	"testing"

	"github.com/promoflow/promoflow/schemas"
)

func TestReferralInvariants(t *testing.T) {
	my := newFakeStore(3)
	bind := func(shard int, id, activity, invitee, inviter, status string) {
		my.add(shard, "referral", fakeRow{id: id, campaign: activity, user: invitee, other: inviter, status: status})
	}
	bind(0, "b1", "R1", "v1", "a", schemas.ReferralBound)
	bind(0, "b2", "R1", "v1", "b", schemas.ReferralRefused) // a refusal binds nobody
	bind(1, "b3", "R1", "v2", "a", schemas.ReferralBound)
	bind(1, "b4", "R1", "v2", "b", schemas.ReferralBound)  // a second inviter
	bind(2, "b5", "R1", "v3", "v3", schemas.ReferralBound) // to themselves
	bind(0, "b6", "R2", "v1", "b", schemas.ReferralBound)  // another activity: fine
	bind(2, "b7", "R2", "v4", "a", schemas.ReferralBound)
	bind(1, "b8", "R2", "v4", "a", schemas.ReferralBound) // the same binding twice, in another shard

	c := newCheck(3, "invariants")
	if err := referralInvariants(context.Background(), my, "", newProgress(nil), c); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, c, map[string]int64{
		"referral.activities": 2, "referral.bound": 7, "referral.invitees_bound_more_than_once": 2, "referral.bound_to_self": 1,
	})
	if c.Status != StatusBreach || c.Breaches != 3 {
		t.Fatalf("status %s with %d breaches:\n%s", c.Status, c.Breaches, strings.Join(c.Examples, "\n"))
	}
	ex := strings.Join(c.Examples, "\n")
	for _, want := range []string{"referral R1: invitee v2 was bound 2 times", "referral R1: v3 was bound to themselves", "referral R2: invitee v4 was bound 2 times"} {
		if !strings.Contains(ex, want) {
			t.Errorf("examples lack %q:\n%s", want, ex)
		}
	}
	c = newCheck(3, "invariants")
	if err := referralInvariants(context.Background(), my, "R2", newProgress(nil), c); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, c, map[string]int64{"referral.activities": 1, "referral.bound": 3, "referral.invitees_bound_more_than_once": 1})
}
