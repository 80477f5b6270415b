package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

func TestRunHelpNamesTheOperationsEndpoints(t *testing.T) {
	code, out, errOut := giftRun(t, "help", "run")
	if code != 0 {
		t.Fatalf("help run exited %d: %s", code, errOut)
	}
	for _, want := range []string{"--metrics-addr", "/metrics", "/healthz", "/readyz", ":9464", "docs/operations.md", "-log-format", "-log-level"} {
		if !strings.Contains(out, want) {
			t.Errorf("help run does not mention %s:\n%s", want, out)
		}
	}
	for _, cmd := range []string{"serve", "gateway"} {
		if _, out, _ := giftRun(t, "help", cmd); !strings.Contains(out, "/metrics") {
			t.Errorf("help %s does not mention /metrics", cmd)
		}
	}
	if _, out, _ := giftRun(t, "help"); !strings.Contains(out, "--log-format") {
		t.Errorf("the overview does not mention the global log flags:\n%s", out)
	}
}

func TestGlobalLogFlags(t *testing.T) {
	clearConfigEnv(t)
	t.Setenv("PROMOFLOW_LOG_FORMAT", "text")
	logFlags.format, logFlags.level = "json", "debug"
	t.Cleanup(func() { logFlags.format, logFlags.level = "", "" })
	c, err := loadConfig(writeConfig(t, "log: {format: text, level: warn}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Log.Format != "json" || c.Log.Level != "debug" {
		t.Errorf("log %+v: the flags must win over the file and the environment", c.Log)
	}
	logFlags.format, logFlags.level = "", ""

	for _, args := range [][]string{
		{"schemas", "list", "--log-format", "xml"},
		{"schemas", "list", "--log-level", "loud"},
		{"run", "--metrics-addr", "nowhere"},
	} {
		code, _, errOut := giftRun(t, args...)
		if code != 2 {
			t.Errorf("promoflow %s exited %d, want 2 (usage): %s", strings.Join(args, " "), code, errOut)
		}
	}
	if code, _, errOut := giftRun(t, "schemas", "list", "--log-format", "json", "--log-level", "warn"); code != 0 {
		t.Errorf("valid log flags refused: %s", errOut)
	}
	if logFlags.format != "json" {
		t.Error("the flag did not reach logFlags")
	}
	// The next command starts from the defaults again.
	giftRun(t, "schemas", "list")
	if logFlags.format != "" || logFlags.level != "" {
		t.Errorf("log flags leaked into the next command: %+v", logFlags)
	}
}

func TestMetricsListenValidation(t *testing.T) {
	for _, ok := range []string{":9464", "127.0.0.1:0", "[::1]:9464", "off"} {
		if err := (MetricsConfig{Listen: ok}).validate(); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"9464", "localhost", "on"} {
		if err := (MetricsConfig{Listen: bad}).validate(); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	c := defaultConfig(t)
	if c.Metrics.Listen != ":9464" {
		t.Errorf("default metrics.listen %q", c.Metrics.Listen)
	}
}

// failingCoupons is a CouponReader whose reads fail.
type failingCoupons struct{}

func (failingCoupons) UserCoupons(context.Context, string, ...string) ([]sinks.CouponRow, error) {
	return nil, errors.New("shard down")
}
func (failingCoupons) CouponOps(context.Context, string, string) ([]schemas.StateChanged, error) {
	return nil, nil
}

func TestCountingReaderCountsFailedReads(t *testing.T) {
	m := metrics.New()
	r := countingReader{failingCoupons{}, m}
	r.UserCoupons(context.Background(), "u1")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r.UserCoupons(ctx, "u1") // the caller gave up: not the store's failure
	s, _ := m.Snapshot()
	if got := s.Value("promoflow_store_errors_total", "store", "mysql", "op", "read"); got != 1 {
		t.Fatalf("read errors = %v, want 1", got)
	}
}
