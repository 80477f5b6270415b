package fair

import "math"

// drawDomain separates draw streams from every other use of a seed. A change
// to the draw rules needs a new domain, never an edit of this one.
const drawDomain = "promoflow-draw-v1"

// Tier is one prize tier of a draw: its id and how many winners it takes.
// A tier with Stock <= 0 takes no one.
type Tier struct {
	ID    string
	Stock int64
}

// Award is one winner of a draw. Rank is the 1-based order in which the
// winner was drawn; TierID is the tier that rank falls into.
type Award struct {
	UserID string
	TierID string
	Rank   int64
}

// Draw picks the winners of an activity from its revealed seed. The
// participants are normalized (Normalize); K = min(total positive stock, N)
// winners are drawn by a partial Fisher–Yates shuffle of the indexes
// 0..N-1 driven by NewStream("promoflow-draw-v1", seed, []byte(activityID)):
//
//	for i := 0; i < K; i++ { j := i + Intn(N-i); swap(idx[i], idx[j]) }
//
// and winner i is participants[idx[i]]. Winners fill the tiers in the order
// given: the first tiers[0].Stock ranks get tiers[0], the next
// tiers[1].Stock get tiers[1], and so on. Draw returns the awards in rank
// order, and an empty slice when there are no participants or no stock.
func Draw(seed []byte, activityID string, participants []string, tiers []Tier) []Award {
	users := Normalize(participants)
	n := len(users)
	k := 0
	for _, t := range tiers {
		if t.Stock <= 0 {
			continue
		}
		if t.Stock >= int64(n-k) {
			k = n
			break
		}
		k += int(t.Stock)
	}
	awards := make([]Award, 0, k)
	if k == 0 {
		return awards
	}
	s := NewStream(drawDomain, seed, []byte(activityID))
	// int32 indexes halve the memory of a million-entry array; only a list
	// too long for them (over 2^31-1 ids) pays for int64.
	if n <= math.MaxInt32 {
		awards = shuffle[int32](s, users, k, awards)
	} else {
		awards = shuffle[int64](s, users, k, awards)
	}
	rank := 0
	for _, t := range tiers {
		for c := int64(0); c < t.Stock && rank < k; c++ {
			awards[rank].TierID = t.ID
			rank++
		}
	}
	return awards
}

// shuffle runs the first k steps of the Fisher–Yates shuffle over the
// indexes of users and appends the k winners to awards with their ranks.
func shuffle[I int32 | int64](s *Stream, users []string, k int, awards []Award) []Award {
	n := len(users)
	idx := make([]I, n)
	for i := range idx {
		idx[i] = I(i)
	}
	for i := 0; i < k; i++ {
		j := i + int(s.Intn(uint64(n-i)))
		idx[i], idx[j] = idx[j], idx[i]
		awards = append(awards, Award{UserID: users[idx[i]], Rank: int64(i + 1)})
	}
	return awards
}
