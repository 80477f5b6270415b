package coupon

import (
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

func batch(mut func(*schemas.BatchDefined)) *schemas.BatchDefined {
	b := &schemas.BatchDefined{
		BatchID: "B1", Revision: 1, TotalStock: 10, PerUserLimit: 2, Status: schemas.BatchActive,
		ValidFrom:  time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		ValidUntil: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
	}
	if mut != nil {
		mut(b)
	}
	return b
}

func TestPrecheck(t *testing.T) {
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name string
		def  *schemas.BatchDefined
		at   time.Time
		want string
	}{
		{"unknown batch", nil, from, schemas.RejectUnknownBatch},
		{"disabled wins over window", batch(func(b *schemas.BatchDefined) { b.Status = schemas.BatchDisabled }), from.Add(-time.Hour), schemas.RejectBatchDisabled},
		{"one ms before start", batch(nil), from.Add(-time.Millisecond), schemas.RejectNotStarted},
		{"exactly at start", batch(nil), from, ""},
		{"inside", batch(nil), from.Add(24 * time.Hour), ""},
		{"one ms before end", batch(nil), until.Add(-time.Millisecond), ""},
		{"exactly at end", batch(nil), until, schemas.RejectExpired},
		{"after end", batch(nil), until.Add(time.Second), schemas.RejectExpired},
		// A v2 batch's validity_days is the life of a coupon; claims still
		// follow the batch's own window.
		{"v2 relative validity: inside", batchV2(func(b *schemas.BatchDefined) { b.ValidityDays = 30 }), from, ""},
		{"v2 relative validity: at end", batchV2(func(b *schemas.BatchDefined) { b.ValidityDays = 30 }), until, schemas.RejectExpired},
		{"v2 relative validity: before start", batchV2(func(b *schemas.BatchDefined) { b.ValidityDays = 30 }), from.Add(-time.Nanosecond), schemas.RejectNotStarted},
		{"v2 disabled", batchV2(func(b *schemas.BatchDefined) { b.Status = schemas.BatchDisabled }), from, schemas.RejectBatchDisabled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Precheck(c.def, c.at); got != c.want {
				t.Fatalf("Precheck = %q, want %q", got, c.want)
			}
		})
	}
}

func TestCouponWindow(t *testing.T) {
	granted := time.Date(2026, 11, 20, 15, 4, 5, 6, time.UTC)
	from, until := batch(nil).CouponWindow(granted)
	if !from.Equal(batch(nil).ValidFrom) || !until.Equal(batch(nil).ValidUntil) {
		t.Fatalf("fixed window = [%s, %s), want the batch's", from, until)
	}
	from, until = batchV2(func(b *schemas.BatchDefined) { b.ValidityDays = 30 }).CouponWindow(granted)
	if !from.Equal(granted) || !until.Equal(granted.Add(30*24*time.Hour)) {
		t.Fatalf("relative window = [%s, %s), want 30 days from the grant", from, until)
	}
	// A coupon granted near the batch's end outlives it: its window is its own.
	c := Held{CouponID: "c", BatchID: "B1", State: schemas.CouponAvailable, ValidFrom: from, ExpiresAt: until}
	def := batchV2(func(b *schemas.BatchDefined) { b.ValidityDays = 30 })
	if e := Evaluate(def, c, Cart{Items: []Item{{Amount: 1000}}}, def.ValidUntil.Add(time.Hour)); !e.Usable {
		t.Fatalf("coupon inside its own window, after the batch's: %+v", e)
	}
}

func TestDecide(t *testing.T) {
	def := batch(nil) // stock 10, limit 2
	cases := []struct {
		name string
		c    Counters
		want string
	}{
		{"fresh", Counters{0, 0}, ""},
		{"last coupon", Counters{9, 0}, ""},
		{"stock gone", Counters{10, 0}, schemas.RejectOutOfStock},
		{"user at limit", Counters{3, 2}, schemas.RejectUserLimit},
		{"user one below limit", Counters{3, 1}, ""},
		{"both exhausted: user limit reported", Counters{10, 2}, schemas.RejectUserLimit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Decide(def, c.c); got != c.want {
				t.Fatalf("Decide = %q, want %q", got, c.want)
			}
		})
	}
}

func TestParseDecision(t *testing.T) {
	for _, bad := range []string{"", "g|x|1", "g|1", "x|1|2", "r|out_of_stock|notanumber"} {
		if _, err := parseDecision(bad); err == nil {
			t.Errorf("parseDecision(%q) accepted a malformed decision", bad)
		}
	}
	o, err := parseDecision("g|7|1700000000123")
	if err != nil || !o.Granted || o.Seq != 7 || o.At.UnixMilli() != 1700000000123 {
		t.Fatalf("parseDecision granted = %+v, %v", o, err)
	}
}
