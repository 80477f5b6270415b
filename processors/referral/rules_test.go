package referral

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"reflect"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/schemas"
)

var t0 = time.Date(2030, 3, 1, 12, 0, 0, 0, time.UTC)

func activity(id string, qualify string, rewards ...schemas.ReferralReward) *schemas.ReferralActivityDefined {
	return &schemas.ReferralActivityDefined{
		ActivityID: id, Revision: 1, Status: schemas.BatchActive,
		StartsAt: t0.Add(-24 * time.Hour), EndsAt: t0.Add(24 * time.Hour),
		QualifyingAction: qualify, LinkTTLSeconds: 7 * 86400, Rewards: rewards,
	}
}

func TestPrecheckBind(t *testing.T) {
	def := activity("act", schemas.QualifyNone)
	disabled := *def
	disabled.Status = schemas.BatchDisabled
	link := sharelink.Link{ActivityID: "act", Inviter: "alice", ExpiresAt: t0.Add(time.Hour), KeyID: "k1"}
	other := link
	other.ActivityID = "other"
	end := t0.Add(30 * 24 * time.Hour)
	for _, c := range []struct {
		name     string
		def      *schemas.ReferralActivityDefined
		link     sharelink.Link
		tokenErr error
		invitee  string
		at, now  time.Time
		want     string
	}{
		{"valid", def, link, nil, "bob", t0, t0, ""},
		{"unknown activity", nil, link, nil, "bob", t0, t0, schemas.RejectUnknownActivity},
		{"unknown activity beats a bad token", nil, sharelink.Link{}, sharelink.ErrBadSignature, "bob", t0, t0, schemas.RejectUnknownActivity},
		{"disabled", &disabled, link, nil, "bob", t0, t0, schemas.RejectActivityDisabled},
		{"before the window", def, link, nil, "bob", def.StartsAt.Add(-time.Millisecond), t0, schemas.RejectNotStarted},
		{"at the start", def, link, nil, "bob", def.StartsAt, t0, ""},
		{"at the end", def, link, nil, "bob", def.EndsAt, t0, schemas.RejectEnded},
		{"decided after the state's end", def, link, nil, "bob", t0, end, schemas.RejectEnded},
		{"forged", def, sharelink.Link{}, sharelink.ErrBadSignature, "bob", t0, t0, schemas.RefuseBadToken},
		{"unknown key", def, sharelink.Link{}, sharelink.ErrUnknownKey, "bob", t0, t0, schemas.RefuseBadToken},
		{"malformed", def, sharelink.Link{}, sharelink.ErrMalformed, "bob", t0, t0, schemas.RefuseBadToken},
		{"token of another activity", def, other, nil, "bob", t0, t0, schemas.RefuseBadToken},
		{"expired when clicked", def, link, nil, "bob", link.ExpiresAt, t0, schemas.RefuseExpiredToken},
		{"clicked just before expiry, decided later", def, link, nil, "bob", link.ExpiresAt.Add(-time.Second), t0.Add(2 * time.Hour), ""},
		{"self-invite", def, link, nil, "alice", t0, t0, schemas.RefuseSelfInvite},
		{"expired self-invite is expired first", def, link, nil, "alice", link.ExpiresAt, t0, schemas.RefuseExpiredToken},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := PrecheckBind(c.def, c.link, c.tokenErr, c.invitee, c.at, c.now, end); got != c.want {
				t.Errorf("PrecheckBind = %q, want %q", got, c.want)
			}
		})
	}
}

func TestPrecheckQualify(t *testing.T) {
	held := activity("act", "order_confirmed")
	none := activity("act", schemas.QualifyNone)
	late := *held
	until := held.EndsAt.Add(7 * 24 * time.Hour)
	late.QualifyUntil = &until
	disabled := *held
	disabled.Status = schemas.BatchDisabled
	end := t0.Add(60 * 24 * time.Hour)
	for _, c := range []struct {
		name    string
		def     *schemas.ReferralActivityDefined
		action  string
		at, now time.Time
		want    string
	}{
		{"valid", held, "order_confirmed", t0, t0, ""},
		{"unknown activity", nil, "order_confirmed", t0, t0, schemas.RejectUnknownActivity},
		{"disabled", &disabled, "order_confirmed", t0, t0, schemas.RejectActivityDisabled},
		{"not required", none, "order_confirmed", t0, t0, schemas.RefuseNotRequired},
		{"wrong action", held, "registered", t0, t0, schemas.RefuseWrongAction},
		{"at ends_at without qualify_until", held, "order_confirmed", held.EndsAt, t0, schemas.RejectEnded},
		{"after ends_at within qualify_until", &late, "order_confirmed", held.EndsAt.Add(time.Hour), t0, ""},
		{"at qualify_until", &late, "order_confirmed", until, t0, schemas.RejectEnded},
		{"decided after the state's end", held, "order_confirmed", t0, end, schemas.RejectEnded},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := PrecheckQualify(c.def, c.action, c.at, c.now, end); got != c.want {
				t.Errorf("PrecheckQualify = %q, want %q", got, c.want)
			}
		})
	}
}

// op is one step of a relationship table test.
type op struct {
	qualify          bool
	invitee, inviter string
	want             Step
}

func bind(invitee, inviter string, want Step) op { return op{false, invitee, inviter, want} }
func qual(invitee string, want Step) op          { return op{true, invitee, "", want} }

func refused(reason, inviter string) Step { return Step{Reason: reason, Inviter: inviter} }
func bound(inviter string) Step           { return Step{Inviter: inviter} }
func counted(inviter string, n int64, rewards ...schemas.ReferralReward) Step {
	return Step{Inviter: inviter, Counted: true, Successful: n, Rewards: rewards}
}

func TestGraphRelationshipRules(t *testing.T) {
	r3 := schemas.ReferralReward{Threshold: 3, BatchID: "B3"}
	r1 := schemas.ReferralReward{Threshold: 1, BatchID: "B1"}
	for _, c := range []struct {
		name         string
		needsQualify bool
		rewards      []schemas.ReferralReward
		maxDepth     int
		ops          []op
	}{
		{"first inviter wins", false, nil, 0, []op{
			bind("v", "a", counted("a", 1)),
			bind("v", "b", refused(schemas.RefuseAlreadyBound, "a")),
			bind("v", "a", refused(schemas.RefuseAlreadyBound, "a")),
		}},
		{"self-invite is a cycle of one", false, nil, 0, []op{
			bind("a", "a", refused(schemas.RefuseCycle, "")),
			bind("a", "b", counted("b", 1)),
		}},
		{"two-cycle refused", false, nil, 0, []op{
			bind("b", "a", counted("a", 1)),
			bind("a", "b", refused(schemas.RefuseCycle, "")),
		}},
		{"three-cycle refused", false, nil, 0, []op{
			bind("b", "a", counted("a", 1)),
			bind("c", "b", counted("b", 1)),
			bind("a", "c", refused(schemas.RefuseCycle, "")),
			// The root may still be bound outside its own tree.
			bind("a", "z", counted("z", 1)),
		}},
		{"invitee with its own invitees can be bound", false, nil, 0, []op{
			bind("b", "a", counted("a", 1)),
			bind("a", "r", counted("r", 1)),
		}},
		{"chain at the depth bound", false, nil, 2, []op{
			bind("b", "a", counted("a", 1)),
			bind("c", "b", counted("b", 1)),
			bind("d", "c", counted("c", 1)), // the walk from c: c→b→a, two steps
			bind("e", "d", refused(schemas.RefuseChainTooDeep, "")),
			bind("a", "c", refused(schemas.RefuseCycle, "")),        // c→b→a: found within the bound
			bind("a", "d", refused(schemas.RefuseChainTooDeep, "")), // d→c→b→a: a cycle, but past the bound
		}},
		{"rewards once per threshold", false, []schemas.ReferralReward{r1, r3}, 0, []op{
			bind("v1", "a", counted("a", 1, r1)),
			bind("v2", "a", counted("a", 2)),
			bind("v2", "a", refused(schemas.RefuseAlreadyBound, "a")),
			bind("v3", "a", counted("a", 3, r3)),
			bind("v4", "a", counted("a", 4)),
			bind("w1", "b", counted("b", 1, r1)),
		}},
		{"held until qualified", true, []schemas.ReferralReward{r1, r3}, 0, []op{
			qual("v1", refused(schemas.RefuseNotBound, "")),
			bind("v1", "a", bound("a")),
			bind("v2", "a", bound("a")),
			bind("v3", "a", bound("a")),
			qual("v2", counted("a", 1, r1)),
			qual("v2", refused(schemas.RefuseAlreadyQualified, "a")),
			qual("v1", counted("a", 2)),
			bind("v1", "b", refused(schemas.RefuseAlreadyBound, "a")),
			qual("v3", counted("a", 3, r3)),
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			g := NewGraph()
			g.MaxDepth = c.maxDepth
			for i, o := range c.ops {
				var got Step
				if o.qualify {
					got = g.Qualify(o.invitee, c.rewards)
				} else {
					got = g.Bind(o.invitee, o.inviter, c.needsQualify, c.rewards)
				}
				if !reflect.DeepEqual(got, o.want) {
					t.Fatalf("op %d (%+v): got %+v, want %+v", i, o, got, o.want)
				}
			}
		})
	}
}

func TestGraphThresholdsLoweredByARevision(t *testing.T) {
	g := NewGraph()
	r5 := schemas.ReferralReward{Threshold: 5, BatchID: "B5"}
	for i := range 4 {
		g.Bind(fmt.Sprint("v", i), "a", false, []schemas.ReferralReward{r5})
	}
	// A revision lowers the threshold below the count: the next invitee
	// grants it, once, and the old threshold is a different reward.
	r3 := schemas.ReferralReward{Threshold: 3, BatchID: "B3"}
	s := g.Bind("v4", "a", false, []schemas.ReferralReward{r3, r5})
	if want := []schemas.ReferralReward{r3, r5}; !reflect.DeepEqual(s.Rewards, want) {
		t.Fatalf("rewards %+v, want %+v", s.Rewards, want)
	}
	if s := g.Bind("v5", "a", false, []schemas.ReferralReward{r3, r5}); len(s.Rewards) != 0 {
		t.Fatalf("rewards granted again: %+v", s.Rewards)
	}
}

func TestCheckActivity(t *testing.T) {
	base := activity("act", schemas.QualifyNone, schemas.ReferralReward{Threshold: 1, BatchID: "B"}, schemas.ReferralReward{Threshold: 5, BatchID: "B"})
	before := base.EndsAt.Add(-time.Second)
	for _, c := range []struct {
		name   string
		change func(d *schemas.ReferralActivityDefined)
		ok     bool
	}{
		{"valid", func(*schemas.ReferralActivityDefined) {}, true},
		{"no rewards", func(d *schemas.ReferralActivityDefined) { d.Rewards = nil }, true},
		{"empty window", func(d *schemas.ReferralActivityDefined) { d.EndsAt = d.StartsAt }, false},
		{"qualify_until before ends_at", func(d *schemas.ReferralActivityDefined) { d.QualifyUntil = &before }, false},
		{"qualify_until at ends_at", func(d *schemas.ReferralActivityDefined) { e := d.EndsAt; d.QualifyUntil = &e }, true},
		{"repeated threshold", func(d *schemas.ReferralActivityDefined) { d.Rewards[1].Threshold = 1 }, false},
		{"descending thresholds", func(d *schemas.ReferralActivityDefined) { d.Rewards[0].Threshold = 9 }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := *base
			d.Rewards = append([]schemas.ReferralReward(nil), base.Rewards...)
			c.change(&d)
			err := CheckActivity(&d)
			if (err == nil) != c.ok {
				t.Fatalf("CheckActivity = %v, want ok %v", err, c.ok)
			}
			if err != nil && !errors.Is(err, schemas.ErrInvalid) {
				t.Errorf("error %v does not wrap schemas.ErrInvalid", err)
			}
		})
	}
}

func TestActivitiesKeepTheHighestRevision(t *testing.T) {
	a := NewActivities()
	d1 := activity("act", schemas.QualifyNone)
	d2 := *d1
	d2.Revision, d2.Name = 2, "second"
	if !a.Put(&d2) || a.Put(d1) || a.Put(&d2) {
		t.Fatal("Put stored an older or equal revision")
	}
	if a.Get("act").Name != "second" || a.Len() != 1 {
		t.Fatalf("cache holds %+v", a.Get("act"))
	}
	env, err := schemas.New("e1", "admin", t0, schemas.ReferralActivityDefined{ActivityID: "bad", Revision: 1, Status: "active",
		StartsAt: t0, EndsAt: t0, QualifyingAction: "none", LinkTTLSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Apply(env); !errors.Is(err, schemas.ErrInvalid) || a.Get("bad") != nil {
		t.Fatalf("an invalid definition was applied: %v", err)
	}
}

// TestTokenPatternMatchesSharelink keeps the schemas' token pattern and
// the token package's lengths in step.
func TestTokenPatternMatchesSharelink(t *testing.T) {
	want := fmt.Sprintf("^[A-Za-z0-9_-]{%d,%d}$", sharelink.MinTokenLen, sharelink.MaxTokenLen)
	for _, name := range []string{"referral.click.recorded.v1.schema.json", "referral.registered.v1.schema.json"} {
		b, err := fs.ReadFile(schemas.FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		var s struct {
			Properties struct {
				Token struct {
					Pattern string `json:"pattern"`
				} `json:"token"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if s.Properties.Token.Pattern != want {
			t.Errorf("%s: token pattern %q, want %q", name, s.Properties.Token.Pattern, want)
		}
	}
}
