package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/internal/topology"
)

func init() {
	register(&command{
		name:    "dlq",
		summary: "list dead letters with their reasons and sources, and replay them to their source topics",
		usage:   "list|replay [flags]   (flags may come before or after the action)",
		help: `  list    reads the dead-letter topic (runtime.dlq_topic, default promoflow.dlq)
          from its start, or from --since ago, up to its end at the time of the
          call (it never waits for new records), and prints one line per dead
          letter: DLQ partition@offset, when it was dead-lettered, the stage, the
          reason, the source topic/partition@offset, the key and a short preview
          of the value (non-printable bytes escaped), then a count by reason.
          --json prints one JSON object per line instead (key and value base64
          when they are not valid UTF-8; no summary).
  replay  republishes the selected dead letters' original key, value and
          headers (without the promoflow.dlq.* headers) to their source topic,
          or to --to, so that after a fix they go through the normal path again.
          Decisions are idempotent by event_id, so a replayed event that was
          already decided changes nothing. A selection is required: --reason,
          --source-topic, --offsets or --all (--since narrows any of them).
          Refused, and reported: values truncated in the DLQ, and source topics
          that topics.yaml does not declare (unless --to names one that does).
          --dry-run prints what would be replayed and produces nothing. The exit
          status is 1 if any selected dead letter was refused.

--reason and --source-topic take comma-separated lists. Records written to the
DLQ by hand, without the promoflow.dlq.* headers, are listed with reason
"(no dlq headers)"; replay them with --offsets and --to. See docs/dlq.md.

Examples:
  promoflow dlq list --since 1h
  promoflow dlq list --reason malformed_json,invalid_utf8 --json
  promoflow dlq replay --reason invalid_payload --dry-run
  promoflow dlq replay --offsets 0:12,2:40 --to coupon.claims`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			reason := fs.String("reason", "", "only dead letters with these reasons (comma-separated)")
			sourceTopic := fs.String("source-topic", "", "only dead letters from these source topics (comma-separated)")
			since := fs.Duration("since", 0, "only dead letters written in the last DURATION (e.g. 1h); default: the whole topic")
			limit := fs.Int("limit", 0, "list: stop after N matching dead letters (0: no limit)")
			asJSON := fs.Bool("json", false, "list: one JSON object per dead letter")
			offsets := fs.String("offsets", "", "replay: these DLQ records, as PARTITION:OFFSET[,PARTITION:OFFSET...]")
			all := fs.Bool("all", false, "replay: every dead letter (subject to --since)")
			dryRun := fs.Bool("dry-run", false, "replay: print what would be replayed; produce nothing")
			to := fs.String("to", "", "replay: publish to this topic (declared in topics.yaml) instead of each record's source topic")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usagef("want one action: list or replay")
				}
				set := map[string]bool{}
				fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
				var notFor []string
				switch args[0] {
				case "list":
					notFor = []string{"offsets", "all", "dry-run", "to"}
				case "replay":
					notFor = []string{"limit", "json"}
				default:
					return usagef("unknown dlq action %q: want list or replay", args[0])
				}
				for _, name := range notFor {
					if set[name] {
						return usagef("--%s does not apply to dlq %s", name, args[0])
					}
				}
				if *since < 0 {
					return usagef("--since %s: want a positive duration", *since)
				}
				if *limit < 0 {
					return usagef("--limit %d: want 0 or more", *limit)
				}
				filter := dlqFilter{Reasons: splitList(*reason), SourceTopics: splitList(*sourceTopic), Since: *since}
				if *offsets != "" {
					offs, err := parseDLQOffsets(*offsets)
					if err != nil {
						return usagef("--offsets: %v", err)
					}
					filter.Offsets = offs
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				if args[0] == "list" {
					_, err := listDLQ(ctx, cfg.Kafka.Brokers, dlqListOptions{
						Topic: cfg.Runtime.DLQTopic, Filter: filter, Limit: *limit, JSON: *asJSON,
						ClientOpts: cfg.kafkaOpts(),
					}, os.Stdout)
					return cfg.Kafka.wrap(err)
				}
				topo, err := topology.Load()
				if err != nil {
					return err
				}
				rep, err := replayDLQ(ctx, cfg.Kafka.Brokers, dlqReplayOptions{
					Topic: cfg.Runtime.DLQTopic, Filter: filter, All: *all, To: *to, DryRun: *dryRun, Topology: topo,
					ClientOpts: cfg.kafkaOpts(),
				}, os.Stdout)
				if err != nil {
					return cfg.Kafka.wrap(err)
				}
				if len(rep.Refused) > 0 {
					return fmt.Errorf("%d selected dead letters refused (see above)", len(rep.Refused))
				}
				return nil
			}
		},
	})
}

// dlqHeaderPrefix starts every header the runtime adds to a dead letter
// (stream.HeaderDLQ*); replay strips them.
const dlqHeaderPrefix = stream.HeaderDLQPrefix

// dlqNoHeaders stands for the reason of a record without dlq headers in
// listings and summaries.
const dlqNoHeaders = "(no dlq headers)"

// dlqRecord is one record of the dead-letter topic, its headers parsed.
type dlqRecord struct {
	Partition int32
	Offset    int64
	Timestamp time.Time // the Kafka record's timestamp

	// From the promoflow.dlq.* headers; zero when absent.
	HasHeaders      bool   // any promoflow.dlq.* header present
	At              string // promoflow.dlq.at as written
	Reason, Detail  string
	Stage           string
	SourceTopic     string
	SourcePartition int32 // -1 when absent or unparsable
	SourceOffset    int64 // -1 when absent or unparsable
	Truncated       bool
	OriginalSize    int64 // the value's size before truncation, when truncated
	KeyTruncated    bool  // the key was cut to 1 KiB

	Key, Value []byte
	// Headers are the source record's own headers, without promoflow.dlq.*.
	Headers []kgo.RecordHeader
}

// parseDLQRecord reads a dead letter's headers. A header repeated (a record
// dead-lettered twice) counts with its last value: the runtime appends its
// headers after the source record's.
func parseDLQRecord(r *kgo.Record) *dlqRecord {
	d := &dlqRecord{
		Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		SourcePartition: -1, SourceOffset: -1,
		Key: r.Key, Value: r.Value,
	}
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, dlqHeaderPrefix) {
			d.Headers = append(d.Headers, h)
			continue
		}
		d.HasHeaders = true
		v := string(h.Value)
		switch h.Key {
		case stream.HeaderDLQReason:
			d.Reason = v
		case stream.HeaderDLQDetail:
			d.Detail = v
		case stream.HeaderDLQStage:
			d.Stage = v
		case stream.HeaderDLQSourceTopic:
			d.SourceTopic = v
		case stream.HeaderDLQSourcePartition:
			d.SourcePartition = -1
			if p, err := strconv.ParseInt(v, 10, 32); err == nil && p >= 0 {
				d.SourcePartition = int32(p)
			}
		case stream.HeaderDLQSourceOffset:
			d.SourceOffset = -1
			if o, err := strconv.ParseInt(v, 10, 64); err == nil && o >= 0 {
				d.SourceOffset = o
			}
		case stream.HeaderDLQAt:
			d.At = v
		case stream.HeaderDLQTruncated:
			d.Truncated = true
			d.OriginalSize, _ = strconv.ParseInt(v, 10, 64)
		case stream.HeaderDLQKeyTruncated:
			d.KeyTruncated = true
		}
	}
	return d
}

// reasonLabel is the reason shown and counted for d.
func (d *dlqRecord) reasonLabel() string {
	if d.Reason != "" {
		return d.Reason
	}
	if !d.HasHeaders {
		return dlqNoHeaders
	}
	return "(no reason)"
}

// when is the time d was dead-lettered: its promoflow.dlq.at header, or the
// record's timestamp when that is absent or unparsable.
func (d *dlqRecord) when() time.Time {
	if t, err := time.Parse(time.RFC3339Nano, d.At); err == nil {
		return t.UTC()
	}
	return d.Timestamp.UTC()
}

// source is the source position as "topic/partition@offset", escaped for
// printing; "?" marks what the headers do not say.
func (d *dlqRecord) source() string {
	if d.SourceTopic == "" && d.SourcePartition < 0 && d.SourceOffset < 0 {
		return "?"
	}
	t, p, o := "?", "?", "?"
	if d.SourceTopic != "" {
		t = dlqEscape([]byte(d.SourceTopic), 60, false)
	}
	if d.SourcePartition >= 0 {
		p = strconv.Itoa(int(d.SourcePartition))
	}
	if d.SourceOffset >= 0 {
		o = strconv.FormatInt(d.SourceOffset, 10)
	}
	return t + "/" + p + "@" + o
}

// dlqFilter selects dead letters. Empty fields match everything.
type dlqFilter struct {
	Reasons      []string // the reason label (dlqNoHeaders for hand-written records)
	SourceTopics []string
	// Since reads only what was written in the last Since (by the DLQ
	// records' Kafka timestamps, with kadm's ListOffsetsAfterMilli).
	Since time.Duration
	// Offsets, when not nil, selects these DLQ partition → offsets only.
	Offsets map[int32]map[int64]bool
}

func (f dlqFilter) empty() bool {
	return len(f.Reasons) == 0 && len(f.SourceTopics) == 0 && f.Offsets == nil
}

func (f dlqFilter) match(d *dlqRecord) bool {
	if len(f.Reasons) > 0 && !slices.Contains(f.Reasons, d.reasonLabel()) {
		return false
	}
	if len(f.SourceTopics) > 0 && !slices.Contains(f.SourceTopics, d.SourceTopic) {
		return false
	}
	if f.Offsets != nil && !f.Offsets[d.Partition][d.Offset] {
		return false
	}
	return true
}

// parseDLQOffsets parses "P:O[,P:O...]".
func parseDLQOffsets(s string) (map[int32]map[int64]bool, error) {
	out := map[int32]map[int64]bool{}
	for _, item := range splitList(s) {
		ps, offs, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("%q: want PARTITION:OFFSET", item)
		}
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("%q: partition %q is not a number ≥ 0", item, ps)
		}
		o, err := strconv.ParseInt(offs, 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("%q: offset %q is not a number ≥ 0", item, offs)
		}
		if out[int32(p)] == nil {
			out[int32(p)] = map[int64]bool{}
		}
		out[int32(p)][o] = true
	}
	if len(out) == 0 {
		return nil, errors.New("no PARTITION:OFFSET given")
	}
	return out, nil
}

// dlqIdle is how long a read waits for a fetch before it checks whether the
// records it still expects were deleted meanwhile; dlqMaxIdle such waits in
// a row end the read with an error.
const (
	dlqIdle    = 2 * time.Second
	dlqMaxIdle = 15
)

// readDLQ reads the dead-letter topic (readTopic) from its start, or f.Since
// ago, only the partitions and offsets f.Offsets names if set, and calls fn
// with every record parsed, until fn returns false.
func readDLQ(ctx context.Context, brokers []string, clientOpts []kgo.Opt, topic string, f dlqFilter, fn func(*dlqRecord) bool) error {
	return readTopic(ctx, brokers, append([]kgo.Opt{kgo.ClientID("promoflow-dlq")}, clientOpts...), topic, "dead-letter topic", f.Since, f.Offsets,
		func(r *kgo.Record) bool { return fn(parseDLQRecord(r)) })
}

// readTopic reads topic from its start (or since ago, when positive; only
// the partitions and offsets offsets names, when not nil) up to its end
// offsets at the time of the call, and calls fn with every record, in
// offset order within each partition, until fn returns false. It never
// waits for records written after it started, and notices records deleted
// by retention meanwhile. what names the topic in errors.
func readTopic(ctx context.Context, brokers []string, clientOpts []kgo.Opt, topic, what string, since time.Duration, offsets map[int32]map[int64]bool,
	fn func(*kgo.Record) bool) error {
	base := append([]kgo.Opt{kgo.SeedBrokers(brokers...)}, clientOpts...)
	admCl, err := kgo.NewClient(base...)
	if err != nil {
		return fmt.Errorf("creating Kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("%s %s does not exist (promoflow topics apply creates it): %w", what, topic, err)
	}
	if err != nil {
		return fmt.Errorf("listing end offsets of %s: %w", topic, err)
	}
	var starts kadm.ListedOffsets
	if since > 0 {
		starts, err = adm.ListOffsetsAfterMilli(ctx, time.Now().Add(-since).UnixMilli(), topic)
	} else {
		starts, err = adm.ListStartOffsets(ctx, topic)
	}
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("listing start offsets of %s: %w", topic, err)
	}

	// [from, to) per partition.
	type span struct{ from, to int64 }
	plan := map[int32]span{}
	ends.Each(func(e kadm.ListedOffset) {
		s, ok := starts.Lookup(topic, e.Partition)
		if !ok || s.Offset < 0 {
			return
		}
		sp := span{s.Offset, e.Offset}
		if offsets != nil {
			want, ok := offsets[e.Partition]
			if !ok {
				return
			}
			lo, hi := int64(-1), int64(-1)
			for o := range want {
				if lo < 0 || o < lo {
					lo = o
				}
				hi = max(hi, o)
			}
			sp.from, sp.to = max(sp.from, lo), min(sp.to, hi+1)
		}
		if sp.from < sp.to {
			plan[e.Partition] = sp
		}
	})
	if len(plan) == 0 {
		return nil
	}
	at := map[int32]kgo.Offset{}
	for p, sp := range plan {
		at[p] = kgo.NewOffset().At(sp.from)
	}
	cl, err := kgo.NewClient(append(base,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: at}),
		// Control records (transaction markers) take offsets too: keep
		// them so that reaching the end offset is always observed.
		kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
	)...)
	if err != nil {
		return fmt.Errorf("creating Kafka consumer: %w", err)
	}
	defer cl.Close()

	done := func(p int32) {
		delete(plan, p)
		cl.PauseFetchPartitions(map[string][]int32{topic: {p}})
	}
	idle := 0
	for len(plan) > 0 {
		pctx, cancel := context.WithTimeout(ctx, dlqIdle)
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			var loss *kgo.ErrDataLoss
			if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && !errors.As(err, &loss) {
				ferr = fmt.Errorf("fetching %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		progressed := false
		stop := false
		fetches.EachRecord(func(r *kgo.Record) {
			sp, ok := plan[r.Partition]
			if stop || !ok || r.Offset < sp.from {
				return
			}
			progressed = true
			if r.Offset >= sp.to {
				done(r.Partition)
				return
			}
			if r.Offset == sp.to-1 {
				done(r.Partition)
			}
			if r.Attrs.IsControl() {
				return
			}
			if !fn(r) {
				stop = true
			}
		})
		if stop {
			return nil
		}
		if progressed {
			idle = 0
			continue
		}
		// Nothing came: the records still expected may have been deleted
		// by retention since the offsets were listed.
		idle++
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return fmt.Errorf("listing start offsets of %s: %w", topic, err)
		}
		for p, sp := range plan {
			if s, ok := starts.Lookup(topic, p); ok && s.Err == nil && s.Offset >= sp.to {
				done(p)
			}
		}
		if len(plan) > 0 && idle >= dlqMaxIdle {
			var left []string
			for p, sp := range plan {
				left = append(left, fmt.Sprintf("%d (up to offset %d)", p, sp.to))
			}
			sort.Strings(left)
			return fmt.Errorf("reading %s: no records for %s from partitions %s", topic, dlqIdle*dlqMaxIdle, strings.Join(left, ", "))
		}
	}
	return nil
}

// dlqListOptions configure listDLQ.
type dlqListOptions struct {
	// Topic is the dead-letter topic. Required.
	Topic  string
	Filter dlqFilter
	// Limit stops the listing after this many matching records; 0: no limit.
	Limit int
	// JSON prints one JSON object per record and no summary.
	JSON bool
	// ClientOpts are extra franz-go options (TLS, SASL, ...).
	ClientOpts []kgo.Opt
}

// dlqSummary is what listDLQ found.
type dlqSummary struct {
	Read, Listed int
	ByReason     map[string]int
	Limited      bool // stopped at the limit
}

// listDLQ prints the dead letters that opts selects to w, one per line,
// then (unless opts.JSON) a count by reason.
func listDLQ(ctx context.Context, brokers []string, opts dlqListOptions, w io.Writer) (dlqSummary, error) {
	sum := dlqSummary{ByReason: map[string]int{}}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	var werr error
	err := readDLQ(ctx, brokers, opts.ClientOpts, opts.Topic, opts.Filter, func(d *dlqRecord) bool {
		sum.Read++
		if !opts.Filter.match(d) {
			return true
		}
		sum.Listed++
		sum.ByReason[d.reasonLabel()]++
		switch {
		case opts.JSON:
			werr = enc.Encode(dlqJSONOf(d))
		case sum.Listed == 1:
			_, werr = fmt.Fprintf(w, "%-10s %-24s %-12s %-18s %-28s %s\n", "DLQ", "AT", "STAGE", "REASON", "SOURCE", "KEY / VALUE / DETAIL")
			fallthrough
		default:
			if werr == nil {
				werr = writeDLQLine(w, d)
			}
		}
		if werr != nil {
			return false
		}
		if opts.Limit > 0 && sum.Listed >= opts.Limit {
			sum.Limited = true
			return false
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return sum, err
	}
	if !opts.JSON {
		writeDLQSummary(w, opts, sum)
	}
	return sum, nil
}

func writeDLQLine(w io.Writer, d *dlqRecord) error {
	stage := "-"
	if d.Stage != "" {
		stage = dlqEscape([]byte(d.Stage), 24, false)
	}
	line := fmt.Sprintf("%-10s %-24s %-12s %-18s %-28s key=%s value=%s",
		fmt.Sprintf("%d@%d", d.Partition, d.Offset),
		d.when().Format("2006-01-02T15:04:05.000Z"),
		stage,
		dlqEscape([]byte(d.reasonLabel()), 40, false),
		d.source(),
		dlqQuote(d.Key, 40),
		dlqQuote(d.Value, 80),
	)
	if d.Truncated {
		line += fmt.Sprintf(" truncated(%d bytes)", d.OriginalSize)
	}
	if d.Detail != "" {
		line += " detail=" + dlqQuote([]byte(d.Detail), 100)
	}
	_, err := fmt.Fprintln(w, line)
	return err
}

func writeDLQSummary(w io.Writer, opts dlqListOptions, sum dlqSummary) {
	if sum.Listed > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%d dead letters listed (%d read from %s", sum.Listed, sum.Read, opts.Topic)
	if opts.Filter.Since > 0 {
		fmt.Fprintf(w, ", written in the last %s", opts.Filter.Since)
	}
	fmt.Fprint(w, ")")
	if sum.Limited {
		fmt.Fprintf(w, "; stopped at --limit %d", opts.Limit)
	}
	fmt.Fprintln(w)
	if len(sum.ByReason) == 0 {
		return
	}
	reasons := make([]string, 0, len(sum.ByReason))
	for r := range sum.ByReason {
		reasons = append(reasons, r)
	}
	sort.Slice(reasons, func(i, j int) bool {
		a, b := sum.ByReason[reasons[i]], sum.ByReason[reasons[j]]
		return a > b || a == b && reasons[i] < reasons[j]
	})
	fmt.Fprintln(w, "by reason:")
	for _, r := range reasons {
		fmt.Fprintf(w, "  %-20s %d\n", dlqEscape([]byte(r), 40, false), sum.ByReason[r])
	}
}

// dlqJSON is one line of `dlq list --json`.
type dlqJSON struct {
	Partition       int32        `json:"dlq_partition"`
	Offset          int64        `json:"dlq_offset"`
	Timestamp       time.Time    `json:"timestamp"`
	DLQHeaders      bool         `json:"dlq_headers"`
	At              string       `json:"at"`
	Stage           string       `json:"stage"`
	Reason          string       `json:"reason"`
	Detail          string       `json:"detail"`
	SourceTopic     string       `json:"source_topic"`
	SourcePartition *int32       `json:"source_partition"`
	SourceOffset    *int64       `json:"source_offset"`
	Truncated       bool         `json:"truncated"`
	OriginalSize    int64        `json:"original_size,omitempty"`
	Key             string       `json:"key"`
	KeyEncoding     string       `json:"key_encoding"`
	Value           string       `json:"value"`
	ValueEncoding   string       `json:"value_encoding"`
	Headers         []dlqJSONHdr `json:"headers"`
}

type dlqJSONHdr struct {
	Key           string `json:"key"`
	Value         string `json:"value"`
	ValueEncoding string `json:"value_encoding"`
}

// dlqBytes returns b as a string and its encoding: "utf8", or "base64"
// when b is not valid UTF-8.
func dlqBytes(b []byte) (string, string) {
	if utf8.Valid(b) {
		return string(b), "utf8"
	}
	return base64.StdEncoding.EncodeToString(b), "base64"
}

func dlqJSONOf(d *dlqRecord) dlqJSON {
	j := dlqJSON{
		Partition: d.Partition, Offset: d.Offset, Timestamp: d.Timestamp.UTC(),
		DLQHeaders: d.HasHeaders, At: d.At, Stage: d.Stage, Reason: d.Reason, Detail: d.Detail,
		SourceTopic: d.SourceTopic, Truncated: d.Truncated, OriginalSize: d.OriginalSize,
		Headers: []dlqJSONHdr{},
	}
	if d.SourcePartition >= 0 {
		p := d.SourcePartition
		j.SourcePartition = &p
	}
	if d.SourceOffset >= 0 {
		o := d.SourceOffset
		j.SourceOffset = &o
	}
	j.Key, j.KeyEncoding = dlqBytes(d.Key)
	j.Value, j.ValueEncoding = dlqBytes(d.Value)
	for _, h := range d.Headers {
		v, e := dlqBytes(h.Value)
		j.Headers = append(j.Headers, dlqJSONHdr{Key: h.Key, Value: v, ValueEncoding: e})
	}
	return j
}

// dlqQuote is dlqEscape in double quotes.
func dlqQuote(b []byte, limit int) string { return `"` + dlqEscape(b, limit, true) + `"` }

// dlqEscape renders untrusted bytes safely on a terminal in at most limit
// characters (an ellipsis marks the cut): printable characters as they are;
// invalid UTF-8 as \xHH; control and format characters (escape sequences,
// bidirectional overrides) as \n, \t, \r or \uHHHH. With quoted, " and \ are
// escaped too.
func dlqEscape(b []byte, limit int, quoted bool) string {
	var sb strings.Builder
	n := 0
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		var piece string
		switch {
		case r == utf8.RuneError && size == 1:
			piece = fmt.Sprintf(`\x%02x`, b[i])
		case quoted && (r == '"' || r == '\\'):
			piece = `\` + string(r)
		case r == '\n':
			piece = `\n`
		case r == '\t':
			piece = `\t`
		case r == '\r':
			piece = `\r`
		case unicode.IsPrint(r):
			piece = string(r)
		case r <= 0xffff:
			piece = fmt.Sprintf(`\u%04x`, r)
		default:
			piece = fmt.Sprintf(`\U%08x`, r)
		}
		w := utf8.RuneCountInString(piece)
		if n+w > limit {
			sb.WriteString("…")
			break
		}
		sb.WriteString(piece)
		n += w
		i += size
	}
	return sb.String()
}

// dlqReplayOptions configure replayDLQ.
type dlqReplayOptions struct {
	// Topic is the dead-letter topic. Required.
	Topic string
	// Filter selects what to replay; an empty filter needs All.
	Filter dlqFilter
	// All replays every dead letter (within Filter.Since).
	All bool
	// To, when set, receives every replayed record instead of its source
	// topic; it must be declared in Topology.
	To string
	// DryRun reports what would be replayed and produces nothing.
	DryRun bool
	// Topology is topics.yaml: only topics it declares receive replays.
	Topology *topology.File
	// ClientOpts are extra franz-go options (TLS, SASL, ...).
	ClientOpts []kgo.Opt
}

// validate reports argument errors as usage errors.
func (o dlqReplayOptions) validate() error {
	if o.Topology == nil {
		return errors.New("dlq replay: no topology")
	}
	if o.Filter.empty() && !o.All {
		return usagef("replay needs a selection: --reason, --source-topic, --offsets or --all")
	}
	if o.All && !o.Filter.empty() {
		return usagef("--all selects every dead letter; it cannot be combined with --reason, --source-topic or --offsets")
	}
	if o.To != "" {
		if o.To == o.Topic {
			return usagef("--to %s is the dead-letter topic itself", o.To)
		}
		if _, ok := o.Topology.Topic(o.To); !ok {
			return usagef("--to %s: topics.yaml does not declare it", o.To)
		}
	}
	return nil
}

// dlqRefusal is a selected dead letter that was not replayed, and why.
type dlqRefusal struct {
	Partition int32
	Offset    int64 // -1: an --offsets entry beyond the partitions of the topic
	Why       string
}

// dlqReplayReport is what replayDLQ did (or, dry, would do).
type dlqReplayReport struct {
	Read, Selected int
	// Replayed counts the records produced (or, dry, to be produced) by
	// target topic.
	Replayed map[string]int
	Refused  []dlqRefusal
}

// replayDLQ republishes the dead letters opts selects to their source topics
// (or opts.To) with their original key, value and headers, and prints each
// one, each refusal and a summary to w. It waits until Kafka acknowledges
// every record; on an error, the report counts what was acknowledged.
func replayDLQ(ctx context.Context, brokers []string, opts dlqReplayOptions, w io.Writer) (dlqReplayReport, error) {
	rep := dlqReplayReport{Replayed: map[string]int{}}
	if err := opts.validate(); err != nil {
		return rep, err
	}
	var cl *kgo.Client
	if !opts.DryRun {
		var err error
		cl, err = kgo.NewClient(append([]kgo.Opt{
			kgo.SeedBrokers(brokers...),
			kgo.ClientID("promoflow-dlq-replay"),
			// franz-go's defaults, spelled out: they are the guarantee.
			// Idempotent writes keep a retried batch from landing twice.
			kgo.RequiredAcks(kgo.AllISRAcks()),
			// Fail rather than hang on a cluster that does not answer.
			kgo.RecordDeliveryTimeout(time.Minute),
		}, opts.ClientOpts...)...)
		if err != nil {
			return rep, fmt.Errorf("creating Kafka producer: %w", err)
		}
		defer cl.Close()
	}
	verb := "replay"
	if opts.DryRun {
		verb = "would replay"
	}
	seen := map[int32]map[int64]bool{}
	var (
		mu       sync.Mutex // guards acked and prodErr
		acked    = map[string]int{}
		prodErr  error
		inFlight sync.WaitGroup
	)
	refuse := func(d *dlqRecord, why string) {
		rep.Refused = append(rep.Refused, dlqRefusal{Partition: d.Partition, Offset: d.Offset, Why: why})
		fmt.Fprintf(w, "refused      %d@%d (%s, %s): %s\n", d.Partition, d.Offset, d.source(), dlqEscape([]byte(d.reasonLabel()), 40, false), why)
	}
	err := readDLQ(ctx, brokers, opts.ClientOpts, opts.Topic, opts.Filter, func(d *dlqRecord) bool {
		rep.Read++
		if opts.Filter.Offsets != nil {
			if seen[d.Partition] == nil {
				seen[d.Partition] = map[int64]bool{}
			}
			seen[d.Partition][d.Offset] = true
		}
		if !opts.Filter.match(d) {
			return true
		}
		rep.Selected++
		target := opts.To
		switch {
		case d.Truncated:
			refuse(d, fmt.Sprintf("the value was truncated in the DLQ (%d bytes originally); republish the original from its producer", d.OriginalSize))
			return true
		case d.KeyTruncated:
			refuse(d, "the key was truncated in the DLQ; republish the original from its producer")
			return true
		case target != "":
		case d.SourceTopic == "":
			refuse(d, "no source topic (no promoflow.dlq.source.topic header); name one with --to")
			return true
		case d.SourceTopic == opts.Topic:
			refuse(d, "its source topic is the dead-letter topic itself; name a topic with --to")
			return true
		default:
			if _, ok := opts.Topology.Topic(d.SourceTopic); !ok {
				refuse(d, fmt.Sprintf("source topic %s is not declared in topics.yaml; name one that is with --to", dlqEscape([]byte(d.SourceTopic), 60, false)))
				return true
			}
			target = d.SourceTopic
		}
		fmt.Fprintf(w, "%-12s %d@%d (%s, %s) -> %s key=%s\n", verb, d.Partition, d.Offset, d.source(), dlqEscape([]byte(d.reasonLabel()), 40, false), target, dlqQuote(d.Key, 40))
		rep.Replayed[target]++
		if opts.DryRun {
			return true
		}
		rec := &kgo.Record{Topic: target, Key: d.Key, Value: d.Value, Headers: d.Headers}
		inFlight.Add(1)
		cl.Produce(ctx, rec, func(r *kgo.Record, err error) {
			defer inFlight.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if prodErr == nil {
					prodErr = fmt.Errorf("producing to %s: %w", r.Topic, err)
				}
				return
			}
			acked[r.Topic]++
		})
		return true
	})
	if cl != nil {
		// Wait for every acknowledgement, even after a read error, so that
		// the report says exactly what was replayed. A cancelled ctx fails
		// the records still buffered, so this does not hang.
		inFlight.Wait()
		mu.Lock()
		if err == nil {
			err = prodErr
		}
		rep.Replayed = acked
		mu.Unlock()
	}
	for p, offs := range opts.Filter.Offsets {
		for o := range offs {
			if !seen[p][o] {
				rep.Refused = append(rep.Refused, dlqRefusal{Partition: p, Offset: o, Why: "not in the dead-letter topic (expired, beyond its end, or no such partition)"})
				fmt.Fprintf(w, "refused      %d@%d: not in %s (expired, beyond its end, or no such partition)\n", p, o, opts.Topic)
			}
		}
	}
	writeReplaySummary(w, opts, rep)
	return rep, err
}

func writeReplaySummary(w io.Writer, opts dlqReplayOptions, rep dlqReplayReport) {
	total := 0
	topics := make([]string, 0, len(rep.Replayed))
	for t, n := range rep.Replayed {
		total += n
		topics = append(topics, t)
	}
	sort.Strings(topics)
	parts := make([]string, len(topics))
	for i, t := range topics {
		parts[i] = fmt.Sprintf("%s %d", t, rep.Replayed[t])
	}
	by := ""
	if len(parts) > 0 {
		by = ": " + strings.Join(parts, ", ")
	}
	if opts.DryRun {
		fmt.Fprintf(w, "\ndry run: would replay %d of %d selected dead letters%s (nothing produced)\n", total, rep.Selected, by)
	} else {
		fmt.Fprintf(w, "\nreplayed %d of %d selected dead letters%s\n", total, rep.Selected, by)
	}
	if len(rep.Refused) > 0 {
		fmt.Fprintf(w, "refused %d\n", len(rep.Refused))
	}
	if rep.Selected == 0 && len(rep.Refused) == 0 {
		fmt.Fprintf(w, "no dead letter in %s matches the selection (%d read)\n", opts.Topic, rep.Read)
	}
}
