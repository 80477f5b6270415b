package stream

import (
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/metrics"
	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/schemas"
)

// Config configures a Runner. Zero fields take the documented defaults.
type Config struct {
	// Brokers are the Kafka seed brokers. Required.
	Brokers []string
	// DLQTopic receives records that fail to decode or that handlers
	// refuse, overriding the default "promoflow.dlq".
	DLQTopic string
	// MaxPollRecords bounds the records handled per poll, overriding the
	// default of 5000.
	MaxPollRecords int
	// MinBackoff and MaxBackoff bound the exponential wait after a failed
	// batch, overriding the defaults of 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// DrainTimeout bounds how long the batch in flight at shutdown may take
	// to finish, overriding the default of 15s.
	DrainTimeout time.Duration
	// SessionTimeout is the group session timeout, overriding franz-go's
	// default of 45s; a member silent this long loses its partitions.
	SessionTimeout time.Duration
	// CommitInterval, when positive, commits offsets in the background at
	// most this often instead of after every poll: fewer commits at high
	// throughput, in exchange for more records redelivered after a crash.
	// Offsets are still only marked after the outputs are acknowledged, and
	// are committed before a partition is revoked. Default 0 (every poll).
	CommitInterval time.Duration
	// Decoder validates input records; its zero value uses the schema defaults.
	Decoder schemas.Decoder
	// Topology is the parsed topics.yaml, overriding the embedded file.
	Topology *topology.File
	// Fencer hands out epochs for stages with Fenced set. Required for them.
	Fencer Fencer
	// Logger receives the runtime's logs, overriding slog.Default().
	Logger *slog.Logger
	// ClientOpts are extra franz-go options (TLS, SASL, client id, ...).
	ClientOpts []kgo.Opt
	// Observer, if set, is told about every batch (metrics).
	Observer Observer
	// Metrics receives the stage's Prometheus metrics (internal/metrics);
	// nil records none.
	Metrics *metrics.Metrics
}

// Observer receives runtime events. Implementations must be fast and safe
// for concurrent use.
type Observer interface {
	// BatchDone is called after a batch's outputs were acknowledged and its
	// offsets committed: n inputs, out outputs, dead dead letters.
	BatchDone(stage, topic string, partition int32, n, out, dead int, took time.Duration)
}

func (c *Config) defaults() error {
	if len(c.Brokers) == 0 {
		return errors.New("stream: no Kafka brokers configured")
	}
	if c.DLQTopic == "" {
		c.DLQTopic = "promoflow.dlq"
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 5000
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Topology == nil {
		t, err := topology.Load()
		if err != nil {
			return err
		}
		c.Topology = t
	}
	return nil
}
