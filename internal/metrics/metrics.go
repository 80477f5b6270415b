package metrics

import (
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace starts every metric name Promoflow defines.
const Namespace = "promoflow"

// Bucket boundaries, in the metric's unit.
var (
	// batchBuckets spans a small poll handled from memory (0.5ms) to a
	// sink batch of 20,000 rows (10s).
	batchBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	// latencyBuckets spans a decision in milliseconds to a stage minutes
	// behind (a restart, an outage of a store).
	latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900}
	// sizeBuckets spans a sink batch of one event to a full poll.
	sizeBuckets = []float64{1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 20000, 50000}
	// httpBuckets spans a cached API answer to a gateway batch waiting for
	// Kafka.
	httpBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
)

// Metrics is every metric of one process on its own registry. Create it
// with New; it is safe for concurrent use. A nil *Metrics records nothing.
type Metrics struct {
	reg  *prometheus.Registry
	defs []def

	eventsIn      *prometheus.CounterVec
	recordsOut    *prometheus.CounterVec
	skipped       *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	decisions     *prometheus.CounterVec
	batchFailures *prometheus.CounterVec
	ticks         *prometheus.CounterVec
	batchDuration *prometheus.HistogramVec
	endToEnd      *prometheus.HistogramVec
	sinkBatch     *prometheus.HistogramVec
	sinkFlush     *prometheus.HistogramVec
	sinkErrors    *prometheus.CounterVec
	lag           *prometheus.GaugeVec
	assigned      *prometheus.GaugeVec
	rebalances    *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
	httpRequests  *prometheus.CounterVec
	httpDuration  *prometheus.HistogramVec
}

// def is one metric Promoflow defines, for Names and the docs test.
type def struct {
	name   string
	kind   string // counter, gauge, histogram
	labels []string
	vec    prometheus.Collector
}

// New returns a registry with every Promoflow metric, plus the Go runtime
// and process collectors (go_*, process_*).
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.eventsIn = m.counter("events_in_total",
		"Input records a stage consumed and committed (valid, dead-lettered or skipped), per topic read.", "stage", "topic")
	m.recordsOut = m.counter("records_out_total",
		"Result records a stage produced and Kafka acknowledged, per topic written (dead letters are counted apart).", "stage", "topic")
	m.skipped = m.counter("records_skipped_total",
		"Invalid records a stage passed over because another stage owns their topic and dead-letters them.", "stage", "topic")
	m.deadLetters = m.counter("dead_letters_total",
		"Records a stage sent to the dead-letter topic, per source topic and reason code.", "stage", "topic", "reason")
	m.decisions = m.counter("decisions_total",
		"Decisions whose results Kafka acknowledged, per kind (coupon.grant, coupon.lock, lottery.entry, gift.match, ...), outcome and reason code; a redelivered event counts again.",
		"stage", "decision", "outcome", "reason")
	m.batchFailures = m.counter("batch_failures_total",
		"Batches that failed and were rewound for a retry, per cause: epoch (fencing epoch not acquired), handler, produce, commit, fenced.", "stage", "cause")
	m.ticks = m.counter("timer_runs_total",
		"Timer runs (scheduled draws, lock timeouts, expiries, reminders) of a stage, per result: ok or failed.", "stage", "result")
	m.batchDuration = m.histogram("batch_duration_seconds",
		"Time a poll's batches spent per phase: handle (decode and decide), produce (until the results are acknowledged), commit.",
		batchBuckets, "stage", "phase")
	m.endToEnd = m.histogram("end_to_end_latency_seconds",
		"Per input record, from its Kafka timestamp to its stage's outputs being acknowledged and its offset committed.",
		latencyBuckets, "stage")
	m.sinkBatch = m.histogram("sink_batch_events",
		"Events per batch a sink stage wrote.", sizeBuckets, "stage")
	m.sinkFlush = m.histogram("sink_flush_duration_seconds",
		"Time a sink stage took to write a batch to its store, failed writes included.", batchBuckets, "stage")
	m.sinkErrors = m.counter("sink_flush_errors_total",
		"Sink batch writes that failed (the batch is retried with backoff).", "stage")
	m.lag = m.gauge("consumer_lag_records",
		"Records between a partition's high watermark, as of the last fetch, and the stage's position after that fetch's batch.",
		"stage", "topic", "partition")
	m.assigned = m.gauge("partitions_assigned",
		"Partitions this member of the stage's consumer group owns now.", "stage")
	m.rebalances = m.counter("rebalances_total",
		"Rebalance callbacks that moved partitions, per event: assigned, revoked, lost.", "stage", "event")
	m.storeErrors = m.counter("store_errors_total",
		"Failed calls to a store: Redis per command (nil replies and script-cache misses are not errors), MySQL and ClickHouse per operation (write, read).",
		"store", "op")
	m.httpRequests = m.counter("http_requests_total",
		"HTTP requests served, per server (api, gateway), route pattern and status code.", "server", "route", "code")
	m.httpDuration = m.histogram("http_request_duration_seconds",
		"HTTP request latency, per server and route pattern.", httpBuckets, "server", "route")
	return m
}

func (m *Metrics) counter(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	m.add(def{name: Namespace + "_" + name, kind: "counter", labels: labels, vec: v})
	return v
}

func (m *Metrics) gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: Namespace, Name: name, Help: help}, labels)
	m.add(def{name: Namespace + "_" + name, kind: "gauge", labels: labels, vec: v})
	return v
}

func (m *Metrics) histogram(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: name, Help: help, Buckets: buckets}, labels)
	m.add(def{name: Namespace + "_" + name, kind: "histogram", labels: labels, vec: v})
	return v
}

func (m *Metrics) add(d def) {
	m.reg.MustRegister(d.vec)
	m.defs = append(m.defs, d)
}

// Registry returns the registry every metric is on (tests gather it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (/metrics).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Definition describes one metric Promoflow defines.
type Definition struct {
	// Name is the metric's name; a histogram's series add _bucket, _sum
	// and _count.
	Name string
	// Kind is counter, gauge or histogram.
	Kind string
	// Labels are the metric's label names.
	Labels []string
}

// Definitions returns every promoflow_* metric, sorted by name.
func (m *Metrics) Definitions() []Definition {
	out := make([]Definition, len(m.defs))
	for i, d := range m.defs {
		out[i] = Definition{Name: d.name, Kind: d.kind, Labels: append([]string(nil), d.labels...)}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// StoreError counts a failed call to a store (redis, mysql, clickhouse)
// by operation.
func (m *Metrics) StoreError(store, op string) {
	if m == nil {
		return
	}
	m.storeErrors.WithLabelValues(store, strings.ToLower(op)).Inc()
}
