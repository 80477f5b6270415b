package verify

import (
	"encoding/hex"
	"fmt"
	"sort"
)

// Buckets is the number of buckets result ids are cut into: by their first
// two hex digits.
const Buckets = 256

// bucketLow[i] is the smallest id of bucket i ("" for bucket 0: the
// buckets cover every string, hex or not, in order).
var bucketLow = func() [Buckets]string {
	var b [Buckets]string
	for i := 1; i < Buckets; i++ {
		b[i] = hex.EncodeToString([]byte{byte(i)})
	}
	return b
}()

// bucketOf returns the bucket whose range holds id.
func bucketOf(id string) int {
	if len(id) >= 2 {
		if h, ok := unhex(id[0]); ok {
			if l, ok := unhex(id[1]); ok {
				return int(h<<4 | l)
			}
		}
	}
	// Not two lower-case hex digits (never made by schemas.ResultID): the
	// last bucket whose low bound is not above id.
	return sort.Search(Buckets, func(i int) bool { return i > 0 && bucketLow[i] > id }) - 1
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// MaxRanges bounds how many ranges check 2 cuts a table into.
const MaxRanges = 4096

// idRanges cuts the id space into n contiguous ranges [from, to) by the
// leading hex digits (n a power of two up to MaxRanges; an empty bound is
// open). With n = Buckets they are the buckets. Fixed-width lower-case hex
// sorts as its numbers do, and the first and last ranges are open, so the
// ranges cover every string, hex or not.
func idRanges(n int) [][2]string {
	n = max(1, min(n, MaxRanges))
	const space = MaxRanges // ids by their first three hex digits
	step := space / n
	out := make([][2]string, 0, n)
	for i := 0; i < space; i += step {
		var r [2]string
		if i > 0 {
			r[0] = fmt.Sprintf("%03x", i)
		}
		if i+step < space {
			r[1] = fmt.Sprintf("%03x", i+step)
		}
		out = append(out, r)
	}
	return out
}

// rangesFor returns how many ranges suit about rows ids: a power of two
// giving each range about four pages of pageSize, at most MaxRanges.
func rangesFor(rows int64, pageSize int) int {
	n := 1
	for n < MaxRanges && rows > int64(n)*4*int64(pageSize) {
		n *= 2
	}
	return n
}

// idKey is a result id as a map key: the 16 bytes its 32 hex digits spell.
type idKey [16]byte

// keyOf returns id's key, or false when id is not 32 lower-case hex digits.
func keyOf(id string) (idKey, bool) {
	var k idKey
	if len(id) != 32 {
		return k, false
	}
	for i := range 16 {
		h, ok1 := unhex(id[2*i])
		l, ok2 := unhex(id[2*i+1])
		if !ok1 || !ok2 {
			return k, false
		}
		k[i] = h<<4 | l
	}
	return k, true
}

func (k idKey) String() string { return hex.EncodeToString(k[:]) }

// bucket returns the key's bucket (its first byte).
func (k idKey) bucket() int { return int(k[0]) }

// bucketGroups splits the buckets into groups of at most per buckets each,
// as [lo, hi) pairs.
func bucketGroups(per int) [][2]int {
	per = max(1, min(per, Buckets))
	var out [][2]int
	for lo := 0; lo < Buckets; lo += per {
		out = append(out, [2]int{lo, min(lo+per, Buckets)})
	}
	return out
}

// MaxIDsInMemory is how many ids check 1 aims to hold in memory at a time
// when the buckets per group are left to it: about 100 bytes each (a Go map
// of 40-byte entries, growth included), so about 200 MB.
const MaxIDsInMemory = 2_000_000

// bucketsPerGroup returns how many buckets a group may own for about ids
// ids in all (an upper bound from the planned offsets) to stay within
// MaxIDsInMemory per group.
func bucketsPerGroup(ids int64) int {
	if ids <= MaxIDsInMemory {
		return Buckets
	}
	n := (ids + MaxIDsInMemory - 1) / MaxIDsInMemory // groups
	return int(max(1, Buckets/n))
}
