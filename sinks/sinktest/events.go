package sinktest

import (
	"fmt"
	"testing"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// Epoch is the instant the events made by [Grants] count back from. It lies
// in the past so the events also pass [schemas.Validate].
var Epoch = time.Date(2024, 3, 4, 5, 6, 7, 89e6, time.UTC)

// ResultKind is the kind passed to [schemas.ResultID] for generated grants.
const ResultKind = schemas.TypeCouponGrantDecided

var rejections = []string{
	schemas.RejectOutOfStock,
	schemas.RejectUserLimit,
	schemas.RejectNotStarted,
	schemas.RejectExpired,
	schemas.RejectUnknownBatch,
	schemas.RejectBatchDisabled,
}

// Grant returns a coupon.grant.decided envelope carrying g, published by
// appID and occurring at g.DecidedAt. Its event id is g.ResultID, as a
// processor republishing the same decision would choose. If g.ResultID is
// empty it is derived from appID and g.ClaimEventID first.
func Grant(tb testing.TB, appID string, g schemas.GrantDecided) *schemas.Envelope {
	tb.Helper()
	if g.ResultID == "" {
		g.ResultID = schemas.ResultID(ResultKind, appID, g.ClaimEventID)
	}
	env, err := schemas.New(g.ResultID, appID, g.DecidedAt, g)
	if err != nil {
		tb.Fatalf("building grant event: %v", err)
	}
	return env
}

// Grants returns n schema-valid grant decisions on n distinct claims of n
// distinct users; every id starts with prefix (which must start with a
// letter or digit), so batches made with different prefixes never share a
// result. Three in four are granted, the rest rejected with each reason in
// turn; the decisions spread over several apps, five coupon batches and
// about two months, at millisecond precision.
func Grants(tb testing.TB, prefix string, n int) []*schemas.Envelope {
	tb.Helper()
	out := make([]*schemas.Envelope, n)
	for i := range n {
		app := fmt.Sprintf("app-%d", i%3)
		claimID := fmt.Sprintf("%s-claim-%d", prefix, i)
		decided := Epoch.Add(-time.Duration(i)*13*time.Minute - time.Duration(i%1000)*time.Millisecond)
		g := schemas.GrantDecided{
			ResultID:     schemas.ResultID(ResultKind, app, claimID),
			ClaimEventID: claimID,
			BatchID:      fmt.Sprintf("%s-batch-%d", prefix, i%5),
			UserID:       fmt.Sprintf("%s-user-%d", prefix, i),
			ClaimedAt:    decided.Add(-time.Duration(1+i%900) * time.Millisecond),
			DecidedAt:    decided,
		}
		if i%4 == 3 {
			g.Status = schemas.StatusRejected
			g.Reason = rejections[(i/4)%len(rejections)]
		} else {
			g.Status = schemas.StatusGranted
			g.CouponID = g.ResultID
			g.GrantSeq = int64(i + 1)
		}
		out[i] = Grant(tb, app, g)
	}
	return out
}

// decodeGrant returns the GrantRow an envelope made by Grant should be
// stored as.
func decodeGrant(tb testing.TB, env *schemas.Envelope) GrantRow {
	tb.Helper()
	var g schemas.GrantDecided
	if err := env.DecodePayload(&g); err != nil {
		tb.Fatalf("decoding generated grant: %v", err)
	}
	g.ClaimedAt = g.ClaimedAt.UTC().Truncate(time.Millisecond)
	g.DecidedAt = g.DecidedAt.UTC().Truncate(time.Millisecond)
	return GrantRow{AppID: env.AppID, GrantDecided: g}
}

// hostileGrants returns grants whose string fields hold SQL and CSV
// injection attempts, control characters, unicode and ids of the maximum
// length the schemas allow. Only coupon_id is free text in the schema; the
// other fields carry such values although the schema would refuse them,
// because a sink must store whatever it is given verbatim and never execute
// it.
func hostileGrants(tb testing.TB) []*schemas.Envelope {
	tb.Helper()
	hostile := []string{
		`x'); DROP TABLE t; --`,
		`=cmd|' /C calc'!A0`,
		`" OR "1"="1`,
		`\'; SELECT SLEEP(10); -- \`,
		"优惠券🎉👩‍👩‍👧",
		"tab\tnew\nline\r\x00nul",
		"%s%n${jndi:x}",
		"trailing space ",
	}
	rep := func(s string, n int) string {
		out := make([]rune, 0, n)
		for len(out) < n {
			out = append(out, []rune(s)...)
		}
		return string(out[:n])
	}
	at := time.Date(2023, 12, 31, 23, 59, 59, 999_999_999, time.UTC) // truncated to .999 when stored
	var out []*schemas.Envelope
	for i, h := range hostile {
		g := schemas.GrantDecided{
			ClaimEventID: fmt.Sprintf("%s-%d", h, i),
			BatchID:      h,
			UserID:       h,
			Status:       schemas.StatusGranted,
			CouponID:     h,
			GrantSeq:     int64(i + 1),
			ClaimedAt:    at.Add(-time.Duration(i) * time.Hour),
			DecidedAt:    at,
		}
		out = append(out, Grant(tb, "hostile-app", g))
	}
	// The longest ids the schemas allow, in one- and multi-byte characters.
	for i, unit := range []string{"z", "界", "🎉"} {
		g := schemas.GrantDecided{
			ClaimEventID: rep(unit, 127) + fmt.Sprint(i),
			BatchID:      rep(unit, 64),
			UserID:       rep(unit, 128),
			Status:       schemas.StatusRejected,
			Reason:       schemas.RejectBatchDisabled,
			CouponID:     rep(unit, 32),
			GrantSeq:     1<<63 - 1,
			ClaimedAt:    time.Date(1999, 1, 1, 0, 0, 0, 1e6, time.UTC),
			DecidedAt:    time.Date(2099, 12, 31, 23, 59, 59, 999e6, time.UTC),
		}
		out = append(out, Grant(tb, rep("a", 63)+fmt.Sprint(i), g))
	}
	return out
}
