// Package stream is the processor runtime every Promoflow stage runs on: a
// franz-go consumer group (cooperative-sticky) that polls records, decodes
// and validates them, hands each partition's slice to the stage's Handler
// (partitions in parallel, each in order), produces the outputs and dead
// letters, waits for Kafka to acknowledge them, and only then commits the
// offsets. A batch that fails is rewound and retried with backoff, so
// delivery is at-least-once and handlers must be idempotent.
//
// Fencing: when a Fencer is configured, every newly assigned partition gets
// a fresh, strictly larger epoch that the handler passes to its state store.
// A store that has seen a larger epoch for the partition refuses the write
// (ErrFenced), so a worker that lost its partition cannot change state.
//
// The package owns no business rules and no storage schema; it must not
// import processors/ or sinks/.
package stream
