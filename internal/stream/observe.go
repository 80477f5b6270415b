package stream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Causes of a failed batch, as promoflow_batch_failures_total labels them.
const (
	causeEpoch   = "epoch"
	causeHandler = "handler"
	causeProduce = "produce"
	causeCommit  = "commit"
	causeFenced  = "fenced"
)

// observeDone records a partition's batch whose outputs were acknowledged
// and whose offsets were committed (or marked): the metrics, and a log line
// per dead letter.
func (r *Runner) observeDone(w *partWork, now time.Time) {
	r.m.In(w.topic, len(w.records))
	r.m.Skipped(w.topic, w.skipped)
	for _, rec := range w.result.Out {
		r.m.Out(rec.Topic)
	}
	r.observeResult(w.result)
	if r.m != nil {
		for _, rec := range w.records {
			r.m.EndToEnd(now, rec.Timestamp)
		}
	}
	r.m.Lag(w.topic, w.part, w.hw-(w.records[len(w.records)-1].Offset+1))
}

// observeResult counts a result's decisions and dead letters, and logs
// each dead letter, once Kafka has acknowledged them.
func (r *Runner) observeResult(res Result) {
	for d, n := range res.Decisions {
		r.m.Decided(d.Kind, d.Outcome, d.Reason, n)
	}
	for _, d := range res.Dead {
		r.m.Dead(d.Record.Topic, d.Reason)
		r.logDead(d)
	}
}

// logDead logs a dead letter with where it came from and, when the record
// is an envelope, its event id, type and campaign. Floods of bad input are
// logged at most deadLogBurst times a second; the next line says how many
// were left out (the metrics count every one).
func (r *Runner) logDead(d DeadLetter) {
	suppressed, ok := r.deadLog.allow(time.Now())
	if !ok {
		return
	}
	rec := d.Record
	attrs := make([]any, 0, 20)
	attrs = append(attrs, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "reason", d.Reason)
	attrs = append(attrs, recordAttrs(rec)...)
	attrs = append(attrs, "detail", truncate(d.Detail, 300), "dlq_topic", r.cfg.DLQTopic)
	if suppressed > 0 {
		attrs = append(attrs, "dead_letters_not_logged", suppressed)
	}
	r.log.Warn("record dead-lettered", attrs...)
}

// deadLogBurst is how many dead letters a runner logs per second.
const deadLogBurst = 20

// deadLogLimiter lets deadLogBurst lines through per second and counts the
// rest.
type deadLogLimiter struct {
	mu         sync.Mutex
	second     int64
	n          int
	suppressed int64
}

// allow reports whether to log now and how many lines were held back
// since the last one logged.
func (l *deadLogLimiter) allow(now time.Time) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := now.Unix(); s != l.second {
		l.second, l.n = s, 0
	}
	if l.n >= deadLogBurst {
		l.suppressed++
		return 0, false
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return s, true
}

// maxPeek bounds the record values recordAttrs parses.
const maxPeek = 64 << 10

// recordAttrs returns the log attributes an envelope in the record names:
// event_id, type, and its campaign (batch_id, activity_id) when the payload
// has one. A record that is not an envelope yields none. It runs only on
// rare paths (dead letters).
func recordAttrs(rec *kgo.Record) []any {
	if len(rec.Value) == 0 || len(rec.Value) > maxPeek || rec.Value[0] != '{' {
		return nil
	}
	var env struct {
		EventID string `json:"event_id"`
		Type    string `json:"type"`
		Payload struct {
			BatchID    any `json:"batch_id"`
			ActivityID any `json:"activity_id"`
		} `json:"payload"`
	}
	// A payload of the wrong shape fails the decode after the fields
	// before it were set; keep what was read.
	_ = json.Unmarshal(rec.Value, &env)
	var out []any
	add := func(k string, v any) {
		if s, ok := v.(string); ok && s != "" {
			out = append(out, k, truncate(s, 128))
		}
	}
	add("event_id", env.EventID)
	add("type", env.Type)
	add("batch_id", env.Payload.BatchID)
	add("activity_id", env.Payload.ActivityID)
	return out
}

func (r *Runner) ownedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.owned)
}

// Ready reports whether the member takes part in its group: Run is
// consuming, Kafka answers, and the group has completed an assignment for
// it. A member the group assigned no partitions (more members than
// partitions) is ready and idle; note says so, or how many partitions it
// owns.
func (r *Runner) Ready(ctx context.Context) (note string, err error) {
	if !r.running.Load() {
		return "", errors.New("not consuming yet")
	}
	if err := r.cl.Ping(ctx); err != nil {
		return "", fmt.Errorf("kafka unreachable: %w", err)
	}
	if !r.joined.Load() {
		return "", fmt.Errorf("waiting for group %s to assign partitions", r.stage.Group)
	}
	n := r.ownedCount()
	if n == 0 {
		return fmt.Sprintf("idle: group %s assigned this member no partitions (more members than partitions)", r.stage.Group), nil
	}
	return fmt.Sprintf("owns %d partition(s)", n), nil
}
