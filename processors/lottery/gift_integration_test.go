package lottery

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// giftStore returns a Store on the test Redis under a random key prefix
// whose keys are deleted when the test ends.
func giftStore(t testing.TB) (*Store, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: testenv.RedisAddr(), PoolSize: 80})
	t.Cleanup(func() { rdb.Close() })
	ctx := testenv.Context(t, time.Minute)
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s: %v", testenv.RedisAddr(), err)
	}
	prefix := testenv.Name("t")
	t.Cleanup(func() {
		ctx := context.Background()
		iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	s := NewStore(rdb, WithKeyPrefix(prefix), WithDecisionTTL(time.Hour))
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

// giftImport adds members "<prefix>0".."<prefix>n-1" in one call.
func giftImport(t testing.TB, s *Store, activity, prefix string, n int) []string {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	users := make([]string, n)
	in := make([]MemberInput, n)
	for i := range in {
		users[i] = fmt.Sprintf("%s%d", prefix, i)
		in[i] = MemberInput{AppID: "hr", EventID: "imp-" + users[i], UserID: users[i], Action: schemas.MemberAdd, Name: "N " + users[i], ImportID: "imp1"}
	}
	out, err := s.Members(ctx, activity, "t/0", 0, time.Now(), time.Now().Add(time.Hour), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range out {
		if o.Refused || o.Status != schemas.MemberActive {
			t.Fatalf("importing %s: %+v", users[i], o)
		}
	}
	return users
}

// TestIntegrationGiftRules walks one small exchange through the rules of
// sends and member changes, step by step.
func TestIntegrationGiftRules(t *testing.T) {
	s, _ := giftStore(t)
	ctx := testenv.Context(t, time.Minute)
	const act = "xmas"
	t0 := time.UnixMilli(1_800_000_000_000).UTC()
	exp := t0.Add(24 * time.Hour)
	member := func(at time.Time, event, user, action, name, note, imp string) MemberOutcome {
		t.Helper()
		out, err := s.Members(ctx, act, "t/0", 1, at, exp, []MemberInput{{AppID: "hr", EventID: event, UserID: user, Action: action, Name: name, Note: note, ImportID: imp}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	send := func(at time.Time, event, user, precheck string) SendOutcome {
		t.Helper()
		out, err := s.Send(ctx, act, "t/0", 1, at, exp, []SendInput{{AppID: "app", EventID: event, UserID: user, Precheck: precheck}})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	rec := func(status, name, note, imp, reason string, at time.Time, replayed bool) MemberOutcome {
		return MemberOutcome{Status: status, Name: name, Note: note, ImportID: imp, Refused: reason != "", Reason: reason, At: at, Replayed: replayed}
	}
	const active, removed = schemas.MemberActive, schemas.MemberRemoved
	t1, t2, t3 := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)

	// Import.
	for _, tc := range []struct {
		event, user, action, name, note, imp string
		at                                   time.Time
		want                                 MemberOutcome
	}{
		{"m1", "alice", schemas.MemberAdd, "Alice", "HR", "imp1", t0, rec(active, "Alice", "HR", "imp1", "", t0, false)},
		{"m2", "bob", schemas.MemberAdd, "Bob", "", "imp1", t0, rec(active, "Bob", "", "imp1", "", t0, false)},
		{"m3", "carol", schemas.MemberAdd, "Carol", "", "imp1", t0, rec(active, "Carol", "", "imp1", "", t0, false)},
		{"m4", "dave", schemas.MemberAdd, "Dave", "", "imp1", t0, rec(active, "Dave", "", "imp1", "", t0, false)},
		// Re-importing an active member keeps the record.
		{"m5", "alice", schemas.MemberAdd, "Alicia", "", "imp2", t1, rec(active, "Alice", "HR", "imp1", "", t1, false)},
		// A redelivered import is remembered.
		{"m1", "alice", schemas.MemberAdd, "Alice", "HR", "imp1", t2, rec(active, "Alice", "HR", "imp1", "", t0, true)},
		// Update edits name and note, keeps the import id unless given.
		{"m6", "carol", schemas.MemberUpdate, "Caroline", "IT", "", t1, rec(active, "Caroline", "IT", "imp1", "", t1, false)},
		{"m7", "carol", schemas.MemberUpdate, "Caroline", "", "imp3", t1, rec(active, "Caroline", "", "imp3", "", t1, false)},
		// Update creates an absent member.
		{"m8", "erin", schemas.MemberUpdate, "Erin", "", "", t1, rec(active, "Erin", "", "", "", t1, false)},
		// Remove, remove again, re-add.
		{"m9", "erin", schemas.MemberRemove, "", "", "", t1, rec(removed, "Erin", "", "", "", t1, false)},
		{"m10", "erin", schemas.MemberRemove, "", "", "", t1, rec(removed, "Erin", "", "", schemas.RejectNotAMember, t1, false)},
		{"m11", "zed", schemas.MemberRemove, "", "", "", t1, rec(removed, "", "", "", schemas.RejectNotAMember, t1, false)},
		{"m12", "erin", "rename", "", "", "", t1, rec(removed, "Erin", "", "", RefuseUnknownAction, t1, false)},
	} {
		if got := member(tc.at, tc.event, tc.user, tc.action, tc.name, tc.note, tc.imp); got != tc.want {
			t.Fatalf("member %s %s %s = %+v, want %+v", tc.event, tc.action, tc.user, got, tc.want)
		}
	}
	if m, u, r, _ := s.GiftState(ctx, act); m != 4 || u != 4 || r != 4 {
		t.Fatalf("state after import = %d/%d/%d, want 4/4/4", m, u, r)
	}

	// Sends.
	first := send(t1, "s1", "alice", "")
	if !first.Matched || first.ReceiverID == "alice" || first.Replayed || !first.At.Equal(t1) {
		t.Fatalf("alice's send = %+v", first)
	}
	for _, tc := range []struct {
		name                  string
		event, user, precheck string
		want                  SendOutcome
	}{
		{"replay", "s1", "alice", "", SendOutcome{Matched: true, ReceiverID: first.ReceiverID, At: t1, Replayed: true}},
		{"replay ignores a later precheck", "s1", "alice", schemas.RejectEnded, SendOutcome{Matched: true, ReceiverID: first.ReceiverID, At: t1, Replayed: true}},
		{"second send", "s2", "alice", "", SendOutcome{Reason: schemas.RejectAlreadySent, At: t2}},
		{"stranger", "s3", "zed", "", SendOutcome{Reason: schemas.RejectNotAMember, At: t2}},
		{"removed member", "s4", "erin", "", SendOutcome{Reason: schemas.RejectNotAMember, At: t2}},
		{"precheck first", "s5", "bob", schemas.RejectEnded, SendOutcome{Reason: schemas.RejectEnded, At: t2}},
		{"precheck remembered", "s5", "bob", "", SendOutcome{Reason: schemas.RejectEnded, At: t2, Replayed: true}},
	} {
		if got := send(t2, tc.event, tc.user, tc.precheck); got != tc.want {
			t.Fatalf("%s: send %s by %s = %+v, want %+v", tc.name, tc.event, tc.user, got, tc.want)
		}
	}
	if m, u, r, _ := s.GiftState(ctx, act); m != 4 || u != 3 || r != 3 {
		t.Fatalf("state after one match = %d/%d/%d, want 4/3/3", m, u, r)
	}

	// Members who sent or received are locked.
	if got := member(t2, "m13", "alice", schemas.MemberRemove, "", "", ""); got.Reason != RefuseMemberLocked || got.Status != active {
		t.Fatalf("remove of a sender = %+v", got)
	}
	if got := member(t2, "m14", first.ReceiverID, schemas.MemberRemove, "", "", ""); got.Reason != RefuseMemberLocked || got.Status != active {
		t.Fatalf("remove of a receiver = %+v", got)
	}
	// A removed member can join again and then sends.
	if got := member(t3, "m15", "erin", schemas.MemberAdd, "Erin B", "", ""); got != rec(active, "Erin B", "", "", "", t3, false) {
		t.Fatalf("re-add = %+v", got)
	}
	if got := send(t3, "s6", "erin", ""); !got.Matched || got.ReceiverID == "erin" {
		t.Fatalf("send of the re-added member = %+v", got)
	}

	// Everyone else sends: everyone receives once, nobody from themselves.
	for i, u := range []string{"bob", "carol", "dave"} {
		if got := send(t3, fmt.Sprintf("s%d", 7+i), u, ""); !got.Matched || got.ReceiverID == u {
			t.Fatalf("send by %s = %+v", u, got)
		}
	}
	checkGiftMatching(t, s, act, []string{"alice", "bob", "carol", "dave", "erin"})

	// A lone member has nobody to give to (never themselves).
	if _, err := s.Members(ctx, "solo", "t/0", 0, t0, exp, []MemberInput{{AppID: "hr", EventID: "m1", UserID: "solo", Action: schemas.MemberAdd}}); err != nil {
		t.Fatal(err)
	}
	out, err := s.Send(ctx, "solo", "t/0", 0, t0, exp, []SendInput{{AppID: "app", EventID: "s1", UserID: "solo"}})
	if err != nil {
		t.Fatal(err)
	}
	if out[0].Matched || out[0].Reason != schemas.RejectNoReceiverLeft {
		t.Fatalf("lone sender = %+v, want %s", out[0], schemas.RejectNoReceiverLeft)
	}
}

// checkGiftMatching checks a finished exchange among users: each sent once,
// received once, never from themselves, and nothing is left unmatched.
func checkGiftMatching(t *testing.T, s *Store, activity string, users []string) map[string]string {
	t.Helper()
	ctx := testenv.Context(t, time.Minute)
	pairs, err := s.GiftPairs(ctx, activity)
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != len(users) {
		t.Fatalf("%d pairs for %d members", len(pairs), len(users))
	}
	received := map[string]int{}
	for _, u := range users {
		r, ok := pairs[u]
		if !ok {
			t.Fatalf("%s did not send", u)
		}
		if r == u {
			t.Fatalf("%s gave to themselves", u)
		}
		received[r]++
	}
	for _, u := range users {
		if received[u] != 1 {
			t.Fatalf("%s received %d gifts", u, received[u])
		}
	}
	if m, un, ur, err := s.GiftState(ctx, activity); err != nil || m != int64(len(users)) || un != 0 || ur != 0 {
		t.Fatalf("final state = %d/%d/%d (%v), want %d/0/0", m, un, ur, err, len(users))
	}
	return pairs
}

// TestIntegrationGiftFencing: once a newer owner of the partition has
// written, the old owner can change nothing.
func TestIntegrationGiftFencing(t *testing.T) {
	s, _ := giftStore(t)
	ctx := testenv.Context(t, time.Minute)
	now := time.Now()
	exp := now.Add(time.Hour)
	giftImport(t, s, "f", "u", 4)
	if _, err := s.Send(ctx, "f", "lottery.requests/2", 5, now, exp, []SendInput{{AppID: "a", EventID: "e1", UserID: "u0"}}); err != nil {
		t.Fatal(err)
	}
	// A new owner (epoch 6) writes; the old owner (epoch 5) is now refused.
	if _, err := s.Members(ctx, "f", "lottery.requests/2", 6, now, exp, []MemberInput{{AppID: "a", EventID: "m1", UserID: "v", Action: schemas.MemberAdd}}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Send(ctx, "f", "lottery.requests/2", 5, now, exp, []SendInput{{AppID: "a", EventID: "e2", UserID: "u1"}})
	if !errors.Is(err, stream.ErrFenced) {
		t.Fatalf("stale send: err = %v, want ErrFenced", err)
	}
	_, err = s.Members(ctx, "f", "lottery.requests/2", 5, now, exp, []MemberInput{{AppID: "a", EventID: "m2", UserID: "w", Action: schemas.MemberAdd}})
	if !errors.Is(err, stream.ErrFenced) {
		t.Fatalf("stale member change: err = %v, want ErrFenced", err)
	}
	// The refused calls changed nothing.
	if m, u, r, _ := s.GiftState(ctx, "f"); m != 5 || u != 4 || r != 4 {
		t.Fatalf("state = %d/%d/%d, want 5/4/4", m, u, r)
	}
	// Fencing is per partition; epoch 0 turns it off; the current epoch works.
	for _, c := range []struct {
		field string
		epoch int64
	}{{"lottery.requests/3", 5}, {"lottery.requests/2", 0}, {"lottery.requests/2", 6}} {
		if _, err := s.Send(ctx, "f", c.field, c.epoch, now, exp, []SendInput{{AppID: "a", EventID: "e-" + c.field + fmt.Sprint(c.epoch), UserID: "u1"}}); err != nil {
			t.Fatalf("send on %s epoch %d: %v", c.field, c.epoch, err)
		}
	}
}

// TestIntegrationGiftExpiry: every key written expires at the given time;
// a zero expiry leaves them persistent.
func TestIntegrationGiftExpiry(t *testing.T) {
	s, rdb := giftStore(t)
	ctx := testenv.Context(t, time.Minute)
	now := time.Now()
	exp := now.Add(48 * time.Hour).Truncate(time.Second)
	if _, err := s.Members(ctx, "x", "t/0", 1, now, exp, []MemberInput{
		{AppID: "a", EventID: "m1", UserID: "u1", Action: schemas.MemberAdd},
		{AppID: "a", EventID: "m2", UserID: "u2", Action: schemas.MemberAdd},
		{AppID: "a", EventID: "m3", UserID: "u3", Action: schemas.MemberAdd},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Send(ctx, "x", "t/0", 2, now, exp, []SendInput{{AppID: "a", EventID: "s1", UserID: "u1"}}); err != nil {
		t.Fatal(err)
	}
	for _, part := range []string{"gm", "gu", "gr", "gs", "gv", "gi", "gd", "fence"} {
		at, err := rdb.ExpireTime(ctx, s.key("x", part)).Result()
		if err != nil {
			t.Fatal(err)
		}
		if at != time.Duration(exp.Unix())*time.Second {
			t.Errorf("%s expires at %v, want %d", part, at, exp.Unix())
		}
	}
	if _, err := s.Members(ctx, "y", "t/0", 0, now, time.Time{}, []MemberInput{{AppID: "a", EventID: "m1", UserID: "u1", Action: schemas.MemberAdd}}); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := rdb.TTL(ctx, s.key("y", "gm")).Result(); ttl != -1 {
		t.Errorf("gm with no expiry has TTL %v", ttl)
	}
}

// TestIntegrationGiftNoDeadEnd: in many random small groups where every
// member sends in random order (in random batches), everyone receives
// exactly once and nobody gives to themselves: the exchange never strands
// its last sender.
func TestIntegrationGiftNoDeadEnd(t *testing.T) {
	s, _ := giftStore(t)
	ctx := testenv.Context(t, 2*time.Minute)
	rng := rand.New(rand.NewSource(7))
	for round := 0; round < 300; round++ {
		act := fmt.Sprintf("g%d", round)
		users := giftImport(t, s, act, "u", 2+rng.Intn(11))
		order := append([]string(nil), users...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for len(order) > 0 {
			k := min(1+rng.Intn(3), len(order))
			var in []SendInput
			for _, u := range order[:k] {
				in = append(in, SendInput{AppID: "a", EventID: "send-" + u, UserID: u})
			}
			out, err := s.Send(ctx, act, "t/0", 0, time.Now(), time.Now().Add(time.Hour), in)
			if err != nil {
				t.Fatal(err)
			}
			for i, o := range out {
				if !o.Matched || o.ReceiverID == in[i].UserID {
					t.Fatalf("round %d (%d members): send by %s = %+v", round, len(users), in[i].UserID, o)
				}
			}
			order = order[k:]
		}
		checkGiftMatching(t, s, act, users)
	}
}

// TestIntegrationGiftRemoveWouldStrand: once others have been matched, the
// last two members who have neither sent nor received cannot be split up
// (the one left could not send); before the exchange starts they can.
func TestIntegrationGiftRemoveWouldStrand(t *testing.T) {
	s, _ := giftStore(t)
	ctx := testenv.Context(t, time.Minute)
	now, exp := time.Now(), time.Now().Add(time.Hour)
	events := 0
	remove := func(act string, users ...string) []MemberOutcome {
		t.Helper()
		var in []MemberInput
		for _, u := range users {
			events++
			in = append(in, MemberInput{AppID: "a", EventID: fmt.Sprintf("rm%d", events), UserID: u, Action: schemas.MemberRemove})
		}
		out, err := s.Members(ctx, act, "t/0", 0, now, exp, in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	giftImport(t, s, "pair", "u", 2)
	if o := remove("pair", "u0")[0]; o.Refused || o.Status != schemas.MemberRemoved {
		t.Fatalf("remove before the exchange started = %+v", o)
	}

	// Until u0 and u1 happen to give to each other, leaving u2 and u3.
	for i := 0; ; i++ {
		if i == 300 {
			t.Fatal("u0 and u1 never gave to each other")
		}
		act := fmt.Sprintf("w%d", i)
		users := giftImport(t, s, act, "u", 4)
		if _, err := s.Send(ctx, act, "t/0", 0, now, exp, []SendInput{{AppID: "a", EventID: "s0", UserID: users[0]}, {AppID: "a", EventID: "s1", UserID: users[1]}}); err != nil {
			t.Fatal(err)
		}
		pairs, err := s.GiftPairs(ctx, act)
		if err != nil {
			t.Fatal(err)
		}
		if pairs[users[0]] != users[1] || pairs[users[1]] != users[0] {
			continue
		}
		for _, o := range remove(act, users[2], users[3]) {
			if o.Reason != RefuseWouldStrand || o.Status != schemas.MemberActive {
				t.Fatalf("remove of one of the last pair = %+v, want %s", o, RefuseWouldStrand)
			}
		}
		// With a third member added, the removal is safe.
		giftImport(t, s, act, "new", 1)
		if o := remove(act, users[2])[0]; o.Refused || o.Status != schemas.MemberRemoved {
			t.Fatalf("remove after an add = %+v", o)
		}
		return
	}
}

// TestIntegrationGiftConcurrent imports 10,000 members and lets 64
// goroutines send for all of them at once in small batches, with
// redeliveries of some events (racing the first delivery) and a second
// event for some senders. The result must be one valid matching, checked
// pair by pair against what Send returned.
func TestIntegrationGiftConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 members")
	}
	s, _ := giftStore(t)
	ctx := testenv.Context(t, 3*time.Minute)
	const n, workers = 10_000, 64
	const act = "big"
	users := giftImport(t, s, act, "user", n)

	type delivery struct {
		event, user string
	}
	var events []delivery
	for i, u := range users {
		events = append(events, delivery{fmt.Sprintf("s%d", i), u})
		if i%10 == 0 {
			events = append(events, delivery{fmt.Sprintf("x%d", i), u}) // second press
		}
	}
	work := make([][]delivery, workers)
	for i, d := range events {
		w := i % workers
		work[w] = append(work[w], d)
		if i%7 == 0 {
			work[(w+1)%workers] = append(work[(w+1)%workers], d) // redelivery elsewhere
		}
	}

	var mu sync.Mutex
	got := map[string][]SendOutcome{} // event -> outcome of every delivery
	var wg sync.WaitGroup
	for w := range work {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			mine := work[w]
			rng.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			for len(mine) > 0 {
				k := min(1+rng.Intn(16), len(mine))
				in := make([]SendInput, k)
				for j, d := range mine[:k] {
					in[j] = SendInput{AppID: "app", EventID: d.event, UserID: d.user}
				}
				out, err := s.Send(ctx, act, "lottery.requests/0", 0, time.Now(), time.Now().Add(time.Hour), in)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for j, o := range out {
					got[in[j].EventID] = append(got[in[j].EventID], o)
				}
				mu.Unlock()
				mine = mine[k:]
			}
		}(w)
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	matched := map[string]string{} // sender -> receiver, from the outcomes
	for _, d := range events {
		outs := got[d.event]
		if len(outs) == 0 {
			t.Fatalf("event %s never decided", d.event)
		}
		fresh := 0
		for _, o := range outs {
			if !o.Replayed {
				fresh++
			}
			if o.Matched != outs[0].Matched || o.ReceiverID != outs[0].ReceiverID || o.Reason != outs[0].Reason || !o.At.Equal(outs[0].At) {
				t.Fatalf("event %s decided differently: %+v vs %+v", d.event, o, outs[0])
			}
		}
		if fresh != 1 {
			t.Fatalf("event %s decided fresh %d times", d.event, fresh)
		}
		o := outs[0]
		switch {
		case o.Matched:
			if prev, dup := matched[d.user]; dup {
				t.Fatalf("%s matched twice: %s and %s", d.user, prev, o.ReceiverID)
			}
			matched[d.user] = o.ReceiverID
		case o.Reason != schemas.RejectAlreadySent:
			t.Fatalf("event %s by %s: %+v", d.event, d.user, o)
		}
	}
	pairs := checkGiftMatching(t, s, act, users)
	if len(matched) != n {
		t.Fatalf("%d senders matched, want %d", len(matched), n)
	}
	for sender, receiver := range matched {
		if pairs[sender] != receiver {
			t.Fatalf("Redis has %s -> %s, Send returned %s", sender, pairs[sender], receiver)
		}
	}
}

func TestIntegrationGiftReloadsAfterFlush(t *testing.T) {
	s, rdb := giftStore(t)
	ctx := testenv.Context(t, time.Minute)
	giftImport(t, s, "r", "u", 2)
	if err := rdb.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	out, err := s.Send(ctx, "r", "t/0", 0, time.Now(), time.Now().Add(time.Hour), []SendInput{{AppID: "a", EventID: "e", UserID: "u0"}})
	if err != nil || !out[0].Matched || out[0].ReceiverID != "u1" {
		t.Fatalf("send after SCRIPT FLUSH = %+v, %v", out, err)
	}
}
