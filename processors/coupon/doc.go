// Package coupon runs the coupon lifecycle: it decides self-claims and
// operators' issues, keeps each granted coupon's state through the orders
// that use it (lock → confirm / cancel, TCC), and fires the coupons' timers
// (lock timeouts, expiry, expiry reminders) without any new event.
//
// Claims and issues (coupon.claims, keyed by user) are checked against the
// batch's rules (a pure function, Precheck); self-claims then pass the
// per-user and per-app token buckets (ratelimit.lua, when configured; a
// claim over a limit is rejected with rate_limited). The stock and per-user
// count are taken in one atomic Redis step (claim.lua) that also remembers
// the decision by (app_id, event_id) and checks the partition's fencing
// epoch. A redelivered claim gets the remembered decision back and changes
// nothing; grants never exceed stock or the per-user limit. A granted
// coupon (its id is the grant's result id) is then registered in its
// user's state (state.lua, idempotent by coupon id) with its window from
// BatchDefined.CouponWindow at the grant's decision time, and announced on
// coupon.states (op grant, seq 1).
//
// Order requests (coupon.orders, keyed by user) lock, confirm or cancel a
// coupon following Step (a pure function; state.lua implements it and a
// test runs the script against it on random sequences). Each request,
// applied or rejected, is one coupon.state.changed record, remembered by
// (app_id, event_id) so that a redelivery yields the same bytes.
//
// Timers: the processor is a stream.Ticker. Each partition has schedules
// (sorted sets) of what falls due: lock deadlines on coupon.orders
// partitions, coupon ends and reminders on coupon.claims partitions. The
// owner of a partition fires its entries, so timers move with ownership;
// each step is fenced with the partition's epoch and remembered, and an
// entry is removed only once its record is acknowledged (TickDone), so a
// Tick repeated after a crash publishes the same records.
//
// Batch definitions come from the compacted coupon admin topic through a
// stream.View held by every instance (Batches). The package writes only to
// Redis and to its result topics; it must not import sinks/.
//
// Redis keys carry a hash tag, so each script's keys share one slot and it
// runs unchanged on Redis Cluster. A batch's keys ({<batch>}, claim.lua):
//
//	<prefix>:cpn:{<batch>}:granted          grants so far (the stock taken)
//	<prefix>:cpn:{<batch>}:u:<user>         grants to one user
//	<prefix>:cpn:{<batch>}:d:<app>:<event>  the remembered decision
//	<prefix>:cpn:{<batch>}:fence            hash: topic/partition -> highest epoch seen
//
// A user's coupons ({<user>}, state.lua):
//
//	<prefix>:cpu:{<user>}:c:<coupon>            hash: batch, state, seq, order, lock deadline,
//	                                            window, grant time, remembered timer steps
//	<prefix>:cpu:{<user>}:op:<app>:<event>      the remembered decision of an order's request
//	<prefix>:cpu:{<user>}:rm:<batch>:<day>      the coupon that took the day's reminder (2 days)
//	<prefix>:cpu:{<user>}:fence                 hash: topic/partition -> highest epoch seen
//	<prefix>:crl:u:{<user>}                     the user's claim token bucket
//
// Others:
//
//	<prefix>:cpo:{<coupon>}                     owner index: "<user>|<batch>" (not_owner, batch_disabled)
//	<prefix>:crl:a:{<app>}                      an app's claim token bucket
//	<prefix>:cpt:{<topic>/<partition>}:locks    zset user|coupon|order by lock deadline (coupon.orders partitions)
//	<prefix>:cpt:{<topic>/<partition>}:expire   zset user|coupon by coupon end (coupon.claims partitions)
//	<prefix>:cpt:{<topic>/<partition>}:remind   zset user|coupon|batch by reminder due time (coupon.claims partitions)
//
// A coupon's state is kept until the later of its end and its grant, plus
// the decision TTL; a request's remembered decision, the decision TTL.
package coupon
