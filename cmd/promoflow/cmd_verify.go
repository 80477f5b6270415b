package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/promoflow/promoflow/internal/verify"
	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/sinks/clickhouse"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// verifyStderr receives verify's progress lines.
var verifyStderr io.Writer = os.Stderr

// Parts of the system verify can leave out (--skip).
const (
	skipKafka      = "kafka"
	skipMySQL      = "mysql"
	skipClickHouse = "clickhouse"
)

func init() {
	register(&command{
		name:    "verify",
		summary: "reconcile inputs with decisions, MySQL with ClickHouse, and check the invariants (exit 1 on a breach)",
		usage:   "[--config FILE] [--brokers ADDRS] [--since T] [--until T] [--campaign ID] [--skip kafka|mysql|clickhouse] [--json]",
		help: `Reconciles what went into the pipeline with what came out and prints a
report: each check is ok or BREACH, with its counts and up to 10 examples.
The exit status is 1 if any check found a breach, 0 otherwise.

  1. Every input has exactly one decision. Every record of coupon.claims,
     coupon.orders and lottery.requests in the range is an input; duplicates
     (same app_id and event_id) count once. An input is decided when a
     result topic holds its result id, dead-lettered when the DLQ holds it
     (by its promoflow.dlq.source.* headers), lost otherwise. Lost inputs
     not yet read by their processor (behind or stopped) are pointed out.
  2. MySQL and ClickHouse agree row for row: coupon grants, coupon
     operations, lottery entries and awards, gift matches, compared by
     result id range by range over every shard table (ClickHouse with FINAL).
  3. Invariants in MySQL: grants <= stock and <= the per-user limit of each
     batch (latest revision on coupon.admin); one award per user and
     activity, awards per tier <= its stock (lottery.admin); each
     gift-exchange member sends once, receives once, never to themselves;
     a coupon is used at most once.
  4. The dead letters pointing into the inputs read add up to what check 1
     found; one pointing at no input record is a mismatch.

--since and --until bound the input records by their timestamps: a duration
ago (2h) or an RFC 3339 time; by default everything the topics hold. On a
live pipeline, end the range a little in the past (--until 5m) so that inputs
still in flight are left out. Checks 2 and 3 read the stores whole.
--campaign narrows checks 1-3 to one batch or activity. --skip leaves out
Kafka (checks 1 and 4, and the definitions of check 3), MySQL (checks 2 and
3) or ClickHouse (check 2); repeat it or separate with commas.

It scales to tens of millions of rows: check 1 reads the topics once and
adds the result ids up in groups of the 256 buckets of ids (by their first
two hex digits) that fit in memory (--memory-buckets per group; by default
about 2 million ids, ~200 MB), spilling the groups to temporary files
($TMPDIR) when there are several; check 2 merges sorted pages of ids range by
range; check 3 lets each shard aggregate. Progress goes to stderr (--quiet:
none). It only reads, and creates no database or table.

Examples:
  promoflow verify --config promoflow.yaml
  promoflow verify --since 24h --until 5m --json
  promoflow verify --campaign D11-PHONE-50 --skip clickhouse`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			since := fs.String("since", "", "only inputs written at or after this: a duration ago (24h) or an RFC 3339 time")
			until := fs.String("until", "", "only inputs written before this: a duration ago (5m) or an RFC 3339 time")
			campaign := fs.String("campaign", "", "narrow the checks to this batch or activity id")
			asJSON := fs.Bool("json", false, "print the report as JSON")
			quiet := fs.Bool("quiet", false, "print no progress on stderr")
			memBuckets := fs.Int("memory-buckets", 0, fmt.Sprintf("buckets (of %d) of result ids check 1 holds in memory at a time; 0: sized automatically", verify.Buckets))
			var skip stringsFlag
			fs.Var(&skip, "skip", "leave out kafka, mysql or clickhouse (repeatable, comma-separated)")
			return func(ctx context.Context, args []string) error {
				if len(args) != 0 {
					return usagef("verify takes no arguments")
				}
				now := time.Now()
				from, err := parseWhen(*since, now)
				if err != nil {
					return usagef("--since: %v", err)
				}
				to, err := parseWhen(*until, now)
				if err != nil {
					return usagef("--until: %v", err)
				}
				if !from.IsZero() && !to.IsZero() && !to.After(from) {
					return usagef("--until must be after --since")
				}
				if *memBuckets < 0 || *memBuckets > verify.Buckets {
					return usagef("--memory-buckets must be between 0 and %d", verify.Buckets)
				}
				skipped := map[string]bool{}
				for _, s := range skip {
					switch s {
					case skipKafka, skipMySQL, skipClickHouse:
						skipped[s] = true
					default:
						return usagef("--skip %q: want kafka, mysql or clickhouse", s)
					}
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				var progress io.Writer = verifyStderr
				if *quiet {
					progress = nil
				}
				rep, err := runVerify(ctx, cfg, verifyOptions{Since: from, Until: to, Campaign: *campaign, MemoryBuckets: *memBuckets,
					Skip: skipped, Progress: progress})
				if err != nil {
					return err
				}
				if *asJSON {
					err = rep.WriteJSON(cmdStdout)
				} else {
					err = rep.WriteText(cmdStdout)
				}
				if err != nil {
					return err
				}
				if !rep.OK() {
					return fmt.Errorf("%d of %d checks found breaches", rep.Breached, len(rep.Checks))
				}
				return nil
			}
		},
	})
}

// parseWhen reads a --since or --until value: empty (open), a positive
// duration before now, or an RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("duration %s must be positive (it counts back from now)", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h) nor an RFC 3339 time", s)
	}
	return t, nil
}

// verifyOptions are the flags of verify.
type verifyOptions struct {
	Since, Until  time.Time
	Campaign      string
	MemoryBuckets int
	// Skip names the parts left out: kafka, mysql, clickhouse.
	Skip     map[string]bool
	Progress io.Writer
}

// runVerify connects what is not skipped and runs the checks.
func runVerify(ctx context.Context, cfg *Config, o verifyOptions) (*verify.Report, error) {
	var sinkGroups []string
	for _, s := range sinkStages(nil, nil) {
		sinkGroups = append(sinkGroups, s.Group)
	}
	vc := verify.Config{
		Topics: verify.Topics{
			Claims: coupon.TopicClaims, ClaimsGroup: coupon.Group,
			Orders: coupon.TopicOrders, OrdersGroup: coupon.Group,
			Requests: lottery.TopicRequests, RequestsGroup: lottery.Group,
			Grants: coupon.TopicGrants, States: coupon.TopicStates, Results: lottery.TopicResults,
			CouponAdmin: coupon.TopicAdmin, LotteryAdmin: lottery.TopicAdmin,
			DLQ:        cfg.Runtime.DLQTopic,
			SinkGroups: sinkGroups,
		},
		Since: o.Since, Until: o.Until, Campaign: o.Campaign, MemoryBuckets: o.MemoryBuckets,
		DecodeBatch: coupon.DecodeBatch, DecodeActivity: lottery.DecodeActivity,
		Progress: o.Progress,
	}
	if !o.Skip[skipKafka] {
		vc.Brokers, vc.ClientOpts = cfg.Kafka.Brokers, cfg.kafkaOpts()
	}
	if !o.Skip[skipMySQL] {
		my, err := mysql.OpenReader(ctx, cfg.MySQL)
		if err != nil {
			return nil, err
		}
		defer my.Close()
		vc.MySQL = my
	}
	if !o.Skip[skipClickHouse] && !o.Skip[skipMySQL] {
		ch, err := clickhouse.OpenReader(ctx, cfg.ClickHouse)
		if err != nil {
			return nil, err
		}
		defer ch.Close()
		vc.ClickHouse = ch
	}
	rep, err := verify.Run(ctx, vc)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("verify interrupted: %w", err)
		}
		return nil, err
	}
	return rep, nil
}
