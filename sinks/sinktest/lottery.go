package sinktest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// LotterySink is a sink that reads its lottery and gift-exchange results
// back, as the system of record does.
type LotterySink interface {
	Sink
	sinks.LotteryReader
}

// RunLotteryReader runs the read suite of [sinks.LotteryReader]. newSink
// returns a new sink over an empty store and arranges with t.Cleanup for the
// store to be removed; the suite closes the sink. It writes the results of a
// draw, an instant-win activity and a gift exchange twice (the second time
// as a redelivery) and checks every read against them.
func RunLotteryReader(t *testing.T, newSink func(t *testing.T) LotterySink) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*caseTimeout)
	defer cancel()
	s := newSink(t)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("closing sink: %v", err)
		}
	})
	sc := newScenario(t)
	write(t, ctx, s, sc.events)
	write(t, ctx, s, redecode(t, sc.events))
	cases := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s LotterySink, sc *scenario)
	}{
		{"Activity", testActivity},
		{"Draw", testDraw},
		{"Participants", testParticipants},
		{"Awards", testAwards},
		{"EntryCounts", testEntryCounts},
		{"GiftMatches", testGiftMatches},
		{"GiftMembers", testGiftMembers},
		{"ManyParticipants", testManyParticipants},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, ctx, s, sc) })
	}
}

// The activities of the read suite.
const (
	drawActivity    = "draw-1"
	otherDraw       = "draw-2"
	instantActivity = "instant-1"
	giftActivity    = "gift-1"
	otherGift       = "gift-2"
	unknownActivity = "unknown-1"
)

// scenario holds the results the read suite writes, and each as a store
// keeps it.
type scenario struct {
	tb     testing.TB
	events []*schemas.Envelope
	n      int // events made so far, for unique ids
	// The results as stored, by activity, by activity/user (awards,
	// members) or by the scenario's name for them (matches).
	activities map[string]schemas.ActivityCommitted
	draws      map[string]schemas.DrawCompleted
	awards     map[string]schemas.PrizeAwarded
	matches    map[string]schemas.MatchDecided
	members    map[string]schemas.MemberRecorded
}

var scenarioStart = Epoch.Add(-30 * 24 * time.Hour)

func newScenario(tb testing.TB) *scenario {
	sc := &scenario{
		tb:         tb,
		activities: map[string]schemas.ActivityCommitted{},
		draws:      map[string]schemas.DrawCompleted{},
		awards:     map[string]schemas.PrizeAwarded{},
		matches:    map[string]schemas.MatchDecided{},
		members:    map[string]schemas.MemberRecorded{},
	}
	// Revision 2 of draw-1 replaces revision 1: one result id per activity.
	// Its draw time has nanoseconds, which the store truncates.
	drawAt := scenarioStart.Add(48*time.Hour + 123_456_789)
	for rev := int64(1); rev <= 2; rev++ {
		sc.activity(schemas.ActivityCommitted{
			ActivityID: drawActivity, Name: fmt.Sprintf("Draw, revision %d", rev), Revision: rev,
			Kind: schemas.KindDraw, Status: "active", DrawAt: &drawAt, PerUserLimit: 2, Prizes: "gold:1,silver:2",
		})
	}
	sc.activity(schemas.ActivityCommitted{
		ActivityID: instantActivity, Revision: 1, Kind: schemas.KindInstantWin, PerUserLimit: 2, Prizes: "gold:1,silver:5",
	})
	sc.activity(schemas.ActivityCommitted{ActivityID: giftActivity, Revision: 3, Kind: schemas.KindGiftExchange})

	// draw-1: users whose bytewise order is not their natural order, and
	// thirty more to spread over the shards; u-2 and a-b joined twice.
	for _, u := range []string{"u-2", "u-10", "U-1", "a.b", "a-b", "a:b", "a@b", "z_9", "0"} {
		sc.entry(drawActivity, u, schemas.EntryAccepted, "", "")
	}
	for i := range 30 {
		sc.entry(drawActivity, fmt.Sprintf("p-%03d", i), schemas.EntryAccepted, "", "")
	}
	sc.entry(drawActivity, "u-2", schemas.EntryAccepted, "", "")
	sc.entry(drawActivity, "a-b", schemas.EntryAccepted, "", "")
	sc.entry(drawActivity, "u-2", schemas.EntryRejected, schemas.RejectLimitReached, "")
	sc.entry(drawActivity, "late-1", schemas.EntryRejected, schemas.RejectEnded, "")
	sc.entry(drawActivity, "late-2", schemas.EntryRejected, schemas.RejectEnded, "")
	sc.entry(drawActivity, "closed-1", schemas.EntryRejected, schemas.RejectDrawClosed, "")
	// draw-2 shares a user with draw-1.
	sc.entry(otherDraw, "u-2", schemas.EntryAccepted, "", "")
	sc.entry(otherDraw, "q-1", schemas.EntryAccepted, "", "")

	sc.draw(schemas.DrawCompleted{
		ActivityID: drawActivity, Trigger: schemas.TriggerScheduled, Participants: 39, Winners: 3, Prizes: "gold:1,silver:2",
	})
	// Written out of rank order.
	sc.award(drawActivity, "p-007", "silver", 3, "draw")
	sc.award(drawActivity, "u-10", "gold", 1, "draw")
	sc.award(drawActivity, "a@b", "silver", 2, "draw")
	sc.award(otherDraw, "q-1", "gold", 1, "draw")

	// instant-1: i-1 won, then lost; i-3 won; i-4 was refused.
	sc.award(instantActivity, "i-3", "silver", 0, "instant")
	sc.award(instantActivity, "i-1", "gold", 0, "instant")
	sc.entry(instantActivity, "i-1", schemas.EntryAccepted, "", schemas.OutcomeWon)
	sc.entry(instantActivity, "i-2", schemas.EntryAccepted, "", schemas.OutcomeLost)
	sc.entry(instantActivity, "i-1", schemas.EntryAccepted, "", schemas.OutcomeLost)
	sc.entry(instantActivity, "i-3", schemas.EntryAccepted, "", schemas.OutcomeWon)
	sc.entry(instantActivity, "i-4", schemas.EntryRejected, schemas.RejectLimitReached, "")

	// gift-1: m-01 … m-12 active, m-13 removed, m-07 edited after the
	// import; m-01 and m-04 are also members of gift-2.
	for i := 1; i <= 13; i++ {
		status := schemas.MemberActive
		if i == 13 {
			status = schemas.MemberRemoved
		}
		sc.member(giftActivity, fmt.Sprintf("m-%02d", i), fmt.Sprintf("Member %d", i), status)
	}
	sc.member(giftActivity, "m-07", "Member 7 (edited)", schemas.MemberActive)
	sc.member(otherGift, "m-01", "Member 1", schemas.MemberActive)
	sc.member(otherGift, "m-04", "Member 4", schemas.MemberActive)
	// Sends: m-01 and m-02 were decided in the same millisecond; m-01 tried
	// again; m-05 found no receiver; m-04 sent in gift-2 only.
	t0 := scenarioStart.Add(72 * time.Hour)
	sc.match("m01", giftActivity, "m-01", "m-02", "", t0)
	sc.match("m02", giftActivity, "m-02", "m-03", "", t0)
	sc.match("m03", giftActivity, "m-03", "m-01", "", t0.Add(time.Minute))
	sc.match("m01-again", giftActivity, "m-01", "", schemas.RejectAlreadySent, t0.Add(2*time.Minute))
	sc.match("m05", giftActivity, "m-05", "", schemas.RejectNoReceiverLeft, t0.Add(3*time.Minute))
	sc.match("m04-other", otherGift, "m-04", "m-01", "", t0.Add(time.Minute))
	return sc
}

// add appends the event of result p, decided at at.
func (sc *scenario) add(at time.Time, p schemas.Payload) {
	sc.events = append(sc.events, Result(sc.tb, "app-1", at, p))
}

// id returns a result id unique to kind and key.
func id(kind, key string) string { return schemas.ResultID(kind, "read-suite", key) }

// at returns the time of the scenario's next result, with microseconds the
// store truncates.
func (sc *scenario) at() time.Time {
	sc.n++
	return scenarioStart.Add(time.Duration(sc.n)*time.Minute + time.Duration(sc.n)*time.Microsecond)
}

func (sc *scenario) activity(a schemas.ActivityCommitted) {
	a.ResultID = id(a.EventType(), a.ActivityID)
	a.SeedHash = strings.Repeat(id("seed", a.ActivityID), 2)
	a.JoinFrom, a.JoinUntil, a.CommittedAt = scenarioStart, scenarioStart.Add(47*time.Hour), scenarioStart
	sc.add(sc.at(), a)
	sc.activities[a.ActivityID] = stored(a)
}

func (sc *scenario) draw(d schemas.DrawCompleted) {
	d.ResultID = id(d.EventType(), d.ActivityID)
	d.Seed = strings.Repeat(id("seed", d.ActivityID), 2)
	d.SeedHash, d.ParticipantsDigest = d.Seed, strings.Repeat(id("digest", d.ActivityID), 2)
	d.DrawnAt = sc.at()
	sc.add(d.DrawnAt, d)
	sc.draws[d.ActivityID] = stored(d)
}

func (sc *scenario) entry(activity, user, status, reason, outcome string) {
	at := sc.at()
	event := fmt.Sprintf("entry-%d", sc.n)
	e := schemas.EntryRecorded{
		ResultID: id(schemas.TypeLotteryEntryRecorded, event), EntryEventID: event, ActivityID: activity, UserID: user,
		Status: status, Reason: reason, Outcome: outcome, Roll: -1, OccurredAt: at.Add(-time.Second), RecordedAt: at,
	}
	if outcome != "" {
		e.Roll, e.Odds = int64(sc.n*7919%1_000_000), "gold:1000,silver:20000"
	}
	if outcome == schemas.OutcomeWon {
		e.TierID = "gold"
	}
	sc.add(at, e)
}

func (sc *scenario) award(activity, user, tier string, rank int64, source string) {
	key := activity + "/" + user
	p := schemas.PrizeAwarded{
		ResultID: id(schemas.TypeLotteryPrizeAwarded, key), ActivityID: activity, UserID: user, TierID: tier,
		PrizeKind: schemas.PrizeCoupon, BatchID: "batch-" + tier, Source: source, SourceID: id("source", key),
		Rank: rank, AwardedAt: sc.at(),
	}
	sc.add(p.AwardedAt, p)
	sc.awards[key] = stored(p)
}

func (sc *scenario) member(activity, user, name, status string) {
	key := activity + "/" + user
	m := schemas.MemberRecorded{
		ResultID: id(schemas.TypeGiftMemberRecorded, key), ActivityID: activity, UserID: user, Name: name,
		Note: "floor " + user[len(user)-1:], Status: status, ImportID: "import-1", UpdatedAt: sc.at(),
	}
	sc.add(m.UpdatedAt, m)
	sc.members[key] = stored(m)
}

// match records a send named name, matched with receiver, or rejected for
// reason when receiver is empty.
func (sc *scenario) match(name, activity, sender, receiver, reason string, at time.Time) {
	m := schemas.MatchDecided{
		ResultID: id(schemas.TypeGiftMatchDecided, name), SendEventID: "send-" + name, ActivityID: activity,
		SenderID: sender, ReceiverID: receiver, Status: schemas.MatchMatched, DecidedAt: at,
	}
	if receiver == "" {
		m.Status, m.Reason = schemas.MatchRejected, reason
	}
	sc.add(at, m)
	sc.matches[name] = stored(m)
}

// pick returns the values of m under keys, in order.
func pick[T any](m map[string]T, keys ...string) []T {
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}

// expectList checks a listing against want, in order.
func expectList[T any](t *testing.T, what string, got []T, err error, want []T) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if g, w := jsonOf(got), jsonOf(want); g != w {
		t.Errorf("%s =\n%s\nwant\n%s", what, g, w)
	}
	for _, v := range got {
		if bad := notUTC(v); len(bad) > 0 {
			t.Errorf("%s: times not in UTC: %v", what, bad)
		}
	}
}

// expectOne checks a lookup against want.
func expectOne[T any](t *testing.T, what string, got *T, err error, want T) {
	t.Helper()
	if err == nil && got == nil {
		err = errors.New("nil result without an error")
	}
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	expectList(t, what, []T{*got}, nil, []T{want})
}

// expectNotFound checks that a lookup failed with sinks.ErrNotFound.
func expectNotFound[T any](t *testing.T, what string, got *T, err error) {
	t.Helper()
	if !errors.Is(err, sinks.ErrNotFound) {
		t.Errorf("%s = %+v, %v; want an error wrapping sinks.ErrNotFound", what, got, err)
	}
}

func testActivity(t *testing.T, ctx context.Context, s LotterySink, sc *scenario) {
	for _, a := range []string{drawActivity, instantActivity, giftActivity} {
		got, err := s.Activity(ctx, a)
		expectOne(t, "Activity("+a+")", got, err, sc.activities[a])
	}
	got, err := s.Activity(ctx, unknownActivity)
	expectNotFound(t, "Activity("+unknownActivity+")", got, err)
}

func testDraw(t *testing.T, ctx context.Context, s LotterySink, sc *scenario) {
	got, err := s.Draw(ctx, drawActivity)
	expectOne(t, "Draw("+drawActivity+")", got, err, sc.draws[drawActivity])
	for _, a := range []string{instantActivity, unknownActivity} {
		got, err := s.Draw(ctx, a)
		expectNotFound(t, "Draw("+a+")", got, err)
	}
}

func testParticipants(t *testing.T, ctx context.Context, s LotterySink, sc *scenario) {
	draw := []string{"0", "U-1", "a-b", "a.b", "a:b", "a@b"}
	for i := range 30 {
		draw = append(draw, fmt.Sprintf("p-%03d", i))
	}
	draw = append(draw, "u-10", "u-2", "z_9")
	for _, c := range []struct {
		activity string
		want     []string
	}{
		{drawActivity, draw},
		{otherDraw, []string{"q-1", "u-2"}},
		{instantActivity, []string{"i-1", "i-2", "i-3"}},
		{unknownActivity, nil},
	} {
		got, err := s.Participants(ctx, c.activity)
		expectList(t, "Participants("+c.activity+")", got, err, c.want)
	}
}

func testAwards(t *testing.T, ctx context.Context, s LotterySink, sc *scenario) {
	for _, c := range []struct {
		activity string
		want     []string // activity/user
	}{
		{drawActivity, []string{"draw-1/u-10", "draw-1/a@b", "draw-1/p-007"}},
		{instantActivity, []string{"instant-1/i-1", "instant-1/i-3"}},
		{giftActivity, nil},
	} {
		got, err := s.Awards(ctx, c.activity)
		expectList(t, "Awards("+c.activity+")", got, err, pick(sc.awards, c.want...))
	}
}

func testEntryCounts(t *testing.T, ctx context.Context, s LotterySink, sc *scenario) {
	for _, c := range []struct {
		activity string
		want     sinks.EntryCounts
	}{
		{drawActivity, sinks.EntryCounts{Accepted: 41, Rejected: 4, Participants: 39, RejectedBy: map[string]int64{
			schemas.RejectLimitReached: 1, schemas.RejectEnded: 2, schemas.RejectDrawClosed: 1,
		}}},
		{instantActivity, sinks.EntryCounts{Accepted: 4, Rejected: 1, Participants: 3, Won: 2, RejectedBy: map[string]int64{
			schemas.RejectLimitReached: 1,
		}}},
		{unknownActivity, sinks.EntryCounts{RejectedBy: map[string]int64{}}},
	} {
		got, err := s.EntryCounts(ctx, c.activity)
		if err != nil {
			t.Errorf("EntryCounts(%s): %v", c.activity, err)
			continue
		}
		if got.RejectedBy == nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("EntryCounts(%s) = %+v, want %+v (RejectedBy never nil)", c.activity, got, c.want)
		}
	}
}

func testGiftMatches(t *testing.T, ctx context.Context, s LotterySink, sc *scenario) {
	for _, c := range []struct {
		f    sinks.GiftFilter
		want []string // names given by newScenario
	}{
		{sinks.GiftFilter{ActivityID: giftActivity}, []string{"m01", "m02", "m03", "m01-again", "m05"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Sender: "m-01"}, []string{"m01", "m01-again"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Sender: "m-01", Status: schemas.MatchMatched}, []string{"m01"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Receiver: "m-02"}, []string{"m01"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Status: schemas.MatchRejected}, []string{"m01-again", "m05"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Status: schemas.MatchRejected, Limit: 1}, []string{"m01-again"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Limit: 2}, []string{"m01", "m02"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Limit: 99}, []string{"m01", "m02", "m03", "m01-again", "m05"}},
		{sinks.GiftFilter{ActivityID: otherGift}, []string{"m04-other"}},
		{sinks.GiftFilter{Sender: "m-01"}, []string{"m01", "m01-again"}},
		{sinks.GiftFilter{Receiver: "m-01"}, []string{"m03", "m04-other"}},
		{sinks.GiftFilter{ActivityID: giftActivity, Sender: "m-13"}, nil},
		{sinks.GiftFilter{ActivityID: unknownActivity}, nil},
	} {
		got, err := s.GiftMatches(ctx, c.f)
		expectList(t, fmt.Sprintf("GiftMatches(%+v)", c.f), got, err, pick(sc.matches, c.want...))
	}
}

func testGiftMembers(t *testing.T, ctx context.Context, s LotterySink, sc *scenario) {
	gift := func(users ...string) []string {
		for i, u := range users {
			users[i] = giftActivity + "/" + u
		}
		return users
	}
	all := gift("m-01", "m-02", "m-03", "m-04", "m-05", "m-06", "m-07", "m-08", "m-09", "m-10", "m-11", "m-12", "m-13")
	pending := gift("m-04", "m-05", "m-06", "m-07", "m-08", "m-09", "m-10", "m-11", "m-12")
	for _, c := range []struct {
		f    sinks.MemberFilter
		want []string // activity/user
	}{
		{sinks.MemberFilter{ActivityID: giftActivity}, all},
		{sinks.MemberFilter{ActivityID: giftActivity, Limit: 3}, all[:3]},
		{sinks.MemberFilter{ActivityID: giftActivity, UserID: "m-07"}, gift("m-07")},
		{sinks.MemberFilter{ActivityID: giftActivity, Status: schemas.MemberRemoved}, gift("m-13")},
		{sinks.MemberFilter{ActivityID: giftActivity, Status: schemas.MemberActive}, all[:12]},
		// Pending: active, no matched send in this activity (a rejected
		// one or one in another activity does not count).
		{sinks.MemberFilter{ActivityID: giftActivity, Pending: true}, pending},
		{sinks.MemberFilter{ActivityID: giftActivity, Pending: true, Limit: 3}, pending[:3]},
		{sinks.MemberFilter{ActivityID: giftActivity, Pending: true, UserID: "m-04"}, gift("m-04")},
		{sinks.MemberFilter{ActivityID: giftActivity, Pending: true, UserID: "m-01"}, nil},
		{sinks.MemberFilter{ActivityID: giftActivity, Pending: true, Status: schemas.MemberRemoved}, nil},
		{sinks.MemberFilter{ActivityID: otherGift, Pending: true}, []string{otherGift + "/m-01"}},
		{sinks.MemberFilter{UserID: "m-01"}, []string{giftActivity + "/m-01", otherGift + "/m-01"}},
		{sinks.MemberFilter{ActivityID: unknownActivity}, nil},
	} {
		got, err := s.GiftMembers(ctx, c.f)
		expectList(t, fmt.Sprintf("GiftMembers(%+v)", c.f), got, err, pick(sc.members, c.want...))
	}
}

// testManyParticipants reads the participants of an activity with 20,000
// users, some of whom joined twice or were also refused once.
func testManyParticipants(t *testing.T, ctx context.Context, s LotterySink, _ *scenario) {
	const users, batch = 20_000, 2_000
	var all, tenth, twentieth []string
	for i := range users {
		u := fmt.Sprintf("user-%d", i)
		all = append(all, u)
		if i%10 == 0 {
			tenth = append(tenth, u)
		}
		if i%20 == 0 {
			twentieth = append(twentieth, u)
		}
	}
	events := Entries(t, "many-1", "first", schemas.EntryAccepted, all)
	events = append(events, Entries(t, "many-1", "again", schemas.EntryAccepted, tenth)...)
	events = append(events, Entries(t, "many-1", "refused", schemas.EntryRejected, twentieth)...)
	for lo := 0; lo < len(events); lo += batch {
		write(t, ctx, s, events[lo:min(lo+batch, len(events))])
	}
	start := time.Now()
	got, err := s.Participants(ctx, "many-1")
	t.Logf("Participants of %d users read in %s", users, time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(all))
	if i := firstDifference(got, want); i >= 0 {
		t.Errorf("Participants(many-1): %d users, the first difference at %d; want %d users", len(got), i, len(want))
	}
	counts, err := s.EntryCounts(ctx, "many-1")
	wantCounts := sinks.EntryCounts{Accepted: users + users/10, Rejected: users / 20, Participants: users,
		RejectedBy: map[string]int64{schemas.RejectLimitReached: users / 20}}
	if err != nil || !reflect.DeepEqual(counts, wantCounts) {
		t.Errorf("EntryCounts(many-1) = %+v, %v; want %+v", counts, err, wantCounts)
	}
}

// firstDifference returns the first index where a and b differ, or -1.
func firstDifference(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
