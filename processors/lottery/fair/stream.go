package fair

import (
	"crypto/sha256"
	"encoding/binary"
)

// Stream is a deterministic stream of uniform 64-bit integers derived from a
// domain string and byte-string parts with SHA-256 in counter mode. Block i
// (i = 0, 1, 2, ...) is
//
//	SHA-256(domain || 0x00 || part1 || 0x00 || ... || partk || 0x00 || uint64be(i))
//
// and yields four values, read big-endian from bytes 0-7, 8-15, 16-23 and
// 24-31, used in that order. A Stream is not safe for concurrent use.
type Stream struct {
	in    []byte // prefix followed by 8 bytes of block counter
	block [sha256.Size]byte
	next  int // index of the next unused value in block; 4 means none left
	ctr   uint64
}

// NewStream returns the stream for domain and parts; the parts are joined
// after the domain with a 0x00 byte before each, and a final 0x00 precedes
// the block counter.
func NewStream(domain string, parts ...[]byte) *Stream {
	n := len(domain) + 1 + 8
	for _, p := range parts {
		n += len(p) + 1
	}
	in := make([]byte, 0, n)
	in = append(in, domain...)
	for _, p := range parts {
		in = append(in, 0)
		in = append(in, p...)
	}
	in = append(in, 0)
	in = append(in, make([]byte, 8)...)
	return &Stream{in: in, next: 4}
}

// Uint64 returns the next value of the stream.
func (s *Stream) Uint64() uint64 {
	if s.next == 4 {
		binary.BigEndian.PutUint64(s.in[len(s.in)-8:], s.ctr)
		s.block = sha256.Sum256(s.in)
		s.ctr++
		s.next = 0
	}
	v := binary.BigEndian.Uint64(s.block[8*s.next:])
	s.next++
	return v
}

// Intn returns a uniform integer in [0, n) by rejection sampling: it takes
// x = Uint64() until x < limit = 2^64 - (2^64 mod n) and returns x mod n.
// When n divides 2^64 no value is rejected. Intn panics if n is 0: asking
// for a number below 0 is a programming error, not bad input.
func (s *Stream) Intn(n uint64) uint64 {
	if n == 0 {
		panic("fair: Stream.Intn called with n == 0")
	}
	// 2^64 mod n equals (2^64 - n) mod n, which is -n mod n in uint64.
	rem := -n % n
	if rem == 0 {
		return s.Uint64() % n
	}
	limit := -rem // 2^64 - rem, which fits since rem > 0
	for {
		if x := s.Uint64(); x < limit {
			return x % n
		}
	}
}
