package recommend

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// FuzzParseRules: any bytes either parse into sane rules or fail with a
// *RulesError; never a panic. Rules that parse weigh any event to a finite,
// non-negative weight, and parse again to the same revision.
func FuzzParseRules(f *testing.F) {
	f.Add(DefaultRulesYAML)
	f.Add([]byte(handlerRules))
	f.Add([]byte(scoringRules + "auto_grant: {enabled: true, round: r1, batches: [A, B]}\n"))
	f.Add([]byte("version: 1\nactions: {order: {weight: 1e308}}\nfilters:\n  - {match: {brands: [a]}, multiply: 1000}\n  - {match: {brands: [a]}, multiply: 1000}\n"))
	f.Add([]byte("version: 1\nactions: {browse: {weight: 1}}\nprofile: {price_bands: [0, 9223372036854775807]}\n"))
	f.Add([]byte("version: 1\nactions: &a {order: {weight: 1}}\nfilters: [*a]\n"))
	f.Add([]byte("version: 1\nactions: {order: {weight: .nan}}\n"))
	f.Add([]byte("- - - [\n"))
	now := time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC)
	events := []schemas.BehaviourRecorded{
		{UserID: "u", Action: "order", Category: "a", Brand: "a", Price: 1 << 40, Quantity: 10000},
		{UserID: "u", Action: "review", Category: "gift-card", Rating: 5},
		{UserID: "u", Action: "browse", Category: "x", Price: 1},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRules("fuzz.yaml", b)
		if err != nil {
			var re *RulesError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalidRules) || len(re.Problems) == 0 {
				t.Fatalf("error %T %v is not a RulesError with problems", err, err)
			}
			return
		}
		if !strings.HasPrefix(r.Revision, "r-") || r.TopN < 1 || r.TopN > maxTopN || r.HalfLife <= 0 || r.Window <= 0 ||
			len(r.Actions) == 0 || len(r.PriceBands) == 0 || r.PriceBands[0] != 0 || r.LowStock < 1 {
			t.Fatalf("accepted insane rules %+v", r)
		}
		for i := 1; i < len(r.PriceBands); i++ {
			if r.PriceBands[i] <= r.PriceBands[i-1] {
				t.Fatalf("bands %v do not increase", r.PriceBands)
			}
		}
		for i := range events {
			w, skip := r.Weigh("app", now, &events[i], now)
			if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 || (skip == "") != (w > 0) {
				t.Fatalf("Weigh(%+v) = %g, %q", events[i], w, skip)
			}
			if b := r.Band(events[i].Price); b < 0 || b >= len(r.PriceBands) {
				t.Fatalf("Band(%d) = %d of %d", events[i].Price, b, len(r.PriceBands))
			}
		}
		again, err := ParseRules("fuzz.yaml", b)
		if err != nil || again.Revision != r.Revision {
			t.Fatalf("parsing again: %v, revision %v", err, again)
		}
	})
}

// FuzzDecodeBehaviour: whatever bytes arrive on behaviour.events, a record
// the runtime's decoder accepts decodes into a behaviour event whose weight
// is finite and whose profile entries are well formed; anything else is
// refused with an InvalidError (the dead-letter path), never a panic.
func FuzzDecodeBehaviour(f *testing.F) {
	for _, s := range []string{
		`{"event_id":"b-1","type":"behaviour.event.recorded","version":1,"app_id":"shop","occurred_at":"2026-11-11T10:00:00Z","key":"u1","payload":{"user_id":"u1","action":"order","category":"phone","brand":"acme","model":"x1","sku":"s","price":129900,"quantity":2}}`,
		`{"event_id":"b-2","type":"behaviour.event.recorded","version":1,"app_id":"shop","occurred_at":"2026-11-11T10:00:00+08:00","key":"u1","payload":{"user_id":"u1","action":"review","category":"tv","rating":5}}`,
		`{"event_id":"b-3","type":"behaviour.event.recorded","version":1,"app_id":"shop","occurred_at":"2026-11-11T10:00:00Z","key":"u1","payload":{"user_id":"u1","action":"like","category":"tv"}}`,
		`{"event_id":"b-4","type":"behaviour.event.recorded","version":1,"app_id":"shop","occurred_at":"2026-11-11T10:00:00Z","key":"u2","payload":{"user_id":"u1","action":"browse","category":""}}`,
		`{"event_id":"b-5","type":"behaviour.event.recorded","version":1,"app_id":"shop","occurred_at":"2026-11-11T10:00:00Z","key":"u1","payload":{"user_id":"u1","action":"browse","category":"t\u0000v","price":-1}}`,
		`{"event_id":"b-6","type":"coupon.claim.requested","version":1,"app_id":"shop","occurred_at":"2026-11-11T10:00:00Z","key":"u1","payload":{"batch_id":"B","user_id":"u1"}}`,
		`not json`,
	} {
		f.Add([]byte(s))
	}
	rules := DefaultRules()
	dec := schemas.Decoder{MaxSkew: -1}
	now := time.Date(2026, 11, 11, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := dec.Decode(b)
		if err != nil {
			if schemas.ReasonOf(err) == "" {
				t.Fatalf("refused without a reason: %v", err)
			}
			return
		}
		be, err := DecodeEvent(env)
		if env.Type != schemas.TypeBehaviourEventRecorded {
			if err == nil || !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("a %s decoded as a behaviour event: %v", env.Type, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("a schema-valid behaviour event does not decode: %v", err)
		}
		if be.UserID != env.Key || be.Category == "" || be.Price < 0 {
			t.Fatalf("decoded %+v from key %q", be, env.Key)
		}
		w, _ := rules.Weigh(env.AppID, env.OccurredAt, &be, now)
		if math.IsNaN(w) || math.IsInf(w, 0) || w < 0 {
			t.Fatalf("weight %g", w)
		}
		for _, fld := range rules.Fields(&be) {
			if len(fld) < 3 || !strings.Contains("cbmp", fld[:1]) || fld[1] != ':' {
				t.Fatalf("malformed profile entry %q", fld)
			}
		}
	})
}
