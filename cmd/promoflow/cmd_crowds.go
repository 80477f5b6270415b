package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// topicCrowds carries crowd memberships and the end of each routine
// crowd's compute day.
const topicCrowds = "crowd.memberships"

// crowdStage declares the sink stage that stores crowds in MySQL.
func crowdStage(w stream.BatchWriter) stream.Stage {
	st := stream.SinkStage(stageCrowd, "promoflow-sink-crowd", []string{topicCrowds},
		typesV1(schemas.TypeCrowdMembershipRecorded, schemas.TypeCrowdComputed), w)
	st.MaxPollRecords = 20_000
	return st
}

// openCrowds opens the crowd store on sink with the configured window.
func openCrowds(ctx context.Context, cfg *Config, sink *mysql.Sink) (*mysql.Crowds, error) {
	loc, err := cfg.Crowds.location()
	if err != nil {
		return nil, err
	}
	return sink.Crowds(ctx, mysql.WithCrowdAhead(cfg.Crowds.AheadDays), mysql.WithCrowdRetention(cfg.Crowds.RetentionDays),
		mysql.WithCrowdClock(nil, loc), mysql.WithCrowdLogger(cfg.logger()))
}

func (cfg *Config) maintainOptions(dry bool) mysql.MaintainOptions {
	return mysql.MaintainOptions{Backup: cfg.Crowds.Backup, DumpDir: cfg.Crowds.DumpDir, DryRun: dry}
}

// addCrowds adds the sink-crowd stage on my, the pipeline's MySQL sink
// when it has one, and the table maintenance, at start and every
// crowds.maintain_interval.
func (p *pipeline) addCrowds(ctx context.Context, my sinkWriter, scfg stream.Config) error {
	sink, err := p.mysqlFor(ctx, my, stageCrowd, "crowds")
	if err != nil || sink == nil {
		return err
	}
	crowds, err := openCrowds(ctx, p.cfg, sink)
	if err != nil {
		return fmt.Errorf("starting the crowd sink: %w", err)
	}
	maintain := func(ctx context.Context) {
		rep, err := crowds.Maintain(ctx, p.cfg.maintainOptions(false))
		if err != nil {
			p.log.Error("crowd table maintenance failed (retried at the next interval)", "err", err)
			return
		}
		p.log.Info("crowd tables maintained", "created", len(rep.Created), "backed_up", len(rep.BackedUp), "dropped", len(rep.Dropped),
			"kept", rep.Kept, "locked_elsewhere", len(rep.Locked))
	}
	// Tables for today and ahead exist before the first row arrives.
	maintain(ctx)
	p.background = append(p.background, func(ctx context.Context) {
		t := time.NewTicker(p.cfg.Crowds.MaintainInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				maintain(ctx)
			}
		}
	})
	r, err := stream.New(scfg, crowdStage(crowds))
	if err != nil {
		return err
	}
	p.runners = append(p.runners, r)
	return nil
}

const crowdsHelp = `Crowds (audiences, docs/crowds.md): memberships published on
crowd.memberships are stored by the sink-crowd stage in MySQL: manual crowds in
crowd_manual_00..99, routine crowds (recomputed every day) in
crowd_routine_<YYYYMMDD>_00..99, the table chosen by crc32(app_id) % 100, and
crowd_locator saying where each crowd is. Other services read crowds through
promoflow serve (GET /v1/crowds/{id}/members, .../members/{user}).

  import    publishes a crowd from --users FILE (one user id per line, or the
            first column of a CSV; a header line "user_id" is skipped):
            --crowd, --app, --trigger manual|routine, --day YYYYMMDD for a
            routine crowd (default today). Every line is checked first; a bad
            line stops the import before anything is published, with its line
            number. Progress goes to stderr. A routine import ends with
            crowd.computed: readers switch to the day once all its rows are
            stored. --remove takes the listed users out of a manual crowd.
  maintain  creates the routine tables of today and the next crowds.ahead_days
            days, and backs up (crowds.backup: archive, dump or none) then drops
            whole the days older than crowds.retention_days. promoflow run does
            it at start and every crowds.maintain_interval. Safe to run again,
            and while another instance runs it (a per-database lock).
            --dry-run prints what it would do.
  show      prints a crowd's locator entry (trigger, app, ready day, a pending
            day and how many of its rows are stored).
  members   prints one page of a crowd's members (--after, --limit).

Examples:
  promoflow crowds import --crowd vip-d11 --app shop --trigger routine --users vip.txt
  promoflow crowds import --crowd beta --app shop --trigger manual --users beta.csv
  promoflow crowds maintain --dry-run
  promoflow crowds show vip-d11
  promoflow crowds members vip-d11 --limit 100`

func init() {
	register(&command{
		name:    "crowds",
		summary: "import crowds, maintain the day-sharded crowd tables, show crowds and their members",
		usage:   "import|maintain|show|members [CROWD] [flags]",
		help:    crowdsHelp,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			crowd := fs.String("crowd", "", "import: the crowd id")
			app := fs.String("app", "", "import: the app the crowd belongs to (decides its table)")
			trigger := fs.String("trigger", "", "import: manual or routine")
			day := fs.String("day", "", "import: a routine crowd's compute day, YYYYMMDD (default today in crowds.time_zone)")
			usersFile := fs.String("users", "", "import: the file of user ids (- for stdin)")
			remove := fs.Bool("remove", false, "import: remove the listed users from a manual crowd")
			dry := fs.Bool("dry-run", false, "maintain: print what would be done, do nothing")
			after := fs.String("after", "", "members: continue after this user id")
			limit := fs.Int("limit", 100, "members: ids per page (1-10000)")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usagef("want an action: import, maintain, show or members")
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				switch args[0] {
				case "import":
					if len(args) != 1 {
						return usagef("import takes no arguments, got %q", args[1:])
					}
					return importCrowd(ctx, cfg, crowdImport{crowd: *crowd, app: *app, trigger: *trigger, day: *day, file: *usersFile, remove: *remove})
				case "maintain":
					return maintainCrowds(ctx, cfg, *dry, cmdStdout)
				case "show", "members":
					if len(args) != 2 {
						return usagef("%s takes one CROWD", args[0])
					}
					return showCrowd(ctx, cfg, args[0], args[1], *after, *limit, cmdStdout)
				}
				return usagef("unknown action %q", args[0])
			}
		},
	})
}

var crowdIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
var crowdUserPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

type crowdImport struct {
	crowd, app, trigger, day, file string
	remove                         bool
}

// readCrowdUsers reads and checks a user file: one id per line or the
// first column of a CSV, blank lines and a user_id header skipped,
// duplicates dropped. A bad line is an error naming it.
func readCrowdUsers(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	seen := map[string]bool{}
	var out []string
	var bad []string
	line := 0
	for sc.Scan() {
		line++
		f := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(f, ','); i >= 0 {
			f = strings.TrimSpace(f[:i])
		}
		f = strings.Trim(f, `"`)
		if f == "" || (line == 1 && strings.EqualFold(f, "user_id")) {
			continue
		}
		if !crowdUserPattern.MatchString(f) {
			if len(bad) < 10 {
				bad = append(bad, fmt.Sprintf("line %d: %.40q is not a user id", line, f))
			}
			continue
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading users at line %d: %w", line+1, err)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("bad user ids, nothing published:\n  %s", strings.Join(bad, "\n  "))
	}
	return out, nil
}

func importCrowd(ctx context.Context, cfg *Config, in crowdImport) error {
	switch {
	case !crowdIDPattern.MatchString(in.crowd):
		return usagef("--crowd %q: want a crowd id (letters, digits, . _ : -, up to 64)", in.crowd)
	case !crowdIDPattern.MatchString(in.app):
		return usagef("--app %q: want an app id", in.app)
	case in.file == "":
		return usagef("import needs --users FILE")
	}
	loc, err := cfg.Crowds.location()
	if err != nil {
		return err
	}
	switch in.trigger {
	case schemas.CrowdManual:
		if in.day != "" {
			return usagef("--day is for routine crowds")
		}
	case schemas.CrowdRoutine:
		if in.remove {
			return usagef("--remove is for manual crowds: a routine crowd's next day replaces it")
		}
		if in.day == "" {
			in.day = time.Now().In(loc).Format("20060102")
		}
		if !schemas.ValidComputeDay(in.day) {
			return usagef("--day %q: want a day as YYYYMMDD", in.day)
		}
	default:
		return usagef("--trigger must be manual or routine, got %q", in.trigger)
	}
	var r io.Reader = os.Stdin
	if in.file != "-" {
		f, err := os.Open(in.file)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	users, err := readCrowdUsers(r)
	if err != nil {
		return err
	}
	pr, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: in.app}, producers.WithClientOpts(cfg.kafkaOpts()...))
	if err != nil {
		return err
	}
	defer pr.Close()
	op := ""
	if in.remove {
		op = schemas.CrowdRemove
	}
	now := time.Now().UTC()
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	progress := newProgress(cmdStderr, "crowd "+in.crowd, len(users))
	for i, u := range users {
		m := schemas.CrowdMembershipRecorded{CrowdID: in.crowd, UserID: u, Trigger: in.trigger, ComputeDay: in.day, Op: op, RecordedAt: now}
		// Derived ids: importing the same file again publishes the same
		// events, which the store writes once.
		id := fmt.Sprintf("crowd-%s-%s-%s-%s", in.crowd, in.day, op, u)
		pr.PublishAsync(ctx, id, now, m, func(err error) {
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
		})
		progress.set(i + 1)
	}
	if err := pr.Flush(ctx); err != nil {
		return err
	}
	progress.done()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d memberships were not published (first: %v); import again: it is idempotent", n, len(users), firstErr.Load())
	}
	if in.trigger == schemas.CrowdRoutine {
		c := schemas.CrowdComputed{CrowdID: in.crowd, Trigger: in.trigger, ComputeDay: in.day, Members: int64(len(users)), ComputedAt: now}
		if err := pr.Publish(ctx, fmt.Sprintf("crowd-computed-%s-%s", in.crowd, in.day), now, c); err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Fprintf(cmdStdout, "published %d memberships of crowd %s (%s", len(users), in.crowd, in.trigger)
	if in.day != "" {
		fmt.Fprintf(cmdStdout, ", day %s", in.day)
	}
	fmt.Fprintf(cmdStdout, ") in %s, %.0f/s\n", el.Round(time.Millisecond), float64(len(users))/max(el.Seconds(), 1e-9))
	return nil
}

func maintainCrowds(ctx context.Context, cfg *Config, dry bool, out io.Writer) error {
	sink, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		return fmt.Errorf("opening the system of record: %w", err)
	}
	defer sink.Close()
	crowds, err := openCrowds(ctx, cfg, sink)
	if err != nil {
		return err
	}
	rep, err := crowds.Maintain(ctx, cfg.maintainOptions(dry))
	verb := ""
	if dry {
		verb = " (dry run: nothing done)"
	}
	fmt.Fprintf(out, "crowd tables%s: %d created ahead, %d backed up, %d dropped, %d kept\n", verb, len(rep.Created), len(rep.BackedUp), len(rep.Dropped), rep.Kept)
	for _, b := range rep.BackedUp {
		fmt.Fprintln(out, "  backed up", b)
	}
	for _, d := range rep.Dropped {
		fmt.Fprintln(out, "  dropped", d)
	}
	for _, l := range rep.Locked {
		fmt.Fprintln(out, "  skipped", l, "(another instance holds its maintenance lock)")
	}
	return err
}

func showCrowd(ctx context.Context, cfg *Config, action, crowd, after string, limit int, out io.Writer) error {
	if limit < 1 || limit > 10000 {
		return usagef("--limit must be from 1 to 10000")
	}
	sink, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		return fmt.Errorf("opening the system of record: %w", err)
	}
	defer sink.Close()
	crowds, err := openCrowds(ctx, cfg, sink)
	if err != nil {
		return err
	}
	if action == "show" {
		st, err := crowds.Status(ctx, crowd)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	members, err := crowds.Members(ctx, crowd, after, limit)
	if err != nil {
		return err
	}
	for _, m := range members {
		fmt.Fprintln(out, m)
	}
	if len(members) == limit {
		fmt.Fprintf(cmdStderr, "more: --after %s\n", members[len(members)-1])
	}
	return nil
}

// progress prints how far a long job is, at most once a second.
type progress struct {
	w     io.Writer
	what  string
	total int
	n     int
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, what string, total int) *progress {
	now := time.Now()
	return &progress{w: w, what: what, total: total, start: now, last: now}
}

func (p *progress) set(n int) {
	p.n = n
	if now := time.Now(); now.Sub(p.last) >= time.Second {
		p.last = now
		p.print()
	}
}

func (p *progress) print() {
	el := time.Since(p.start).Seconds()
	pct := 100.0
	if p.total > 0 {
		pct = float64(p.n) * 100 / float64(p.total)
	}
	fmt.Fprintf(p.w, "%s: %d/%d (%.0f%%), %.0f/s\n", p.what, p.n, p.total, pct, float64(p.n)/max(el, 1e-9))
}

func (p *progress) done() { p.print() }
