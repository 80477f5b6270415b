package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/schemas"
)

// Result kinds (schemas.ResultID's kind) of the decisions that answer one
// input each, as the processors derive them: processors/coupon's
// ResultKind and KindOp, processors/lottery's entry and match kinds.
const (
	KindGrant = "coupon.grant"
	KindOp    = "coupon.op"
	KindEntry = "lottery.entry"
	KindMatch = "gift.match"
)

// IDQuery selects result ids for one page of a comparison: those in
// [From, To) (an empty bound is open) that sort after After (empty: from
// the start), and, when Column is set (batch_id or activity_id), whose
// Column is Value; at most Limit, in ascending bytewise order.
type IDQuery struct {
	From, To, After string
	Column, Value   string
	Limit           int
}

// IDReader reads the result ids a store holds, in pages, in ascending
// order. Both sinks implement it.
type IDReader interface {
	// IDStreams returns how many separately sorted streams a table is
	// spread over (the shard tables; 1 for ClickHouse).
	IDStreams() int
	// ResultIDs returns one page of q from stream of table, which is the
	// store's name of the table (coupon_grant in MySQL, coupon_grants in
	// ClickHouse, ...).
	ResultIDs(ctx context.Context, table string, stream int, q IDQuery) ([]string, error)
}

// IDCounter is an IDReader that counts a table's rows cheaply (an upper
// bound of its ids, like ClickHouse's count() without FINAL). Check 2 sizes
// its ranges by it, so that a small table takes one range and a large one
// pages of about equal cost; without it, a table takes the Buckets.
type IDCounter interface {
	CountIDs(ctx context.Context, table string) (int64, error)
}

// CouponRecord reads the coupon invariants from one shard table of the
// system of record; batch narrows every read to one batch when not empty.
type CouponRecord interface {
	// GrantedPerBatch calls fn with the granted rows of each batch.
	GrantedPerBatch(ctx context.Context, shard int, batch string, fn func(batch string, n int64) error) error
	// GrantsPerUserOver calls fn with each (user, batch) holding more than
	// over granted rows.
	GrantsPerUserOver(ctx context.Context, shard int, batch string, over int64, fn func(user, batch string, n int64) error) error
	// ConfirmsPerCouponOver calls fn with each coupon confirmed (applied)
	// more than once.
	ConfirmsPerCouponOver(ctx context.Context, shard int, batch string, fn func(coupon string, n int64) error) error
}

// UserQuery selects one page of the rows of an activity in one shard table,
// sorted by (Column, result_id): Table is lottery_award (Column user_id),
// gift_match (Column sender_id or receiver_id, matched sends only) or
// referral (Column invitee_id, bound decisions only, Other the inviter).
// Rows come after (AfterKey, AfterID) when AfterID is set; at most Limit.
type UserQuery struct {
	Table, Column     string
	ActivityID        string
	AfterKey, AfterID string
	Limit             int
}

// UserRow is one row of a UserQuery: the column's value, the result id and
// the other party (the tier of an award; the receiver of a sender, the
// sender of a receiver).
type UserRow struct {
	Key, ResultID, Other string
}

// LotteryRecord reads the lottery and gift-exchange invariants from one
// shard table of the system of record.
type LotteryRecord interface {
	// ActivityIDs calls fn with each activity id present in table
	// (lottery_award, gift_match or referral).
	ActivityIDs(ctx context.Context, shard int, table string, fn func(activity string) error) error
	// AwardsPerTier calls fn with the awards of each (activity, tier);
	// activity narrows it when not empty.
	AwardsPerTier(ctx context.Context, shard int, activity string, fn func(activity, tier string, n int64) error) error
	// SortedUsers returns one page of q.
	SortedUsers(ctx context.Context, shard int, q UserQuery) ([]UserRow, error)
}

// Record is the system of record as verify reads it: every shard table
// (IDStreams of them) answers each read.
type Record interface {
	IDReader
	CouponRecord
	LotteryRecord
	// ShardName names shard table i in reports.
	ShardName(i int) string
}

// Topics names the topics and consumer groups verify reads.
type Topics struct {
	// Claims carries claims and issues (coupon.claims), read by ClaimsGroup.
	Claims, ClaimsGroup string
	// Orders carries lock, confirm and cancel (coupon.orders), read by
	// OrdersGroup.
	Orders, OrdersGroup string
	// Requests carries participations, draws, gift members and sends
	// (lottery.requests), read by RequestsGroup.
	Requests, RequestsGroup string
	// Grants, States and Results carry the decisions.
	Grants, States, Results string
	// CouponAdmin and LotteryAdmin carry the definitions (compacted).
	CouponAdmin, LotteryAdmin string
	// DLQ is the dead-letter topic.
	DLQ string
	// SinkGroups are the sinks' consumer groups, whose lag check 2 reports.
	SinkGroups []string
}

func (t Topics) inputs() []string { return []string{t.Claims, t.Orders, t.Requests} }

func (t Topics) results() []string { return []string{t.Grants, t.States, t.Results} }

// groupOf returns the group that consumes input topic.
func (t Topics) groupOf(topic string) string {
	switch topic {
	case t.Claims:
		return t.ClaimsGroup
	case t.Orders:
		return t.OrdersGroup
	case t.Requests:
		return t.RequestsGroup
	}
	return ""
}

// Config configures Run.
type Config struct {
	// Brokers are the seed brokers; nil skips checks 1 and 4 and the parts
	// of check 3 that need the definitions.
	Brokers []string
	// ClientOpts are extra franz-go options (TLS, SASL).
	ClientOpts []kgo.Opt
	// Topics names what to read. Required with Brokers.
	Topics Topics
	// Since and Until bound the input records of checks 1 and 4 by their
	// timestamps; zero is open.
	Since, Until time.Time
	// Campaign narrows the checks to one batch or activity when not empty.
	Campaign string
	// MemoryBuckets is how many of the Buckets check 1 holds in memory at
	// a time; 0 sizes the groups to about MaxIDsInMemory ids. Below
	// Buckets, the ids are spilled to files in TempDir, one per group.
	MemoryBuckets int
	// TempDir receives the spill files (os.TempDir() when empty).
	TempDir string
	// MySQL is the system of record; nil skips checks 2 and 3.
	MySQL Record
	// ClickHouse is the reporting store; nil skips check 2.
	ClickHouse IDReader
	// DecodeBatch and DecodeActivity read a definition from its admin
	// topic the way the processors do (refusing what they refuse).
	// Required with Brokers.
	DecodeBatch    func(*schemas.Envelope) (*schemas.BatchDefined, error)
	DecodeActivity func(*schemas.Envelope) (*schemas.ActivityDefined, error)
	// Progress receives progress lines of the long phases (nil: none).
	Progress io.Writer
	// Now returns the current time, overriding time.Now.
	Now func() time.Time
}

// Run runs the four checks and returns the report; an error means a check
// could not be run (a store or Kafka failed), not a breach.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	start := cfg.Now()
	if !cfg.Since.IsZero() && !cfg.Until.IsZero() && !cfg.Until.After(cfg.Since) {
		return nil, fmt.Errorf("until (%s) must be after since (%s)", cfg.Until.Format(time.RFC3339), cfg.Since.Format(time.RFC3339))
	}
	if cfg.MemoryBuckets < 0 || cfg.MemoryBuckets > Buckets {
		return nil, fmt.Errorf("memory buckets must be between 0 and %d, got %d", Buckets, cfg.MemoryBuckets)
	}
	rep := &Report{Since: cfg.Since, Until: cfg.Until, Campaign: cfg.Campaign}
	c1 := newCheck(1, "every input has exactly one decision")
	c2 := newCheck(2, "MySQL and ClickHouse agree row for row")
	c3 := newCheck(3, "invariants hold in MySQL")
	c4 := newCheck(4, "dead letters add up")
	rep.Checks = []*Check{c1, c2, c3, c4}
	prog := newProgress(cfg.Progress)

	var defs *definitions
	var k *kafkaReader
	if cfg.Brokers != nil {
		if cfg.DecodeBatch == nil || cfg.DecodeActivity == nil {
			return nil, errors.New("verify: DecodeBatch and DecodeActivity are required with Kafka")
		}
		var err error
		if k, err = newKafkaReader(cfg.Brokers, cfg.ClientOpts); err != nil {
			return nil, err
		}
		k.prog = prog
		defer k.close()
		prog.line("reading the definitions from %s and %s", cfg.Topics.CouponAdmin, cfg.Topics.LotteryAdmin)
		if defs, err = readDefinitions(ctx, k, cfg); err != nil {
			return nil, err
		}
	}
	sc := newScope(cfg.Campaign, defs)
	rep.CampaignKind = sc.kindName()

	if k != nil {
		if err := checkInputs(ctx, k, cfg, sc, prog, c1, c4); err != nil {
			return nil, err
		}
	} else {
		c1.skip("skipped: Kafka is skipped")
		c4.skip("skipped: Kafka is skipped")
	}
	switch {
	case cfg.MySQL == nil:
		c2.skip("skipped: MySQL is skipped")
	case cfg.ClickHouse == nil:
		c2.skip("skipped: ClickHouse is skipped")
	default:
		if err := compareStores(ctx, cfg.MySQL, cfg.ClickHouse, sc, prog, c2); err != nil {
			return nil, err
		}
		if k != nil {
			sinkLag(ctx, k, cfg.Topics, c2)
		}
	}
	if cfg.MySQL == nil {
		c3.skip("skipped: MySQL is skipped")
	} else if err := checkInvariants(ctx, cfg.MySQL, defs, sc, prog, c3); err != nil {
		return nil, err
	}
	rep.Took = cfg.Now().Sub(start)
	rep.finish()
	return rep, nil
}

// scope is what --campaign narrows the checks to.
type scope struct {
	campaign string
	// batch and activity say whether the campaign is a batch or an activity
	// (both when the definitions do not say, or there are none).
	batch, activity bool
}

func newScope(campaign string, defs *definitions) scope {
	sc := scope{campaign: campaign, batch: true, activity: true}
	if campaign == "" || defs == nil {
		return sc
	}
	_, isBatch := defs.batches[campaign]
	_, isActivity := defs.activities[campaign]
	if isBatch || isActivity {
		sc.batch, sc.activity = isBatch, isActivity
	}
	return sc
}

func (s scope) kindName() string {
	switch {
	case s.campaign == "":
		return ""
	case s.batch && s.activity:
		return "unknown: read as a batch and as an activity"
	case s.batch:
		return "batch"
	default:
		return "activity"
	}
}

// all reports whether nothing is narrowed.
func (s scope) all() bool { return s.campaign == "" }

// batchFilter returns the batch to narrow coupon reads to ("" for all), and
// false when the campaign is an activity (no coupon data is in scope).
func (s scope) batchFilter() (string, bool) {
	if s.campaign == "" {
		return "", true
	}
	return s.campaign, s.batch
}

// activityFilter is batchFilter for lottery and gift-exchange reads.
func (s scope) activityFilter() (string, bool) {
	if s.campaign == "" {
		return "", true
	}
	return s.campaign, s.activity
}

// progress prints progress lines of long phases, at most one a second
// unless forced.
type progress struct {
	w    io.Writer
	last time.Time
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

// line prints a progress line now.
func (p *progress) line(format string, args ...any) {
	if p.w == nil {
		return
	}
	p.last = time.Now()
	fmt.Fprintf(p.w, "verify: "+format+"\n", args...)
}

// tick prints a progress line if the last one is a second old.
func (p *progress) tick(format string, args ...any) {
	if p.w == nil || time.Since(p.last) < time.Second {
		return
	}
	p.line(format, args...)
}
