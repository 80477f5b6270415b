package verify

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// resultMargin is how much earlier than --since the result topics are read:
// a decision is published after its input, but the producers' clocks may
// disagree by up to the skew the schemas allow.
const resultMargin = schemas.DefaultMaxSkew

// inputClass is what an input record is to check 1.
type inputClass uint8

const (
	// classDecision: a request with one decision, known by the result id
	// the decision carries; duplicate deliveries share it.
	classDecision inputClass = iota
	// classOther: a request without a one-to-one decision (a draw command,
	// a gift member change).
	classOther
	// classAnonymous: no usable identity (not JSON, no event id, an unknown
	// type); an input of its own, known by its position.
	classAnonymous
)

// inputKind says, for a request type with one decision, the kind of its
// result id and the payload field naming its campaign ("" when it names
// none).
type inputKind struct{ kind, campaign string }

var inputKinds = map[string]inputKind{
	schemas.TypeCouponClaimRequested:          {KindGrant, "batch"},
	schemas.TypeCouponIssueRequested:          {KindGrant, "batch"},
	schemas.TypeLotteryParticipationRequested: {KindEntry, "activity"},
	schemas.TypeGiftSendRequested:             {KindMatch, "activity"},
	schemas.TypeCouponLockRequested:           {KindOp, ""},
	schemas.TypeCouponConfirmRequested:        {KindOp, ""},
	schemas.TypeCouponCancelRequested:         {KindOp, ""},
}

// otherRequests are the requests without a one-to-one decision.
var otherRequests = map[string]bool{
	schemas.TypeLotteryDrawRequested: true,
	schemas.TypeGiftMemberUpdated:    true,
}

// classifyInput returns what an input record is, the result id its decision
// carries (classDecision) and its campaign (hasCampaign false when the
// request names none). It reads leniently: a record the runtime refuses
// (an invalid payload, from the future) still has an identity.
func classifyInput(v []byte) (cls inputClass, id, campaign string, hasCampaign bool) {
	h, ok := readHead(v)
	if !ok || h.eventID == "" || h.appID == "" {
		return classAnonymous, "", "", false
	}
	if otherRequests[h.typ] {
		return classOther, "", h.activityID, h.activityID != ""
	}
	k, ok := inputKinds[h.typ]
	if !ok {
		return classAnonymous, "", "", false
	}
	id = schemas.ResultID(k.kind, h.appID, h.eventID)
	switch k.campaign {
	case "batch":
		campaign = h.batchID
	case "activity":
		campaign = h.activityID
	}
	return classDecision, id, campaign, campaign != ""
}

// resultOf returns the result id with which a result record answers an
// input, and its campaign; ok is false for the records that answer no
// input (seed commitments, draws, awards, member records, the coupon states
// of grants and timers).
func resultOf(v []byte) (id, campaign string, ok bool) {
	h, ok := readHead(v)
	if !ok {
		return "", "", false
	}
	switch h.typ {
	case schemas.TypeCouponGrantDecided:
		campaign = h.batchID
	case schemas.TypeLotteryEntryRecorded, schemas.TypeGiftMatchDecided:
		campaign = h.activityID
	case schemas.TypeCouponStateChanged:
		if h.op != schemas.OpLock && h.op != schemas.OpConfirm && h.op != schemas.OpCancel {
			return "", "", false
		}
		campaign = h.batchID
	default:
		return "", "", false
	}
	id = h.resultID
	if id == "" {
		id = h.eventID
	}
	return id, campaign, id != ""
}

// unit is one input of a group: every delivery of one request, known by
// its result id. It is kept small: a group holds one per id of its buckets.
type unit struct {
	off    int64  // the first delivery's offset
	part   int32  // and partition
	reason uint16 // 1 + the reason index of its first dead letter; 0: none
	copies uint16 // deliveries read (saturating)
	dead   uint16 // deliveries dead-lettered (saturating)
	topic  uint8  // index of the first delivery's topic in Topics.inputs()
	flags  uint8
}

const (
	fInput         = 1 << iota // an input in range
	fDecided                   // a result carries its id
	fResultInRange             // a result in range carries its id
)

func inc16(n uint16) uint16 {
	if n == math.MaxUint16 {
		return n
	}
	return n + 1
}

// dlqEntry is one dead letter pointing into the planned input offsets.
type dlqEntry struct {
	off    int64
	reason uint16
	mark   uint8 // what the input scan found there
}

// Marks of a dead letter.
const (
	markNone      uint8 = iota // no input record read there (yet)
	markUnit                   // a delivery of a request with one decision
	markOther                  // a request without a one-to-one decision
	markAnonymous              // a record without identity
	markExcluded               // outside --campaign or the time range
)

// dlqIndex holds the dead letters that point into the planned input
// offsets, sorted per source partition: about 16 bytes each.
type dlqIndex struct {
	reasons   []string
	reasonIdx map[string]uint16
	parts     map[tp][]dlqEntry
	// elsewhere counts dead letters of other topics, by source topic.
	elsewhere map[string]int64
	// outside counts dead letters of input topics outside the planned
	// offsets; noHeaders those without promoflow.dlq headers; twice the
	// records dead-lettered more than once.
	outside, noHeaders, twice int64
}

func newDLQIndex() *dlqIndex {
	return &dlqIndex{reasonIdx: map[string]uint16{}, parts: map[tp][]dlqEntry{}, elsewhere: map[string]int64{}}
}

// add files one dead letter.
func (d *dlqIndex) add(r *kgo.Record, inputs plan, inputTopics []string) {
	var topic, reason string
	part, off := int64(-1), int64(-1)
	has := false
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, stream.HeaderDLQPrefix) {
			continue
		}
		has = true
		// A record dead-lettered twice carries two sets: the last counts.
		switch h.Key {
		case stream.HeaderDLQReason:
			reason = string(h.Value)
		case stream.HeaderDLQSourceTopic:
			topic = string(h.Value)
		case stream.HeaderDLQSourcePartition:
			part = parseNonNeg(h.Value, 31)
		case stream.HeaderDLQSourceOffset:
			off = parseNonNeg(h.Value, 63)
		}
	}
	if !has || topic == "" || part < 0 || off < 0 {
		d.noHeaders++
		return
	}
	key := tp{topic, int32(part)}
	sp, ok := inputs[key]
	switch {
	case ok && off >= sp.from && off < sp.to:
	case slices.Contains(inputTopics, topic):
		d.outside++
		return
	default:
		d.elsewhere[topic]++
		return
	}
	if reason == "" {
		reason = "(no reason)"
	}
	i, ok := d.reasonIdx[reason]
	if !ok && len(d.reasons) < math.MaxUint16 {
		i = uint16(len(d.reasons))
		d.reasons = append(d.reasons, reason)
		d.reasonIdx[reason] = i
	}
	d.parts[key] = append(d.parts[key], dlqEntry{off: off, reason: i})
}

func parseNonNeg(b []byte, bits int) int64 {
	n, err := strconv.ParseInt(string(b), 10, bits+1)
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// seal sorts the entries and keeps one per source record.
func (d *dlqIndex) seal() {
	for key, es := range d.parts {
		slices.SortStableFunc(es, func(a, b dlqEntry) int { return cmp.Compare(a.off, b.off) })
		out := es[:0]
		for _, e := range es {
			if len(out) > 0 && out[len(out)-1].off == e.off {
				d.twice++
				continue
			}
			out = append(out, e)
		}
		d.parts[key] = slices.Clip(out)
	}
}

// find returns the dead letter of the record at (topic, part, off), or nil.
func (d *dlqIndex) find(topic string, part int32, off int64) *dlqEntry {
	es := d.parts[tp{topic, part}]
	i, ok := slices.BinarySearchFunc(es, off, func(e dlqEntry, off int64) int { return cmp.Compare(e.off, off) })
	if !ok {
		return nil
	}
	return &es[i]
}

func (d *dlqIndex) reason(i uint16) string { return d.reasons[i] }

// each calls fn with every entry and its partition.
func (d *dlqIndex) each(fn func(key tp, e *dlqEntry)) {
	keys := make([]tp, 0, len(d.parts))
	for k := range d.parts {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b tp) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.part, b.part))
	})
	for _, k := range keys {
		for i := range d.parts[k] {
			fn(k, &d.parts[k][i])
		}
	}
}

// position is where one record is, for examples.
type position struct {
	topic string
	part  int32
	off   int64
	what  string
}

func (p position) String() string {
	return fmt.Sprintf("%s/%d@%d%s", safe(p.topic), p.part, p.off, p.what)
}

// firstPositions keeps the first n positions offered, in position order,
// so that examples do not depend on map order.
type firstPositions struct {
	n   int
	out []position
}

func (f *firstPositions) offer(p position) {
	i, _ := slices.BinarySearchFunc(f.out, p, func(a, b position) int {
		return cmp.Or(strings.Compare(a.topic, b.topic), cmp.Compare(a.part, b.part), cmp.Compare(a.off, b.off))
	})
	if i >= f.n {
		return
	}
	f.out = slices.Insert(f.out, i, p)
	if len(f.out) > f.n {
		f.out = f.out[:f.n]
	}
}

// inputTally adds up check 1 over the groups.
type inputTally struct {
	inputs, decided, dead, lost, lostUnread int64
	duplicates                              int64
	byTopic, deadBy                         map[string]int64
	other, otherDead                        int64
	anonymous                               int64
	orphans                                 int64 // results in range without an input in range
	excluded                                int64 // outside --campaign
	outOfTime                               int64 // in the planned offsets, timestamps outside the range
	// What the dead letters of requests with one decision turned out to be.
	dlqFirst, dlqExtra, dlqDecided int64
	lostEx                         firstPositions
}

// inputRun is one run of checks 1 and 4.
type inputRun struct {
	cfg       Config
	sc        scope
	topics    []string // input topics; a unit's topic is an index into it
	inputs    plan
	results   plan
	dlq       *dlqIndex
	committed map[tp]int64
	t         inputTally
	prog      *progress
}

func (r *inputRun) inRange(ts time.Time) bool {
	return (r.cfg.Since.IsZero() || !ts.Before(r.cfg.Since)) && (r.cfg.Until.IsZero() || ts.Before(r.cfg.Until))
}

// unread reports whether the input at (topic, part, off) is at or beyond
// its processor's committed offset: not yet read, rather than dropped.
func (r *inputRun) unread(topic string, part int32, off int64) bool {
	c, ok := r.committed[tp{topic, part}]
	return !ok || off >= c
}

// checkInputs runs checks 1 and 4.
func checkInputs(ctx context.Context, src source, cfg Config, sc scope, prog *progress, c1, c4 *Check) error {
	t := cfg.Topics
	r := &inputRun{cfg: cfg, sc: sc, topics: t.inputs(), committed: map[tp]int64{}, prog: prog,
		t: inputTally{byTopic: map[string]int64{}, deadBy: map[string]int64{}, lostEx: firstPositions{n: MaxExamples}}}
	// The processors' commits come first: an input below its group's commit
	// has its decision or dead letter in what is read after.
	for _, topic := range r.topics {
		m, err := src.committed(ctx, t.groupOf(topic), topic)
		if err != nil {
			return err
		}
		for p, o := range m {
			r.committed[tp{topic, p}] = o
		}
	}
	var missing []string
	var err error
	var miss []string
	if r.inputs, miss, err = src.planTopics(ctx, r.topics, cfg.Since, cfg.Until); err != nil {
		return err
	}
	missing = append(missing, miss...)
	resSince := cfg.Since
	if !resSince.IsZero() {
		resSince = resSince.Add(-resultMargin)
	}
	if r.results, miss, err = src.planTopics(ctx, t.results(), resSince, time.Time{}); err != nil {
		return err
	}
	missing = append(missing, miss...)
	dlqPlan, miss, err := src.planTopics(ctx, []string{t.DLQ}, time.Time{}, time.Time{})
	if err != nil {
		return err
	}
	missing = append(missing, miss...)

	r.dlq = newDLQIndex()
	prog.line("reading the dead letters (%d records)", dlqPlan.records())
	if err := src.scan(ctx, dlqPlan, func(rec *kgo.Record) error {
		r.dlq.add(rec, r.inputs, r.topics)
		return nil
	}); err != nil {
		return fmt.Errorf("reading %s: %w", t.DLQ, err)
	}
	r.dlq.seal()

	per := cfg.MemoryBuckets
	if per == 0 {
		// Inputs and their results share ids: the larger side bounds them.
		per = bucketsPerGroup(max(r.inputs.records(), r.results.records()))
	}
	groups := bucketGroups(per)
	c := &collector{groups: groups, per: per}
	if len(groups) > 1 {
		if c.spill, err = newSpill(cfg.TempDir, len(groups)); err != nil {
			return err
		}
		defer c.spill.close()
	} else {
		c.units = map[idKey]unit{}
	}
	if err := r.read(ctx, src, c); err != nil {
		return err
	}
	if c.spill == nil {
		r.tallyUnits(c.units)
	} else {
		for g := range groups {
			prog.line("adding up group %d/%d (buckets %02x-%02x, %d entries)", g+1, len(groups), groups[g][0], groups[g][1]-1, c.spill.n[g])
			units := make(map[idKey]unit, c.spill.n[g]/2)
			if err := c.spill.each(g, func(e *entry) { apply(units, e) }); err != nil {
				return err
			}
			r.tallyUnits(units)
		}
	}
	r.report(c1, c4, len(groups), per, missing)
	return nil
}

// collector routes entries to the units of their group: in memory when
// one group holds every bucket, through spill files otherwise.
type collector struct {
	groups [][2]int
	per    int
	units  map[idKey]unit
	spill  *spill
}

func (c *collector) add(e *entry) error {
	if c.spill == nil {
		apply(c.units, e)
		return nil
	}
	return c.spill.add(e.key.bucket()/c.per, e)
}

// apply adds one entry to its unit.
func apply(units map[idKey]unit, e *entry) {
	u := units[e.key]
	if e.flags&fInput != 0 {
		// The unit is shown at its first delivery: the lowest position.
		if u.flags&fInput == 0 || e.topic < u.topic || e.topic == u.topic && (e.part < u.part || e.part == u.part && e.off < u.off) {
			u.topic, u.part, u.off = e.topic, e.part, e.off
		}
		u.copies = inc16(u.copies)
		if e.reason != 0 {
			u.dead = inc16(u.dead)
			if u.reason == 0 {
				u.reason = e.reason
			}
		}
	}
	u.flags |= e.flags
	units[e.key] = u
}

// read reads the inputs and the results once, handing every
// decision-bearing record to c and counting the others.
func (r *inputRun) read(ctx context.Context, src source, c *collector) error {
	total := r.inputs.records()
	var read int64
	r.prog.line("reading %d input records", total)
	topicIdx := map[string]uint8{}
	for j, t := range r.topics {
		topicIdx[t] = uint8(j)
	}
	err := src.scan(ctx, r.inputs, func(rec *kgo.Record) error {
		read++
		r.prog.tick("%d/%d input records (%d%%)", read, total, pct(read, total))
		d := r.dlq.find(rec.Topic, rec.Partition, rec.Offset)
		if !r.inRange(rec.Timestamp) {
			r.t.outOfTime++
			if d != nil {
				d.mark = markExcluded
			}
			return nil
		}
		cls, id, campaign, has := classifyInput(rec.Value)
		if !r.sc.all() && (cls == classAnonymous || !has || campaign != r.sc.campaign) {
			r.t.excluded++
			if d != nil {
				d.mark = markExcluded
			}
			return nil
		}
		switch cls {
		case classAnonymous:
			r.t.anonymous++
			r.t.inputs++
			r.t.byTopic[rec.Topic]++
			if d != nil {
				d.mark = markAnonymous
				r.t.dead++
				r.t.deadBy[r.dlq.reason(d.reason)]++
				return nil
			}
			r.lost(rec.Topic, rec.Partition, rec.Offset, " (no event identity)")
		case classOther:
			r.t.other++
			if d != nil {
				d.mark = markOther
				r.t.otherDead++
			}
		case classDecision:
			k, _ := keyOf(id)
			e := entry{key: k, off: rec.Offset, part: rec.Partition, topic: topicIdx[rec.Topic], flags: fInput}
			if d != nil {
				d.mark = markUnit
				e.reason = d.reason + 1
			}
			return c.add(&e)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading the inputs: %w", err)
	}
	total, read = r.results.records(), 0
	r.prog.line("reading %d result records", total)
	err = src.scan(ctx, r.results, func(rec *kgo.Record) error {
		read++
		r.prog.tick("%d/%d result records (%d%%)", read, total, pct(read, total))
		id, campaign, ok := resultOf(rec.Value)
		if !ok || !r.sc.all() && campaign != r.sc.campaign {
			return nil
		}
		k, ok := keyOf(id)
		if !ok {
			// No input can have it: schemas.ResultID makes hex ids.
			if r.inRange(rec.Timestamp) {
				r.t.orphans++
			}
			return nil
		}
		e := entry{key: k, flags: fDecided}
		if r.inRange(rec.Timestamp) {
			e.flags |= fResultInRange
		}
		return c.add(&e)
	})
	if err != nil {
		return fmt.Errorf("reading the results: %w", err)
	}
	return nil
}

func pct(n, total int64) int64 {
	if total <= 0 {
		return 100
	}
	return min(100, n*100/total)
}

// tallyUnits adds a group's units to the totals.
func (r *inputRun) tallyUnits(units map[idKey]unit) {
	for k, u := range units {
		r.tally(k, u)
	}
}

// tally adds one unit to the totals.
func (r *inputRun) tally(k idKey, u unit) {
	t := &r.t
	if u.flags&fInput == 0 {
		if u.flags&fResultInRange != 0 {
			t.orphans++
		}
		return
	}
	topic := r.topics[u.topic]
	t.inputs++
	t.byTopic[topic]++
	t.duplicates += int64(u.copies) - 1
	switch {
	case u.flags&fDecided != 0:
		t.decided++
		t.dlqDecided += int64(u.dead)
	case u.dead > 0:
		t.dead++
		t.deadBy[r.dlq.reason(u.reason-1)]++
		t.dlqFirst++
		t.dlqExtra += int64(u.dead) - 1
	default:
		r.lost(topic, u.part, u.off, " result_id "+k.String())
	}
}

func (r *inputRun) lost(topic string, part int32, off int64, what string) {
	r.t.lost++
	if r.unread(topic, part, off) {
		r.t.lostUnread++
		what += " (not yet read by " + safe(r.cfg.Topics.groupOf(topic)) + ")"
	}
	r.t.lostEx.offer(position{topic, part, off, what})
}

// report writes checks 1 and 4.
func (r *inputRun) report(c1, c4 *Check, groups, per int, missing []string) {
	t := &r.t
	c1.Counts["inputs"] = t.inputs
	c1.Counts["decided"] = t.decided
	c1.Counts["dead_lettered"] = t.dead
	c1.Counts["lost"] = t.lost
	c1.Counts["lost_not_yet_read"] = t.lostUnread
	c1.Counts["duplicate_deliveries"] = t.duplicates
	c1.Counts["without_identity"] = t.anonymous
	c1.Counts["other_requests"] = t.other
	c1.Counts["other_requests_dead_lettered"] = t.otherDead
	c1.Counts["results_without_input"] = t.orphans
	c1.Counts["outside_campaign"] = t.excluded
	c1.Counts["outside_time_range"] = t.outOfTime
	c1.Counts["bucket_groups"] = int64(groups)
	for topic, n := range t.byTopic {
		c1.Counts["inputs."+topic] = n
	}
	c1.summary("inputs %s: decided %d, dead-lettered %s, lost %d", withBy(t.inputs, t.byTopic), t.decided, withBy(t.dead, t.deadBy), t.lost)
	if t.lost > 0 {
		c1.breach(t.lost, "")
		if t.lostUnread > 0 {
			c1.summary("of the lost, %d are not yet read by their processor's group (it is behind or stopped); verify a range that ends earlier (--until) to leave them out", t.lostUnread)
		}
		for _, p := range t.lostEx.out {
			c1.example("lost " + p.String())
		}
	}
	c1.summary("duplicate deliveries counted once: %d; records without an event identity: %d", t.duplicates, t.anonymous)
	if t.other > 0 {
		c1.info("requests without a one-to-one decision (draw commands, gift member changes): %d, of which %d dead-lettered", t.other, t.otherDead)
	}
	if t.orphans > 0 {
		c1.info("results without an input in range: %d (their inputs may lie before --since)", t.orphans)
	}
	if t.excluded > 0 {
		c1.info("records outside campaign %s (or naming none, like coupon.orders requests): %d", safe(r.sc.campaign), t.excluded)
	}
	if t.outOfTime > 0 {
		c1.info("records inside the planned offsets but timestamped outside the range: %d (left out)", t.outOfTime)
	}
	for _, m := range missing {
		c1.info("topic %s does not exist", safe(m))
	}
	if groups > 1 {
		c1.info("the topics were read once; the ids were added up in %d groups of up to %d of the %d buckets, through temporary files", groups, per, Buckets)
	}

	// Check 4: every dead letter pointing into the inputs read is
	// accounted for by what check 1 found there.
	var total, unmatched, excluded int64
	byReason := map[string]int64{}
	var ex firstPositions
	ex.n = MaxExamples
	r.dlq.each(func(key tp, e *dlqEntry) {
		total++
		reason := r.dlq.reason(e.reason)
		byReason[reason]++
		switch e.mark {
		case markNone:
			unmatched++
			ex.offer(position{key.topic, key.part, e.off, " (" + safe(reason) + ")"})
		case markExcluded:
			excluded++
		}
	})
	c4.Counts["dead_letters"] = total
	c4.Counts["dead_lettered_inputs"] = t.dead
	c4.Counts["further_copies"] = t.dlqExtra
	c4.Counts["copies_of_decided_inputs"] = t.dlqDecided
	c4.Counts["other_requests"] = t.otherDead
	c4.Counts["outside_campaign_or_time"] = excluded
	c4.Counts["pointing_at_no_input"] = unmatched
	for reason, n := range byReason {
		c4.Counts["reason."+reason] = n
	}
	c4.summary("dead letters pointing into the inputs read: %s", withBy(total, byReason))
	c4.summary("= dead-lettered inputs %d (check 1) + further copies of them %d + copies of inputs decided (replayed) %d"+
		" + requests without a one-to-one decision %d + outside campaign or time range %d + pointing at no input record %d",
		t.dead, t.dlqExtra, t.dlqDecided, t.otherDead, excluded, unmatched)
	if mismatch := total - (t.dead + t.dlqExtra + t.dlqDecided + t.otherDead + excluded); mismatch != 0 || unmatched != 0 {
		c4.breach(max(unmatched, mismatch), "")
		c4.summary("mismatch: %d dead letters are not accounted for by the inputs", max(unmatched, mismatch))
		for _, p := range ex.out {
			c4.example("dead letter of " + p.String() + ": no input record there")
		}
	}
	if r.dlq.twice > 0 {
		c4.info("records dead-lettered more than once (counted once): %d", r.dlq.twice)
	}
	if r.dlq.outside > 0 {
		c4.info("dead letters of input records outside the range: %d", r.dlq.outside)
	}
	if len(r.dlq.elsewhere) > 0 {
		c4.info("dead letters of other topics: %s", byCount(r.dlq.elsewhere))
	}
	if r.dlq.noHeaders > 0 {
		c4.info("dead letters without promoflow.dlq source headers: %d", r.dlq.noHeaders)
	}
}
