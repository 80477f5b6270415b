// Package recommend is the recommendation processor: it turns users'
// behaviour events (browse, cart, order, review on behaviour.events, keyed
// by user) into per-user profiles of affinities, and recommends each user
// the coupon batches worth the most to them (docs/recommendations.md).
//
// Rules (rules.go) are a YAML file, validated with every problem reported
// by line and field (ParseRules), and reloaded without a restart (Watcher:
// the file's modification time is polled; SIGHUP reloads at once). They
// say which events count and how much (Rules.Weigh), how the profile
// decays, and how batches are ranked. Each recommendation records the
// rules' revision.
//
// A profile holds, per category, brand, model and price band, the sum of
// the weights of the user's events, each decayed exponentially with the
// rules' half-life from when it occurred. Events are added in one atomic
// Redis step per user and batch (profile.lua), each at most once by
// (app_id, event_id); the same step returns the whole profile.
//
// Ranking (score.go) is pure: for each eligible batch (active, its claim
// window open, with stock left, read from the coupon batch cache
// coupon.Batches and the coupon processor's counters) the score is
//
//	affinity × expected discount × stock factor × time factor
//
// and the best TopN, at most one per exclusion group and none the user
// already holds to the batch's per-user limit, make the user's top N. A
// top N is decided in a second atomic step per user (top.lua), remembered
// with its trigger (the user's last event of the batch): it replaces the
// one kept for lookups and is emitted only when its batches changed and
// the last emission is at least the rules' min_interval old. Emitted, it
// becomes one recommendation.made per rank on the recommendations topic
// and, when the auto-grant rule grants the top batch, a
// coupon.issue.requested on coupon.claims whose event id derives from
// (round, user, batch), so the coupon processor grants it at most once and
// enforces stock and per-user limits. A redelivered batch gets the
// remembered decisions back and yields the same records.
//
// Redis keys (Store) all carry the user's hash tag; the package writes only
// those and its result topics. It reads the coupon processor's counters
// through coupon.Store and must not import sinks/.
package recommend
