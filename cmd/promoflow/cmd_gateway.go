package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/gateway"
	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/producers"
)

func init() {
	register(&command{
		name:    "gateway",
		summary: "serve the HTTP ingest gateway: signed event envelopes from apps that cannot speak Kafka",
		usage:   "[--addr HOST:PORT] [--brokers LIST] [--config FILE]",
		help: `Serves the HTTP ingest gateway (docs/gateway.md) for upstream apps that cannot
speak Kafka:

  POST /v1/events                    one envelope (application/json)
  POST /v1/events:batch[?atomic=true] a JSON array of envelopes, or one per line
                                     (Content-Type application/x-ndjson)
  GET  /healthz                      the process is up
  GET  /readyz                       Kafka is reachable
  GET  /metrics                      Prometheus metrics: requests per route and
                                     status code, their latency (docs/operations.md)

Each envelope is validated as the Go SDK does and published through it to the
topic topics.yaml names for its type; the answer says per event accepted or
rejected, with the reason. A batch is not all-or-nothing unless ?atomic=true
(then nothing is published unless every event is valid; publication is still
at-least-once: retry with the same event_ids).

Every request is signed by its app (gateway.apps: app_id with key_env or
key_file; keys of at least 32 bytes, never in the file):
  X-Promoflow-App, X-Promoflow-Timestamp (unix seconds) and
  X-Promoflow-Signature = hex(HMAC-SHA256(key, METHOD\nPATH?QUERY\nTIMESTAMP\nhex(SHA-256(body))))
Timestamps outside ±gateway.max_skew and replayed signatures are refused, and
an app may only publish envelopes with its own app_id. Limits: gateway.max_body,
gateway.max_batch, gateway.rate_per_app / burst_per_app (429 with Retry-After).

Serve it behind a TLS-terminating proxy. Stops cleanly on SIGINT/SIGTERM:
requests in flight finish, then the producers flush.

Example:
  export PROMOFLOW_GATEWAY_KEY_SHOP=$(openssl rand -hex 32)
  promoflow gateway --config promoflow.yaml --addr 0.0.0.0:8090`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			addr := fs.String("addr", "", "listen address (overrides gateway.addr)")
			return func(ctx context.Context, args []string) error {
				if len(args) > 0 {
					return usagef("unexpected arguments %q", args)
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				if *addr != "" {
					cfg.Gateway.Addr = *addr
				}
				return runGateway(ctx, cfg, os.Getenv, func(a net.Addr) {
					fmt.Fprintf(cmdStdout, "gateway listening on http://%s\n", a)
				})
			}
		},
	})
}

// runGateway serves the gateway until ctx ends, then stops taking requests,
// lets those in flight finish and flushes the producers. listening is told
// the address once the socket is open.
func runGateway(ctx context.Context, cfg *Config, getenv func(string) string, listening func(net.Addr)) error {
	log := cfg.logger()
	g := cfg.Gateway
	apps, err := g.loadApps(getenv)
	if err != nil {
		return err
	}
	topo, err := topology.Load()
	if err != nil {
		return fmt.Errorf("loading topics.yaml: %w", err)
	}
	ids := make([]string, len(apps))
	for i := range apps {
		id := apps[i].ID
		p, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: id, ClientID: "promoflow-gateway-" + id},
			producers.WithTopology(topo), producers.WithClientOpts(cfg.kafkaOpts()...))
		if err != nil {
			return fmt.Errorf("creating the producer of app %s: %w", id, err)
		}
		// Deferred before the server starts, so it runs after Shutdown:
		// requests in flight publish first, then the producers flush.
		defer p.Close()
		apps[i].Publisher = p
		ids[i] = id
	}
	probe, err := kgo.NewClient(append(cfg.kafkaOpts(), kgo.ClientID("promoflow-gateway-ready"))...)
	if err != nil {
		return fmt.Errorf("creating the readiness client: %w", err)
	}
	defer probe.Close()
	srv, err := gateway.New(gateway.Config{
		Apps:            apps,
		Topology:        topo,
		MaxBody:         g.MaxBody,
		MaxBatch:        g.MaxBatch,
		MaxSkew:         g.MaxSkew,
		RatePerApp:      g.RatePerApp,
		BurstPerApp:     g.BurstPerApp,
		ReplayCacheSize: g.ReplayCacheSize,
		PublishTimeout:  g.PublishTimeout,
		Ready:           probe.Ping,
		Logger:          log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", g.Addr)
	if err != nil {
		return fmt.Errorf("listening on gateway.addr: %w", err)
	}
	hs := srv.HTTPServer(g.Addr)
	hs.Handler = withMetrics("gateway", hs.Handler, metrics.New())
	log.Info("gateway listening", "addr", ln.Addr().String(), "apps", ids, "brokers", cfg.Kafka.Brokers)
	if listening != nil {
		listening(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving the gateway: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.PublishTimeout+10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down the gateway: %w", err)
	}
	log.Info("gateway stopped")
	return nil
}

// envName is a portable environment variable name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// gatewayAppID is the envelope schema's app_id pattern.
var gatewayAppID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// defaults fills in the gateway's defaults (docs/configuration.md).
func (g *GatewayConfig) defaults() {
	if g.Addr == "" {
		g.Addr = "127.0.0.1:8090"
	}
	if len(g.Apps) == 0 {
		g.Apps = nil // "apps: []" and no apps are the same
	}
	if g.MaxBody == 0 {
		g.MaxBody = gateway.DefaultMaxBody
	}
	if g.MaxBatch == 0 {
		g.MaxBatch = gateway.DefaultMaxBatch
	}
	if g.MaxSkew == 0 {
		g.MaxSkew = gateway.DefaultMaxSkew
	}
	if g.RatePerApp == 0 {
		g.RatePerApp = gateway.DefaultRatePerApp
	}
	if g.BurstPerApp == 0 {
		g.BurstPerApp = max(gateway.DefaultBurstPerApp, g.MaxBatch)
	}
	if g.ReplayCacheSize == 0 {
		g.ReplayCacheSize = gateway.DefaultReplayCacheSize
	}
	if g.PublishTimeout == 0 {
		g.PublishTimeout = gateway.DefaultPublishTimeout
	}
}

// validate checks the gateway section as written. The keys themselves are
// read only by `promoflow gateway` (loadApps), so that other commands do
// not need them.
func (g *GatewayConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("gateway."+format, args...)) }
	if g.MaxBody < 1<<10 || g.MaxBody > 64<<20 {
		bad("max_body %d: want 1024 to 67108864 bytes", g.MaxBody)
	}
	if g.MaxBatch < 1 || g.MaxBatch > 10_000 {
		bad("max_batch %d: want 1 to 10000", g.MaxBatch)
	}
	if g.MaxSkew < time.Second || g.MaxSkew > time.Hour {
		bad("max_skew %s: want 1s to 1h", g.MaxSkew)
	}
	if g.RatePerApp <= 0 || g.RatePerApp > 1_000_000 {
		bad("rate_per_app %g: want more than 0 and at most 1000000 events/s", g.RatePerApp)
	}
	if g.BurstPerApp < g.MaxBatch || g.BurstPerApp > 10_000_000 {
		bad("burst_per_app %d: want max_batch (%d) to 10000000, so a full batch can pass", g.BurstPerApp, g.MaxBatch)
	}
	if g.ReplayCacheSize < 1 || g.ReplayCacheSize > 10_000_000 {
		bad("replay_cache_size %d: want 1 to 10000000", g.ReplayCacheSize)
	}
	if g.PublishTimeout < time.Second || g.PublishTimeout > 5*time.Minute {
		bad("publish_timeout %s: want 1s to 5m", g.PublishTimeout)
	}
	seen := map[string]bool{}
	for i, a := range g.Apps {
		switch {
		case !gatewayAppID.MatchString(a.AppID):
			bad("apps[%d].app_id %.64q: does not match %s", i, a.AppID, gatewayAppID)
		case seen[a.AppID]:
			bad("apps[%d].app_id %s: listed twice", i, a.AppID)
		}
		seen[a.AppID] = true
		switch {
		case a.KeyEnv != "" && a.KeyFile != "":
			bad("apps[%d] (%s): key_env and key_file are both set; give the key one way", i, a.AppID)
		case a.KeyEnv == "" && a.KeyFile == "":
			bad("apps[%d] (%s): key_env or key_file is required (keys never go in this file)", i, a.AppID)
		case a.KeyEnv != "" && !envName.MatchString(a.KeyEnv):
			bad("apps[%d].key_env %.64q: not an environment variable name", i, a.KeyEnv)
		}
	}
	return errors.Join(errs...)
}

// loadApps reads each app's key from its environment variable or file and
// refuses a missing or short key. Errors name the variable or file, never
// the key.
func (g *GatewayConfig) loadApps(getenv func(string) string) ([]gateway.App, error) {
	if len(g.Apps) == 0 {
		return nil, errors.New("gateway.apps: no app is configured, so every request would be refused (docs/gateway.md)")
	}
	var apps []gateway.App
	var errs []error
	for i, a := range g.Apps {
		var key string
		from := ""
		if a.KeyEnv != "" {
			from = "$" + a.KeyEnv
			key = strings.TrimSpace(getenv(a.KeyEnv))
			if key == "" {
				errs = append(errs, fmt.Errorf("gateway.apps[%d] (%s): the environment variable %s holding its key is not set", i, a.AppID, a.KeyEnv))
				continue
			}
		} else {
			from = a.KeyFile
			var err error
			if key, err = readSecretFile(a.KeyFile); err != nil {
				errs = append(errs, fmt.Errorf("gateway.apps[%d] (%s).key_file: %w", i, a.AppID, err))
				continue
			}
		}
		if len(key) < gateway.MinKeyBytes {
			errs = append(errs, fmt.Errorf("gateway.apps[%d] (%s): the key in %s is %d bytes; at least %d are required (make one with: openssl rand -hex 32)",
				i, a.AppID, from, len(key), gateway.MinKeyBytes))
			continue
		}
		apps = append(apps, gateway.App{ID: a.AppID, Key: []byte(key)})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return apps, nil
}
