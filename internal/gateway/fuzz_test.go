package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseBatch: the batch parser never panics, never returns more than
// maxBatch events, and what it returns is consistent: array elements are
// JSON values, lines are trimmed and numbered in order, and a limit of one
// event fewer than it found is refused with ErrTooManyEvents.
func FuzzParseBatch(f *testing.F) {
	f.Add([]byte(`[{"event_id":"a"},{"event_id":"b"}]`), false, uint16(500))
	f.Add([]byte("{\"event_id\":\"a\"}\r\n\n{\"event_id\":\n  \n"), true, uint16(500))
	f.Add([]byte(`[1,2,3]`), false, uint16(2))
	f.Add([]byte("a\nb\nc\n"), true, uint16(2))
	f.Add([]byte(`[`), false, uint16(1))
	f.Add([]byte(`[] []`), false, uint16(1))
	f.Add([]byte(`[{"a":"\xff"},"x"]`), false, uint16(10))
	f.Add([]byte(` [ null , [ ] , { } ] `), false, uint16(3))
	f.Fuzz(func(t *testing.T, body []byte, ndjson bool, limit uint16) {
		maxBatch := int(limit%1000) + 1
		items, err := parseBatch(body, ndjson, maxBatch)
		if err != nil {
			if items != nil {
				t.Fatalf("items returned with error %v", err)
			}
			if !errors.Is(err, ErrTooManyEvents) && !errors.Is(err, ErrEmptyBatch) && !errors.Is(err, ErrMalformedBatch) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(items) == 0 || len(items) > maxBatch {
			t.Fatalf("%d items with a limit of %d", len(items), maxBatch)
		}
		last := 0
		for i, it := range items {
			if len(it.raw) == 0 {
				t.Fatalf("item %d is empty", i)
			}
			if ndjson {
				if it.line <= last || bytes.ContainsRune(it.raw, '\n') || !bytes.Equal(it.raw, bytes.TrimSpace(it.raw)) {
					t.Fatalf("item %d: line %d after %d, %q", i, it.line, last, it.raw)
				}
				last = it.line
			} else if !json.Valid(it.raw) {
				t.Fatalf("array element %d %q is not JSON", i, it.raw)
			}
		}
		if n := len(items); n > 1 {
			if _, err := parseBatch(body, ndjson, n-1); !errors.Is(err, ErrTooManyEvents) {
				t.Fatalf("%d events accepted under a limit of %d: %v", n, n-1, err)
			}
		}
	})
}

// FuzzVerifySignature: verification never panics, whatever the signature
// header holds, and a signature made for one body never verifies for a
// different body, nor for another key.
func FuzzVerifySignature(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	f.Add(key, "POST", "/v1/events", "1762862400", []byte(`{"event_id":"e-1"}`), []byte(`{"event_id":"e-2"}`), "00")
	f.Add(key, "POST", "/v1/events:batch?atomic=true", "1762862400", []byte(`[]`), []byte(`[] `), "0246b51ca2b40f98d6324f03d1c1d3b9fb1080d45f79d221ebdeb2e08a21db8e")
	f.Add([]byte{}, "", "", "", []byte{}, []byte{0}, "ZZ")
	f.Add(key, "GET", "/readyz", "0", []byte(nil), []byte("\n"), "0246B51CA2B40F98D6324F03D1C1D3B9FB1080D45F79D221EBDEB2E08A21DB8E")
	f.Fuzz(func(t *testing.T, key []byte, method, uri, ts string, body, other []byte, sig string) {
		_ = verifySignature(key, method, uri, ts, body, sig)
		good := Signature(key, method, uri, ts, body)
		if !verifySignature(key, method, uri, ts, body, good) {
			t.Fatal("a signature does not verify its own request")
		}
		if !bytes.Equal(body, other) && verifySignature(key, method, uri, ts, other, good) {
			t.Fatalf("the signature of body %q verifies body %q", body, other)
		}
		// HMAC pads keys shorter than SHA-256's 64-byte block with zeros
		// and hashes longer ones, so keys that differ only by trailing zero
		// bytes, or a long key and its hash, are the same key.
		short := len(key) <= 64 && len(other) <= 64
		same := bytes.Equal(bytes.TrimRight(key, "\x00"), bytes.TrimRight(other, "\x00"))
		if short && !same && verifySignature(other, method, uri, ts, body, good) {
			t.Fatalf("a signature under key %q verifies under key %q", key, other)
		}
	})
}
