package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/schemas"
)

// fakeRow is one row of a fake shard table.
type fakeRow struct {
	id                           string
	campaign                     string // batch_id or activity_id
	user, status, op, tier, coup string
	other                        string // gift_match: receiver
}

// fakeStore is a store in memory: shards of tables of rows. It serves every
// read by brute force, the reference the real stores' SQL must match.
type fakeStore struct {
	shards []map[string][]fakeRow
	pages  int // pages served (ResultIDs and SortedUsers)
}

func newFakeStore(n int) *fakeStore {
	s := &fakeStore{}
	for range n {
		s.shards = append(s.shards, map[string][]fakeRow{})
	}
	return s
}

func (s *fakeStore) add(shard int, table string, r fakeRow) {
	s.shards[shard][table] = append(s.shards[shard][table], r)
}

func (s *fakeStore) IDStreams() int         { return len(s.shards) }
func (s *fakeStore) ShardName(i int) string { return "shard " + string(rune('0'+i)) }

func (s *fakeStore) ResultIDs(_ context.Context, table string, i int, q IDQuery) ([]string, error) {
	s.pages++
	var out []string
	for _, r := range s.shards[i][table] {
		if q.From != "" && r.id < q.From || q.To != "" && r.id >= q.To || q.After != "" && r.id <= q.After || q.Column != "" && r.campaign != q.Value {
			continue
		}
		out = append(out, r.id)
	}
	slices.Sort(out)
	out = slices.Compact(out) // a ClickHouse table read with FINAL: one row per id
	return out[:min(len(out), q.Limit)], nil
}

func (s *fakeStore) each(i int, table, campaign string, fn func(r fakeRow)) {
	for _, r := range s.shards[i][table] {
		if campaign == "" || r.campaign == campaign {
			fn(r)
		}
	}
}

func (s *fakeStore) GrantedPerBatch(_ context.Context, i int, batch string, fn func(string, int64) error) error {
	n := map[string]int64{}
	s.each(i, "coupon_grant", batch, func(r fakeRow) {
		if r.status == schemas.StatusGranted {
			n[r.campaign]++
		}
	})
	for _, b := range sortedKeys(n) {
		if err := fn(b, n[b]); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) GrantsPerUserOver(_ context.Context, i int, batch string, over int64, fn func(string, string, int64) error) error {
	n := map[[2]string]int64{}
	s.each(i, "coupon_grant", batch, func(r fakeRow) {
		if r.status == schemas.StatusGranted {
			n[[2]string{r.user, r.campaign}]++
		}
	})
	for k, c := range n {
		if c > over {
			if err := fn(k[0], k[1], c); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *fakeStore) ConfirmsPerCouponOver(_ context.Context, i int, batch string, fn func(string, int64) error) error {
	n := map[string]int64{}
	s.each(i, "coupon_op", batch, func(r fakeRow) {
		if r.op == schemas.OpConfirm && r.status == schemas.OpApplied {
			n[r.coup]++
		}
	})
	for c, k := range n {
		if k > 1 {
			if err := fn(c, k); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *fakeStore) ActivityIDs(_ context.Context, i int, table string, fn func(string) error) error {
	set := map[string]bool{}
	s.each(i, table, "", func(r fakeRow) { set[r.campaign] = true })
	for a := range set {
		if err := fn(a); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) AwardsPerTier(_ context.Context, i int, activity string, fn func(string, string, int64) error) error {
	n := map[[2]string]int64{}
	s.each(i, "lottery_award", activity, func(r fakeRow) { n[[2]string{r.campaign, r.tier}]++ })
	for k, c := range n {
		if err := fn(k[0], k[1], c); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) SortedUsers(_ context.Context, i int, q UserQuery) ([]UserRow, error) {
	s.pages++
	var out []UserRow
	s.each(i, q.Table, q.ActivityID, func(r fakeRow) {
		row := UserRow{Key: r.user, ResultID: r.id, Other: r.tier}
		if q.Table == "referral" {
			if r.status != schemas.ReferralBound {
				return
			}
			row.Other = r.other
		}
		if q.Table == "gift_match" {
			if r.status != schemas.MatchMatched {
				return
			}
			row.Other = r.other
			if q.Column == "receiver_id" {
				row.Key, row.Other = r.other, r.user
			}
		}
		if q.AfterID != "" && cmpUserRows(row, UserRow{Key: q.AfterKey, ResultID: q.AfterID}) <= 0 {
			return
		}
		out = append(out, row)
	})
	slices.SortFunc(out, cmpUserRows)
	return out[:min(len(out), q.Limit)], nil
}

func TestCompareStores(t *testing.T) {
	my, ch := newFakeStore(3), newFakeStore(1)
	both := []string{"00aa", "0b11", "7f00", "80ff", "ff99"}
	for i, id := range both {
		my.add(i%3, "coupon_grant", fakeRow{id: id, campaign: "B1"})
		ch.add(0, "coupon_grants", fakeRow{id: id, campaign: "B1"})
		ch.add(0, "coupon_grants", fakeRow{id: id, campaign: "B1"}) // not yet merged: FINAL collapses it
	}
	my.add(1, "coupon_grant", fakeRow{id: "3c00", campaign: "B2"})  // only in MySQL
	ch.add(0, "coupon_grants", fakeRow{id: "c300", campaign: "B1"}) // only in ClickHouse
	my.add(2, "coupon_grant", fakeRow{id: "00aa", campaign: "B1"})  // in two shard tables
	my.add(0, "lottery_entry", fakeRow{id: "1234", campaign: "A1"})
	ch.add(0, "lottery_entries", fakeRow{id: "1234", campaign: "A1"})

	c := newCheck(2, "stores")
	if err := compareStores(context.Background(), my, ch, newScope("", nil), newProgress(nil), c); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, c, map[string]int64{
		"coupon_grant.mysql": 6, "coupon_grant.clickhouse": 6, "coupon_grant.only_mysql": 1, "coupon_grant.only_clickhouse": 1,
		"coupon_grant.in_several_shards": 1, "lottery_entry.mysql": 1, "lottery_entry.clickhouse": 1, "lottery_entry.only_mysql": 0,
		"gift_match.mysql": 0,
	})
	if c.Status != StatusBreach || c.Breaches != 3 {
		t.Fatalf("status %s, %d breaches", c.Status, c.Breaches)
	}
	ex := strings.Join(c.Examples, "\n")
	for _, want := range []string{"coupon grants: only in MySQL: 3c00", "coupon grants: only in ClickHouse: c300", "coupon grants: 00aa is in 2 MySQL shard tables"} {
		if !strings.Contains(ex, want) {
			t.Errorf("examples lack %q:\n%s", want, ex)
		}
	}

	// Narrowed to batch B1 (known from the definitions): the MySQL-only row
	// of B2 is out, and the lottery tables are not read.
	defs := &definitions{batches: map[string]*schemas.BatchDefined{"B1": {BatchID: "B1"}}, activities: map[string]*schemas.ActivityDefined{}}
	c = newCheck(2, "stores")
	if err := compareStores(context.Background(), my, ch, newScope("B1", defs), newProgress(nil), c); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, c, map[string]int64{"coupon_grant.mysql": 5, "coupon_grant.only_mysql": 0, "coupon_grant.only_clickhouse": 1})
	if _, read := c.Counts["lottery_entry.mysql"]; read {
		t.Fatal("a batch campaign read the lottery tables")
	}
}

func TestCheckInvariants(t *testing.T) {
	my := newFakeStore(2)
	grant := func(shard int, user, batch string) {
		my.add(shard, "coupon_grant", fakeRow{campaign: batch, user: user, status: schemas.StatusGranted})
	}
	grant(0, "u1", "B1")
	grant(0, "u1", "B1") // over B1's limit of 1
	grant(1, "u2", "B1") // B1: 3 granted, stock 2
	grant(0, "u3", "B2")
	grant(0, "u3", "B2") // B2 allows 2 a user
	grant(1, "u4", "GHOST")
	my.add(1, "coupon_grant", fakeRow{campaign: "B1", user: "u5", status: schemas.StatusRejected})
	my.add(0, "coupon_op", fakeRow{campaign: "B1", coup: "c1", op: schemas.OpConfirm, status: schemas.OpApplied})
	my.add(0, "coupon_op", fakeRow{campaign: "B1", coup: "c1", op: schemas.OpConfirm, status: schemas.OpApplied})
	my.add(0, "coupon_op", fakeRow{campaign: "B1", coup: "c2", op: schemas.OpConfirm, status: schemas.OpApplied})
	my.add(0, "coupon_op", fakeRow{campaign: "B1", coup: "c2", op: schemas.OpConfirm, status: schemas.OpRejected})

	my.add(0, "lottery_award", fakeRow{id: "a1", campaign: "A1", user: "w1", tier: "gold"})
	my.add(1, "lottery_award", fakeRow{id: "a2", campaign: "A1", user: "w2", tier: "gold"}) // gold: 2, stock 1
	my.add(1, "lottery_award", fakeRow{id: "a3", campaign: "A1", user: "w1", tier: "silver"})
	my.add(0, "lottery_award", fakeRow{id: "a4", campaign: "A2", user: "w1", tier: "gold"}) // another activity: fine

	match := func(shard int, id, sender, receiver string) {
		my.add(shard, "gift_match", fakeRow{id: id, campaign: "G1", user: sender, other: receiver, status: schemas.MatchMatched})
	}
	match(0, "m1", "s1", "r1")
	match(0, "m2", "s1", "r2")                                                                            // s1 sent twice
	match(1, "m3", "s2", "r1")                                                                            // r1 received twice, across shards
	match(1, "m4", "s3", "s3")                                                                            // to themselves
	match(0, "m5", "s4", "s5")                                                                            // fine
	my.add(1, "gift_match", fakeRow{id: "m6", campaign: "G1", user: "s5", status: schemas.MatchRejected}) // a rejected send counts for nothing

	defs := &definitions{
		batches: map[string]*schemas.BatchDefined{
			"B1": {BatchID: "B1", Revision: 2, TotalStock: 2, PerUserLimit: 1},
			"B2": {BatchID: "B2", Revision: 1, TotalStock: 10, PerUserLimit: 2},
		},
		activities: map[string]*schemas.ActivityDefined{
			"A1": {ActivityID: "A1", Revision: 1, Prizes: []schemas.PrizeTier{{TierID: "gold", Stock: 1}, {TierID: "silver", Stock: 5}}},
			"A2": {ActivityID: "A2", Revision: 1, Prizes: []schemas.PrizeTier{{TierID: "gold", Stock: 1}}},
		},
	}
	c := newCheck(3, "invariants")
	if err := checkInvariants(context.Background(), my, defs, newScope("", defs), newProgress(nil), c); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, c, map[string]int64{
		"coupon.granted": 6, "coupon.batches": 3, "coupon.batches_over_stock": 1, "coupon.batches_undefined": 1,
		"coupon.users_over_limit": 1, "coupon.used_more_than_once": 1,
		"lottery.awards": 4, "lottery.tiers_over_stock": 1, "lottery.tiers_undefined": 0, "lottery.users_with_several_awards": 1,
		"gift.activities": 1, "gift.matches": 5, "gift.senders_more_than_once": 1, "gift.receivers_more_than_once": 1, "gift.matched_to_self": 1,
	})
	if c.Status != StatusBreach || c.Breaches != 9 {
		t.Fatalf("status %s with %d breaches:\n%s", c.Status, c.Breaches, strings.Join(c.Examples, "\n"))
	}
	ex := strings.Join(c.Examples, "\n")
	for _, want := range []string{
		"batch B1: 3 granted, stock 2 (revision 2)", "batch GHOST: 1 granted, but coupon.admin defines no such batch",
		"user u1 holds 2 grants of batch B1, limit 1 (shard 0)", "coupon c1 confirmed (used) 2 times",
		"activity A1 tier gold: 2 awarded, stock 1", "activity A1: user w1 holds 2 awards",
	} {
		if !strings.Contains(ex, want) {
			t.Errorf("examples lack %q:\n%s", want, ex)
		}
	}
	// The gift examples come after the tenth: check the counts' sentence.
	if !strings.Contains(strings.Join(c.Summary, "\n"), "senders matched more than once 1, receivers more than once 1, matched to themselves 1") {
		t.Errorf("summary:\n%s", strings.Join(c.Summary, "\n"))
	}

	// Narrowed to the gift exchange, with small pages: the same answers for it.
	c = newCheck(3, "invariants")
	defs.activities["G1"] = &schemas.ActivityDefined{ActivityID: "G1", Kind: schemas.KindGiftExchange}
	if err := checkInvariants(context.Background(), my, defs, newScope("G1", defs), newProgress(nil), c); err != nil {
		t.Fatal(err)
	}
	wantCounts(t, c, map[string]int64{"gift.senders_more_than_once": 1, "gift.receivers_more_than_once": 1, "gift.matched_to_self": 1, "lottery.awards": 0})
	if _, read := c.Counts["coupon.granted"]; read {
		t.Fatal("an activity campaign read the coupon tables")
	}
	ex = strings.Join(c.Examples, "\n")
	for _, want := range []string{"gift exchange G1: s1 sent 2 gifts", "gift exchange G1: r1 received 2 gifts", "gift exchange G1: s3 was matched with themselves (result m4)"} {
		if !strings.Contains(ex, want) {
			t.Errorf("examples lack %q:\n%s", want, ex)
		}
	}

	// Without the definitions, only what needs none is checked.
	c = newCheck(3, "invariants")
	if err := checkInvariants(context.Background(), my, nil, newScope("", nil), newProgress(nil), c); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Counts["coupon.users_over_limit"]; ok || c.Counts["coupon.used_more_than_once"] != 1 || c.Counts["gift.matched_to_self"] != 1 {
		t.Fatalf("counts without definitions: %v", c.Counts)
	}
}

// TestRepeatedUsersPaged merges many users over shards with pages of one.
func TestRepeatedUsersPaged(t *testing.T) {
	my := newFakeStore(4)
	want := map[string]int{}
	for i := range 200 {
		user := string(rune('a'+i%26)) + string(rune('a'+i/26))
		my.add(i%4, "lottery_award", fakeRow{id: user + "-1", campaign: "A", user: user, tier: "t"})
		if i%7 == 0 {
			my.add((i+1)%4, "lottery_award", fakeRow{id: user + "-2", campaign: "A", user: user, tier: "t"})
			want[user] = 2
		}
	}
	got := map[string]int{}
	var rows int
	err := repeatedUsers(context.Background(), my, UserQuery{Table: "lottery_award", Column: "user_id", ActivityID: "A"},
		func(UserRow) { rows++ }, func(user string, n int) { got[user] = n })
	if err != nil {
		t.Fatal(err)
	}
	if rows != 200+len(want) || len(got) != len(want) {
		t.Fatalf("%d rows, %d repeated users, want %d and %d", rows, len(got), 200+len(want), len(want))
	}
	for u, n := range want {
		if got[u] != n {
			t.Fatalf("user %s: %d", u, got[u])
		}
	}
}

func TestReportWriters(t *testing.T) {
	rep := &Report{Campaign: "B1", CampaignKind: "batch"}
	ok := newCheck(1, "inputs")
	ok.summary("inputs 3: decided 3")
	bad := newCheck(2, "stores")
	bad.breach(1, "coupon grants: only in MySQL: \x1b[31mred\u202e")
	skipped := newCheck(3, "invariants")
	skipped.skip("skipped: MySQL is skipped")
	rep.Checks = []*Check{ok, bad, skipped}
	rep.finish()
	if rep.OK() || rep.Breached != 1 {
		t.Fatalf("breached %d", rep.Breached)
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, want := range []string{"1. inputs", "ok\n", "2. stores", "BREACH", "skipped: MySQL is skipped", `only in MySQL: \u001b[31mred\u202e`, "BREACH: 1 of 2 checks that ran"} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b\u202e") {
		t.Fatalf("text carries control characters:\n%q", out)
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Breached int `json:"breached"`
		Checks   []struct {
			ID       int              `json:"id"`
			Status   string           `json:"status"`
			Counts   map[string]int64 `json:"counts"`
			Examples []string         `json:"examples"`
		} `json:"checks"`
	}
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.Breached != 1 || len(back.Checks) != 3 || back.Checks[1].Status != "BREACH" || back.Checks[2].Status != "skipped" || back.Checks[0].Examples == nil {
		t.Fatalf("json: %s", js.String())
	}
}

// TestKindsMatchTheProcessors pins the result kinds verify recomputes to
// the coupon processor's (the lottery's are unexported; the integration
// test of `promoflow verify` covers them end to end).
func TestKindsMatchTheProcessors(t *testing.T) {
	if KindGrant != coupon.ResultKind || KindOp != coupon.KindOp {
		t.Fatalf("verify's kinds %q %q, the coupon processor's %q %q", KindGrant, KindOp, coupon.ResultKind, coupon.KindOp)
	}
}
