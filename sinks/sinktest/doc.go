// Package sinktest is the conformance suite every sink passes, in the manner
// of Watermill's tests.TestPubSub: a sink's integration test calls [Run] with
// a constructor for a fresh, empty sink and a [Reader] that inspects what was
// stored through the store itself. The cases pin down the guarantees the
// pipeline relies on: exact round trips of hostile values, one row per result
// however often or concurrently a batch is replayed, and refusal of event
// types the sink has no table for.
//
// The suite covers coupon grants, the other results ([ResultTypes]: the
// lottery and gift-exchange results, coupon operations and reminders) and
// the coupon states the operations leave; a Reader reads the results by
// column name with [ColumnsRow]. [RunLotteryReader] and [RunCouponReader]
// are the shared suites of the read APIs,
// [github.com/promoflow/promoflow/sinks.LotteryReader] and
// [github.com/promoflow/promoflow/sinks.CouponReader], which the MySQL sink
// and its in-memory stand-in both pass.
//
// It also generates events for tests and benchmarks: coupon.grant.decided
// ([Grant], [Grants]), results of every type ([Result], [Results],
// [Entries]) and coupon states ([Coupons]). It imports schemas, sinks and internal/testenv, and no sink:
// sinks import it from their tests.
package sinktest
