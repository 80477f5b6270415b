package producers

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/topology"
)

// Defaults of the settings a Config or an Option can override.
const (
	// DefaultLinger is how long a partition's batch waits for more records.
	DefaultLinger = 5 * time.Millisecond
	// DefaultMaxBufferedRecords bounds the records buffered in the client;
	// publishing blocks once it is reached.
	DefaultMaxBufferedRecords = 50_000
	// DefaultCloseTimeout bounds how long Close waits to flush.
	DefaultCloseTimeout = 10 * time.Second
)

// Config is the YAML-facing configuration of a Producer. Zero fields take
// the defaults; Options passed to New override the matching fields.
//
// TLS and SASL will become fields here; until then pass kgo.DialTLSConfig
// and kgo.SASL through WithClientOpts.
type Config struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string `yaml:"brokers"`
	// AppID names the upstream app that publishes. Every envelope is
	// stamped with it and the producer refuses envelopes of other apps.
	// It must match ^[a-z0-9][a-z0-9_-]{0,63}$ (the envelope's app_id).
	AppID string `yaml:"app_id"`
	// ClientID is the Kafka client id, for broker logs and quotas; the
	// default is "promoflow-" + AppID.
	ClientID string `yaml:"client_id"`
	// Linger is how long a partition's batch waits for more records
	// (a Go duration such as "5ms"); the default is DefaultLinger.
	Linger time.Duration `yaml:"linger"`
	// MaxBufferedRecords bounds the records buffered and in flight;
	// publishing blocks once it is reached. The default is
	// DefaultMaxBufferedRecords.
	MaxBufferedRecords int `yaml:"max_buffered_records"`
}

// appIDPattern is the envelope schema's app_id pattern, checked up front so
// a misconfigured app fails at New rather than on its first event.
var appIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// Validate checks that the config names brokers and a legal AppID and that
// no size or duration is negative. Every error it returns matches
// ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("brokers: at least one broker is required"))
	}
	for i, b := range c.Brokers {
		if b == "" {
			errs = append(errs, fmt.Errorf("brokers[%d]: empty address", i))
		}
	}
	if !appIDPattern.MatchString(c.AppID) {
		errs = append(errs, fmt.Errorf("app_id: %q does not match %s", c.AppID, appIDPattern))
	}
	if c.Linger < 0 {
		errs = append(errs, fmt.Errorf("linger: %s is negative", c.Linger))
	}
	if c.MaxBufferedRecords < 0 {
		errs = append(errs, fmt.Errorf("max_buffered_records: %d is negative", c.MaxBufferedRecords))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return nil
}

// settings is what New builds a Producer from: defaults, then Config, then
// Options.
type settings struct {
	clientID           string
	linger             time.Duration
	maxBufferedRecords int
	closeTimeout       time.Duration
	topology           *topology.File
	clientOpts         []kgo.Opt
}

// Option configures a Producer beyond its Config. Options are applied after
// the Config, so they win.
type Option func(*settings)

// WithClientID sets the Kafka client id, overriding the default of
// "promoflow-" + AppID.
func WithClientID(id string) Option { return func(s *settings) { s.clientID = id } }

// WithLinger sets how long a partition's batch waits for more records
// before it is sent, overriding the default of 5ms. Publish never waits for
// the linger: it sends its partition's batch at once.
func WithLinger(d time.Duration) Option { return func(s *settings) { s.linger = d } }

// WithMaxBufferedRecords bounds the records buffered and in flight,
// overriding the default of 50,000. Publishing blocks (until its context
// ends) while the bound is reached.
func WithMaxBufferedRecords(n int) Option {
	return func(s *settings) { s.maxBufferedRecords = n }
}

// WithCloseTimeout bounds how long Close waits for buffered records to be
// acknowledged, overriding the default of 10s. Records still buffered when
// it expires fail with the client's "client closed" error.
func WithCloseTimeout(d time.Duration) Option { return func(s *settings) { s.closeTimeout = d } }

// WithTopology routes events by f instead of the topics.yaml embedded in
// the binary, overriding the default of topology.Load().
func WithTopology(f *topology.File) Option { return func(s *settings) { s.topology = f } }

// WithClientOpts appends franz-go client options (TLS, SASL, logging,
// hooks, compression, ...) after Promoflow's own, so they win. There are
// none by default. Options that weaken delivery, such as
// kgo.DisableIdempotentWrite or kgo.RequiredAcks(kgo.LeaderAck()), are the
// caller's responsibility.
func WithClientOpts(opts ...kgo.Opt) Option {
	return func(s *settings) { s.clientOpts = append(s.clientOpts, opts...) }
}
