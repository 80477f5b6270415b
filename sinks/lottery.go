package sinks

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/promoflow/promoflow/schemas"
)

// ErrNotFound is wrapped by a [LotteryReader] when the one record asked for
// is not stored: an activity that was never committed, or a draw that has
// not happened. Listings return an empty result instead.
var ErrNotFound = errors.New("not found")

// LotteryReader reads lottery and gift-exchange results back from a sink that
// is a system of record, for admin commands (promoflow draw verify, the
// gift-exchange listings). Times come back in UTC at the precision the store
// keeps (milliseconds). Lookups by activity without a routing key read every
// shard: they are admin and audit paths, not request paths.
type LotteryReader interface {
	// Activity returns the activity's committed record, the highest revision
	// stored, or an error wrapping ErrNotFound.
	Activity(ctx context.Context, activityID string) (*schemas.ActivityCommitted, error)
	// Draw returns the activity's draw, or an error wrapping ErrNotFound
	// when it has not been drawn.
	Draw(ctx context.Context, activityID string) (*schemas.DrawCompleted, error)
	// Participants returns the distinct user ids with an accepted entry in
	// the activity, sorted bytewise ascending (see SortParticipants), the
	// order a draw is verified in.
	Participants(ctx context.Context, activityID string) ([]string, error)
	// Awards returns the activity's prizes, sorted by SortAwards.
	Awards(ctx context.Context, activityID string) ([]schemas.PrizeAwarded, error)
	// EntryCounts counts the activity's entries.
	EntryCounts(ctx context.Context, activityID string) (EntryCounts, error)
	// GiftMatches returns the gift sends f selects, sorted by SortMatches.
	GiftMatches(ctx context.Context, f GiftFilter) ([]schemas.MatchDecided, error)
	// GiftMembers returns the gift-exchange members f selects, sorted by
	// SortMembers.
	GiftMembers(ctx context.Context, f MemberFilter) ([]schemas.MemberRecorded, error)
}

// EntryCounts counts one activity's entries (lottery.entry.recorded).
type EntryCounts struct {
	// Accepted and Rejected count entries by status.
	Accepted int64 `json:"accepted"`
	Rejected int64 `json:"rejected"`
	// Participants counts the distinct users with an accepted entry.
	Participants int64 `json:"participants"`
	// Won counts entries whose outcome is won: instant wins. A draw's
	// winners are its awards.
	Won int64 `json:"won"`
	// RejectedBy counts rejected entries by reason; it is never nil.
	RejectedBy map[string]int64 `json:"rejected_by"`
}

// GiftFilter selects gift sends (gift.match.decided). An empty field
// matches any value; every set field must match.
type GiftFilter struct {
	ActivityID string
	// Sender and Receiver are user ids; the reader goes to one shard when
	// Sender is set.
	Sender, Receiver string
	// Status is schemas.MatchMatched or schemas.MatchRejected.
	Status string
	// Limit caps the results, taken in sorted order; 0 (or less) means no limit.
	Limit int
}

// MemberFilter selects gift-exchange members (gift.member.recorded). An
// empty field matches any value; every set field must match.
type MemberFilter struct {
	ActivityID string
	// UserID selects one member; the reader then goes to one shard.
	UserID string
	// Status is schemas.MemberActive or schemas.MemberRemoved.
	Status string
	// Pending selects active members who have no matched send in the
	// activity yet (have not drawn), the members to remind.
	Pending bool
	// Limit caps the results, taken in sorted order; 0 (or less) means no limit.
	Limit int
}

// SortParticipants sorts user ids bytewise ascending and drops repeats, in
// place, returning the shortened slice.
func SortParticipants(users []string) []string {
	slices.Sort(users)
	return slices.Compact(users)
}

// SortAwards sorts awards by rank (instant wins, rank 0, first), then user
// id, then activity id.
func SortAwards(awards []schemas.PrizeAwarded) {
	slices.SortFunc(awards, func(a, b schemas.PrizeAwarded) int {
		return cmp.Or(cmp.Compare(a.Rank, b.Rank), strings.Compare(a.UserID, b.UserID),
			strings.Compare(a.ActivityID, b.ActivityID))
	})
}

// SortMatches sorts gift sends by decision time, then sender id, then
// result id, so that a sender's repeated attempts keep one order.
func SortMatches(matches []schemas.MatchDecided) {
	slices.SortFunc(matches, func(a, b schemas.MatchDecided) int {
		return cmp.Or(a.DecidedAt.Compare(b.DecidedAt), strings.Compare(a.SenderID, b.SenderID),
			strings.Compare(a.ResultID, b.ResultID))
	})
}

// SortMembers sorts members by user id, then activity id, then result id.
func SortMembers(members []schemas.MemberRecorded) {
	slices.SortFunc(members, func(a, b schemas.MemberRecorded) int {
		return cmp.Or(strings.Compare(a.UserID, b.UserID), strings.Compare(a.ActivityID, b.ActivityID),
			strings.Compare(a.ResultID, b.ResultID))
	})
}

// Limit returns the first n of sorted, or all of them when n is 0 or less.
func Limit[T any](sorted []T, n int) []T {
	if n > 0 && len(sorted) > n {
		return sorted[:n]
	}
	return sorted
}
