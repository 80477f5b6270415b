package verify

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// refHead is readHead done with encoding/json: the reference it must match.
func refHead(b []byte) (eventHead, bool) {
	var top map[string]json.RawMessage
	if !json.Valid(b) || json.Unmarshal(b, &top) != nil || top == nil {
		return eventHead{}, false
	}
	str := func(m map[string]json.RawMessage, k string) string {
		var s string
		if raw, ok := m[k]; ok && json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	h := eventHead{eventID: str(top, "event_id"), typ: str(top, "type"), appID: str(top, "app_id")}
	var p map[string]json.RawMessage
	if raw, ok := top["payload"]; ok && json.Unmarshal(raw, &p) == nil {
		h.resultID, h.batchID, h.activityID, h.op = str(p, "result_id"), str(p, "batch_id"), str(p, "activity_id"), str(p, "op")
	}
	return h, true
}

func headCorpus(t testing.TB) [][]byte {
	at := time.Date(2026, 11, 11, 9, 0, 0, 123456789, time.UTC)
	var out [][]byte
	for _, p := range []schemas.Payload{
		schemas.ClaimRequested{BatchID: "D11-PHONE-50", UserID: "u1", Channel: "app"},
		schemas.ParticipationRequested{ActivityID: "xmas", UserID: "u\"2\\"},
		schemas.StateChanged{ResultID: "abc", CouponID: "c", UserID: "u", BatchID: "B", Op: schemas.OpConfirm, Status: schemas.OpApplied},
		schemas.GrantDecided{ResultID: "r", BatchID: "B<&>\u2028", UserID: "ü"},
	} {
		env, err := schemas.New("ev-1", "app\t1", at, p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := env.Encode()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return append(out,
		[]byte(`{"event_id":"a","event_id":"b","payload":{"batch_id":1},"payload":{"batch_id":"x"}}`),
		[]byte(`{"event_id":"a","payload":[1,2,{"batch_id":"no"}],"type":null}`),
		[]byte(` { "event_id" : "\u0041\n" , "app_id":"x", "payload":{"op":"lock","nested":{"a":[true,false,null,-0.5e+3]}}} `),
		[]byte(`{"\u0065vent_id":"escaped key","app_id":"\ud83d\ude00"}`),
		[]byte("{\"event_id\":\"\xff\xfe\",\"app_id\":\"a\"}"),
		[]byte(`{}`), []byte(`[]`), []byte(`"x"`), []byte(`{"a":01}`), []byte(`{"a":1.}`), []byte(`{"a":-}`), []byte(`{"a":1e}`),
		[]byte(`{"a":"\x"}`), []byte("{\"a\":\"\x01\"}"), []byte(`{"a":1,}`), []byte(`{"a":1}{}`), []byte(`{"a" 1}`), []byte(`{"a":tru}`),
		[]byte(`{"a":"\u12"}`), []byte(``),
	)
}

func TestReadHeadMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	check := func(b []byte) {
		t.Helper()
		got, ok := readHead(b)
		want, wantOK := refHead(b)
		if ok != wantOK || got != want {
			t.Fatalf("readHead(%q) = %+v %v, encoding/json says %+v %v", b, got, ok, want, wantOK)
		}
	}
	specials := []byte(`{}[]",:\ 0123456789.eE+-tfnul` + "\x00\x1f\xff\t")
	for _, doc := range headCorpus(t) {
		check(doc)
		for range 2000 {
			b := bytes.Clone(doc)
			switch rng.IntN(4) {
			case 0:
				if len(b) > 0 {
					b[rng.IntN(len(b))] = specials[rng.IntN(len(specials))]
				}
			case 1:
				b = b[:rng.IntN(len(b)+1)]
			case 2:
				i := rng.IntN(len(b) + 1)
				b = append(b[:i], append([]byte{specials[rng.IntN(len(specials))]}, b[i:]...)...)
			case 3:
				if len(b) > 1 {
					i := rng.IntN(len(b))
					b = append(b[:i], b[i+1:]...)
				}
			}
			check(b)
		}
	}
	deep := bytes.Repeat([]byte("["), maxDepth+10)
	if _, ok := readHead(append(append([]byte(`{"a":`), deep...), bytes.Repeat([]byte("]"), maxDepth+10)...)); ok {
		t.Fatal("readHead followed nesting beyond maxDepth")
	}
}

func FuzzReadHead(f *testing.F) {
	for _, doc := range headCorpus(f) {
		f.Add(doc)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > maxDepth/2 {
			return // encoding/json follows deeper nesting
		}
		got, ok := readHead(b)
		want, wantOK := refHead(b)
		if ok != wantOK || got != want {
			t.Fatalf("readHead(%q) = %+v %v, encoding/json says %+v %v", b, got, ok, want, wantOK)
		}
	})
}
