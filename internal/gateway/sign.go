package gateway

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Request headers of the signature scheme (docs/gateway.md).
const (
	// HeaderApp names the app that signed the request: its app_id.
	HeaderApp = "X-Promoflow-App"
	// HeaderTimestamp is when the request was signed, in unix seconds.
	HeaderTimestamp = "X-Promoflow-Timestamp"
	// HeaderSignature is the lowercase hex HMAC-SHA256 of the string to
	// sign (see Signature) under the app's key.
	HeaderSignature = "X-Promoflow-Signature"
)

// MinKeyBytes is the shortest key an app may have: 32 bytes, the output
// size of SHA-256. `openssl rand -hex 32` makes a 64-byte key.
const MinKeyBytes = 32

// stringToSign is what the signature covers: the method, the path with its
// query exactly as sent, the timestamp header and the SHA-256 of the body,
// one per line, with no final newline.
func stringToSign(method, requestURI, timestamp string, body []byte) []byte {
	sum := sha256.Sum256(body)
	b := make([]byte, 0, len(method)+len(requestURI)+len(timestamp)+3+2*len(sum))
	b = append(b, method...)
	b = append(b, '\n')
	b = append(b, requestURI...)
	b = append(b, '\n')
	b = append(b, timestamp...)
	b = append(b, '\n')
	return hex.AppendEncode(b, sum[:])
}

// mac returns HMAC-SHA256(key, stringToSign(...)).
func mac(key []byte, method, requestURI, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(stringToSign(method, requestURI, timestamp, body))
	return m.Sum(nil)
}

// Signature returns the value of the X-Promoflow-Signature header for a
// request:
//
//	hex(HMAC-SHA256(key, method + "\n" + requestURI + "\n" + timestamp + "\n" + hex(SHA-256(body))))
//
// requestURI is the path and query as they appear in the request line
// ("/v1/events:batch?atomic=true"), timestamp the X-Promoflow-Timestamp
// header (decimal unix seconds) and hex lowercase.
func Signature(key []byte, method, requestURI, timestamp string, body []byte) string {
	return hex.EncodeToString(mac(key, method, requestURI, timestamp, body))
}

// verifySignature reports whether sig (hex, either case) is the signature
// of the request under key. The comparison takes the same time whatever
// the bytes of sig are.
func verifySignature(key []byte, method, requestURI, timestamp string, body []byte, sig string) bool {
	got, err := hex.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	return hmac.Equal(got, mac(key, method, requestURI, timestamp, body))
}

// Sign signs req for appID with key at time now: it sets the three
// X-Promoflow-* headers. It reads the whole body to hash it and puts it
// back (with GetBody set, so redirects and retries can resend it). Sign a
// request again before every retry: the gateway refuses a signature it has
// already seen.
func Sign(req *http.Request, appID string, key []byte, now time.Time) error {
	if len(key) < MinKeyBytes {
		return fmt.Errorf("signing request: %w (%d bytes)", ErrKeyTooShort, len(key))
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return fmt.Errorf("signing request: reading the body: %w", err)
		}
		body = b
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		req.ContentLength = int64(len(body))
	}
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set(HeaderApp, appID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Signature(key, method, req.URL.RequestURI(), ts, body))
	return nil
}
