// Package health serves a process's liveness and readiness: /healthz
// answers while the process is up; /readyz runs the process's readiness
// checks (Kafka, the consumer group, Redis, the sinks' stores) in parallel
// with a timeout and answers 200 only when every one passes, with each
// check's result in a JSON body. Results are cached briefly so that probes
// from several scrapers do not multiply the work.
//
// The package knows nothing of what it checks; the commands supply the
// checks.
package health
