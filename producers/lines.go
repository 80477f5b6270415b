package producers

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/promoflow/promoflow/internal/topology"
	"github.com/promoflow/promoflow/schemas"
)

// Defaults of LinesOptions.
const (
	// DefaultProgressEvery is how often ProduceLines reports progress.
	DefaultProgressEvery = time.Second
	// DefaultLinesInFlight bounds the lines ProduceLines has sent and Kafka
	// has not yet acknowledged.
	DefaultLinesInFlight = 5_000
	// MaxRejectionsKept is how many LineErrors a LinesReport keeps.
	MaxRejectionsKept = 1000
)

// lineSlack is room beyond the event size limit for the whitespace and
// "\r\n" around a line; a line that does not fit even with it cannot hold a
// valid event and is skipped without being buffered whole.
const lineSlack = 1 << 10

// LinesOptions configures ProduceLines. The zero value is ready to use.
type LinesOptions struct {
	// Topic sends every line to this topic instead of the one topics.yaml
	// routes its type to. It must be declared in topics.yaml (else
	// ProduceLines fails with ErrUnknownTopic), and lines whose type it
	// does not carry are rejected with reason wrong_topic.
	Topic string
	// Progress, if set, is called at most every ProgressEvery with the
	// counts so far, from one goroutine, never after ProduceLines returns.
	Progress func(LinesProgress)
	// ProgressEvery is the interval between Progress calls, overriding
	// the default of 1s.
	ProgressEvery time.Duration
	// StopOnError stops reading at the first line that is rejected or
	// fails to send; ProduceLines then returns that *LineError. The
	// default, false, reports every bad line and carries on.
	StopOnError bool
	// AllowAnyApp publishes envelopes whatever their app_id (for operators
	// replaying events of many apps). When false, the default, an envelope
	// whose app_id is not the producer's AppID is rejected with reason
	// wrong_app.
	AllowAnyApp bool
	// MaxInFlight bounds the lines sent and not yet acknowledged,
	// overriding the default of 5,000. Reading pauses while it is reached.
	MaxInFlight int
}

// LinesProgress is a snapshot of a running ProduceLines.
type LinesProgress struct {
	// Read counts events read: every line but blank and comment lines.
	Read int
	// Sent counts lines that passed validation and were handed to Kafka.
	Sent int
	// Acked counts lines Kafka acknowledged.
	Acked int
	// Rejected counts lines refused before sending.
	Rejected int
	// Failed counts lines sent but not acknowledged.
	Failed int
	// Elapsed is the time since ProduceLines started.
	Elapsed time.Duration
	// Rate is lines acknowledged per second since the previous snapshot.
	Rate float64
}

// LinesReport is the outcome of ProduceLines. When it completes,
// Read == Rejected + Sent and Sent == Acked + Failed.
type LinesReport struct {
	// Read counts events read: every line but blank and comment lines.
	Read int
	// Skipped counts blank lines and lines starting with #.
	Skipped int
	// Sent counts lines that passed validation and were handed to Kafka.
	Sent int
	// Acked counts lines Kafka acknowledged.
	Acked int
	// Rejected counts lines refused before sending: invalid, too large,
	// of another app, or not routable.
	Rejected int
	// Failed counts lines that were sent but that Kafka did not
	// acknowledge (reason send_failed).
	Failed int
	// Rejections describes the first MaxRejectionsKept rejected or failed
	// lines, sorted by line number; Rejected+Failed counts all of them.
	Rejections []LineError
	// Elapsed is how long ProduceLines ran.
	Elapsed time.Duration
}

// ProduceLines publishes the JSON envelopes in r, one per line, through p.
// Blank lines and lines starting with # are skipped. Every other line is
// decoded and validated with schemas.Decode; a line that fails, or that is
// longer than the event size limit, is counted, described in the report
// with its line number and reason code, and skipped, and reading goes on
// (unless StopOnError). Valid lines are sent as they are written, routed by
// type (or to opts.Topic) and keyed by the envelope key, asynchronously
// with at most opts.MaxInFlight unacknowledged.
//
// ProduceLines returns once every sent line is acknowledged or failed. Its
// error is non-nil when r fails, ctx ends (in-flight lines are still
// accounted for), opts.Topic is undeclared, or StopOnError stopped it; the
// report is filled in every case.
func ProduceLines(ctx context.Context, p *Producer, r io.Reader, opts LinesOptions) (LinesReport, error) {
	start := time.Now()
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = DefaultProgressEvery
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultLinesInFlight
	}
	run := &linesRun{
		p:     p,
		opts:  opts,
		start: start,
		sem:   make(chan struct{}, opts.MaxInFlight),
	}
	if opts.Topic != "" {
		t, ok := p.topo.Topic(opts.Topic)
		if !ok {
			return LinesReport{Elapsed: time.Since(start)}, fmt.Errorf("producing lines to %q: %w", opts.Topic, ErrUnknownTopic)
		}
		run.topic = &t
	}

	stopProgress := run.startProgress()
	err := run.read(ctx, r)
	// Lingering batches would otherwise delay the end by the linger; the
	// promises below are what we wait for, so a failed flush only means
	// ctx ended and the records fail on their own.
	_ = p.cl.Flush(ctx)
	run.inflight.Wait()
	stopProgress()

	if err == nil && opts.StopOnError {
		if first := run.firstErr.Load(); first != nil {
			err = fmt.Errorf("producing lines: %w", first)
		}
	}
	return run.report(), err
}

// linesRun is the state of one ProduceLines call shared between the reading
// goroutine, the client's promise goroutine and the progress goroutine.
type linesRun struct {
	p     *Producer
	opts  LinesOptions
	topic *topology.Topic
	start time.Time
	sem   chan struct{}

	inflight sync.WaitGroup

	nread, skipped, sent, acked, rejected, failed atomic.Int64

	mu         sync.Mutex
	rejections []LineError
	firstErr   atomic.Pointer[LineError]
}

func (run *linesRun) read(ctx context.Context, r io.Reader) error {
	limit := schemas.DefaultMaxBytes
	br := bufio.NewReaderSize(r, limit+lineSlack)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("producing lines: %w", err)
		}
		if run.opts.StopOnError && run.firstErr.Load() != nil {
			return nil
		}
		line, tooLong, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading line %d: %w", n, err)
		}
		if len(line) > 0 || tooLong {
			run.line(ctx, n, line, tooLong, limit)
		}
		if err != nil { // io.EOF
			return nil
		}
	}
}

// readLine returns the next line without buffering more than br's size: a
// longer line is consumed and reported as tooLong.
func readLine(br *bufio.Reader) (line []byte, tooLong bool, err error) {
	line, err = br.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, false, err
	}
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	return nil, true, err
}

func (run *linesRun) line(ctx context.Context, n int, raw []byte, tooLong bool, limit int) {
	if !tooLong {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || raw[0] == '#' {
			run.skipped.Add(1)
			return
		}
	}
	run.nread.Add(1)
	if tooLong {
		run.reject(&LineError{Line: n, Reason: schemas.ReasonTooLarge,
			Detail: fmt.Sprintf("line is longer than the %d-byte event limit", limit)})
		return
	}
	env, err := schemas.Decode(raw)
	if err != nil {
		le := &LineError{Line: n, Reason: schemas.ReasonOf(err), Detail: err.Error(), err: err}
		var ie *schemas.InvalidError
		if errors.As(err, &ie) {
			le.Detail = ie.Detail
		}
		run.reject(le)
		return
	}
	if !run.opts.AllowAnyApp && env.AppID != run.p.appID {
		run.reject(&LineError{Line: n, Reason: ReasonWrongApp, EventID: env.EventID, err: ErrWrongApp,
			Detail: fmt.Sprintf("app_id %q is not the producer's %q", env.AppID, run.p.appID)})
		return
	}
	tv := env.TypeVersion()
	var topic string
	if run.topic != nil {
		if !run.topic.Carries(tv) {
			run.reject(&LineError{Line: n, Reason: schemas.ReasonWrongTopic, EventID: env.EventID,
				Detail: fmt.Sprintf("topic %s does not carry %s", run.topic.Name, tv)})
			return
		}
		topic = run.topic.Name
	} else {
		topic, err = run.p.route(tv)
		if err != nil {
			run.reject(&LineError{Line: n, Reason: ReasonNoTopic, EventID: env.EventID, Detail: err.Error(), err: err})
			return
		}
	}

	select {
	case run.sem <- struct{}{}:
	case <-ctx.Done():
		// Counted as a failed send so that Read still adds up.
		run.sent.Add(1)
		run.fail(&LineError{Line: n, Reason: ReasonSendFailed, EventID: env.EventID, Detail: ctx.Err().Error(), err: ctx.Err()})
		return
	}
	run.sent.Add(1)
	run.inflight.Add(1)
	// raw points into the reader's buffer, which the next line overwrites.
	rec := run.p.record(topic, env, bytes.Clone(raw))
	eventID := env.EventID
	run.p.produce(ctx, rec, func(err error) {
		defer run.inflight.Done()
		<-run.sem
		if err != nil {
			run.fail(&LineError{Line: n, Reason: ReasonSendFailed, EventID: eventID, Detail: err.Error(), err: err})
			return
		}
		run.acked.Add(1)
	})
}

func (run *linesRun) reject(le *LineError) {
	run.rejected.Add(1)
	run.keep(le)
}

func (run *linesRun) fail(le *LineError) {
	run.failed.Add(1)
	run.keep(le)
}

func (run *linesRun) keep(le *LineError) {
	run.firstErr.CompareAndSwap(nil, le)
	run.mu.Lock()
	defer run.mu.Unlock()
	if len(run.rejections) < MaxRejectionsKept {
		run.rejections = append(run.rejections, *le)
	}
}

func (run *linesRun) progress() LinesProgress {
	return LinesProgress{
		Read:     int(run.nread.Load()),
		Sent:     int(run.sent.Load()),
		Acked:    int(run.acked.Load()),
		Rejected: int(run.rejected.Load()),
		Failed:   int(run.failed.Load()),
		Elapsed:  time.Since(run.start),
	}
}

// startProgress reports progress from its own goroutine, so that a reader
// blocked on a quiet stdin still shows the acks coming in. The returned
// function stops it and waits for its last call to return.
func (run *linesRun) startProgress() (stop func()) {
	if run.opts.Progress == nil {
		return func() {}
	}
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(run.opts.ProgressEvery)
		defer t.Stop()
		lastAcked, lastAt := 0, run.start
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				pr := run.progress()
				if secs := now.Sub(lastAt).Seconds(); secs > 0 {
					pr.Rate = float64(pr.Acked-lastAcked) / secs
				}
				lastAcked, lastAt = pr.Acked, now
				run.opts.Progress(pr)
			}
		}
	}()
	return func() {
		close(done)
		<-exited
	}
}

func (run *linesRun) report() LinesReport {
	pr := run.progress()
	run.mu.Lock()
	rej := append([]LineError(nil), run.rejections...)
	run.mu.Unlock()
	sort.SliceStable(rej, func(i, j int) bool { return rej[i].Line < rej[j].Line })
	return LinesReport{
		Read:       pr.Read,
		Skipped:    int(run.skipped.Load()),
		Sent:       pr.Sent,
		Acked:      pr.Acked,
		Rejected:   pr.Rejected,
		Failed:     pr.Failed,
		Rejections: rej,
		Elapsed:    time.Since(run.start),
	}
}
