package verify

import (
	"context"
	"fmt"
)

// referralInvariants checks that in each referral activity every invitee
// is bound at most once (one inviter per invitee) and never to themselves.
// Bindings are routed by invitee, so an invitee's rows share one shard
// table; the merge reads every shard's sorted pages all the same, so a row
// routed wrongly is caught too.
func referralInvariants(ctx context.Context, my Record, activity string, prog *progress, c *Check) error {
	acts, err := activityIDs(ctx, my, "referral", activity)
	if err != nil {
		return err
	}
	var bound, twice, self int64
	for j, a := range acts {
		prog.tick("checking referrals: activity %d/%d", j+1, len(acts))
		if err := repeatedUsers(ctx, my, UserQuery{Table: "referral", Column: "invitee_id", ActivityID: a},
			func(r UserRow) {
				bound++
				if r.Key == r.Other {
					self++
					c.breach(1, fmt.Sprintf("referral %s: %s was bound to themselves (result %s)", safe(a), safe(r.Key), safe(r.ResultID)))
				}
			},
			func(invitee string, n int) {
				twice++
				c.breach(1, fmt.Sprintf("referral %s: invitee %s was bound %d times", safe(a), safe(invitee), n))
			}); err != nil {
			return fmt.Errorf("reading the bindings of %s: %w", a, err)
		}
	}
	c.Counts["referral.activities"] = int64(len(acts))
	c.Counts["referral.bound"] = bound
	c.Counts["referral.invitees_bound_more_than_once"] = twice
	c.Counts["referral.bound_to_self"] = self
	c.summary("referrals: %d bindings in %s; invitees bound more than once %d, to themselves %d",
		bound, plural(len(acts), "activity", "activities"), twice, self)
	return nil
}
