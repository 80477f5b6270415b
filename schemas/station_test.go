package schemas

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const validBroadcast = `{"event_id":"station-m1","type":"station.message.published","version":1,"app_id":"ops","occurred_at":"2026-11-22T11:59:00Z","key":"all","payload":{"message_id":"m1","audience":"all","title":"Double 11","body":"Coupons for everyone","link":"https://shop.example/d11","published_at":"2026-11-22T11:59:00Z","expires_at":"2026-11-30T00:00:00Z"}}`

const validDirect = `{"event_id":"station-m2","type":"station.message.published","version":1,"app_id":"ops","occurred_at":"2026-11-22T11:59:00Z","key":"u1","payload":{"message_id":"m2","audience":"user","user_id":"u1","title":"Your order shipped","body":"","published_at":"2026-11-22T11:59:00Z"}}`

const validWithdrawal = `{"event_id":"withdraw-m1","type":"station.message.withdrawn","version":1,"app_id":"ops","occurred_at":"2026-11-22T11:59:00Z","key":"all","payload":{"message_id":"m1","audience":"all","withdrawn_at":"2026-11-22T11:59:00Z"}}`

func mutateStation(t testing.TB, in string, f func(m, p map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal([]byte(in), &m); err != nil {
		t.Fatal(err)
	}
	f(m, m["payload"].(map[string]any))
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeStationMessages(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want Reason
	}{
		{"broadcast", []byte(validBroadcast), ""},
		{"direct", []byte(validDirect), ""},
		{"withdrawal of a broadcast", []byte(validWithdrawal), ""},
		{"withdrawal of a direct message", mutateStation(t, validWithdrawal, func(m, p map[string]any) {
			p["audience"], p["user_id"], m["key"] = "user", "u1", "u1"
		}), ""},
		{"direct message to a user named all", mutateStation(t, validDirect, func(m, p map[string]any) { p["user_id"], m["key"] = "all", "all" }), ""},
		{"in-app path link", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["link"] = "/coupons/D11?from=inbox" }), ""},
		{"broadcast keyed by a user", mutateStation(t, validBroadcast, func(m, _ map[string]any) { m["key"] = "u1" }), ReasonKeyMismatch},
		{"broadcast with a user", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["user_id"] = "u1" }), ReasonInvalidPayload},
		{"direct without a user", mutateStation(t, validDirect, func(m, p map[string]any) { delete(p, "user_id"); m["key"] = "all" }), ReasonInvalidPayload},
		{"direct keyed by another user", mutateStation(t, validDirect, func(m, _ map[string]any) { m["key"] = "u2" }), ReasonKeyMismatch},
		{"direct keyed all", mutateStation(t, validDirect, func(m, _ map[string]any) { m["key"] = "all" }), ReasonKeyMismatch},
		{"withdrawal keyed wrong", mutateStation(t, validWithdrawal, func(m, _ map[string]any) { m["key"] = "u1" }), ReasonKeyMismatch},
		{"unknown audience", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["audience"] = "everyone" }), ReasonInvalidPayload},
		{"missing audience", mutateStation(t, validBroadcast, func(_, p map[string]any) { delete(p, "audience") }), ReasonInvalidPayload},
		{"empty title", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["title"] = "" }), ReasonInvalidPayload},
		{"title too long", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["title"] = strings.Repeat("字", 201) }), ReasonInvalidPayload},
		{"title 200 runes", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["title"] = strings.Repeat("字", 200) }), ""},
		{"body too long", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["body"] = strings.Repeat("a", 4001) }), ReasonInvalidPayload},
		{"javascript link", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["link"] = "javascript:alert(1)" }), ReasonInvalidPayload},
		{"javascript link with slashes", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["link"] = "javascript://%0aalert(1)" }), ReasonInvalidPayload},
		{"protocol-relative link", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["link"] = "//evil.example" }), ReasonInvalidPayload},
		{"backslash link", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["link"] = "/\\evil.example" }), ReasonInvalidPayload},
		{"link with a space", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["link"] = "https://a.example/x y" }), ReasonInvalidPayload},
		{"bad message id", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["message_id"] = "m 1" }), ReasonInvalidPayload},
		{"sql in message id", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["message_id"] = "m1');DROP TABLE station_message;--" }), ReasonInvalidPayload},
		{"published_at not a time", mutateStation(t, validBroadcast, func(_, p map[string]any) { p["published_at"] = "now" }), ReasonInvalidPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, decode := range map[string]func([]byte) (*Envelope, error){
				"compiled": testDecoder().Decode, "reference": testDecoder().decodeReference,
			} {
				_, err := decode(c.in)
				if got := ReasonOf(err); got != c.want {
					t.Fatalf("%s: reason %q (%v), want %q", name, got, err, c.want)
				}
			}
		})
	}
}

func TestStationRoundTrip(t *testing.T) {
	at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
	for _, p := range []Payload{
		StationMessagePublished{MessageID: "m1", Audience: AudienceAll, Title: "t", Body: "b", PublishedAt: at},
		StationMessagePublished{MessageID: "m2", Audience: AudienceUser, UserID: "u1", Title: "t", Body: "b", Link: "/x", PublishedAt: at, ExpiresAt: at.Add(time.Hour)},
		StationMessageWithdrawn{MessageID: "m1", Audience: AudienceAll, WithdrawnAt: at},
		StationMessageWithdrawn{MessageID: "m2", Audience: AudienceUser, UserID: "u1", WithdrawnAt: at},
	} {
		env, err := New("e-"+p.PartitionKey(), "ops", at, p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Validate(env)
		if err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		switch p := p.(type) {
		case StationMessagePublished:
			var m StationMessagePublished
			if err := got.DecodePayload(&m); err != nil || m != p {
				t.Fatalf("decoded %+v (%v), want %+v", m, err, p)
			}
		case StationMessageWithdrawn:
			var w StationMessageWithdrawn
			if err := got.DecodePayload(&w); err != nil || w != p {
				t.Fatalf("decoded %+v (%v), want %+v", w, err, p)
			}
		}
	}
	if k := (StationMessagePublished{Audience: AudienceAll, UserID: "u"}).PartitionKey(); k != StationKeyAll {
		t.Fatalf("broadcast key %q", k)
	}
}
