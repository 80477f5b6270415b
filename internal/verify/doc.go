// Package verify reconciles what went into the pipeline with what came out,
// for `promoflow verify`. It owns the checks and their report; it reads
// Kafka, the system of record (MySQL) and the reporting store (ClickHouse)
// and never writes to any of them. It must not import processors/ or
// sinks/: the stores are reached through the small interfaces defined here
// ([IDReader], [CouponRecord], [LotteryRecord]), which the sinks implement,
// and the rules of the admin topics come in as decode functions.
//
// # The checks
//
//  1. Every input has exactly one decision. Every record of the input topics
//     in the selected range is an input. Those that carry a request with a
//     one-to-one decision (claims and issues, participations, gift sends,
//     coupon lock/confirm/cancel) are identified by the result id their
//     decision must carry, schemas.ResultID(kind, app_id, event_id), so
//     duplicate deliveries count once. An input is decided if a result
//     topic holds that id, dead-lettered if the dead-letter topic holds a
//     record whose promoflow.dlq.source.* headers point at one of its
//     copies, and lost otherwise (a breach). A record that has no usable
//     identity (malformed, unknown type) is an input of its own, keyed by
//     its position. Draw commands and gift member updates have no
//     one-to-one decision and are counted apart.
//  2. MySQL and ClickHouse agree row for row: for each result table both
//     keep, the sets of result ids are compared range by range.
//  3. The invariants hold in MySQL: grants ≤ stock and ≤ the per-user limit
//     (from the latest revision on coupon.admin), one award per user and
//     activity and awards ≤ each tier's stock (from lottery.admin), each
//     gift-exchange member sends once and receives once and never to
//     themselves, a coupon is used at most once, a referral invitee is bound
//     to at most one inviter per activity and never to themselves.
//     (Referral events are not yet among check 1's inputs; their results
//     are in checks 2 and 3.)
//  4. The dead letters in range add up: every dead letter that points into
//     the scanned range of an input topic is accounted for by check 1 (the
//     dead-lettered inputs, further copies of them, copies of inputs decided
//     after a replay, requests without a one-to-one decision); one that
//     points at no input record is a mismatch.
//
// # Scaling: buckets, groups and memory
//
// Result ids are hex digests, so their leading digits spread them evenly:
// the id space is cut into [Buckets] buckets by the first two hex digits.
//
// Check 1 plans the offset range of every partition once (from --since,
// through Kafka's ListOffsets by time, to --until or the last stable
// offset) and reads the input and result topics once, committed records
// only, as the processors do. Each record is read for its head alone (a
// validating scanner keeps event_id, type, app_id and a few payload
// members, about 1 µs a record) and becomes one 32-byte entry: the result
// id its decision must carry (an input) or carries (a result), its position
// and its dead letter. The entries are added up by id in groups of buckets:
// when every bucket fits in memory at once (Config.MemoryBuckets, or, when
// that is 0, about [MaxIDsInMemory] ids planned), in one map; otherwise each
// group's entries go to a temporary file as they are read, and the files
// are added up one after another, so memory holds one group's ids (about
// 100 bytes each) and the topics are still read once. The dead letters
// pointing into the input ranges are held for the whole run, one
// (offset, reason) entry each, sorted per source partition: bad input is
// rare, and the dead-letter topic keeps 7 days.
//
// Check 2 never holds a table: it cuts the ids into ranges (the buckets,
// merged when ClickHouse counts few rows, split by a third hex digit when
// it counts many, so that each range is a few pages) and, for each range,
// opens one cursor per MySQL shard table (`WHERE result_id >= ? AND
// result_id < ?`, a primary-key range scan) and one on ClickHouse (the
// same range, FINAL), each reading pages in key order (keyset pagination:
// `AND result_id > last ORDER BY result_id LIMIT n`). A heap merges the
// shard tables' sorted streams, and the merged stream is walked beside
// ClickHouse's. Memory is one page per cursor.
//
// Check 3 lets the databases aggregate: each shard table is grouped (per
// batch, per user and batch with HAVING, per coupon with HAVING, per
// activity and tier) and the small results are summed across shards.
// What spans shards — a user's awards, a gift-exchange receiver (sends are
// routed by sender) — is merged per activity from sorted pages of every
// shard, so memory is one page per shard whatever the activity's size.
// Ids are compared bytewise, as the tables' binary collations order them.
package verify
