package clickhouse_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/sinktest"
)

// TestIntegrationClickHouseRecommendationConversion checks the funnel view
// on ClickHouse 18.16: a user counts as claimed when granted a coupon of the
// batch after it was first recommended to them, as redeemed when a coupon of
// the batch was confirmed after that, once however many rows there are,
// with everything written twice.
func TestIntegrationClickHouseRecommendationConversion(t *testing.T) {
	s, r := newSink(t)
	ctx := testenv.Context(t, 30*time.Second)
	at := func(min int) time.Time { return sinktest.Epoch.Add(time.Duration(min) * time.Minute) }
	n := 0
	rec := func(batch, user string, min int) *schemas.Envelope {
		n++
		id := schemas.ResultID("recommendation", "shop", fmt.Sprint("t", n))
		return sinktest.Result(t, "shop", at(min), schemas.RecommendationMade{
			RecommendationID: id, UserID: user, BatchID: batch, Rank: 1, Score: 1000, Affinity: 500000, ExpectedDiscount: 2,
			MadeAt: at(min), RulesRevision: "r-0123456789ab", TriggerEventID: fmt.Sprint("t", n),
		})
	}
	grant := func(batch, user string, min int, status string) *schemas.Envelope {
		n++
		id := schemas.ResultID("coupon.grant", "shop", fmt.Sprint("c", n))
		g := schemas.GrantDecided{ResultID: id, ClaimEventID: fmt.Sprint("c", n), BatchID: batch, UserID: user, Status: status,
			ClaimedAt: at(min), DecidedAt: at(min)}
		if status == schemas.StatusGranted {
			g.CouponID = id
		} else {
			g.Reason = schemas.RejectOutOfStock
		}
		env, err := schemas.New(id, "shop", at(min), g)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	confirm := func(batch, user string, min int, status string) *schemas.Envelope {
		n++
		c := schemas.StateChanged{ResultID: schemas.ResultID("coupon.op", "shop", fmt.Sprint("o", n)), CouponID: fmt.Sprint("k", n), UserID: user, BatchID: batch,
			Op: schemas.OpConfirm, Status: status, State: schemas.CouponUsed, Seq: 2, ValidFrom: at(0), ExpiresAt: at(10000), ChangedAt: at(min)}
		if status == schemas.OpRejected {
			c.Reason, c.State = schemas.RejectNotLocked, schemas.CouponAvailable
		}
		return sinktest.Result(t, "shop", at(min), c)
	}
	events := []*schemas.Envelope{
		// B1 recommended to u1, u2 and u3 (u3 twice, and u1 again later).
		rec("B1", "u1", 100), rec("B1", "u2", 100), rec("B1", "u3", 100), rec("B1", "u3", 150), rec("B1", "u1", 500),
		rec("B2", "u1", 100),
		// u1 granted B1 after its recommendation, and redeemed it.
		grant("B1", "u1", 200, schemas.StatusGranted), confirm("B1", "u1", 400, schemas.OpApplied),
		// u2 was granted B1 before its recommendation (not a claim it led
		// to), but redeemed after.
		grant("B1", "u2", 50, schemas.StatusGranted), confirm("B1", "u2", 300, schemas.OpApplied),
		// u3's claim was rejected; a confirm refused.
		grant("B1", "u3", 200, schemas.StatusRejected), confirm("B1", "u3", 300, schemas.OpRejected),
		// u1 claimed B2 after, never redeemed; u9, never recommended B2, did both.
		grant("B2", "u1", 300, schemas.StatusGranted), confirm("B2", "u1", 350, schemas.OpRejected),
		grant("B2", "u9", 300, schemas.StatusGranted), confirm("B2", "u9", 350, schemas.OpApplied),
	}
	for range 2 {
		if err := s.WriteBatch(ctx, events); err != nil {
			t.Fatal(err)
		}
	}
	scan := func(rows driver.Rows) (string, error) {
		var batch string
		var recommended, claimed, redeemed uint64
		err := rows.Scan(&batch, &recommended, &claimed, &redeemed)
		return fmt.Sprintf("%s recommended=%d claimed=%d redeemed=%d", batch, recommended, claimed, redeemed), err
	}
	expectLines(t, "recommendation_conversion", queryRows(t, r,
		"SELECT batch_id, recommended_users, claimed_users, redeemed_users FROM %s.recommendation_conversion ORDER BY batch_id", scan), []string{
		"B1 recommended=3 claimed=1 redeemed=2",
		"B2 recommended=1 claimed=1 redeemed=0",
	})
	// The query documented with the view.
	rate := func(rows driver.Rows) (string, error) {
		var batch string
		var recommended, claimed, redeemed uint64
		var claimRate float64
		err := rows.Scan(&batch, &recommended, &claimed, &redeemed, &claimRate)
		return fmt.Sprintf("%s %d %d %d %.2f", batch, recommended, claimed, redeemed, claimRate), err
	}
	expectLines(t, "documented query", queryRows(t, r, "SELECT batch_id, recommended_users, claimed_users, redeemed_users,\n"+
		"       claimed_users / recommended_users AS claim_rate\n"+
		"FROM %s.recommendation_conversion ORDER BY recommended_users DESC", rate), []string{"B1 3 1 2 0.33", "B2 1 1 0 1.00"})
	// The query of docs/recommendations.md comparing rules revisions.
	byRevision := func(rows driver.Rows) (string, error) {
		var revision string
		var recommended, claimed uint64
		err := rows.Scan(&revision, &recommended, &claimed)
		return fmt.Sprintf("%s %d %d", revision, recommended, claimed), err
	}
	expectLines(t, "by revision", queryRows(t, r, "SELECT rules_revision, count() AS recommended, countIf(granted_ms >= made_at_ms) AS claimed\n"+
		"FROM (SELECT rules_revision, batch_id, user_id, made_at_ms FROM %[1]s.recommendations_final WHERE rec_rank = 1)\n"+
		"ANY LEFT JOIN (SELECT batch_id, user_id, max(decided_at_ms) AS granted_ms FROM %[1]s.coupon_grants_final\n"+
		"               WHERE status = 'granted' GROUP BY batch_id, user_id) USING (batch_id, user_id)\n"+
		"GROUP BY rules_revision ORDER BY rules_revision", byRevision), []string{"r-0123456789ab 6 2"})
}
