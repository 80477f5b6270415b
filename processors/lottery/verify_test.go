package lottery

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/processors/lottery/fair"
	"github.com/promoflow/promoflow/schemas"
)

// drawFixture builds the stored data of an honest draw.
func drawFixture(t *testing.T) (*schemas.ActivityCommitted, *schemas.DrawCompleted, []string, []schemas.PrizeAwarded) {
	t.Helper()
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i * 7)
	}
	var users []string
	for i := range 50 {
		users = append(users, fmt.Sprintf("u%02d", 49-i))
	}
	join := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	c := &schemas.ActivityCommitted{ActivityID: "a1", SeedHash: fair.SeedHash(seed), JoinFrom: join, CommittedAt: join.Add(-time.Hour), Prizes: "gold:1,silver:4"}
	sorted := fair.Normalize(users)
	awards := fair.Draw(seed, "a1", sorted, []fair.Tier{{ID: "gold", Stock: 1}, {ID: "silver", Stock: 4}})
	d := &schemas.DrawCompleted{ActivityID: "a1", Seed: hex.EncodeToString(seed), SeedHash: c.SeedHash, Participants: 50,
		ParticipantsDigest: fair.Digest(sorted), Winners: int64(len(awards)), Prizes: c.Prizes}
	var stored []schemas.PrizeAwarded
	for _, a := range awards {
		stored = append(stored, schemas.PrizeAwarded{ActivityID: "a1", UserID: a.UserID, TierID: a.TierID, Rank: a.Rank, Source: "draw"})
	}
	return c, d, users, stored
}

func TestVerify(t *testing.T) {
	cases := []struct {
		name   string
		tamper func(c *schemas.ActivityCommitted, d *schemas.DrawCompleted, users *[]string, awards *[]schemas.PrizeAwarded)
		failed string // the failing check; "" = all pass
		warn   string
	}{
		{name: "honest draw"},
		{name: "instant wins are ignored", tamper: func(_ *schemas.ActivityCommitted, _ *schemas.DrawCompleted, _ *[]string, a *[]schemas.PrizeAwarded) {
			*a = append(*a, schemas.PrizeAwarded{ActivityID: "a1", UserID: "zz", Source: "instant"})
		}},
		{name: "seed swapped after the commitment", failed: "seed commitment", tamper: func(_ *schemas.ActivityCommitted, d *schemas.DrawCompleted, _ *[]string, _ *[]schemas.PrizeAwarded) {
			d.Seed = strings.Repeat("ab", 32)
		}},
		{name: "participant added after the draw", failed: "participants", tamper: func(_ *schemas.ActivityCommitted, _ *schemas.DrawCompleted, u *[]string, _ *[]schemas.PrizeAwarded) {
			*u = append(*u, "late")
		}},
		{name: "winner replaced", failed: "winners", tamper: func(_ *schemas.ActivityCommitted, _ *schemas.DrawCompleted, _ *[]string, a *[]schemas.PrizeAwarded) {
			(*a)[0].UserID = "friend-of-admin"
		}},
		{name: "tier upgraded", failed: "winners", tamper: func(_ *schemas.ActivityCommitted, _ *schemas.DrawCompleted, _ *[]string, a *[]schemas.PrizeAwarded) {
			(*a)[len(*a)-1].TierID = "gold"
		}},
		{name: "an extra winner", failed: "winners", tamper: func(_ *schemas.ActivityCommitted, _ *schemas.DrawCompleted, _ *[]string, a *[]schemas.PrizeAwarded) {
			*a = append(*a, schemas.PrizeAwarded{ActivityID: "a1", UserID: "u00x", TierID: "silver", Rank: 6, Source: "draw"})
		}},
		{name: "duplicates in participants are one ticket", tamper: func(_ *schemas.ActivityCommitted, _ *schemas.DrawCompleted, u *[]string, _ *[]schemas.PrizeAwarded) {
			*u = append(*u, (*u)[0], (*u)[1])
		}},
		{name: "commitment after joining opened", warn: "commitment before joining", tamper: func(c *schemas.ActivityCommitted, _ *schemas.DrawCompleted, _ *[]string, _ *[]schemas.PrizeAwarded) {
			c.CommittedAt = c.JoinFrom.Add(time.Minute)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, d, users, awards := drawFixture(t)
			if tc.tamper != nil {
				tc.tamper(c, d, &users, &awards)
			}
			v, err := Verify(c, d, users, awards)
			if err != nil {
				t.Fatal(err)
			}
			if v.OK() != (tc.failed == "") {
				t.Fatalf("OK() = %v, want failure in %q: %+v", v.OK(), tc.failed, v.Checks)
			}
			for _, ch := range v.Checks {
				switch {
				case ch.Name == tc.failed && ch.OK:
					t.Errorf("check %q passed: %s", ch.Name, ch.Detail)
				case ch.Name == tc.warn && (!ch.Warn || ch.OK):
					t.Errorf("check %q should warn: %+v", ch.Name, ch)
				case ch.Name == "winners" && tc.failed != "":
					// A wrong seed or participant list changes the winners too.
				case ch.Name != tc.failed && ch.Name != tc.warn && !ch.OK:
					t.Errorf("check %q failed: %s", ch.Name, ch.Detail)
				}
			}
		})
	}
}

func TestVerifyRejectsMalformedSeed(t *testing.T) {
	c, d, users, awards := drawFixture(t)
	d.Seed = "not hex"
	if _, err := Verify(c, d, users, awards); err == nil {
		t.Fatal("Verify accepted a malformed seed")
	}
}

func TestParsePrizes(t *testing.T) {
	got, err := ParsePrizes("gold:1,silver:20")
	if err != nil || len(got) != 2 || got[1] != (fair.Tier{ID: "silver", Stock: 20}) {
		t.Fatalf("ParsePrizes = %v, %v", got, err)
	}
	if FormatPrizes([]schemas.PrizeTier{{TierID: "gold", Stock: 1}, {TierID: "silver", Stock: 20}}) != "gold:1,silver:20" {
		t.Fatal("FormatPrizes does not round-trip")
	}
	for _, bad := range []string{"gold", "gold:-1", ":3", "gold:1,", "gold:x"} {
		if _, err := ParsePrizes(bad); err == nil {
			t.Errorf("ParsePrizes(%q) accepted", bad)
		}
	}
}
