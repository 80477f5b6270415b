package producers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/schemas"
)

// Record header names set on every record, so consumers in any language can
// dispatch on the event type without parsing the JSON value.
const (
	// HeaderType carries the envelope's type, e.g. coupon.claim.requested.
	HeaderType = "promoflow.type"
	// HeaderVersion carries the envelope's schema version in decimal, e.g. 1.
	HeaderVersion = "promoflow.version"
)

// Producer publishes events of one upstream app. It is safe for concurrent
// use; create one per app and process and share it.
type Producer struct {
	cl     *kgo.Client
	appID  string
	topo   *topology.File
	routes map[schemas.TypeVersion]route

	closeTimeout time.Duration
	closed       atomic.Bool
	closeOnce    sync.Once
}

// route is where events of one (type, version) go, or why they cannot go
// anywhere. Routes are computed once in New; topics.yaml does not change
// under a running producer.
type route struct {
	topic string
	err   error
}

// New validates cfg, applies opts and creates a franz-go client. The
// client is idempotent and waits for acks from all in-sync replicas
// (franz-go's defaults, which New does not change). New does not contact
// the brokers; the first publish does.
func New(cfg Config, opts ...Option) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := settings{
		clientID:           "promoflow-" + cfg.AppID,
		linger:             DefaultLinger,
		maxBufferedRecords: DefaultMaxBufferedRecords,
		closeTimeout:       DefaultCloseTimeout,
	}
	if cfg.ClientID != "" {
		s.clientID = cfg.ClientID
	}
	if cfg.Linger > 0 {
		s.linger = cfg.Linger
	}
	if cfg.MaxBufferedRecords > 0 {
		s.maxBufferedRecords = cfg.MaxBufferedRecords
	}
	for _, o := range opts {
		o(&s)
	}
	if s.topology == nil {
		f, err := topology.Load()
		if err != nil {
			return nil, fmt.Errorf("loading topology: %w", err)
		}
		s.topology = f
	}
	routes := map[schemas.TypeVersion]route{}
	for _, tv := range schemas.Known() {
		t, err := s.topology.TopicFor(tv)
		if err != nil {
			routes[tv] = route{err: fmt.Errorf("%w: %w", ErrNoTopic, err)}
			continue
		}
		routes[tv] = route{topic: t.Name}
	}
	kopts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ClientID(s.clientID),
		kgo.ProducerLinger(s.linger),
		kgo.MaxBufferedRecords(s.maxBufferedRecords),
		// Spelled out although they are franz-go's defaults: they are
		// the producing guarantee this package documents.
		kgo.RequiredAcks(kgo.AllISRAcks()),
	}
	kopts = append(kopts, s.clientOpts...)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	return &Producer{
		cl:           cl,
		appID:        cfg.AppID,
		topo:         s.topology,
		routes:       routes,
		closeTimeout: s.closeTimeout,
	}, nil
}

// AppID returns the app the producer publishes for.
func (p *Producer) AppID() string { return p.appID }

// Publish builds an envelope for payload p under the producer's AppID,
// validates it and waits until Kafka acknowledges it. eventID is the
// idempotency key of every decision made on the event: publish a retry of
// the same fact with the same eventID. A zero occurredAt means now.
//
// An event that fails validation is not sent; the error wraps its
// *schemas.InvalidError (see schemas.ReasonOf).
func (p *Producer) Publish(ctx context.Context, eventID string, occurredAt time.Time, pl schemas.Payload) error {
	env, err := p.envelope(eventID, occurredAt, pl)
	if err != nil {
		return err
	}
	return p.publishEnvelope(ctx, env)
}

// PublishAsync is Publish without waiting: it buffers the event and calls
// fn with nil once Kafka acknowledges it, or with the error. An event that
// fails validation is not buffered and fn is called before PublishAsync
// returns. Otherwise fn runs on the client's callback goroutine, one call at
// a time, so it must be quick and must not block, publish synchronously or
// Flush. fn may be nil. PublishAsync blocks while the producer's buffer is
// full, until ctx ends.
//
// ctx stays attached to the record: if it ends before the record is sent,
// the record fails. Do not pass a request-scoped context that ends as soon
// as PublishAsync returns; use one that lives as long as delivery may take.
func (p *Producer) PublishAsync(ctx context.Context, eventID string, occurredAt time.Time, pl schemas.Payload, fn func(error)) {
	if fn == nil {
		fn = func(error) {}
	}
	env, err := p.envelope(eventID, occurredAt, pl)
	if err != nil {
		fn(err)
		return
	}
	rec, err := p.prepare(env)
	if err != nil {
		fn(err)
		return
	}
	p.produce(ctx, rec, fn)
}

// PublishEnvelope validates a pre-built envelope and waits until Kafka
// acknowledges it. The envelope's AppID must be the producer's, or the
// error is ErrWrongApp; Key must be the payload's partition key.
func (p *Producer) PublishEnvelope(ctx context.Context, env *schemas.Envelope) error {
	if env == nil {
		return errors.New("publishing envelope: nil envelope")
	}
	if env.AppID != p.appID {
		return fmt.Errorf("publishing event %q: %w (app_id %q, producer is %q)", env.EventID, ErrWrongApp, env.AppID, p.appID)
	}
	return p.publishEnvelope(ctx, env)
}

// PublishRaw decodes and validates one JSON envelope (as an app in any
// language would write it), checks its app_id like PublishEnvelope and
// waits until Kafka acknowledges it. The bytes are sent as given.
func (p *Producer) PublishRaw(ctx context.Context, data []byte) error {
	env, err := schemas.Decode(data)
	if err != nil {
		return fmt.Errorf("decoding event: %w", err)
	}
	if env.AppID != p.appID {
		return fmt.Errorf("publishing event %q: %w (app_id %q, producer is %q)", env.EventID, ErrWrongApp, env.AppID, p.appID)
	}
	topic, err := p.route(env.TypeVersion())
	if err != nil {
		return fmt.Errorf("routing event %q: %w", env.EventID, err)
	}
	return p.produceSync(ctx, p.record(topic, env, data))
}

// ClaimCoupon publishes a coupon.claim.requested event: userID asks for a
// coupon of batchID, occurring now. It waits for the acknowledgement.
func (p *Producer) ClaimCoupon(ctx context.Context, eventID, userID, batchID string) error {
	return p.Publish(ctx, eventID, time.Now(), schemas.ClaimRequested{BatchID: batchID, UserID: userID})
}

// DefineBatch publishes a coupon.batch.defined event creating or updating
// batch b, occurring now. Processors ignore a revision that is not higher
// than the one they hold. It waits for the acknowledgement.
func (p *Producer) DefineBatch(ctx context.Context, eventID string, b schemas.BatchDefined) error {
	return p.Publish(ctx, eventID, time.Now(), b)
}

// Flush waits until every buffered record is acknowledged or failed, or ctx
// ends. Failures are reported to their Publish or PublishAsync callers.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return nil
}

// Close flushes buffered records (for at most the close timeout, see
// WithCloseTimeout) and closes the client. Records still buffered then fail.
// Close is idempotent; publishing after it fails with ErrClosed.
func (p *Producer) Close() {
	p.closeOnce.Do(func() {
		p.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), p.closeTimeout)
		defer cancel()
		_ = p.cl.Flush(ctx) // failures reach each record's caller
		p.cl.Close()
	})
}

func (p *Producer) envelope(eventID string, occurredAt time.Time, pl schemas.Payload) (*schemas.Envelope, error) {
	if pl == nil {
		return nil, errors.New("building envelope: nil payload")
	}
	if occurredAt.IsZero() {
		occurredAt = time.Now()
	}
	env, err := schemas.New(eventID, p.appID, occurredAt, pl)
	if err != nil {
		return nil, fmt.Errorf("building envelope: %w", err)
	}
	return env, nil
}

func (p *Producer) publishEnvelope(ctx context.Context, env *schemas.Envelope) error {
	rec, err := p.prepare(env)
	if err != nil {
		return err
	}
	return p.produceSync(ctx, rec)
}

// prepare validates env exactly as a processor will after it crosses Kafka
// and builds its record.
func (p *Producer) prepare(env *schemas.Envelope) (*kgo.Record, error) {
	b, err := schemas.Validate(env)
	if err != nil {
		return nil, fmt.Errorf("validating %s event %q: %w", env.Type, env.EventID, err)
	}
	topic, err := p.route(env.TypeVersion())
	if err != nil {
		return nil, fmt.Errorf("routing event %q: %w", env.EventID, err)
	}
	return p.record(topic, env, b), nil
}

func (p *Producer) route(tv schemas.TypeVersion) (string, error) {
	r, ok := p.routes[tv]
	if !ok {
		// Validation refuses unknown types first; this guards callers
		// that route without validating.
		return "", fmt.Errorf("%w: no schema for %s", ErrNoTopic, tv)
	}
	return r.topic, r.err
}

// record builds the Kafka record of a validated envelope. The record
// timestamp is left to the client (now) rather than occurred_at: retention
// runs on record timestamps, and a backfilled event must not be deleted the
// moment it is written.
func (p *Producer) record(topic string, env *schemas.Envelope, value []byte) *kgo.Record {
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(env.Key),
		Value: value,
		Headers: []kgo.RecordHeader{
			{Key: HeaderType, Value: []byte(env.Type)},
			{Key: HeaderVersion, Value: []byte(strconv.Itoa(env.Version))},
		},
	}
}

func (p *Producer) produceSync(ctx context.Context, rec *kgo.Record) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if err := p.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("producing to %s: %w", rec.Topic, err)
	}
	return nil
}

func (p *Producer) produce(ctx context.Context, rec *kgo.Record, fn func(error)) {
	if p.closed.Load() {
		fn(ErrClosed)
		return
	}
	p.cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
		if err != nil {
			err = fmt.Errorf("producing to %s: %w", r.Topic, err)
		}
		fn(err)
	})
}
