// Package clickhouse is the sink that writes pipeline results and raw events
// to ClickHouse for analysts. It owns the reporting database (created on
// start, "promoflow" by default) and its tables and views; it reads nothing
// from Kafka and must not import processors/.
//
// # Tables
//
//   - coupon_grants: one row per coupon.grant.decided result, the columns of
//     the MySQL sink's coupon_grant tables. Times are DateTime (seconds) plus
//     UInt64 milliseconds since the epoch (claimed_at_ms, decided_at_ms).
//     ReplacingMergeTree(decided_at_ms) ORDER BY result_id, partitioned by
//     the month of decided_at.
//   - events_raw: every event written, whatever its type, with its payload
//     as JSON text. ReplacingMergeTree ORDER BY (type, app_id, event_id),
//     partitioned by the month of occurred_at.
//   - lottery_activities, lottery_entries, lottery_draws, lottery_awards,
//     gift_matches, gift_members: one row per result of the lottery and
//     gift-exchange result types, the columns of the MySQL sink's tables of
//     the same results (draw_rank, draw_trigger for rank and trigger), times
//     as DateTime plus milliseconds. An absent draw_at is the epoch with
//     has_draw_at = 0. ReplacingMergeTree ORDER BY result_id; the version is
//     revision for activities (the highest wins) and the result's time in
//     milliseconds otherwise; partitioned by the month of a time that a
//     result keeps across replays (gift_members, whose updated_at moves with
//     each edit, is not partitioned).
//   - coupon_operations: one row per coupon.state.changed result (the
//     operation record, applied and rejected), the columns of the MySQL
//     sink's coupon_op tables. ReplacingMergeTree(changed_at_ms) ORDER BY
//     result_id, partitioned by the month of changed_at.
//   - coupon_states: each coupon's latest state, from the applied
//     operations: ReplacingMergeTree(seq) ORDER BY coupon_id, so FINAL
//     keeps the highest seq whatever order the operations came in. Not
//     partitioned, since a coupon's rows move in time.
//   - notifications: one row per notification.requested, every template,
//     with due_day (due_at's date in UTC). ReplacingMergeTree(due_at_ms)
//     ORDER BY notification_id, partitioned by the month of due_at. The
//     one-reminder-a-day rule is the system of record's; this table keeps
//     what was requested.
//   - recommendations: one row per recommendation.made
//     (recommendation_id), the columns of the MySQL sink's recommendation
//     tables. ReplacingMergeTree(made_at_ms) ORDER BY recommendation_id,
//     partitioned by the month of made_at.
//   - <table>_final for each table: a view over it with FINAL.
//   - lottery_draw_stats: per activity_id, participants (distinct users with
//     an accepted entry), entries, rejected_entries, awards and
//     instant_wins, computed with FINAL.
//   - coupon_batch_stats: per batch_id, claims (grant decisions), grants,
//     rejections, redemptions (coupons used: applied confirms), expirations
//     and conversion (redemptions / grants, a Float64, 0 without grants).
//     The most claimed and most redeemed batches are ORDER BY claims or
//     redemptions on it (see couponBatchStats).
//   - recommendation_conversion: per batch_id, recommended_users (users the
//     batch was recommended to), claimed_users (of them, granted a coupon of
//     the batch after its first recommendation to them) and redeemed_users
//     (of them, who used one after it), each user once (see
//     recommendationConversion).
//   - coupon_top_users: per user_id, grants, redemptions and operations
//     (every operation on the user's coupons); the most active users are
//     ORDER BY operations DESC.
//   - coupon_batches: each batch's latest definition (coupon.batch.defined
//     v1 and v2, archived from coupon.admin): ReplacingMergeTree(revision)
//     ORDER BY batch_id, not partitioned. It prices coupons in the budget
//     views.
//   - The analysts' views (analytics.go, docs/analytics.md): the fact views
//     coupon_facts, user_facts and coupon_budget (one row per decision,
//     operation, entry, award, grant or redemption, with happened_at), and
//     the summaries coupon_funnel, user_activity, coupon_budget_hourly,
//     lottery_activity_stats, lottery_rejections and lottery_tier_winners.
//
// So a batch definition lands in coupon_batches and events_raw, a grant
// decision in coupon_grants and events_raw, a lottery result in its table
// and events_raw, an applied coupon operation in
// coupon_operations, coupon_states and events_raw, and a raw input event
// (coupon.claim.requested, …) in events_raw only. Any event whose
// (type, version) has a schema is accepted: for schema-valid events
// WriteBatch never returns [ErrUnsupportedType], only for types the schemas
// package does not know. Adding a result table means adding a table writer
// (see table.go).
//
// # Reports
//
// The report registry (report.go) names the analysts' queries over those
// views, with their parameters; Sink.Report runs one on a reader from
// OpenReader and `promoflow report` prints it. Adding a report is adding
// one Report to the registry.
//
// # Idempotency
//
// WriteBatch drops duplicates within a batch (by result_id, and by type, app
// and event id for raw events) and inserts each table with one native batch.
// A replayed batch inserts its rows again; ReplacingMergeTree collapses them
// only when parts merge, at a time of ClickHouse's choosing. Readers that
// need one row per result query with FINAL, or the *_final views:
//
//	SELECT count() FROM coupon_grants FINAL
//	SELECT status, count() FROM coupon_grants_final GROUP BY status
//
// # Compatibility
//
// The sink speaks the native protocol only, and its SQL runs on ClickHouse
// 18.16 (the Debian package used in tests) as well as current releases: no
// LowCardinality, no DateTime64, inserts always name their columns (18.16
// otherwise yields a batch without columns), and values travel in native
// batches rather than as bound query arguments. DateTime holds 1970 to
// 2105: times outside that range are clamped to it (and the millisecond
// columns to 0) rather than failing the batch forever.
package clickhouse
