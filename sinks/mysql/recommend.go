package mysql

import (
	"context"
	"slices"
	"strings"

	"github.com/promoflow/promoflow/schemas"
)

// recommendations stores recommendation.made: the history of every
// recommendation, one row per recommendation_id (the result id), routed by
// user so that a user's recommendations share one table. A user's latest
// top N is the user's rows of the greatest made_at (UserRecommendations,
// through idx_user_made); the recommendation processor keeps the current
// one in Redis for lookups, and an emptied top N adds no row, so this
// table's latest set is the last non-empty one. rank is a reserved word in
// MySQL 8, hence rec_rank.
var recommendations = newResults(table{
	eventType: schemas.TypeRecommendationMade,
	what:      "recommendations",
	prefix:    "recommendation",
	columns: []string{
		"recommendation_id", "user_id", "batch_id", "rec_rank", "score", "affinity", "expected_discount",
		"made_at", "rules_revision", "trigger_event_id", "grant_event_id",
	},
	create: "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  recommendation_id   CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
		"  user_id             VARCHAR(128)  NOT NULL,\n" +
		"  batch_id            VARCHAR(64)   NOT NULL,\n" +
		"  rec_rank            BIGINT        NOT NULL,\n" +
		"  score               BIGINT        NOT NULL,\n" +
		"  affinity            BIGINT        NOT NULL,\n" +
		"  expected_discount   BIGINT        NOT NULL,\n" +
		"  made_at             DATETIME(3)   NOT NULL,\n" +
		"  rules_revision      VARCHAR(64)   NOT NULL,\n" +
		"  trigger_event_id    VARCHAR(128)  NOT NULL,\n" +
		"  grant_event_id      VARCHAR(128)  NOT NULL DEFAULT '',\n" +
		"  app_id              VARCHAR(64)   NOT NULL,\n" +
		"  created_at          DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" +
		"  PRIMARY KEY (recommendation_id),\n" +
		"  KEY idx_user_made (user_id, made_at),\n" +
		"  KEY idx_batch_made (batch_id, made_at)\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
}, func(r *schemas.RecommendationMade) []any {
	return []any{
		&r.RecommendationID, &r.UserID, &r.BatchID, &r.Rank, &r.Score, &r.Affinity, &r.ExpectedDiscount,
		&r.MadeAt, &r.RulesRevision, &r.TriggerEventID, &r.GrantEventID,
	}
}, func(r *schemas.RecommendationMade) string { return r.UserID })

// UserRecommendations returns the user's latest recommended top N stored,
// by rank: the rows of the user's greatest made_at (ties, which a
// processor never makes, by trigger), read from the user's one table
// through idx_user_made. It returns none for a user never recommended.
func (s *Sink) UserRecommendations(ctx context.Context, userID string) ([]schemas.RecommendationMade, error) {
	got, err := selectFrom(ctx, s, recommendations, s.route(userID),
		"WHERE t.user_id = ? AND t.made_at = (SELECT MAX(made_at) FROM recommendation_%[1]d WHERE user_id = ?)", userID, userID)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(got, func(a, b schemas.RecommendationMade) int {
		if c := strings.Compare(a.TriggerEventID, b.TriggerEventID); c != 0 {
			return c
		}
		return int(a.Rank - b.Rank)
	})
	if len(got) > 0 {
		last := got[len(got)-1].TriggerEventID
		got = slices.DeleteFunc(got, func(r schemas.RecommendationMade) bool { return r.TriggerEventID != last })
	}
	return got, nil
}
