package stream

import (
	"context"

	"github.com/promoflow/promoflow/schemas"
)

// BatchWriter is what a sink implements: an idempotent write of decoded
// events (replaying a batch leaves one row per result).
type BatchWriter interface {
	WriteBatch(ctx context.Context, events []*schemas.Envelope) error
}

// SinkStage returns a stage that writes every event it reads with w. The
// runtime commits offsets only after WriteBatch succeeded, and rewinds and
// retries with backoff when it fails, so a sink whose store is down holds
// its offsets and catches up when the store returns.
func SinkStage(name, group string, reads, handles []string, w BatchWriter) Stage {
	return Stage{
		Name:      name,
		Group:     group,
		Reads:     reads,
		Handles:   handles,
		WholePoll: true,
		Handler:   &sinkHandler{w: w, store: storeName(w)},
	}
}

// sinkHandler writes batches with a BatchWriter; the runner recognises it
// to observe the sink's batch sizes, write latency and errors.
type sinkHandler struct {
	w     BatchWriter
	store string
}

func (h *sinkHandler) Handle(ctx context.Context, b *Batch) (Result, error) {
	envs := make([]*schemas.Envelope, len(b.Events))
	for i, e := range b.Events {
		envs[i] = e.Env
	}
	return Result{}, h.w.WriteBatch(ctx, envs)
}

// storeName is the writer's Name() (mysql, clickhouse, memory), the store
// its failed writes are counted against, or "sink".
func storeName(w BatchWriter) string {
	if n, ok := w.(interface{ Name() string }); ok {
		return n.Name()
	}
	return "sink"
}
