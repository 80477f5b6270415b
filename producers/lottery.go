package producers

import (
	"context"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// DefineActivity publishes a lottery.activity.defined event creating or
// updating activity a (a draw, an instant-win activity or a gift exchange),
// occurring now. The lottery admin stage ignores a revision that is not
// higher than the one it holds, and commits to the activity's seed when it
// first sees it, so publish a definition before its join window opens. It
// waits for the acknowledgement.
func (p *Producer) DefineActivity(ctx context.Context, eventID string, a schemas.ActivityDefined) error {
	return p.Publish(ctx, eventID, time.Now(), a)
}

// Join publishes a lottery.participation.requested event: userID joins
// activityID (a draw, or one try of an instant-win activity), occurring now.
// It waits for the acknowledgement.
func (p *Producer) Join(ctx context.Context, eventID, activityID, userID string) error {
	return p.Publish(ctx, eventID, time.Now(), schemas.ParticipationRequested{ActivityID: activityID, UserID: userID})
}

// RequestDraw publishes a lottery.draw.requested event asking for
// activityID's draw now; requestedBy names who asked, for the audit trail,
// and may be empty. Participation closes with the draw, and a draw happens
// once: asking again yields the first draw. It waits for the
// acknowledgement.
func (p *Producer) RequestDraw(ctx context.Context, eventID, activityID, requestedBy string) error {
	return p.Publish(ctx, eventID, time.Now(), schemas.DrawRequested{ActivityID: activityID, RequestedBy: requestedBy})
}

// SendGift publishes a gift.send.requested event: member userID of gift
// exchange activityID pressed "send gift", occurring now. The lottery
// processor matches the sender with a member who has not received a gift
// (gift.match.decided); a second send by the same member is rejected as
// already_sent, and a retry with the same eventID returns the first
// decision. It waits for the acknowledgement.
func (p *Producer) SendGift(ctx context.Context, eventID, activityID, userID string) error {
	return p.Publish(ctx, eventID, time.Now(), schemas.SendRequested{ActivityID: activityID, UserID: userID})
}

// UpdateGiftMember publishes a gift.member.updated event for one member of
// a gift exchange, occurring now. m.Action is schemas.MemberAdd (keeps an
// existing member as it is), schemas.MemberUpdate (creates or edits: Name and
// Note replace the stored ones, empty ones included) or schemas.MemberRemove.
// The processor refuses, and dead-letters with reason member_locked, the
// removal of a member who has already sent or received a gift. It waits for
// the acknowledgement. To add a whole member list atomically, use
// ImportMembers.
func (p *Producer) UpdateGiftMember(ctx context.Context, eventID string, m schemas.MemberUpdated) error {
	return p.Publish(ctx, eventID, time.Now(), m)
}
