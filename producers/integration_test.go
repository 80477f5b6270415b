package producers_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

// kcatPath returns the kcat binary. A missing kcat fails the test: it is
// the proof that apps in other languages can publish, and the test command
// installs it (Debian package kcat). PROMOFLOW_SKIP_INTEGRATION=1 skips.
func kcatPath(t *testing.T) string {
	t.Helper()
	if os.Getenv("PROMOFLOW_SKIP_INTEGRATION") == "1" {
		t.Skip("PROMOFLOW_SKIP_INTEGRATION=1")
	}
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatalf("kcat not found (apt-get install kcat, or set PROMOFLOW_SKIP_INTEGRATION=1): %v", err)
	}
	return path
}

func runKcat(ctx context.Context, t *testing.T, kcat string, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(ctx, kcat, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestIntegrationKcatPublishes proves that an app with no Go SDK can publish
// and read events with nothing but a Kafka client: kcat writes
// "key<TAB>envelope" lines, the pipeline's decoder accepts them, and they
// land on the same partitions as the SDK's records of the same keys.
func TestIntegrationKcatPublishes(t *testing.T) {
	kcat := kcatPath(t)
	addrs := kafka(t)
	ctx := testenv.Context(t, 30*time.Second)

	const app = "live-room"
	users := []string{"user-1", "user-2", "user-3", "user-4"}
	var in strings.Builder
	for i, u := range users {
		fmt.Fprintf(&in, "%s\t%s\n", u, envelopeJSON(t, fmt.Sprintf("kcat-%d", i), app, claim(u, "b-1")))
	}
	runKcat(ctx, t, kcat, in.String(), "-P", "-b", addrs[0], "-t", "coupon.claims", "-K", `\t`,
		// librdkafka hashes keys with CRC32 by default; murmur2 is what
		// franz-go and the Java client use, so one user's events share a
		// partition whichever client published them.
		"-X", "partitioner=murmur2_random",
		// As docs/events.md recommends: retries never duplicate.
		"-X", "acks=all", "-X", "enable.idempotence=true")

	// The same users through the SDK, to compare partitions.
	p := newProducer(t, addrs)
	for i, u := range users {
		if err := p.ClaimCoupon(ctx, fmt.Sprintf("sdk-%d", i), u, "b-1"); err != nil {
			t.Fatal(err)
		}
	}

	recs := consumeAll(t, addrs, "coupon.claims")
	if len(recs) != 2*len(users) {
		t.Fatalf("consumed %d records, want %d", len(recs), 2*len(users))
	}
	partition := map[string]int32{}
	kcatEvents := 0
	for _, r := range recs {
		env, err := schemas.Decode(r.Value)
		if err != nil {
			t.Fatalf("decoding %q: %v", r.Value, err)
		}
		if string(r.Key) != env.Key {
			t.Errorf("%s: record key %q, envelope key %q", env.EventID, r.Key, env.Key)
		}
		if strings.HasPrefix(env.EventID, "kcat-") {
			kcatEvents++
			if env.AppID != app {
				t.Errorf("%s: app_id %q", env.EventID, env.AppID)
			}
		}
		if p, ok := partition[env.Key]; ok && p != r.Partition {
			t.Errorf("key %s on partitions %d and %d: kcat and the SDK partition differently", env.Key, p, r.Partition)
		}
		partition[env.Key] = r.Partition
	}
	if kcatEvents != len(users) {
		t.Fatalf("consumed %d kcat events, want %d", kcatEvents, len(users))
	}

	// Reading works too: kcat sees every event, key and the type header.
	out := runKcat(ctx, t, kcat, "", "-C", "-b", addrs[0], "-t", "coupon.claims", "-o", "beginning", "-e",
		"-f", `%k\t%h\t%s\n`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2*len(users) {
		t.Fatalf("kcat read %d records, want %d:\n%s", len(lines), 2*len(users), out)
	}
	for _, l := range lines {
		key, rest, _ := strings.Cut(l, "\t")
		headers, value, _ := strings.Cut(rest, "\t")
		env, err := schemas.Decode([]byte(value))
		if err != nil {
			t.Fatalf("decoding kcat output %q: %v", value, err)
		}
		if key != env.Key {
			t.Errorf("kcat key %q, envelope key %q", key, env.Key)
		}
		if strings.HasPrefix(env.EventID, "sdk-") && !strings.Contains(headers, "promoflow.type=coupon.claim.requested") {
			t.Errorf("kcat headers %q lack promoflow.type", headers)
		}
	}
}
