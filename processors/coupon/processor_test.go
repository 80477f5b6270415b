package coupon

import (
	"bytes"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// TestGrantRecordIsValidAndDeterministic: the result record of a claim
// passes the schemas, carries the claim's identity, and is byte-for-byte the
// same when the remembered outcome is replayed.
func TestGrantRecordIsValidAndDeterministic(t *testing.T) {
	at := time.Now().Add(-time.Minute).UTC()
	claim := schemas.ClaimRequested{BatchID: "B1", UserID: "u-7", Channel: "live"}
	env, err := schemas.New("evt-9", "shop", at, claim)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []Outcome{
		{Granted: true, Seq: 12, At: at.Add(time.Second)},
		{Reason: schemas.RejectOutOfStock, At: at.Add(time.Second)},
	} {
		r1, err := GrantRecord(env, claim, o)
		if err != nil {
			t.Fatal(err)
		}
		o.Replayed = true
		r2, _ := GrantRecord(env, claim, o)
		if !bytes.Equal(r1.Value, r2.Value) || string(r1.Key) != "u-7" || r1.Topic != TopicGrants {
			t.Fatalf("replayed record differs or is misrouted: %s vs %s", r1.Value, r2.Value)
		}
		out, err := schemas.Decode(r1.Value)
		if err != nil {
			t.Fatalf("result record invalid: %v\n%s", err, r1.Value)
		}
		var g schemas.GrantDecided
		if err := out.DecodePayload(&g); err != nil {
			t.Fatal(err)
		}
		if g.ResultID != schemas.ResultID(ResultKind, "shop", "evt-9") || out.EventID != g.ResultID || out.AppID != "shop" ||
			g.ClaimEventID != "evt-9" || !g.ClaimedAt.Equal(at) || !g.DecidedAt.Equal(o.At) {
			t.Fatalf("result %+v from envelope %+v", g, out)
		}
		if o.Granted != (g.Status == schemas.StatusGranted) || (o.Granted && (g.CouponID != g.ResultID || g.GrantSeq != 12)) || g.Reason != o.Reason {
			t.Fatalf("outcome %+v encoded as %+v", o, g)
		}
	}
}
