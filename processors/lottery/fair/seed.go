package fair

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
)

// seedSize is the length of a seed made by NewSeed: as long as a SHA-256
// output, so guessing it is as hard as inverting the commitment.
const seedSize = 32

// SeedHash returns the commitment to seed: the lowercase hex of SHA-256(seed).
func SeedHash(seed []byte) string {
	sum := sha256.Sum256(seed)
	return hex.EncodeToString(sum[:])
}

// NewSeed returns a new secret seed of 32 bytes from crypto/rand.
func NewSeed() ([]byte, error) {
	seed := make([]byte, seedSize)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("reading random seed: %w", err)
	}
	return seed, nil
}

// Normalize returns the participant set of users: a new slice sorted bytewise
// ascending with duplicates removed. users is not modified. Join order and
// repeated joins therefore never change a draw.
func Normalize(users []string) []string {
	out := slices.Clone(users)
	slices.Sort(out) // Go compares strings bytewise, as the spec requires.
	return slices.Compact(out)
}

// Digest returns the lowercase hex of SHA-256(u1 "\n" u2 "\n" ... un "\n")
// over sorted, which must be the output of Normalize; Digest hashes it as
// given and does not normalize it again. The digest of no participants is
// SHA-256 of the empty string.
func Digest(sorted []string) string {
	h := sha256.New()
	// Batch the ids into one buffer: hashing a million short ids one Write
	// at a time would cost a conversion and an interface call each.
	buf := make([]byte, 0, 64<<10)
	for _, u := range sorted {
		if len(buf)+len(u)+1 > cap(buf) && len(buf) > 0 {
			h.Write(buf)
			buf = buf[:0]
		}
		buf = append(buf, u...)
		buf = append(buf, '\n')
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}
