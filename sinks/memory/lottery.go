package memory

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.LotteryReader = (*Sink)(nil)

// Result is one stored lottery, gift-exchange or coupon operation result:
// the row its type's MySQL table would hold.
type Result struct {
	ResultID string
	AppID    string
	// Payload is the result: a schemas.ActivityCommitted, EntryRecorded,
	// DrawCompleted, PrizeAwarded, MatchDecided, MemberRecorded or
	// StateChanged value, its times in UTC truncated to the millisecond as
	// MySQL stores them.
	Payload schemas.Payload
}

// resultTypes decodes the results the sink keeps by result id besides
// coupon grants, returning each one's result id and payload as stored.
var resultTypes = map[string]func(*schemas.Envelope) (string, schemas.Payload, error){
	schemas.TypeLotteryActivityCommitted: decode(func(a *schemas.ActivityCommitted) (string, []*time.Time) {
		return a.ResultID, []*time.Time{&a.JoinFrom, &a.JoinUntil, a.DrawAt, &a.CommittedAt}
	}),
	schemas.TypeLotteryEntryRecorded: decode(func(e *schemas.EntryRecorded) (string, []*time.Time) {
		return e.ResultID, []*time.Time{&e.OccurredAt, &e.RecordedAt}
	}),
	schemas.TypeLotteryDrawCompleted: decode(func(d *schemas.DrawCompleted) (string, []*time.Time) {
		return d.ResultID, []*time.Time{&d.DrawnAt}
	}),
	schemas.TypeLotteryPrizeAwarded: decode(func(p *schemas.PrizeAwarded) (string, []*time.Time) {
		return p.ResultID, []*time.Time{&p.AwardedAt}
	}),
	schemas.TypeGiftMatchDecided: decode(func(m *schemas.MatchDecided) (string, []*time.Time) {
		return m.ResultID, []*time.Time{&m.DecidedAt}
	}),
	schemas.TypeGiftMemberRecorded: decode(func(m *schemas.MemberRecorded) (string, []*time.Time) {
		return m.ResultID, []*time.Time{&m.UpdatedAt}
	}),
	// The coupon operation record; the applied operations also make the
	// coupon states (see keepCoupon).
	schemas.TypeCouponStateChanged: decode(func(c *schemas.StateChanged) (string, []*time.Time) {
		return c.ResultID, []*time.Time{&c.ValidFrom, &c.ExpiresAt, c.LockDeadline, &c.ChangedAt}
	}),
	schemas.TypeReferralBound: decode(func(r *schemas.ReferralBoundResult) (string, []*time.Time) {
		return r.ResultID, []*time.Time{&r.OccurredAt, &r.DecidedAt}
	}),
	schemas.TypeReferralQualificationDecided: decode(func(q *schemas.QualificationDecided) (string, []*time.Time) {
		return q.ResultID, []*time.Time{&q.OccurredAt, &q.DecidedAt}
	}),
	schemas.TypeReferralRewardGranted: decode(func(r *schemas.RewardGranted) (string, []*time.Time) {
		return r.ResultID, []*time.Time{&r.GrantedAt}
	}),
	schemas.TypeRecommendationMade: decode(func(r *schemas.RecommendationMade) (string, []*time.Time) {
		return r.RecommendationID, []*time.Time{&r.MadeAt}
	}),
}

// decode returns a decoder of T's events; fields returns a decoded T's
// result id and its times (nil for an absent one), which are stored as
// MySQL's DATETIME(3) keeps them.
func decode[T schemas.Payload](fields func(*T) (string, []*time.Time)) func(*schemas.Envelope) (string, schemas.Payload, error) {
	return func(env *schemas.Envelope) (string, schemas.Payload, error) {
		var v T
		if err := env.DecodePayload(&v); err != nil {
			return "", nil, err
		}
		id, times := fields(&v)
		for _, t := range times {
			if t != nil { // points into v, freshly decoded
				*t = t.UTC().Truncate(time.Millisecond)
			}
		}
		return id, v, nil
	}
}

// Results returns the stored results of an event type
// (schemas.TypeLotteryEntryRecorded, …), ordered by result id.
func (s *Sink) Results(eventType string) []Result {
	s.mu.RLock()
	out := slices.Collect(maps.Values(s.results[eventType]))
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Result) int { return strings.Compare(a.ResultID, b.ResultID) })
	return out
}

// each calls f with every stored result of type T, holding the read lock.
func each[T schemas.Payload](s *Sink, f func(T)) {
	var zero T
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, r := range s.results[zero.EventType()] {
		f(r.Payload.(T))
	}
}

// where returns the stored results of type T that keep selects.
func where[T schemas.Payload](s *Sink, keep func(T) bool) []T {
	var out []T
	each(s, func(v T) {
		if keep(v) {
			out = append(out, v)
		}
	})
	return out
}

// Activity returns the activity's committed record (the highest revision
// stored), or an error wrapping [ErrNotFound].
func (s *Sink) Activity(_ context.Context, activityID string) (*schemas.ActivityCommitted, error) {
	got := where(s, func(a schemas.ActivityCommitted) bool { return a.ActivityID == activityID })
	return first(got, func(a, b schemas.ActivityCommitted) int {
		return cmp.Or(cmp.Compare(b.Revision, a.Revision), strings.Compare(a.ResultID, b.ResultID))
	}, "activity", activityID)
}

// Draw returns the activity's draw (the first, should there be several),
// or an error wrapping [ErrNotFound].
func (s *Sink) Draw(_ context.Context, activityID string) (*schemas.DrawCompleted, error) {
	got := where(s, func(d schemas.DrawCompleted) bool { return d.ActivityID == activityID })
	return first(got, func(a, b schemas.DrawCompleted) int {
		return cmp.Or(a.DrawnAt.Compare(b.DrawnAt), strings.Compare(a.ResultID, b.ResultID))
	}, "draw of activity", activityID)
}

func first[T any](got []T, order func(a, b T) int, what, activityID string) (*T, error) {
	if len(got) == 0 {
		return nil, fmt.Errorf("reading %s %s from memory: %w", what, activityID, ErrNotFound)
	}
	v := slices.MinFunc(got, order)
	return &v, nil
}

// Participants returns the distinct users with an accepted entry in the
// activity, sorted bytewise.
func (s *Sink) Participants(_ context.Context, activityID string) ([]string, error) {
	var users []string
	each(s, func(e schemas.EntryRecorded) {
		if e.ActivityID == activityID && e.Status == schemas.EntryAccepted {
			users = append(users, e.UserID)
		}
	})
	return sinks.SortParticipants(users), nil
}

// Awards returns the activity's prizes, sorted by [sinks.SortAwards].
func (s *Sink) Awards(_ context.Context, activityID string) ([]schemas.PrizeAwarded, error) {
	awards := where(s, func(p schemas.PrizeAwarded) bool { return p.ActivityID == activityID })
	sinks.SortAwards(awards)
	return awards, nil
}

// EntryCounts counts the activity's entries.
func (s *Sink) EntryCounts(_ context.Context, activityID string) (sinks.EntryCounts, error) {
	c := sinks.EntryCounts{RejectedBy: map[string]int64{}}
	users := map[string]bool{}
	each(s, func(e schemas.EntryRecorded) {
		if e.ActivityID != activityID {
			return
		}
		switch e.Status {
		case schemas.EntryAccepted:
			c.Accepted++
			users[e.UserID] = true
		case schemas.EntryRejected:
			c.Rejected++
			c.RejectedBy[e.Reason]++
		}
		if e.Outcome == schemas.OutcomeWon {
			c.Won++
		}
	})
	c.Participants = int64(len(users))
	return c, nil
}

// GiftMatches returns the gift sends f selects, sorted by
// [sinks.SortMatches].
func (s *Sink) GiftMatches(_ context.Context, f sinks.GiftFilter) ([]schemas.MatchDecided, error) {
	matches := where(s, func(m schemas.MatchDecided) bool {
		return is(m.ActivityID, f.ActivityID) && is(m.SenderID, f.Sender) &&
			is(m.ReceiverID, f.Receiver) && is(m.Status, f.Status)
	})
	sinks.SortMatches(matches)
	return sinks.Limit(matches, f.Limit), nil
}

// GiftMembers returns the members f selects, sorted by [sinks.SortMembers].
func (s *Sink) GiftMembers(_ context.Context, f sinks.MemberFilter) ([]schemas.MemberRecorded, error) {
	type sender struct{ activity, user string }
	sent := map[sender]bool{}
	if f.Pending {
		each(s, func(m schemas.MatchDecided) {
			if m.Status == schemas.MatchMatched {
				sent[sender{m.ActivityID, m.SenderID}] = true
			}
		})
	}
	members := where(s, func(m schemas.MemberRecorded) bool {
		return is(m.ActivityID, f.ActivityID) && is(m.UserID, f.UserID) && is(m.Status, f.Status) &&
			(!f.Pending || m.Status == schemas.MemberActive && !sent[sender{m.ActivityID, m.UserID}])
	})
	sinks.SortMembers(members)
	return sinks.Limit(members, f.Limit), nil
}

// is reports whether v matches a filter field: want, or any value when
// want is empty.
func is(v, want string) bool { return want == "" || v == want }
