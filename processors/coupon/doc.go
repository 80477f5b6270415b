// Package coupon decides coupon self-claims. It reads claim events keyed by
// user, checks the batch's rules (a pure function, Precheck), and takes the
// stock and per-user count in one atomic Redis step (claim.lua) that also
// remembers the decision by (app_id, event_id) and checks the partition's
// fencing epoch. A redelivered claim gets the remembered decision back and
// changes nothing; grants never exceed stock or the per-user limit.
//
// Batch definitions come from the compacted coupon admin topic through a
// stream.View held by every instance (Batches). The package writes only to
// Redis and to its result topic; it must not import sinks/.
//
// Redis keys all carry the batch as a hash tag ({<batch>}), so the script's
// keys share one slot and it runs unchanged on Redis Cluster:
//
//	<prefix>:cpn:{<batch>}:granted          grants so far (the stock taken)
//	<prefix>:cpn:{<batch>}:u:<user>         grants to one user
//	<prefix>:cpn:{<batch>}:d:<app>:<event>  the remembered decision
//	<prefix>:cpn:{<batch>}:fence            hash: topic/partition -> highest epoch seen
package coupon
