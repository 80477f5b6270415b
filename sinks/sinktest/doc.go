// Package sinktest is the conformance suite every sink passes, in the manner
// of Watermill's tests.TestPubSub: a sink's integration test calls [Run] with
// a constructor for a fresh, empty sink and a [Reader] that inspects what was
// stored through the store itself. The cases pin down the guarantees the
// pipeline relies on: exact round trips of hostile values, one row per result
// however often or concurrently a batch is replayed, and refusal of event
// types the sink has no table for.
//
// It also generates coupon.grant.decided events for tests and benchmarks
// ([Grant], [Grants]). It imports only schemas and the standard library, and
// no sink: sinks import it from their tests.
package sinktest
