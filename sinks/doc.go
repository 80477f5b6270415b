// Package sinks holds what every sink shares: the errors a caller can match
// whichever store it writes to, and the read APIs of the system of record
// ([LotteryReader] for the admin commands, [CouponReader] for the
// order-time validation service) with the orders their results come in. The sinks themselves live in subpackages, one
// per store: [github.com/promoflow/promoflow/sinks/mysql] (the sharded system
// of record), [github.com/promoflow/promoflow/sinks/clickhouse] (reporting)
// and [github.com/promoflow/promoflow/sinks/memory] (the stand-in used by the
// demo), all held to one conformance suite in
// [github.com/promoflow/promoflow/sinks/sinktest].
//
// Every sink has the same shape:
//
//	New(ctx, Config) (*Sink, error)          connects and creates its schema
//	WriteBatch(ctx, []*schemas.Envelope) error  idempotent upsert by result id
//	Close() error                            idempotent
//
// A sink reads decoded envelopes handed to it by its caller; it never reads
// Kafka itself, never decides anything and never imports processors/.
package sinks
