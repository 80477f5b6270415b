package stream

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/schemas"
)

// Event is one decoded and schema-valid input record.
type Event struct {
	Env    *schemas.Envelope
	Record *kgo.Record
}

// Batch is the slice of one partition's records a Handler gets at a time,
// in offset order.
type Batch struct {
	Topic     string
	Partition int32
	// Epoch is the fencing token of this worker's ownership of the
	// partition; 0 when the stage has no Fencer.
	Epoch  int64
	Events []Event
}

// FenceField names the partition in a store's fence record: "topic/partition".
func (b *Batch) FenceField() string { return fenceField(b.Topic, b.Partition) }

// DeadLetter is an input record the handler refuses; it goes to the
// dead-letter topic with Reason and Detail in its headers.
type DeadLetter struct {
	Record *kgo.Record
	Reason string
	Detail string
}

// Result is what a Handler returns for a Batch.
type Result struct {
	// Out are records to produce; the batch's offsets are committed only
	// after every one is acknowledged.
	Out []*kgo.Record
	// Dead are input records to route to the dead-letter topic.
	Dead []DeadLetter
	// Decisions counts the batch's decisions by kind, outcome and reason
	// for the metrics (promoflow_decisions_total); fill it with Decide.
	// The runtime counts them once the outputs are acknowledged.
	Decisions map[Decision]int
}

// Decision is one kind of decision with its outcome and reason, as the
// metrics count it. Every field must come from a small fixed set (a kind
// like "coupon.grant", an outcome like "granted", a reason code, "" for
// none): never an id.
type Decision struct {
	Kind, Outcome, Reason string
}

// Decide counts one decision of kind with its outcome and reason code
// ("" when there is none) in the result, for the metrics.
func (r *Result) Decide(kind, outcome, reason string) { r.DecideN(kind, outcome, reason, 1) }

// DecideN counts n decisions alike (a fan-out shard's users); n <= 0
// counts nothing.
func (r *Result) DecideN(kind, outcome, reason string, n int) {
	if n <= 0 {
		return
	}
	if r.Decisions == nil {
		r.Decisions = make(map[Decision]int, 4)
	}
	r.Decisions[Decision{kind, outcome, reason}] += n
}

// Handler processes batches. Handle is called concurrently for different
// partitions and sequentially for one partition. An error fails the batch:
// it is rewound and handled again after a backoff, so Handle must be
// idempotent. Return ErrFenced when the store refused the epoch.
type Handler interface {
	Handle(ctx context.Context, b *Batch) (Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, b *Batch) (Result, error)

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, b *Batch) (Result, error) { return f(ctx, b) }

// Stage declares one consumer group's work (goka's DefineGroup): what it
// reads, writes and handles, checked against topics.yaml at start.
type Stage struct {
	// Name identifies the stage in logs, metrics and `promoflow run --only`.
	Name string
	// Group is the consumer group the stage's instances join.
	Group string
	// Reads are the topics consumed.
	Reads []string
	// Writes are the topics the handler produces to (the dead-letter topic
	// is implied).
	Writes []string
	// Views are topics the stage reads whole through a View (declared for
	// the topology checks; the runner does not consume them).
	Views []string
	// Handles are the <type>.v<version> schemas the handler understands.
	Handles []string
	// Handler processes the records.
	Handler Handler
	// Fenced says whether the stage needs a fencing epoch per partition
	// (stateful processors do; idempotent sinks do not).
	Fenced bool
	// WholePoll hands the handler all partitions of a poll as one batch
	// (Partition -1) instead of one batch per partition. Sinks use it to
	// write few large batches; it gives up per-partition ordering, which an
	// idempotent upsert does not need.
	WholePoll bool
	// MaxPollRecords, when positive, overrides Config.MaxPollRecords for
	// this stage (sinks write fewer, larger batches).
	MaxPollRecords int
	// SkipInvalid makes the stage count and log records that fail to
	// decode instead of dead-lettering them. Set it on a stage that reads a
	// topic another stage owns (e.g. a sink archiving raw input events), so
	// that each bad record reaches the dead-letter topic once, from its owner.
	SkipInvalid bool
	// TickInterval is how often a Handler that is also a Ticker fires its
	// timers, overriding DefaultTickInterval (1s).
	TickInterval time.Duration
	// ClientOpts are extra franz-go options for this stage only (e.g.
	// kgo.FetchMinBytes and kgo.FetchMaxWait to let a sink's batches fill).
	ClientOpts []kgo.Opt
}

// Node returns the stage's declaration for topology checks.
func (s Stage) Node() topology.Node {
	return topology.Node{Name: s.Name, Group: s.Group, Reads: s.Reads, Writes: s.Writes, Views: s.Views, Handles: s.Handles}
}
