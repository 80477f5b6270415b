package gateway

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

func readDoc(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../docs/gateway.md")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestDocsCurlExample runs the curl + openssl example of docs/gateway.md,
// as written, against a gateway: the scheme documented for other languages
// is the one the gateway checks.
func TestDocsCurlExample(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	m := regexp.MustCompile("(?s)<!-- BEGIN TestDocsCurlExample -->\\s*```sh\n(.*?)```").FindStringSubmatch(readDoc(t))
	if m == nil {
		t.Fatal("docs/gateway.md has no tested curl example")
	}
	pub := &fakePublisher{}
	key := "8c6f0f0c2b7d4f3e9a1b5c7d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b" // like openssl rand -hex 32
	s, err := New(Config{
		Apps:   []App{{ID: "live-room", Key: []byte(key), Publisher: pub}},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", m[1])
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "APP=live-room", "KEY="+key, "GATEWAY="+srv.URL)
	out, err := cmd.CombinedOutput()
	t.Logf("output:\n%s", out)
	if err != nil {
		t.Fatalf("the example failed: %v", err)
	}
	for _, want := range []string{`{"accepted":1,"rejected":0,`, `{"accepted":2,"rejected":0,`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if n := len(pub.published()); n != 3 {
		t.Errorf("published %d events, want 3", n)
	}
}
