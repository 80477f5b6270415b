package notify

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCompileTemplates(t *testing.T) {
	for name, c := range map[string]struct {
		defs map[string]Template
		bad  string
	}{
		"ok":            {map[string]Template{"a": {Title: "Hi {{.UserID}}", Body: "from {{.CrowdID}}", Link: "https://x/{{.CampaignID}}"}}, ""},
		"empty":         {map[string]Template{"a": {Link: "x"}}, "both empty"},
		"bad name":      {map[string]Template{"a b": {Title: "t"}}, "a name is"},
		"parse error":   {map[string]Template{"a": {Title: "{{.UserID"}}, "title"},
		"unknown field": {map[string]Template{"a": {Body: "{{.Email}}"}}, "body"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := CompileTemplates(c.defs)
			if (c.bad == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.bad)) {
				t.Fatalf("err %v, want %q", err, c.bad)
			}
		})
	}
	tpl, _ := CompileTemplates(map[string]Template{"a": {Title: "Hi {{.UserID}}", Body: "<b>{{.CrowdID}}</b>", Link: "https://x/{{.CampaignID}}"}})
	m := Message{UserID: "u1", CampaignID: "c9"}
	if err := tpl.render("a", &m, "vip"); err != nil || m.Title != "Hi u1" || m.Body != "<b>vip</b>" || m.Link != "https://x/c9" {
		t.Fatalf("%+v %v", m, err)
	}
	if err := tpl.render("b", &m, "vip"); err == nil {
		t.Fatal("rendered an unknown template")
	}
}

// TestWebhookSender checks the request a receiver gets (signature,
// idempotency keys) and how each answer is read.
func TestWebhookSender(t *testing.T) {
	secret := []byte(strings.Repeat("s", 32))
	var answer atomic.Value
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		body, _ := io.ReadAll(r.Body)
		ts := r.Header.Get("X-Promoflow-Timestamp")
		if r.Header.Get("X-Promoflow-Signature") != "sha256="+Sign(secret, ts, body) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var doc struct{ Messages []Message }
		if err := json.Unmarshal(body, &doc); err != nil || r.Header.Get("Idempotency-Key") != doc.Messages[0].ShardID {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		a := answer.Load().([2]any)
		w.WriteHeader(a[0].(int))
		io.WriteString(w, a[1].(string))
	}))
	defer srv.Close()
	msgs := []Message{{CampaignID: "c", ShardID: "c/0", UserID: "u1", IdempotencyKey: "c:u1"}, {CampaignID: "c", ShardID: "c/0", UserID: "u2", IdempotencyKey: "c:u2"},
		{CampaignID: "c", ShardID: "c/0", UserID: "u3", IdempotencyKey: "c:u3"}}
	w := &WebhookSender{URL: srv.URL, Secret: secret, MaxBatch: 2, now: func() time.Time { return time.Unix(1_800_000_000, 0) }}
	ctx := context.Background()

	answer.Store([2]any{200, ""})
	errs, err := w.Send(ctx, msgs)
	if err != nil || errs[0] != nil || errs[1] != nil || errs[2] != nil || requests.Load() != 2 {
		t.Fatalf("2xx: %v %v after %d requests", errs, err, requests.Load())
	}
	answer.Store([2]any{200, `{"failed":[{"user_id":"u2","permanent":true,"error":"unsubscribed"},{"user_id":"u1","error":"busy"},{"user_id":"zz"}]}`})
	errs, err = w.Send(ctx, msgs[:2])
	if err != nil || errs[0] == nil || IsPermanent(errs[0]) || !IsPermanent(errs[1]) {
		t.Fatalf("2xx with failures: %v %v", errs, err)
	}
	answer.Store([2]any{503, "down"})
	if _, err := w.Send(ctx, msgs); err == nil || IsPermanent(err) {
		t.Fatalf("503: %v, want a retryable error", err)
	}
	answer.Store([2]any{429, ""})
	if _, err := w.Send(ctx, msgs); err == nil {
		t.Fatal("429: no error")
	}
	answer.Store([2]any{422, "bad template"})
	errs, err = w.Send(ctx, msgs)
	if err != nil || !IsPermanent(errs[0]) || !IsPermanent(errs[2]) {
		t.Fatalf("422: %v %v, want every message failed for good", errs, err)
	}
	wrong := &WebhookSender{URL: srv.URL, Secret: []byte("another secret of thirty-two bytes")}
	answer.Store([2]any{200, ""})
	errs, err = wrong.Send(ctx, msgs[:1])
	if err != nil || !IsPermanent(errs[0]) {
		t.Fatalf("a wrong secret: %v %v, want refused for good (401)", errs, err)
	}
	dead := &WebhookSender{URL: "http://127.0.0.1:1/"}
	if _, err := dead.Send(ctx, msgs); err == nil || IsPermanent(err) {
		t.Fatalf("connection refused: %v, want retryable", err)
	}
}

func TestPermanent(t *testing.T) {
	if Permanent(nil) != nil || IsPermanent(errors.New("x")) || !IsPermanent(Permanent(errors.New("x"))) {
		t.Fatal("Permanent")
	}
	if !IsPermanent(errors.Join(errors.New("a"), Permanent(errors.New("b")))) {
		t.Fatal("wrapped")
	}
}

func TestDedupe(t *testing.T) {
	got := dedupe([]string{"a", "b", "a", "c", "b"})
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatal(got)
	}
}

func TestShardEnd(t *testing.T) {
	short := []string{"a", "b", "c", "d", "e"}
	if shardEnd(short, 0, 2) != 2 || shardEnd(short, 4, 2) != 5 || shardEnd(short, 0, 10) != 5 {
		t.Fatal("count bound")
	}
	long := make([]string, 1000)
	for i := range long {
		long[i] = strings.Repeat("x", 128)
	}
	end := shardEnd(long, 0, 1000)
	if end >= 1000 || end*(128+3) > maxShardUserBytes || (end+1)*(128+3) <= maxShardUserBytes {
		t.Fatalf("byte bound: %d users of 128 bytes", end)
	}
}

// TestSignMatchesOpenSSL checks the signature docs/notifications.md tells
// receivers to compute with openssl.
func TestSignMatchesOpenSSL(t *testing.T) {
	path, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed")
	}
	secret, ts, body := strings.Repeat("k", 32), "1800000000", `{"messages":[{"user_id":"u1"}]}`
	cmd := exec.Command("sh", "-c", `printf '%s.%s' "$TS" "$BODY" | "$OPENSSL" dgst -sha256 -hmac "$SECRET" -hex`)
	cmd.Env = append(cmd.Environ(), "TS="+ts, "BODY="+body, "OPENSSL="+path, "SECRET="+secret)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.TrimSpace(string(out))
	got = got[strings.LastIndexByte(got, ' ')+1:]
	if want := Sign([]byte(secret), ts, []byte(body)); got != want {
		t.Fatalf("openssl %s, Sign %s", got, want)
	}
}
