// Package sinktest is the conformance suite every sink passes, in the manner
// of Watermill's tests.TestPubSub: a sink's integration test calls [Run] with
// a constructor for a fresh, empty sink and a [Reader] that inspects what was
// stored through the store itself. The cases pin down the guarantees the
// pipeline relies on: exact round trips of hostile values, one row per result
// however often or concurrently a batch is replayed, and refusal of event
// types the sink has no table for.
//
// The suite covers coupon grants and the lottery and gift-exchange results
// ([ResultTypes]); a Reader reads the latter by column name with
// [ColumnsRow]. [RunLotteryReader] is the shared suite of the read API,
// [github.com/promoflow/promoflow/sinks.LotteryReader], which the MySQL sink
// and its in-memory stand-in both pass.
//
// It also generates events for tests and benchmarks: coupon.grant.decided
// ([Grant], [Grants]) and results of every type ([Result], [Results],
// [Entries]). It imports schemas, sinks and internal/testenv, and no sink:
// sinks import it from their tests.
package sinktest
