package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/processors/lottery"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

const lotteryHelp = `  define  publishes an activity definition (--file, JSON or YAML with the fields
          of lottery.activity.defined, see docs/lottery.md) to lottery.admin after
          checking it. The lottery admin stage commits to a secret seed for the
          activity and publishes its hash; --wait waits for that commitment and
          prints it. Publish a definition before its join window opens.
  join    publishes one participation of --user (for demos and tests; apps use
          the SDK or any Kafka client).
  draw    asks for the activity's draw now (lottery.draw.requested). Participation
          closes; drawing twice returns the first draw. --wait waits for the
          result and prints the winners per tier.
  status  prints what the system of record (MySQL) holds: the commitment, entry
          counts by outcome and reason, the draw and the winners per tier.
  verify  recomputes the draw from MySQL, as anyone can: the revealed seed must
          hash to the commitment, the stored participants must match the digest
          the draw recorded, and the winners must be exactly those the published
          algorithm picks from (seed, sorted participants, prizes). Exit status 1
          when a check fails. Same as "promoflow draw verify ACTIVITY".

The activity is --activity ID or the first argument after the action.

Examples:
  promoflow lottery define --file xmas.yaml --wait
  promoflow lottery join --activity xmas-2026 --user u1
  promoflow lottery draw --activity xmas-2026 --wait
  promoflow lottery status xmas-2026
  promoflow lottery verify xmas-2026`

func init() {
	register(&command{
		name:    "lottery",
		summary: "define lottery activities, join, draw, and show or verify a draw from the stored results",
		usage:   "define|join|draw|status|verify [ACTIVITY] [flags]",
		help:    lotteryHelp,
		flags:   lotteryFlags,
	})
	register(&command{
		name:    "draw",
		summary: "verify a lottery draw from the stored results (same as lottery verify)",
		usage:   "verify ACTIVITY [flags]",
		help: `  verify  recomputes the activity's draw from the system of record (MySQL): the
          revealed seed against its commitment, the participants against the
          digest the draw recorded, and the winners against the published
          algorithm (docs/lottery.md). Exit status 1 when a check fails.

Example:
  promoflow draw verify xmas-2026`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			run := lotteryFlags(fs)
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 || args[0] != "verify" {
					return usagef("want: draw verify ACTIVITY")
				}
				return run(ctx, args)
			}
		},
	})
}

func lotteryFlags(fs *flag.FlagSet) func(context.Context, []string) error {
	cfgPath := fs.String("config", "", "YAML configuration file")
	brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
	activity := fs.String("activity", "", "activity id")
	file := fs.String("file", "", "define: the activity definition, JSON or YAML (- for stdin)")
	user := fs.String("user", "", "join: the user who joins")
	app := fs.String("app", "promoflow-admin", "app_id the events are published under")
	by := fs.String("by", "", "draw: who asks for the draw, for the audit trail (default $USER)")
	wait := fs.Bool("wait", false, "define, draw: wait for the result on lottery.results and print it")
	timeout := fs.Duration("timeout", 30*time.Second, "define, draw: how long --wait waits")
	asJSON := fs.Bool("json", false, "status, verify: print JSON")
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("want an action: define, join, draw, status or verify")
		}
		action := args[0]
		if *activity == "" && len(args) > 1 {
			*activity = args[1]
		}
		if action != "define" && *activity == "" {
			return usagef("%s needs an activity (--activity or an argument)", action)
		}
		cfg, err := loadConfigBrokers(*cfgPath, *brokers)
		if err != nil {
			return err
		}
		out := cmdStdout
		switch action {
		case "define":
			if *file == "" {
				return usagef("define needs --file")
			}
			def, err := readActivity(*file)
			if err != nil {
				return err
			}
			return lotteryPublish(ctx, cfg, *app, def.ActivityID, *wait, *timeout, out, def, func(env *schemas.Envelope) (bool, error) {
				if env.Type != schemas.TypeLotteryActivityCommitted {
					return false, nil
				}
				var c schemas.ActivityCommitted
				if err := env.DecodePayload(&c); err != nil || c.ActivityID != def.ActivityID || c.Revision < def.Revision {
					return false, err
				}
				fmt.Fprintf(out, "committed %s revision %d at %s\nseed_hash %s\nprizes    %s\n", c.ActivityID, c.Revision, c.CommittedAt.Format(time.RFC3339), c.SeedHash, c.Prizes)
				return true, nil
			})
		case "join":
			if *user == "" {
				return usagef("join needs --user")
			}
			p := schemas.ParticipationRequested{ActivityID: *activity, UserID: *user, Channel: "cli"}
			return lotteryPublish(ctx, cfg, *app, *activity, false, 0, out, p, nil)
		case "draw":
			who := *by
			if who == "" {
				who = os.Getenv("USER")
			}
			d := schemas.DrawRequested{ActivityID: *activity, RequestedBy: who}
			return lotteryPublish(ctx, cfg, *app, *activity, *wait, *timeout, out, d, func(env *schemas.Envelope) (bool, error) {
				if env.Type != schemas.TypeLotteryDrawCompleted {
					return false, nil
				}
				var r schemas.DrawCompleted
				if err := env.DecodePayload(&r); err != nil || r.ActivityID != *activity {
					return false, err
				}
				fmt.Fprintf(out, "drawn %s at %s (%s): %d participants, %d winners, prizes %s\nseed %s (sha256 %s)\n",
					r.ActivityID, r.DrawnAt.Format(time.RFC3339), r.Trigger, r.Participants, r.Winners, r.Prizes, r.Seed, r.SeedHash)
				return true, nil
			})
		case "status", "verify":
			s, err := mysql.New(ctx, cfg.MySQL)
			if err != nil {
				return fmt.Errorf("opening the system of record: %w", err)
			}
			defer s.Close()
			if action == "status" {
				return lotteryStatus(ctx, s, *activity, *asJSON, out)
			}
			return lotteryVerify(ctx, s, *activity, *asJSON, out)
		}
		return usagef("unknown action %q", action)
	}
}

// readActivity reads and checks a definition from JSON or YAML.
func readActivity(path string) (*schemas.ActivityDefined, error) {
	return readDefinition(path, lottery.CheckActivity)
}

// lotteryPublish publishes p and, with wait, reads lottery.results from the
// current end of the activity's partition until match reports the result.
func lotteryPublish(ctx context.Context, cfg *Config, app, activity string, wait bool, timeout time.Duration, out io.Writer, p schemas.Payload, match func(*schemas.Envelope) (bool, error)) error {
	pr, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: app}, producers.WithClientOpts(cfg.kafkaOpts()...))
	if err != nil {
		return err
	}
	defer pr.Close()
	var from *resultsCursor
	if wait {
		if from, err = newResultsCursor(ctx, cfg.kafkaOpts(), activity); err != nil {
			return err
		}
		defer from.close()
	}
	id := fmt.Sprintf("%s-%s-%d", p.EventType(), activity, time.Now().UnixNano())
	if len(id) > 128 {
		id = id[len(id)-128:]
	}
	id = strings.TrimLeft(id, "-._:")
	if err := pr.Publish(ctx, id, time.Now(), p); err != nil {
		return err
	}
	fmt.Fprintf(out, "published %s %s (event %s)\n", p.EventType(), activity, id)
	if !wait {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return from.until(wctx, match)
}

// resultsCursor reads the lottery.results partition of one activity from
// the offset it had when the cursor was made.
type resultsCursor struct {
	cl *kgo.Client
}

// newResultsCursor starts reading the activity's partition of
// lottery.results at its current end; kopts reach the cluster.
func newResultsCursor(ctx context.Context, kopts []kgo.Opt, activity string) (*resultsCursor, error) {
	adm, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, err
	}
	defer adm.Close()
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, lottery.TopicResults)
	if err != nil {
		return nil, fmt.Errorf("reading the end of %s: %w", lottery.TopicResults, err)
	}
	n := 0
	ends.Each(func(kadm.ListedOffset) { n++ })
	if n == 0 {
		return nil, fmt.Errorf("topic %s not found (run promoflow topics apply)", lottery.TopicResults)
	}
	part := int32(kgo.StickyKeyPartitioner(nil).ForTopic(lottery.TopicResults).Partition(&kgo.Record{Key: []byte(activity)}, n))
	end, ok := ends.Lookup(lottery.TopicResults, part)
	if !ok || end.Err != nil {
		return nil, fmt.Errorf("reading the end of %s/%d", lottery.TopicResults, part)
	}
	cl, err := kgo.NewClient(append(slices.Clip(kopts), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
		lottery.TopicResults: {part: kgo.NewOffset().At(end.Offset)},
	}))...)
	if err != nil {
		return nil, err
	}
	return &resultsCursor{cl: cl}, nil
}

func (c *resultsCursor) until(ctx context.Context, match func(*schemas.Envelope) (bool, error)) error {
	var dec schemas.Decoder
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return fmt.Errorf("waiting for the result: %w (is the lottery stage running? promoflow run)", ctx.Err())
		}
		var done bool
		var err error
		fs.EachRecord(func(r *kgo.Record) {
			if done || err != nil {
				return
			}
			env, derr := dec.Decode(r.Value)
			if derr != nil {
				return
			}
			done, err = match(env)
		})
		if err != nil || done {
			return err
		}
	}
}

func (c *resultsCursor) close() { c.cl.Close() }

type lotteryStatusReport struct {
	Commitment *schemas.ActivityCommitted `json:"commitment,omitempty"`
	Entries    sinks.EntryCounts          `json:"entries"`
	Draw       *schemas.DrawCompleted     `json:"draw,omitempty"`
	Awards     map[string]int             `json:"awards_per_tier"`
}

func lotteryStatus(ctx context.Context, r sinks.LotteryReader, activity string, asJSON bool, out io.Writer) error {
	var rep lotteryStatusReport
	var err error
	rep.Commitment, err = r.Activity(ctx, activity)
	if err != nil && !errors.Is(err, sinks.ErrNotFound) {
		return err
	}
	if rep.Entries, err = r.EntryCounts(ctx, activity); err != nil {
		return err
	}
	rep.Draw, err = r.Draw(ctx, activity)
	if err != nil && !errors.Is(err, sinks.ErrNotFound) {
		return err
	}
	awards, err := r.Awards(ctx, activity)
	if err != nil {
		return err
	}
	rep.Awards = map[string]int{}
	for _, a := range awards {
		rep.Awards[a.TierID]++
	}
	if asJSON {
		return json.NewEncoder(out).Encode(rep)
	}
	if rep.Commitment == nil && rep.Entries.Accepted+rep.Entries.Rejected == 0 {
		return fmt.Errorf("activity %s: nothing stored (no commitment, no entries)", activity)
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if c := rep.Commitment; c != nil {
		fmt.Fprintf(w, "activity\t%s (%s, revision %d, %s)\n", c.ActivityID, c.Kind, c.Revision, c.Status)
		fmt.Fprintf(w, "join window\t%s – %s\n", c.JoinFrom.Format(time.RFC3339), c.JoinUntil.Format(time.RFC3339))
		if c.DrawAt != nil {
			fmt.Fprintf(w, "draw at\t%s\n", c.DrawAt.Format(time.RFC3339))
		}
		fmt.Fprintf(w, "prizes\t%s\n", c.Prizes)
		fmt.Fprintf(w, "seed hash\t%s (committed %s)\n", c.SeedHash, c.CommittedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "activity\t%s (no commitment stored)\n", activity)
	}
	e := rep.Entries
	fmt.Fprintf(w, "entries\t%d accepted, %d rejected, %d participants, %d instant wins\n", e.Accepted, e.Rejected, e.Participants, e.Won)
	reasons := make([]string, 0, len(e.RejectedBy))
	for k := range e.RejectedBy {
		reasons = append(reasons, k)
	}
	sort.Strings(reasons)
	for _, k := range reasons {
		fmt.Fprintf(w, "  rejected %s\t%d\n", k, e.RejectedBy[k])
	}
	if d := rep.Draw; d != nil {
		fmt.Fprintf(w, "draw\t%s at %s: %d participants, %d winners\n", d.Trigger, d.DrawnAt.Format(time.RFC3339), d.Participants, d.Winners)
		fmt.Fprintf(w, "seed\t%s\n", d.Seed)
	} else {
		fmt.Fprintf(w, "draw\tnot drawn\n")
	}
	tiers := make([]string, 0, len(rep.Awards))
	for k := range rep.Awards {
		tiers = append(tiers, k)
	}
	sort.Strings(tiers)
	for _, k := range tiers {
		fmt.Fprintf(w, "  awarded %s\t%d\n", k, rep.Awards[k])
	}
	return w.Flush()
}

func lotteryVerify(ctx context.Context, r sinks.LotteryReader, activity string, asJSON bool, out io.Writer) error {
	c, err := r.Activity(ctx, activity)
	if err != nil {
		return fmt.Errorf("reading the commitment of %s: %w", activity, err)
	}
	d, err := r.Draw(ctx, activity)
	if err != nil {
		return fmt.Errorf("reading the draw of %s: %w", activity, err)
	}
	users, err := r.Participants(ctx, activity)
	if err != nil {
		return err
	}
	awards, err := r.Awards(ctx, activity)
	if err != nil {
		return err
	}
	v, err := lottery.Verify(c, d, users, awards)
	if err != nil {
		return err
	}
	if asJSON {
		if err := json.NewEncoder(out).Encode(map[string]any{"activity": activity, "ok": v.OK(), "checks": v.Checks}); err != nil {
			return err
		}
	} else {
		for _, ch := range v.Checks {
			mark := "ok  "
			switch {
			case !ch.OK && ch.Warn:
				mark = "warn"
			case !ch.OK:
				mark = "FAIL"
			}
			fmt.Fprintf(out, "%s  %-26s %s\n", mark, ch.Name, ch.Detail)
		}
	}
	if !v.OK() {
		return fmt.Errorf("draw of %s does not verify", activity)
	}
	if !asJSON {
		fmt.Fprintf(out, "draw of %s verified: %d winners recomputed from %d participants\n", activity, len(v.Recomputed), len(users))
	}
	return nil
}
