package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stage is the metrics of one stage with the children of its known topics
// and phases resolved once, so that counting a record is a map lookup and
// an atomic add. A nil *Stage records nothing.
type Stage struct {
	m    *Metrics
	name string
	// topics is built once and only read afterwards: no lock.
	topics map[string]*topicChildren

	handle, produce, commit prometheus.Observer
	endToEnd                prometheus.Observer
	sinkBatch, sinkFlush    prometheus.Observer
	sinkErrors              prometheus.Counter
	assigned                prometheus.Gauge
	assignedEv, revokedEv   prometheus.Counter
	lostEv                  prometheus.Counter
	ticksOK, ticksFailed    prometheus.Counter

	mu  sync.Mutex
	lag map[partitionKey]prometheus.Gauge
}

type topicChildren struct {
	in, out, skipped prometheus.Counter
}

type partitionKey struct {
	topic string
	part  int32
}

// Stage returns the metrics of stage name, resolving the children of the
// topics it reads and writes. It returns nil on a nil *Metrics.
func (m *Metrics) Stage(name string, topics ...string) *Stage {
	if m == nil {
		return nil
	}
	s := &Stage{
		m:           m,
		name:        name,
		topics:      make(map[string]*topicChildren, len(topics)),
		handle:      m.batchDuration.WithLabelValues(name, "handle"),
		produce:     m.batchDuration.WithLabelValues(name, "produce"),
		commit:      m.batchDuration.WithLabelValues(name, "commit"),
		endToEnd:    m.endToEnd.WithLabelValues(name),
		sinkBatch:   m.sinkBatch.WithLabelValues(name),
		sinkFlush:   m.sinkFlush.WithLabelValues(name),
		sinkErrors:  m.sinkErrors.WithLabelValues(name),
		assigned:    m.assigned.WithLabelValues(name),
		assignedEv:  m.rebalances.WithLabelValues(name, "assigned"),
		revokedEv:   m.rebalances.WithLabelValues(name, "revoked"),
		lostEv:      m.rebalances.WithLabelValues(name, "lost"),
		ticksOK:     m.ticks.WithLabelValues(name, "ok"),
		ticksFailed: m.ticks.WithLabelValues(name, "failed"),
		lag:         map[partitionKey]prometheus.Gauge{},
	}
	for _, t := range topics {
		s.topics[t] = s.children(t)
	}
	return s
}

func (s *Stage) children(topic string) *topicChildren {
	return &topicChildren{
		in:      s.m.eventsIn.WithLabelValues(s.name, topic),
		out:     s.m.recordsOut.WithLabelValues(s.name, topic),
		skipped: s.m.skipped.WithLabelValues(s.name, topic),
	}
}

func (s *Stage) topic(t string) *topicChildren {
	if c, ok := s.topics[t]; ok {
		return c
	}
	// A topic the stage did not declare: resolve it each time (rare).
	return s.children(t)
}

// In counts n input records of topic as consumed and committed.
func (s *Stage) In(topic string, n int) {
	if s == nil || n == 0 {
		return
	}
	s.topic(topic).in.Add(float64(n))
}

// Out counts one acknowledged output record on topic.
func (s *Stage) Out(topic string) {
	if s == nil {
		return
	}
	s.topic(topic).out.Inc()
}

// Skipped counts n invalid records of topic passed over.
func (s *Stage) Skipped(topic string, n int) {
	if s == nil || n == 0 {
		return
	}
	s.topic(topic).skipped.Add(float64(n))
}

// Dead counts a record of topic dead-lettered for reason.
func (s *Stage) Dead(topic, reason string) {
	if s == nil {
		return
	}
	s.m.deadLetters.WithLabelValues(s.name, topic, reason).Inc()
}

// Decided counts n decisions of a kind with their outcome and reason.
func (s *Stage) Decided(decision, outcome, reason string, n int) {
	if s == nil || n == 0 {
		return
	}
	s.m.decisions.WithLabelValues(s.name, decision, outcome, reason).Add(float64(n))
}

// Phases observes the time a poll spent handling, producing and committing.
func (s *Stage) Phases(handle, produce, commit time.Duration) {
	if s == nil {
		return
	}
	s.handle.Observe(handle.Seconds())
	s.produce.Observe(produce.Seconds())
	s.commit.Observe(commit.Seconds())
}

// EndToEnd observes the time from an input record's timestamp t to now.
func (s *Stage) EndToEnd(now, t time.Time) {
	if s == nil {
		return
	}
	s.endToEnd.Observe(now.Sub(t).Seconds())
}

// Failed counts a failed batch by cause.
func (s *Stage) Failed(cause string) {
	if s == nil {
		return
	}
	s.m.batchFailures.WithLabelValues(s.name, cause).Inc()
}

// Tick counts a timer run.
func (s *Stage) Tick(ok bool) {
	if s == nil {
		return
	}
	if ok {
		s.ticksOK.Inc()
	} else {
		s.ticksFailed.Inc()
	}
}

// Flush observes a sink's write of n events that took d and failed with
// err (nil: written), counting the error against store as a write.
func (s *Stage) Flush(store string, n int, d time.Duration, err error) {
	if s == nil {
		return
	}
	s.sinkBatch.Observe(float64(n))
	s.sinkFlush.Observe(d.Seconds())
	if err != nil {
		s.sinkErrors.Inc()
		if store != "" {
			s.m.StoreError(store, "write")
		}
	}
}

// Lag sets a partition's consumer lag.
func (s *Stage) Lag(topic string, part int32, lag int64) {
	if s == nil {
		return
	}
	if lag < 0 {
		lag = 0
	}
	k := partitionKey{topic, part}
	s.mu.Lock()
	g, ok := s.lag[k]
	if !ok {
		g = s.m.lag.WithLabelValues(s.name, topic, strconv.Itoa(int(part)))
		s.lag[k] = g
	}
	s.mu.Unlock()
	g.Set(float64(lag))
}

// Rebalance sets the number of partitions owned now and, when the event
// (assigned, revoked or lost) moved partitions, counts it and forgets the
// lag of the partitions no longer owned.
func (s *Stage) Rebalance(event string, parts map[string][]int32, owned int) {
	if s == nil {
		return
	}
	s.assigned.Set(float64(owned))
	if len(parts) == 0 {
		return // an assignment that moved nothing (an idle member) only sets the gauge
	}
	switch event {
	case "assigned":
		s.assignedEv.Inc()
		return
	case "revoked":
		s.revokedEv.Inc()
	case "lost":
		s.lostEv.Inc()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			k := partitionKey{topic, p}
			if _, ok := s.lag[k]; ok {
				delete(s.lag, k)
				s.m.lag.DeleteLabelValues(s.name, topic, strconv.Itoa(int(p)))
			}
		}
	}
}
