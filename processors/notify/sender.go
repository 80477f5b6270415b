package notify

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Message is one notification to one user.
type Message struct {
	CampaignID string `json:"campaign_id"`
	ShardID    string `json:"shard_id"`
	UserID     string `json:"user_id"`
	Template   string `json:"template"`
	Title      string `json:"title"`
	Body       string `json:"body"`
	Link       string `json:"link,omitempty"`
	// IdempotencyKey is <campaign_id>:<user_id>. Promoflow sends a
	// campaign to a user once; a receiver that drops repeats of a key is
	// safe even where a send's answer was lost and it had to be tried
	// again.
	IdempotencyKey string `json:"idempotency_key"`
	// PlannedAt is when the planner cut the shard.
	PlannedAt time.Time `json:"planned_at"`
}

// Sender delivers notifications: the pluggable end of the fan-out.
//
// Send delivers msgs (one shard's, or part of it) and returns one error per
// message, nil for delivered. An error that is Permanent marks that user
// failed for good; any other error sends the user again later. An error
// for the whole call (the second result) means nothing is known delivered:
// the whole shard is tried again after a backoff.
type Sender interface {
	Send(ctx context.Context, msgs []Message) ([]error, error)
}

// permanentError is an error that trying again cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as one that trying again cannot fix (a refused
// address, an unsubscribed user).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// LogSender writes each message as one JSON line: for trying a campaign
// out, and for handing the notifications to another system by file.
type LogSender struct {
	mu sync.Mutex
	w  *bufio.Writer
}

// NewLogSender writes to w.
func NewLogSender(w io.Writer) *LogSender { return &LogSender{w: bufio.NewWriterSize(w, 256<<10)} }

// Send writes msgs and flushes them before it returns.
func (l *LogSender) Send(_ context.Context, msgs []Message) ([]error, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	enc := json.NewEncoder(l.w)
	enc.SetEscapeHTML(false)
	for i := range msgs {
		if err := enc.Encode(&msgs[i]); err != nil {
			return nil, err
		}
	}
	return make([]error, len(msgs)), l.w.Flush()
}

// WebhookSender POSTs each shard's messages to a URL as one JSON document:
//
//	{"messages": [Message, ...]}
//
// with the headers
//
//	Idempotency-Key: <shard_id>
//	X-Promoflow-Timestamp: <unix seconds>
//	X-Promoflow-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the secret>
//
// A 2xx answer delivers every message, except those the receiver lists
// in an optional {"failed": [{"user_id": ..., "permanent": true|false,
// "error": ...}]}. A 4xx answer (other than 408 and 429) fails the
// messages for good; a 408, 429, 5xx or a network error tries the shard
// again.
type WebhookSender struct {
	URL    string
	Secret []byte
	Client *http.Client
	// MaxBatch bounds the messages of one request (default 1000).
	MaxBatch int
	now      func() time.Time
}

// webhookAnswer is a receiver's optional 2xx body.
type webhookAnswer struct {
	Failed []struct {
		UserID    string `json:"user_id"`
		Permanent bool   `json:"permanent"`
		Error     string `json:"error"`
	} `json:"failed"`
}

// Send POSTs msgs in requests of at most MaxBatch.
func (w *WebhookSender) Send(ctx context.Context, msgs []Message) ([]error, error) {
	n := w.MaxBatch
	if n <= 0 {
		n = 1000
	}
	errs := make([]error, len(msgs))
	for lo := 0; lo < len(msgs); lo += n {
		hi := min(lo+n, len(msgs))
		if err := w.post(ctx, msgs[lo:hi], errs[lo:hi]); err != nil {
			if lo == 0 {
				return nil, err
			}
			// The earlier requests were delivered: only the rest is retried.
			for i := lo; i < len(msgs); i++ {
				errs[i] = err
			}
			return errs, nil
		}
	}
	return errs, nil
}

func (w *WebhookSender) post(ctx context.Context, msgs []Message, errs []error) error {
	body, err := json.Marshal(struct {
		Messages []Message `json:"messages"`
	}{msgs})
	if err != nil {
		return err
	}
	now := time.Now
	if w.now != nil {
		now = w.now
	}
	ts := strconv.FormatInt(now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", msgs[0].ShardID)
	req.Header.Set("X-Promoflow-Timestamp", ts)
	req.Header.Set("X-Promoflow-Signature", "sha256="+Sign(w.Secret, ts, body))
	client := w.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		var a webhookAnswer
		if len(bytes.TrimSpace(answer)) == 0 || json.Unmarshal(answer, &a) != nil {
			return nil
		}
		at := make(map[string]int, len(msgs))
		for i, m := range msgs {
			at[m.UserID] = i
		}
		for _, f := range a.Failed {
			i, ok := at[f.UserID]
			if !ok {
				continue
			}
			e := fmt.Errorf("webhook refused %s: %s", f.UserID, truncate(f.Error, 200))
			if f.Permanent {
				e = Permanent(e)
			}
			errs[i] = e
		}
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		return fmt.Errorf("webhook answered %d: %s", code, truncate(string(answer), 200))
	default:
		e := Permanent(fmt.Errorf("webhook answered %d: %s", code, truncate(string(answer), 200)))
		for i := range errs {
			errs[i] = e
		}
		return nil
	}
}

// Sign returns the hex HMAC-SHA256 of "<timestamp>.<body>" with secret: the
// webhook's X-Promoflow-Signature (after "sha256="), for receivers to check.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte("."))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
