package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/internal/health"
	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/sinks"
)

// MetricsConfig configures the operations listener of `promoflow run`:
// /metrics, /healthz and /readyz (docs/operations.md). serve and gateway
// serve the same paths on their own address.
type MetricsConfig struct {
	// Listen is the listener's address, or "off" for none. Default :9464.
	Listen string `yaml:"listen"`
}

// Values of metrics.listen.
const (
	defaultMetricsListen = ":9464"
	metricsOff           = "off"
)

func (c *MetricsConfig) defaults() {
	if c.Listen == "" {
		c.Listen = defaultMetricsListen
	}
}

func (c MetricsConfig) validate() error {
	if c.Listen == metricsOff {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("metrics.listen %q: want host:port, :port or off: %v", c.Listen, err)
	}
	return nil
}

// logFlags are the global --log-format and --log-level of the command
// being run; loadConfig applies them over the file and the environment.
var logFlags struct{ format, level string }

// addGlobalFlags adds the flags every command takes.
func addGlobalFlags(fs *flag.FlagSet) {
	fs.Func("log-format", "log format, text or json (overrides log.format and PROMOFLOW_LOG_FORMAT)", func(v string) error {
		if v != "text" && v != "json" {
			return errors.New("want text or json")
		}
		logFlags.format = v
		return nil
	})
	fs.Func("log-level", "log level: debug, info, warn or error (overrides log.level and PROMOFLOW_LOG_LEVEL)", func(v string) error {
		var l slog.Level
		if err := l.UnmarshalText([]byte(v)); err != nil {
			return err
		}
		logFlags.level = v
		return nil
	})
}

// applyLogFlags applies --log-format and --log-level.
func (c *Config) applyLogFlags() {
	if logFlags.format != "" {
		c.Log.Format = logFlags.format
	}
	if logFlags.level != "" {
		c.Log.Level = logFlags.level
	}
}

// opsHandler serves /metrics, /healthz and /readyz.
func opsHandler(m *metrics.Metrics, ready *health.Checker) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", health.Healthz)
	mux.HandleFunc("GET /readyz", ready.Readyz)
	return mux
}

// withMetrics serves an HTTP server's own handler (which has its own
// /healthz and /readyz) instrumented, plus /metrics.
func withMetrics(server string, app http.Handler, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("/", m.HTTP(server, app))
	return mux
}

// listenOps starts the operations listener on addr; stop shuts it down.
func listenOps(addr string, h http.Handler, log *slog.Logger) (bound net.Addr, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listening on metrics.listen %s (set another address with --metrics-addr, or off): %w", addr, err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener stopped", "err", err)
		}
	}()
	return ln.Addr(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		<-done
	}, nil
}

// runStages is `promoflow run`: the operations listener first (so that
// /healthz answers while the stages connect, and /readyz says why they are
// not ready yet), then the pipeline until ctx ends. listening is told the
// listener's address.
func runStages(ctx context.Context, cfg *Config, stages []string, statsEvery time.Duration, listening func(net.Addr)) error {
	log := cfg.logger()
	m := metrics.New()
	var p atomic.Pointer[pipeline]
	checker := &health.Checker{Checks: func() []health.Check {
		if pl := p.Load(); pl != nil {
			return pl.checks()
		}
		return []health.Check{{Name: "startup", Probe: func(context.Context) (string, error) {
			return "", errors.New("connecting to the stores and checking the stages")
		}}}
	}}
	if cfg.Metrics.Listen != metricsOff {
		addr, stop, err := listenOps(cfg.Metrics.Listen, opsHandler(m, checker), log)
		if err != nil {
			return err
		}
		defer stop()
		log.Info("metrics and health listening", "addr", addr.String(), "paths", "/metrics /healthz /readyz")
		if listening != nil {
			listening(addr)
		}
	}
	pl, err := buildPipeline(ctx, cfg, stages, parts{log: log, metrics: m})
	if err != nil {
		return err
	}
	p.Store(pl)
	log.Info("promoflow run starting", "stages", strings.Join(stages, ","), "brokers", strings.Join(cfg.Kafka.Brokers, ","))
	if statsEvery > 0 {
		go func() {
			t := time.NewTicker(statsEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					for name, s := range pl.Stats() {
						log.Info("stage stats", "stage", name, "in", s.In, "out", s.Out, "dead", s.Dead, "failed_batches", s.FailedBatches, "fenced", s.Fenced)
					}
				}
			}
		}()
	}
	err = pl.Run(ctx)
	log.Info("promoflow run stopped")
	return err
}

// prober is a sink that can check, cheaply, that its store takes writes.
type prober interface {
	Probe(ctx context.Context) error
}

// usedSinks returns the sinks the chosen stages write with.
func usedSinks(stages []string, my, ch sinkWriter) []sinkWriter {
	var out []sinkWriter
	if has(stages, stageMySQL) && my != nil {
		out = append(out, my)
	}
	if has(stages, stageClickHouse) && ch != nil {
		out = append(out, ch)
	}
	return out
}

// checks are the pipeline's readiness checks: every stage consuming with
// its group assigned (Kafka answering), Redis answering, and each sink's
// store taking writes.
func (p *pipeline) checks() []health.Check {
	var cs []health.Check
	for _, r := range p.runners {
		cs = append(cs, health.Check{Name: "stage " + r.Stage().Name, Probe: r.Ready})
	}
	if p.rdb != nil {
		cs = append(cs, health.Check{Name: "redis", Probe: func(ctx context.Context) (string, error) {
			if err := p.rdb.Ping(ctx).Err(); err != nil {
				return "", fmt.Errorf("redis unreachable: %w", err)
			}
			return "", nil
		}})
	}
	for _, s := range p.sinks {
		name := "sink"
		if n, ok := s.(interface{ Name() string }); ok {
			name = n.Name()
		}
		pr, ok := s.(prober)
		if !ok {
			continue // in-memory stand-ins
		}
		cs = append(cs, health.Check{Name: name, Probe: func(ctx context.Context) (string, error) { return "", pr.Probe(ctx) }})
	}
	return cs
}

// countingReader counts the failed reads of the system of record.
type countingReader struct {
	sinks.CouponReader
	m *metrics.Metrics
}

func (c countingReader) UserCoupons(ctx context.Context, user string, states ...string) ([]sinks.CouponRow, error) {
	rows, err := c.CouponReader.UserCoupons(ctx, user, states...)
	if err != nil && ctx.Err() == nil {
		c.m.StoreError("mysql", "read")
	}
	return rows, err
}

// redisLog receives go-redis's own messages (a pool that cannot dial):
// the latest logger a command made, so that they come out structured like
// every other line.
var redisLog atomic.Pointer[slog.Logger]

// Set once, before any client exists: go-redis reads its logger unlocked.
func init() { redis.SetLogger(redisLogger{}) }

type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	l := redisLog.Load()
	if l == nil {
		l = slog.Default()
	}
	l.Warn("redis client", "detail", strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
}
