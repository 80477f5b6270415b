package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var fixedNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func testDecoder() *Decoder { return &Decoder{Now: func() time.Time { return fixedNow }} }

const validClaim = `{"event_id":"evt-1","type":"coupon.claim.requested","version":1,"app_id":"shop","occurred_at":"2026-11-22T11:59:00Z","key":"u1","payload":{"batch_id":"B1","user_id":"u1","channel":"live"}}`

func mutate(t testing.TB, f func(m map[string]any)) []byte {
	var m map[string]any
	if err := json.Unmarshal([]byte(validClaim), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func payload(m map[string]any) map[string]any { return m["payload"].(map[string]any) }

func TestDecodeCases(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		want Reason // "" = valid
	}{
		{"valid", []byte(validClaim), ""},
		{"valid without optional channel", mutate(t, func(m map[string]any) { delete(payload(m), "channel") }), ""},
		{"valid with escapes", mutate(t, func(m map[string]any) { payload(m)["channel"] = "live \"room\" \u00e9\n" }), ""},
		{"empty", []byte(""), ReasonMalformed},
		{"truncated", []byte(validClaim[:40]), ReasonMalformed},
		{"not an object", []byte(`[1,2]`), ReasonInvalidEnvelope},
		{"null", []byte(`null`), ReasonInvalidEnvelope},
		{"invalid utf-8", append([]byte(validClaim[:len(validClaim)-3]), 0xff, '}', '}'), ReasonInvalidUTF8},
		{"too large", bytes.Repeat([]byte(" "), DefaultMaxBytes+1), ReasonTooLarge},
		{"missing event_id", mutate(t, func(m map[string]any) { delete(m, "event_id") }), ReasonInvalidEnvelope},
		{"event_id with space", mutate(t, func(m map[string]any) { m["event_id"] = "a b" }), ReasonInvalidEnvelope},
		{"event_id too long", mutate(t, func(m map[string]any) { m["event_id"] = strings.Repeat("a", 129) }), ReasonInvalidEnvelope},
		{"event_id max length", mutate(t, func(m map[string]any) { m["event_id"] = strings.Repeat("a", 128) }), ""},
		{"version as string", mutate(t, func(m map[string]any) { m["version"] = "1" }), ReasonInvalidEnvelope},
		{"version 0", mutate(t, func(m map[string]any) { m["version"] = 0 }), ReasonInvalidEnvelope},
		{"version fractional", mutate(t, func(m map[string]any) { m["version"] = 1.5 }), ReasonInvalidEnvelope},
		{"unknown version", mutate(t, func(m map[string]any) { m["version"] = 2 }), ReasonUnknownType},
		{"unknown type", mutate(t, func(m map[string]any) { m["type"] = "coupon.claim.teleported" }), ReasonUnknownType},
		{"extra envelope field", mutate(t, func(m map[string]any) { m["extra"] = 1 }), ReasonInvalidEnvelope},
		{"bad app id", mutate(t, func(m map[string]any) { m["app_id"] = "Shop!" }), ReasonInvalidEnvelope},
		{"occurred_at not a time", mutate(t, func(m map[string]any) { m["occurred_at"] = "yesterday" }), ReasonInvalidEnvelope},
		{"occurred_at without zone", mutate(t, func(m map[string]any) { m["occurred_at"] = "2026-11-22T11:59:00" }), ReasonInvalidEnvelope},
		{"occurred_at far future", mutate(t, func(m map[string]any) { m["occurred_at"] = "2026-11-22T12:06:00Z" }), ReasonFutureEvent},
		{"occurred_at within skew", mutate(t, func(m map[string]any) { m["occurred_at"] = "2026-11-22T12:04:00Z" }), ""},
		{"payload not object", mutate(t, func(m map[string]any) { m["payload"] = "x" }), ReasonInvalidEnvelope},
		{"payload missing user", mutate(t, func(m map[string]any) { delete(payload(m), "user_id") }), ReasonInvalidPayload},
		{"payload extra field", mutate(t, func(m map[string]any) { payload(m)["admin"] = true }), ReasonInvalidPayload},
		{"sql injection in user id", mutate(t, func(m map[string]any) {
			payload(m)["user_id"] = "u1'); DROP TABLE t; --"
			m["key"] = payload(m)["user_id"]
		}), ReasonInvalidPayload},
		{"csv injection in batch", mutate(t, func(m map[string]any) { payload(m)["batch_id"] = "=cmd|' /C calc'!A0" }), ReasonInvalidPayload},
		{"hash tag in user id", mutate(t, func(m map[string]any) { payload(m)["user_id"] = "u{1}"; m["key"] = "u{1}" }), ReasonInvalidPayload},
		{"channel too long", mutate(t, func(m map[string]any) { payload(m)["channel"] = strings.Repeat("é", 65) }), ReasonInvalidPayload},
		{"channel 64 runes", mutate(t, func(m map[string]any) { payload(m)["channel"] = strings.Repeat("é", 64) }), ""},
		{"key mismatch", mutate(t, func(m map[string]any) { m["key"] = "u2" }), ReasonKeyMismatch},
		{"escaped member name", []byte(strings.Replace(validClaim, `"payload"`, `"pay\u006coad"`, 1)), ""},
		{"payload given twice, last wins", []byte(strings.Replace(validClaim, `"channel":"live"}}`, `"channel":"live"},"payload":{"batch_id":"B2","user_id":"u1"}}`, 1)), ""},
		{"payload given twice, last not an object", []byte(strings.Replace(validClaim, `"channel":"live"}}`, `"channel":"live"},"payload":"x"}`, 1)), ReasonInvalidEnvelope},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for name, decode := range map[string]func([]byte) (*Envelope, error){
				"compiled": testDecoder().Decode, "reference": testDecoder().decodeReference,
			} {
				env, err := decode(c.in)
				if c.want == "" {
					if err != nil {
						t.Fatalf("%s: unexpected error %v", name, err)
					}
					if env.EventID == "" || env.Type != TypeCouponClaimRequested || env.Version != 1 {
						t.Fatalf("%s: decoded %+v", name, env)
					}
					continue
				}
				if got := ReasonOf(err); got != c.want {
					t.Fatalf("%s: reason %q (%v), want %q", name, got, err, c.want)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("%s: error %v does not match ErrInvalid", name, err)
				}
			}
		})
	}
}

func TestRoundTripTypedPayloads(t *testing.T) {
	at := time.Now().Add(-time.Minute).UTC() // Validate checks skew against the real clock
	for _, p := range []Payload{
		ClaimRequested{BatchID: "B1", UserID: "u@x", Channel: "live"},
		BatchDefined{BatchID: "B1", Revision: 3, TotalStock: 10, PerUserLimit: 1, ValidFrom: at, ValidUntil: at.Add(time.Hour), Status: BatchActive},
		GrantDecided{ResultID: ResultID("coupon.grant", "shop", "e1"), ClaimEventID: "e1", BatchID: "B1", UserID: "u1", Status: StatusRejected, Reason: RejectOutOfStock, ClaimedAt: at, DecidedAt: at},
	} {
		env, err := New("e1", "shop", at, p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Validate(env)
		if err != nil {
			t.Fatalf("%s: %v", p.EventType(), err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Key != p.PartitionKey() || !got.OccurredAt.Equal(at) || got.AppID != "shop" {
			t.Fatalf("%s: round trip gave %+v", p.EventType(), got)
		}
	}
}

func TestResultIDStable(t *testing.T) {
	a := ResultID("coupon.grant", "shop", "e1")
	if a != ResultID("coupon.grant", "shop", "e1") || len(a) != 32 {
		t.Fatalf("ResultID not stable: %s", a)
	}
	// The separators keep ("ab","c") and ("a","bc") apart.
	if ResultID("k", "ab", "c") == ResultID("k", "a", "bc") || ResultID("k1", "a", "e") == ResultID("k2", "a", "e") {
		t.Fatal("ResultID collides across fields")
	}
}

// FuzzDecodeMatchesReference feeds arbitrary bytes to the compiled checks
// and to the general JSON Schema engine: they must accept and reject the
// same events, for the same reason, and decode accepted ones identically.
func FuzzDecodeMatchesReference(f *testing.F) {
	f.Add([]byte(validClaim))
	f.Add(mutate(f, func(m map[string]any) { m["version"] = 1.0 }))
	f.Add([]byte(`{"event_id":"e","type":"coupon.grant.decided","version":1,"app_id":"a","occurred_at":"2026-11-22T11:00:00.123+08:00","key":"u","payload":{"result_id":"0123456789abcdef0123456789abcdef","claim_event_id":"e","batch_id":"B","user_id":"u","status":"granted","reason":"","claimed_at":"2026-11-22T11:00:00Z","decided_at":"2026-11-22T11:00:00Z","grant_seq":3}}`))
	f.Add([]byte(`{"event_id":"e","type":"coupon.batch.defined","version":1,"app_id":"a","occurred_at":"2026-11-22T11:00:00Z","key":"B","payload":{"batch_id":"B","revision":1,"total_stock":5,"per_user_limit":1,"valid_from":"2026-11-22T11:00:00Z","valid_until":"2026-11-23T11:00:00Z","status":"active"}}`))
	f.Add([]byte(`{"event_id":"e","event_id":"f","type":"x.y","version":1e0}`))
	// Arrays of objects (prize tiers): valid, an item breaking its schema,
	// an item of the wrong type, and too many items.
	act := `{"event_id":"e","type":"lottery.activity.defined","version":1,"app_id":"a","occurred_at":"2026-11-22T11:00:00Z","key":"A","payload":{"activity_id":"A","revision":1,"kind":"draw","join_from":"2026-11-22T11:00:00Z","join_until":"2026-11-23T11:00:00Z","per_user_limit":1,"status":"active","prizes":[%s]}}`
	f.Add([]byte(fmt.Sprintf(act, `{"tier_id":"gold","kind":"goods","stock":1},{"tier_id":"c","kind":"coupon","batch_id":"B","stock":5}`)))
	f.Add([]byte(fmt.Sprintf(act, `{"tier_id":"gold","kind":"cash","stock":1}`)))
	f.Add([]byte(fmt.Sprintf(act, `{"tier_id":"gold","kind":"goods","stock":1}, 3`)))
	f.Add([]byte(fmt.Sprintf(act, strings.TrimSuffix(strings.Repeat(`{"tier_id":"g","kind":"goods","stock":1},`, 51), ","))))
	f.Add([]byte(fmt.Sprintf(act, ``)))
	f.Add([]byte("\"\\ud800\""))
	f.Add([]byte(strings.Replace(validClaim, `"payload"`, `"pay\u006coad"`, 1)))
	f.Add([]byte(strings.Replace(validClaim, `}}`, `},"payload":{"batch_id":"B2","user_id":"u1"}}`, 1)))
	f.Add([]byte(validBroadcast))
	f.Add([]byte(validDirect))
	f.Add([]byte(validWithdrawal))
	// Notification shards: an array of user ids, the shard id rule.
	shard := `{"event_id":"e","type":"notify.shard.planned","version":1,"app_id":"a","occurred_at":"2026-11-22T11:00:00Z","key":"%s","payload":{"shard_id":"%s","campaign_id":"c","seq":7,"crowd_id":"vip","template":"t","users":[%s],"planned_at":"2026-11-22T11:00:00Z"}}`
	f.Add([]byte(fmt.Sprintf(shard, "c/7", "c/7", `"u1","u2"`)))
	f.Add([]byte(fmt.Sprintf(shard, "c/07", "c/07", `"u1"`)))
	f.Add([]byte(fmt.Sprintf(shard, "d/7", "d/7", `"u1"`)))
	f.Add([]byte(fmt.Sprintf(shard, "c/7", "c/7", `"u 1", 3`)))
	f.Add([]byte(`{"event_id":"e","type":"notify.campaign.requested","version":1,"app_id":"a","occurred_at":"2026-11-22T11:00:00Z","key":"c","payload":{"campaign_id":"c","crowd_id":"vip","template":"t","shard_size":0,"requested_at":"2026-11-22T11:00:00Z"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := testDecoder()
		got, gerr := d.Decode(b)
		want, werr := d.decodeReference(b)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("compiled err=%v, reference err=%v for %q", gerr, werr, b)
		}
		if gerr != nil {
			if ReasonOf(gerr) != ReasonOf(werr) {
				t.Fatalf("compiled reason %q (%v), reference %q (%v) for %q", ReasonOf(gerr), gerr, ReasonOf(werr), werr, b)
			}
			return
		}
		if got.EventID != want.EventID || got.Type != want.Type || got.Version != want.Version || got.AppID != want.AppID ||
			!got.OccurredAt.Equal(want.OccurredAt) || got.Key != want.Key || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("decoded differently:\n compiled  %+v\n reference %+v", got, want)
		}
		// The typed payload: the fast path must fill what encoding/json fills.
		for _, mk := range []func() any{
			func() any { return &ClaimRequested{} }, func() any { return &BatchDefined{} }, func() any { return &GrantDecided{} },
			func() any { return &ActivityDefined{} }, func() any { return &EntryRecorded{} }, func() any { return &MemberUpdated{} },
			func() any { return &StationMessagePublished{} }, func() any { return &StationMessageWithdrawn{} },
		} {
			fast, slow := mk(), mk()
			ferr := got.DecodePayload(fast)
			serr := json.Unmarshal(got.Payload, slow)
			if (ferr == nil) != (serr == nil) {
				t.Fatalf("DecodePayload err=%v, json.Unmarshal err=%v for %s", ferr, serr, got.Payload)
			}
			fb, _ := json.Marshal(fast)
			sb, _ := json.Marshal(slow)
			if ferr == nil && !bytes.Equal(fb, sb) {
				t.Fatalf("DecodePayload gave %s, json.Unmarshal %s", fb, sb)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	in := []byte(validClaim)
	for _, c := range []struct {
		name string
		f    func([]byte) (*Envelope, error)
	}{{"compiled", testDecoder().Decode}, {"reference", testDecoder().decodeReference}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := c.f(in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

func TestEncodeMatchesJSONMarshal(t *testing.T) {
	strs := []string{"", "plain", "quote\"back\\slash", "ctl\x01\x1f\n\r\t", "<html>&amp;", "emoji 🎉 é", "bad\xffutf8", "\u2028\u2029"}
	for _, s := range strs {
		env := &Envelope{EventID: s, Type: "t.x", Version: 3, AppID: s, OccurredAt: time.Date(2026, 1, 2, 3, 4, 5, 600, time.FixedZone("", 8*3600)), Key: s, Payload: json.RawMessage(`{"a":[1,{"b":"c"}]}`)}
		got, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(env)
		if !bytes.Equal(got, want) {
			t.Errorf("Encode(%q)\n got %s\nwant %s", s, got, want)
		}
	}
	if _, err := (&Envelope{Payload: json.RawMessage(`{`)}).Encode(); err == nil {
		t.Fatal("invalid payload encoded")
	}
}

// FuzzScanDocument checks the single-pass scanner against encoding/json.
func FuzzScanDocument(f *testing.F) {
	for _, s := range []string{validClaim, `[]`, `{}`, `{"a":1e5,"b":[true,false,null,-0.5E-3]}`, `"\u00e9\n"`, `{"a":"\ud800"}`, `01`, `1.`, `{"a" 1}`, `[1,]`, "{\"a\":\"\x01\"}", `-`, `{"\u0061":2,"a":3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !utf8.Valid(b) {
			return
		}
		ms, valid, isObject := scanDocument(b)
		if valid != json.Valid(b) {
			t.Fatalf("scanDocument valid=%v, json.Valid=%v for %q", valid, json.Valid(b), b)
		}
		if !valid {
			return
		}
		var v any
		_ = json.Unmarshal(b, &v)
		obj, ok := v.(map[string]any)
		if ok != isObject {
			t.Fatalf("isObject=%v for %q", isObject, b)
		}
		if !ok {
			return
		}
		// Same members, the last value of a repeated name winning.
		names := map[string]bool{}
		for _, m := range ms {
			names[string(m.name)] = true
		}
		if len(names) != len(obj) {
			t.Fatalf("members %d names, encoding/json %d for %q", len(names), len(obj), b)
		}
		for name, want := range obj {
			raw, ok := ms.get(name)
			if !ok {
				t.Fatalf("member %q missing for %q", name, b)
			}
			var got any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("member %q value %q: %v", name, raw, err)
			}
			gb, _ := json.Marshal(got)
			wb, _ := json.Marshal(want)
			if !bytes.Equal(gb, wb) {
				t.Fatalf("member %q = %s, encoding/json %s", name, gb, wb)
			}
		}
	})
}

func TestAppendJSONMatchesMarshal(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 2, 3, 4000, time.FixedZone("", -5*3600))
	for _, g := range []GrantDecided{
		{ResultID: "r", ClaimEventID: "e", BatchID: "b<&>", UserID: "u\"\\\n", Status: StatusGranted, CouponID: "r", GrantSeq: 7, ClaimedAt: at, DecidedAt: at.UTC()},
		{ResultID: "r", ClaimEventID: "e", BatchID: "b", UserID: "é🎉", Status: StatusRejected, Reason: RejectOutOfStock, ClaimedAt: at, DecidedAt: at},
		{},
	} {
		want, _ := json.Marshal(g)
		if got := g.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("appendJSON\n got %s\nwant %s", got, want)
		}
	}
}
