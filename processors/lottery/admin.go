package lottery

import (
	"context"
	"time"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/lottery/fair"
	"github.com/promoflow/promoflow/schemas"
)

// AdminStage declares the stage that owns the admin topic. Every processor
// instance reads that topic whole into its cache (a View), so none of them
// owns its records; this one group reads it too and, for every definition,
// commits to the activity's secret seed and publishes the commitment
// (lottery.activity.committed with seed_hash), or dead-letters the
// definition once if it does not decode or breaks CheckActivity (reason
// invalid_activity). store nil only declares the stage.
func AdminStage(store *Store) stream.Stage {
	return stream.Stage{
		Name:    "lottery-admin",
		Group:   AdminGroup,
		Reads:   []string{TopicAdmin},
		Writes:  []string{TopicResults},
		Handles: []string{tv(schemas.TypeLotteryActivityDefined)},
		Handler: stream.HandlerFunc(func(ctx context.Context, b *stream.Batch) (stream.Result, error) {
			var res stream.Result
			for _, ev := range b.Events {
				def, err := DecodeActivity(ev.Env)
				if err != nil {
					res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: "invalid_activity", Detail: err.Error()})
					continue
				}
				c, err := Commitment(ctx, store, def, time.Now())
				if err != nil {
					return stream.Result{}, err
				}
				if err := appendRecord(&res, TopicResults, c.ResultID, AppID, c.CommittedAt, c); err != nil {
					return stream.Result{}, err
				}
			}
			return res, nil
		}),
	}
}

// Commitment returns an activity's seed commitment, creating the seed and
// recording the commitment time on first use.
func Commitment(ctx context.Context, store *Store, def *schemas.ActivityDefined, now time.Time) (schemas.ActivityCommitted, error) {
	seed, err := store.Seed(ctx, def.ActivityID)
	if err != nil {
		return schemas.ActivityCommitted{}, err
	}
	at, err := store.CommittedAt(ctx, def, now)
	if err != nil {
		return schemas.ActivityCommitted{}, err
	}
	return schemas.ActivityCommitted{
		ResultID:     schemas.ResultID(kindActivity, "", def.ActivityID),
		ActivityID:   def.ActivityID,
		Name:         def.Name,
		Revision:     def.Revision,
		Kind:         def.Kind,
		Status:       def.Status,
		SeedHash:     fair.SeedHash(seed),
		JoinFrom:     def.JoinFrom,
		JoinUntil:    def.JoinUntil,
		DrawAt:       def.DrawAt,
		PerUserLimit: def.PerUserLimit,
		Prizes:       FormatPrizes(def.Prizes),
		CommittedAt:  at,
	}, nil
}
