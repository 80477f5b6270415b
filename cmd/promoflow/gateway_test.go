package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/promoflow/promoflow/internal/gateway"
	"github.com/promoflow/promoflow/internal/testenv"
	"github.com/promoflow/promoflow/schemas"
)

const gatewayTestKey = "6f1c2b8e4d3a5f7091b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718"

func TestGatewayConfigDefaults(t *testing.T) {
	clearConfigEnv(t)
	c, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	g := c.Gateway
	if g.Addr != "127.0.0.1:8090" || g.Apps != nil || g.MaxBody != 1<<20 || g.MaxBatch != 500 || g.MaxSkew != 5*time.Minute ||
		g.RatePerApp != 1000 || g.BurstPerApp != 1000 || g.ReplayCacheSize != 100_000 || g.PublishTimeout != 10*time.Second {
		t.Errorf("gateway defaults %+v", g)
	}
	c, err = loadConfig(writeConfig(t, "gateway:\n  max_batch: 2000\n  apps:\n    - {app_id: shop, key_env: SHOP_KEY}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.BurstPerApp != 2000 || len(c.Gateway.Apps) != 1 {
		t.Errorf("burst_per_app defaults to max_batch when larger: %+v", c.Gateway)
	}
}

func TestGatewayConfigRejects(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"key in the file", "gateway:\n  apps:\n    - {app_id: shop, key: abc}\n", "field key not found"},
		{"no key source", "gateway:\n  apps:\n    - {app_id: shop}\n", "key_env or key_file is required"},
		{"both key sources", "gateway:\n  apps:\n    - {app_id: shop, key_env: K, key_file: /k}\n", "both set"},
		{"bad app id", "gateway:\n  apps:\n    - {app_id: Shop, key_env: K}\n", "apps[0].app_id"},
		{"app twice", "gateway:\n  apps:\n    - {app_id: shop, key_env: K}\n    - {app_id: shop, key_env: L}\n", "listed twice"},
		{"bad env name", "gateway:\n  apps:\n    - {app_id: shop, key_env: \"A-B\"}\n", "not an environment variable name"},
		{"burst below batch", "gateway:\n  burst_per_app: 10\n", "gateway.burst_per_app 10"},
		{"negative rate", "gateway:\n  rate_per_app: -1\n", "gateway.rate_per_app"},
		{"tiny skew", "gateway:\n  max_skew: 10ms\n", "gateway.max_skew"},
		{"huge body", "gateway:\n  max_body: 1073741824\n", "gateway.max_body"},
		{"negative batch", "gateway:\n  max_batch: -5\n", "gateway.max_batch"},
		{"negative replay cache", "gateway:\n  replay_cache_size: -1\n", "gateway.replay_cache_size"},
		{"long publish timeout", "gateway:\n  publish_timeout: 1h\n", "gateway.publish_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clearConfigEnv(t)
			_, err := loadConfig(writeConfig(t, tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestGatewayKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.key")
	if err := os.WriteFile(good, []byte("  "+gatewayTestKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open.key")
	if err := os.WriteFile(open, []byte(gatewayTestKey), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SHOP_KEY": gatewayTestKey, "SHORT_KEY": "too-short-key-of-31-bytes-xxxxx"}
	getenv := func(k string) string { return env[k] }

	g := GatewayConfig{Apps: []GatewayApp{{AppID: "shop", KeyEnv: "SHOP_KEY"}, {AppID: "live", KeyFile: good}}}
	apps, err := g.loadApps(getenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 2 || string(apps[0].Key) != gatewayTestKey || string(apps[1].Key) != gatewayTestKey {
		t.Fatalf("apps %+v", apps)
	}
	for _, tc := range []struct {
		name string
		app  GatewayApp
		want string
	}{
		{"unset variable", GatewayApp{AppID: "shop", KeyEnv: "NOPE"}, "NOPE holding its key is not set"},
		{"short key from the environment", GatewayApp{AppID: "shop", KeyEnv: "SHORT_KEY"}, "the key in $SHORT_KEY is 31 bytes; at least 32"},
		{"short key file", GatewayApp{AppID: "shop", KeyFile: short}, "is 10 bytes; at least 32"},
		{"missing file", GatewayApp{AppID: "shop", KeyFile: filepath.Join(dir, "nope")}, "key_file"},
		{"file readable by others", GatewayApp{AppID: "shop", KeyFile: open}, "must not be readable"},
	} {
		g := GatewayConfig{Apps: []GatewayApp{tc.app}}
		_, err := g.loadApps(getenv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), env["SHORT_KEY"]) || strings.Contains(err.Error(), "0123456789")) {
			t.Errorf("%s: the error shows the key: %v", tc.name, err)
		}
	}
	if _, err := (&GatewayConfig{}).loadApps(getenv); err == nil || !strings.Contains(err.Error(), "no app is configured") {
		t.Errorf("no apps: %v", err)
	}
}

// TestGatewayCommand starts `promoflow gateway` as configured in a file,
// against a Kafka broker, publishes a signed event through it, and stops it
// as SIGTERM would.
func TestGatewayCommand(t *testing.T) {
	clearConfigEnv(t)
	brokers, _ := testenv.KafkaWithTopics(t)
	path := writeConfig(t, "kafka:\n  brokers: ["+strings.Join(brokers, ",")+"]\n"+
		"gateway:\n  addr: 127.0.0.1:0\n  apps:\n    - app_id: live-room\n      key_env: PF_TEST_GATEWAY_KEY\n")
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if k == "PF_TEST_GATEWAY_KEY" {
			return gatewayTestKey
		}
		return ""
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- runGateway(ctx, cfg, getenv, func(a net.Addr) { addrc <- a }) }()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a.String()
	case err := <-done:
		t.Fatalf("the gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the gateway did not start within 10s")
	}

	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	env, err := schemas.New("claim-gw-1", "live-room", time.Now().Add(-time.Minute), schemas.ClaimRequested{BatchID: "b-1", UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := env.Encode()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", strings.NewReader(string(body)))
	if err := gateway.Sign(req, "live-room", []byte(gatewayTestKey), time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(b), `"topic":"coupon.claims"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("stopping: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the gateway did not stop")
	}
}

func TestGatewayRefusesToStartWithABadKey(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("PF_TEST_SHORT_GATEWAY_KEY", "short")
	path := writeConfig(t, "gateway:\n  addr: 127.0.0.1:0\n  apps:\n    - {app_id: shop, key_env: PF_TEST_SHORT_GATEWAY_KEY}\n")
	code, out, errOut := giftRun(t, "gateway", "--config", path)
	if code != 1 || !strings.Contains(errOut, "at least 32 are required") || strings.Contains(out+errOut, "gateway listening") {
		t.Fatalf("exited %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, _, errOut = giftRun(t, "gateway", "--config", writeConfig(t, "gateway:\n  addr: 127.0.0.1:0\n"))
	if code != 1 || !strings.Contains(errOut, "no app is configured") {
		t.Fatalf("without apps: exited %d: %s", code, errOut)
	}
}

func TestGatewayHelp(t *testing.T) {
	code, out, errOut := giftRun(t, "help", "gateway")
	if code != 0 {
		t.Fatalf("help gateway exited %d: %s", code, errOut)
	}
	for _, want := range []string{"POST /v1/events", "/v1/events:batch", "atomic=true", "X-Promoflow-Signature", "HMAC-SHA256", "at-least-once", "docs/gateway.md", "--addr"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
