package notify

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// answerTransport answers every request with a fixed status and body,
// without a network.
type answerTransport struct {
	code int
	body string
}

func (a answerTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: a.code, Body: io.NopCloser(strings.NewReader(a.body)), Header: http.Header{}}, nil
}

// FuzzWebhookAnswer feeds the webhook sender hostile answers from a
// receiver: it never panics, returns one result per message, marks
// failed only users it sent, and retries (a call error) exactly on 408,
// 429 and 5xx.
func FuzzWebhookAnswer(f *testing.F) {
	f.Add(200, `{"failed":[{"user_id":"u1","permanent":true,"error":"x"}]}`)
	f.Add(200, `{"failed":[{"user_id":"nobody"},{"user_id":"u2"},{"user_id":"u2"}]}`)
	f.Add(200, `{"failed":{"user_id":"u1"}}`)
	f.Add(202, `not json`)
	f.Add(503, `down`)
	f.Add(404, ``)
	f.Add(99, `{}`)
	msgs := []Message{{ShardID: "c/0", CampaignID: "c", UserID: "u1"}, {ShardID: "c/0", CampaignID: "c", UserID: "u2"}, {ShardID: "c/0", CampaignID: "c", UserID: "u3"}}
	f.Fuzz(func(t *testing.T, code int, body string) {
		if code < 100 || code > 999 {
			return
		}
		w := &WebhookSender{URL: "http://receiver.invalid/", Secret: []byte(strings.Repeat("k", 32)), MaxBatch: 2,
			Client: &http.Client{Transport: answerTransport{code, body}}}
		errs, err := w.Send(context.Background(), msgs)
		retry := code == 408 || code == 429 || code >= 500
		if retry != (err != nil) {
			t.Fatalf("%d %q: call error %v", code, body, err)
		}
		if err != nil {
			return
		}
		if len(errs) != len(msgs) {
			t.Fatalf("%d results for %d messages", len(errs), len(msgs))
		}
		if code >= 300 {
			for _, e := range errs {
				if !IsPermanent(e) {
					t.Fatalf("%d: a message not failed for good: %v", code, e)
				}
			}
		}
	})
}
