package producers_test

import (
	"errors"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

func TestLotteryHelpersRouteAndKey(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)

	now := time.Now().UTC().Truncate(time.Second)
	def := schemas.ActivityDefined{
		ActivityID: "xmas", Name: "Christmas gifts", Revision: 1, Kind: schemas.KindGiftExchange,
		JoinFrom: now, JoinUntil: now.Add(24 * time.Hour), PerUserLimit: 1, Status: schemas.BatchActive,
		Prizes: []schemas.PrizeTier{},
	}
	steps := []struct {
		eventID string
		publish func() error
		topic   string
		typ     string
		payload any
		want    any
	}{
		{"def-1", func() error { return p.DefineActivity(ctx, "def-1", def) }, "lottery.admin", schemas.TypeLotteryActivityDefined,
			&schemas.ActivityDefined{}, &def},
		{"join-1", func() error { return p.Join(ctx, "join-1", "xmas", "u1") }, "lottery.requests", schemas.TypeLotteryParticipationRequested,
			&schemas.ParticipationRequested{}, &schemas.ParticipationRequested{ActivityID: "xmas", UserID: "u1"}},
		{"draw-1", func() error { return p.RequestDraw(ctx, "draw-1", "xmas", "ops@example.com") }, "lottery.requests", schemas.TypeLotteryDrawRequested,
			&schemas.DrawRequested{}, &schemas.DrawRequested{ActivityID: "xmas", RequestedBy: "ops@example.com"}},
		{"send-1", func() error { return p.SendGift(ctx, "send-1", "xmas", "u1") }, "lottery.requests", schemas.TypeGiftSendRequested,
			&schemas.SendRequested{}, &schemas.SendRequested{ActivityID: "xmas", UserID: "u1"}},
		{"member-1", func() error {
			return p.UpdateGiftMember(ctx, "member-1", schemas.MemberUpdated{ActivityID: "xmas", UserID: "u2", Action: schemas.MemberUpdate, Name: "Bo", Note: "n"})
		}, "lottery.requests", schemas.TypeGiftMemberUpdated,
			&schemas.MemberUpdated{}, &schemas.MemberUpdated{ActivityID: "xmas", UserID: "u2", Action: schemas.MemberUpdate, Name: "Bo", Note: "n"}},
	}
	for _, s := range steps {
		if err := s.publish(); err != nil {
			t.Fatalf("publishing %s: %v", s.eventID, err)
		}
	}
	recs := consumeAll(t, addrs, "lottery.admin", "lottery.requests")
	if len(recs) != len(steps) {
		t.Fatalf("got %d records, want %d", len(recs), len(steps))
	}
	byID := map[string]int{}
	for i, s := range steps {
		byID[s.eventID] = i
	}
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		i, ok := byID[env.EventID]
		if !ok {
			t.Fatalf("unexpected event %s", env.EventID)
		}
		s := steps[i]
		if r.Topic != s.topic || string(r.Key) != "xmas" || env.Type != s.typ || env.AppID != testApp {
			t.Errorf("%s: topic %s key %q type %s app %s, want %s xmas %s %s", s.eventID, r.Topic, r.Key, env.Type, env.AppID, s.topic, s.typ, testApp)
		}
		if err := env.DecodePayload(s.payload); err != nil {
			t.Fatal(err)
		}
		switch got := s.payload.(type) {
		case *schemas.ActivityDefined:
			w := s.want.(*schemas.ActivityDefined)
			if got.ActivityID != w.ActivityID || got.Kind != w.Kind || !got.JoinUntil.Equal(w.JoinUntil) || got.Revision != w.Revision {
				t.Errorf("%s: payload %+v, want %+v", s.eventID, got, w)
			}
		default:
			if !equalJSON(t, s.payload, s.want) {
				t.Errorf("%s: payload %+v, want %+v", s.eventID, s.payload, s.want)
			}
		}
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ea, err := schemas.New("x", testApp, time.Now(), derefPayload(a))
	if err != nil {
		t.Fatal(err)
	}
	eb, err := schemas.New("x", testApp, time.Now(), derefPayload(b))
	if err != nil {
		t.Fatal(err)
	}
	return string(ea.Payload) == string(eb.Payload)
}

func derefPayload(v any) schemas.Payload {
	switch p := v.(type) {
	case *schemas.ParticipationRequested:
		return *p
	case *schemas.DrawRequested:
		return *p
	case *schemas.SendRequested:
		return *p
	case *schemas.MemberUpdated:
		return *p
	}
	panic("unexpected payload")
}

func TestLotteryHelpersRefuseInvalidEvents(t *testing.T) {
	addrs := kafka(t)
	p := newProducer(t, addrs)
	ctx := testenv.Context(t, 10*time.Second)
	for name, publish := range map[string]func() error{
		"define without kind": func() error {
			return p.DefineActivity(ctx, "d-1", schemas.ActivityDefined{ActivityID: "xmas", Revision: 1})
		},
		"join with bad user":   func() error { return p.Join(ctx, "j-1", "xmas", "user 1") },
		"draw of bad activity": func() error { return p.RequestDraw(ctx, "r-1", "x mas", "ops") },
		"send without user":    func() error { return p.SendGift(ctx, "s-1", "xmas", "") },
		"member unknown action": func() error {
			return p.UpdateGiftMember(ctx, "m-1", schemas.MemberUpdated{ActivityID: "xmas", UserID: "u1", Action: "rename"})
		},
		"member name too long": func() error {
			return p.UpdateGiftMember(ctx, "m-2", schemas.MemberUpdated{ActivityID: "xmas", UserID: "u1", Action: schemas.MemberUpdate, Name: string(make([]byte, 201))})
		},
		"bad event id": func() error { return p.SendGift(ctx, "", "xmas", "u1") },
	} {
		t.Run(name, func(t *testing.T) {
			if err := publish(); !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("got %v, want an *schemas.InvalidError", err)
			}
		})
	}
	if recs := consumeAll(t, addrs, allTopics(t)...); len(recs) != 0 {
		t.Fatalf("%d records produced, want none", len(recs))
	}
}
