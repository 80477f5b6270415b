// Package fair decides lottery winners by a public, language-independent
// algorithm, so that anyone holding an activity's revealed seed can
// recompute its draw and its instant wins ("verifiable fairness"). It owns
// the algorithm only: pure functions over a seed, ids and tier stocks. It
// must not read clocks, Kafka, Redis or databases, must not import other
// promoflow packages, and takes randomness from crypto/rand only in
// NewSeed. Keeping seeds secret until the draw, publishing commitments,
// taking stock and writing results belong to the lottery processor.
//
// The rest of this comment is the specification; a verifier in any language
// needs nothing else. "||" is concatenation of byte strings; strings are
// their UTF-8 bytes; uint64be(i) is the 8-byte big-endian encoding of i;
// hex is lowercase hexadecimal; SHA-256 is FIPS 180-4.
//
// Every rule below is pinned by known answers (listed at the end and in
// TestKnownAnswers). Changing any of them changes the winners recomputed
// for past draws, which then fail verification: a new rule needs a new
// domain string (promoflow-draw-v2, ...), never an edit of v1.
//
// # Commitment
//
// When an activity is created, a secret seed of 32 random bytes is made
// (NewSeed) and its commitment hex(SHA-256(seed)) is published (SeedHash).
// At draw time the seed is revealed; a verifier recomputes the hash and
// compares it with the commitment before recomputing anything else.
//
// # Participants
//
// The participants of a draw are a set of user ids: the ids sorted in
// ascending order comparing their bytes (not numbers, not case-folded,
// not Unicode collation), with duplicates removed (Normalize). Join order
// and repeated joins therefore do not matter. The list is identified by
//
//	Digest = hex(SHA-256(u1 || "\n" || u2 || "\n" || ... || un || "\n"))
//
// over the sorted list; for no participants it is hex(SHA-256("")).
// Ids are expected not to contain "\n".
//
// # Random stream
//
// A stream is defined by a domain string and k ≥ 0 byte strings part1 ..
// partk. Block i, for i = 0, 1, 2, ..., is
//
//	SHA-256(domain || 0x00 || part1 || 0x00 || part2 || ... || 0x00 || partk || 0x00 || uint64be(i))
//
// (with no parts: SHA-256(domain || 0x00 || uint64be(i))). Each 32-byte
// block yields four unsigned 64-bit integers, read big-endian from bytes
// 0-7, 8-15, 16-23 and 24-31. The stream is these values in order: the
// four of block 0, then the four of block 1, and so on (Stream.Uint64).
//
// A uniform integer in [0, n), for n ≥ 1 (Stream.Intn): let
// limit = 2^64 - (2^64 mod n). Take the next value x of the stream; while
// x ≥ limit, discard it and take the next; the result is x mod n. When n
// divides 2^64 (n a power of two) limit is 2^64 and nothing is discarded.
// Every call continues the same stream.
//
// # Draw
//
// Inputs: seed (bytes), activity id (string), participants, and prize
// tiers in a given order, each with an id and a stock (a signed integer).
//
//  1. P = the participants normalized as above; N = the number of ids.
//  2. S = the sum of the stocks of the tiers whose stock is > 0 (tiers with
//     stock ≤ 0 neither take winners nor reduce S); K = min(S, N).
//  3. The stream has domain "promoflow-draw-v1" and parts (seed,
//     activity id).
//  4. idx = [0, 1, ..., N-1]. For i = 0, 1, ..., K-1: j = i + Intn(N - i);
//     swap idx[i] and idx[j]; the winner of rank i+1 is P[idx[i]]. (The
//     first K steps of a Fisher–Yates shuffle; no one wins twice.)
//  5. Walking the tiers in the given order, each tier with stock s > 0 takes
//     the next s ranks, or as many as remain.
//
// The result is the awards (user id, tier id, rank) in rank order.
//
// # Instant win
//
// Odds are in parts per million (OddsScale = 1,000,000). The roll of one
// participation is Intn(1000000) on the stream with domain
// "promoflow-instant-v1" and parts (seed, activity id, app id, event id),
// so a redelivered event rolls the same.
//
// The odds in force are the configured ones in the configured order, except
// that a tier with no stock left has 0 ppm; its share becomes "no prize"
// and no other tier's odds change (Effective). The roll wins the first tier
// i, in order, with roll < ppm0 + ppm1 + ... + ppmi, where a negative ppm
// counts as 0; if there is none, it wins nothing (Pick).
//
// A result records the odds in force (FormatOdds) as
// "tier0:ppm0,tier1:ppm1,..." in tier order, each ppm in decimal without
// sign or leading zeros; no tiers record as "". ParseOdds reads it back and
// refuses anything else, including a ppm over 1000000 and odds adding up to
// more than 1000000. Tier ids must be non-empty and contain neither ","
// nor ":".
//
// # Known answers
//
// With seed = the 32 bytes 0x01, 0x02, ..., 0x20:
//
//	SeedHash     ae216c2ef5247a3782c135efa279a3e4cdc61094270f5d2be58c6204b7a612c9
//
// With participants u1, u2, ..., u10 (normalized: u1 u10 u2 u3 ... u9):
//
//	Digest       d13f78e431f9e57d00c6d9116c69d3a0001b35f7df32bebd273b072a32dc1083
//
// The draw stream for activity "xmas" starts
//
//	0x9b59ac70fb7b671c 0xdba6955beb77f633 0xb0fb4e784526b831
//	0xb1c96b8e42bea0bf 0x207c73cde0feb26c 0x92c7f4548658ec18
//
// and the draw with tiers gold (stock 1), silver (stock 2) awards
//
//	rank 1 u8 gold, rank 2 u1 silver, rank 3 u3 silver
//
// Adding a tier bronze (stock 100) ranks everyone: u8 u1 u3 u2 u10 u5 u7
// u4 u6 u9. The rolls for activity "xmas", app "app-1" and events "evt-1"
// and "evt-2" are 197542 and 456687.
package fair
