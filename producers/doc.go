// Package producers is the producing side of Promoflow: the Go SDK that
// upstream apps use to publish events, and the engine behind
// `promoflow produce`, which publishes JSON lines from a file or stdin.
//
// A [Producer] stamps every event with the app that publishes it, validates
// it with the same embedded schemas the processors decode with (so an event
// the SDK accepts is never dead-lettered for its shape), routes it to the one
// topic in topics.yaml that carries its type and version, and keys it by the
// payload's partition key. It writes with franz-go's idempotent producer and
// acks from all in-sync replicas, so client retries never duplicate a record;
// redelivery of the same event_id by the app is made harmless downstream,
// where event_id is the idempotency key of every decision.
//
// [ProduceLines] reads one envelope per line, reports every line it refuses
// with its number and a reason code, and never stops on bad input unless
// asked to.
//
// This package owns nothing downstream of Kafka: it must not import
// processors/ or sinks/, and it only reads topics.yaml (through
// internal/topology); creating topics is the topics command's job.
package producers
