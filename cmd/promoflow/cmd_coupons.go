package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/promoflow/promoflow/processors/coupon"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

const couponsHelp = `  define  publishes a batch definition (--file, JSON or YAML with the fields of
          coupon.batch.defined v2, see docs/coupons.md) to coupon.admin after
          checking it. Raise revision to change a batch; status: disabled is the
          kill switch. Every processor instance applies it within a second.
  issue   issues coupons of --batch to every user of --users (a CSV with a
          user_id column or one id per line, JSON, or JSON lines). Every row is
          checked first: if any is rejected, the rows are listed with their line
          and reason and nothing is issued (--skip-invalid issues the others).
          Each user becomes one coupon.issue.requested event; the coupon
          processor decides them like claims, so issuance never exceeds the
          stock or a user's limit, and submitting the same file again issues
          nothing more (--round N issues again on purpose). Progress is shown
          every second; then the report: issued, skipped (with reasons: out of
          stock, user limit, already issued) and failed users, written in full
          to --report as CSV.

Examples:
  promoflow coupons define --file double11.yaml
  promoflow coupons issue --batch D11-50OFF --users vip.csv --report d11-issue.csv`

func init() {
	register(&command{
		name:    "coupons",
		summary: "define coupon batches and issue them to uploaded user lists",
		usage:   "define|issue [flags]",
		help:    couponsHelp,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			file := fs.String("file", "", "define: the batch definition, JSON or YAML (- for stdin)")
			batch := fs.String("batch", "", "issue: the batch")
			users := fs.String("users", "", "issue: the user list (- for stdin)")
			format := fs.String("format", "", "issue: csv, json or jsonl (default: from the content)")
			issueID := fs.String("issue-id", "", "issue: a name for this issuance (default <batch>-r<round>)")
			round := fs.Int("round", 0, "issue: issue again to the same users (each round at most once per user)")
			skipInvalid := fs.Bool("skip-invalid", false, "issue: issue to the valid rows even if some are rejected")
			wait := fs.Duration("wait", 10*time.Minute, "issue: how long to wait for the decisions (0: do not wait)")
			report := fs.String("report", "", "issue: write every user's outcome to this CSV file")
			app := fs.String("app", "promoflow-admin", "app_id the events are published under")
			quiet := fs.Bool("quiet", false, "issue: no progress lines")
			return func(ctx context.Context, args []string) error {
				if len(args) != 1 {
					return usagef("want one action: define or issue")
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				out := cmdStdout
				switch args[0] {
				case "define":
					if *file == "" {
						return usagef("define needs --file")
					}
					def, err := readBatch(*file)
					if err != nil {
						return err
					}
					p, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: *app}, producers.WithClientOpts(cfg.kafkaOpts()...))
					if err != nil {
						return err
					}
					defer p.Close()
					id := fmt.Sprintf("batch-%s-r%d", def.BatchID, def.Revision)
					if err := p.Publish(ctx, id, time.Now(), schemas.BatchDefinedV2(*def)); err != nil {
						return err
					}
					fmt.Fprintf(out, "published batch %s revision %d (%s, stock %d, %d per user)\n", def.BatchID, def.Revision, def.Status, def.TotalStock, def.PerUserLimit)
					return nil
				case "issue":
					if *batch == "" || *users == "" {
						return usagef("issue needs --batch and --users")
					}
					return runIssue(ctx, cfg, *app, *batch, *users, *format, *issueID, *round, *skipInvalid, *wait, *report, *quiet, out)
				}
				return usagef("unknown action %q", args[0])
			}
		},
	})
}

// readBatch reads and checks a v2 batch definition from JSON or YAML.
func readBatch(path string) (*schemas.BatchDefined, error) {
	b, err := readInput(path)
	if err != nil {
		return nil, err
	}
	if b, err = yamlToJSON(b); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var def schemas.BatchDefined
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&def); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	env, err := schemas.New("check", "promoflow-admin", time.Now(), schemas.BatchDefinedV2(def))
	if err == nil {
		_, err = schemas.Validate(env)
	}
	if err == nil {
		err = coupon.CheckBatch(&def)
	}
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	return &def, nil
}

func readInput(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}

// yamlToJSON passes JSON through and turns YAML into JSON, so that one
// decoder (and its checks) reads both.
func yamlToJSON(b []byte) ([]byte, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		return b, nil
	}
	var v any
	if err := yaml.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func runIssue(ctx context.Context, cfg *Config, app, batch, usersPath, format, issueID string, round int, skipInvalid bool, wait time.Duration, reportPath string, quiet bool, out io.Writer) error {
	f, err := os.Open(usersPath)
	if usersPath == "-" {
		f, err = os.Stdin, nil
	}
	if err != nil {
		return err
	}
	members, rejected, err := producers.ParseMembers(f, format)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading %s: %w", usersPath, err)
	}
	for _, r := range rejected {
		fmt.Fprintf(out, "rejected line %d %q: %s\n", r.Line, r.UserID, r.Reason)
	}
	if len(rejected) > 0 && !skipInvalid {
		return fmt.Errorf("%d of %d rows rejected; nothing issued (fix them, or --skip-invalid)", len(rejected), len(rejected)+len(members))
	}
	users := make([]string, len(members))
	for i, m := range members {
		users[i] = m.UserID
	}
	p, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: app}, producers.WithClientOpts(cfg.kafkaOpts()...))
	if err != nil {
		return err
	}
	defer p.Close()
	opts := producers.IssueOptions{BatchID: batch, IssueID: issueID, Round: round, Wait: wait, ClientOpts: cfg.kafkaOpts()}
	if !quiet {
		opts.Progress = func(pr producers.IssueProgress) {
			fmt.Fprintf(os.Stderr, "issue %s: published %d/%d, decided %d/%d (%.0f%%), %.0f users/s\n", batch, pr.Acked, pr.Total, pr.Decided, pr.Total,
				100*float64(pr.Decided)/float64(max(pr.Total, 1)), float64(pr.Acked)/max(pr.Elapsed.Seconds(), 0.001))
		}
	}
	rep, err := producers.Issue(ctx, p, cfg.Kafka.Brokers, users, opts)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "issued %d, skipped %d%s, failed %d%s of %d users (%d rows rejected) in %s, %.0f users/s\n",
		rep.Issued, rep.Skipped, reasons(rep.SkippedBy), rep.Failed+len(rejected), reasons(rep.FailedBy), len(users), len(rejected),
		rep.Elapsed.Round(time.Millisecond), float64(len(users))/rep.Elapsed.Seconds())
	if reportPath != "" {
		if err := writeIssueReport(reportPath, rep, rejected); err != nil {
			return err
		}
		fmt.Fprintf(out, "report written to %s\n", reportPath)
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%d users failed", rep.Failed)
	}
	return nil
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

func writeIssueReport(path string, rep *producers.IssueReport, rejected []producers.RowError) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write([]string{"user_id", "status", "reason", "coupon_id", "event_id"})
	for _, o := range rep.Outcomes {
		_ = w.Write([]string{o.UserID, o.Status, o.Reason, o.CouponID, o.EventID})
	}
	for _, r := range rejected {
		_ = w.Write([]string{csvSafe(r.UserID), producers.IssueFailed, csvSafe(fmt.Sprintf("line %d: %s", r.Line, r.Reason)), "", ""})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// csvSafe defuses a cell a spreadsheet would run as a formula (a rejected
// row may hold anything).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
