package schemas

import (
	"crypto/sha256"
	"encoding/hex"
)

// ResultID derives the id of the result of one input event: the first 32
// hex digits of sha256(kind + "\x00" + app_id + "\x00" + event_id). The same
// input always yields the same id, so every sink can upsert by it. kind
// separates the results of different processors fed by one event.
func ResultID(kind, appID, eventID string) string {
	h := sha256.New()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(appID))
	h.Write([]byte{0})
	h.Write([]byte(eventID))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
