// Package metrics defines every Prometheus metric a Promoflow process
// exports (all named promoflow_*, listed in docs/operations.md) on a
// registry of its own, and the cheap handles the hot paths use: a Stage
// with its label children resolved once, an HTTP middleware, a go-redis
// hook. A nil *Metrics or *Stage is valid and records nothing, so the
// runtime and tests run unchanged without metrics.
//
// Labels are bounded: stage, topic, partition, decision, outcome, reason
// (fixed sets of codes), HTTP route patterns and status codes. No metric is
// labelled with a user id, an event id, a batch id or an activity id: per
// campaign numbers come from ClickHouse.
//
// The package owns no business rule and must not import processors/,
// sinks/ or internal/stream.
package metrics
