// Package memory is an in-memory stand-in for the MySQL and ClickHouse
// sinks, used by `promoflow demo` when a server is not reachable. It keeps
// one row per coupon grant result, upserted by result id, in shards laid out
// and chosen exactly as
// [github.com/promoflow/promoflow/sinks/mysql.Config.Route] chooses them, so
// the demo reports rows per shard as production would have them. It keeps
// the lottery and gift-exchange results and the coupon operations too, one
// row per result id and type (see [Sink.Results]), and the coupon states
// and expiry reminders by MySQL's rules (the highest seq wins; one reminder
// per user, batch and day), and reads them back through the same
// [github.com/promoflow/promoflow/sinks.LotteryReader] and
// [github.com/promoflow/promoflow/sinks.CouponReader] as the MySQL sink.
// Like the ClickHouse sink it also accepts every schema-valid event and keeps
// it once (see [Sink.EventCount]), so it can replace that sink on a stage
// that reads raw input topics too. It passes the same conformance suite as
// the real sinks. It owns nothing but its maps: it holds no connection,
// persists nothing and must not import processors/.
package memory
