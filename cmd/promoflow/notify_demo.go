package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/processors/notify"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// demoTemplate is the template the demo's campaign sends.
const demoTemplate = "demo-welcome"

// prepareNotifyDemo gives the demo's configuration its template and sends
// the log sender's lines to a file of the run (not the terminal).
func prepareNotifyDemo(cfg *Config, runID string) string {
	if cfg.Notify.Templates == nil {
		cfg.Notify.Templates = map[string]notify.Template{}
	}
	cfg.Notify.Templates[demoTemplate] = notify.Template{Title: "Welcome to the demo", Body: "Hello {{.UserID}}, your coupons are waiting."}
	cfg.Notify.Sender = "log"
	cfg.Notify.LogFile = filepath.Join(os.TempDir(), "promoflow-demo-notifications-"+runID+".jsonl")
	return cfg.Notify.LogFile
}

// notifyDemo fans a campaign out to a routine crowd of its own: it
// publishes the crowd, waits until sink-crowd has stored it, requests the
// campaign, follows it, and reads the log sender's file back.
type notifyDemo struct {
	runID   string
	users   int
	logFile string
	crowds  *mysql.Crowds
	rdb     redis.UniversalClient
	cfg     *Config
}

type notifyDemoReport struct {
	campaign string
	progress notify.Progress
	elapsed  time.Duration
	lines    int
	logFile  string
	breaches []string
}

func (d notifyDemo) run(ctx context.Context, brokers []string, timeout time.Duration, out io.Writer) (*notifyDemoReport, error) {
	crowd, campaign := "demo-crowd-"+d.runID, "demo-notify-"+d.runID
	fmt.Fprintf(out, "\nNotification fan-out: a routine crowd of %d users, then campaign %s to it...\n", d.users, campaign)
	pr, err := producers.New(producers.Config{Brokers: brokers, AppID: "demo"})
	if err != nil {
		return nil, err
	}
	defer pr.Close()
	now := time.Now().UTC()
	day := now.Format("20060102")
	for i := range d.users {
		m := schemas.CrowdMembershipRecorded{CrowdID: crowd, UserID: fmt.Sprintf("d%07d", i), Trigger: schemas.CrowdRoutine, ComputeDay: day, RecordedAt: now}
		pr.PublishAsync(ctx, "crowd-"+d.runID+"-"+strconv.Itoa(i), now, m, nil)
	}
	if err := pr.Flush(ctx); err != nil {
		return nil, err
	}
	if err := pr.Publish(ctx, "computed-"+d.runID, now, schemas.CrowdComputed{CrowdID: crowd, Trigger: schemas.CrowdRoutine, ComputeDay: day, Members: int64(d.users), ComputedAt: now}); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		c, err := d.crowds.Crowd(ctx, crowd)
		if err == nil && c.Day == day {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the crowd was not stored within %s", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	req := schemas.NotifyCampaignRequested{CampaignID: campaign, CrowdID: crowd, Template: demoTemplate, ShardSize: 500, RequestedAt: time.Now().UTC()}
	if err := pr.Publish(ctx, "notify-"+campaign, req.RequestedAt, req); err != nil {
		return nil, err
	}
	store := d.cfg.notifyStore(d.rdb)
	rep := &notifyDemoReport{campaign: campaign, logFile: d.logFile}
	last := time.Now()
	for {
		p, err := store.Progress(ctx, campaign)
		if err == nil {
			rep.progress = p
			if p.Done() {
				break
			}
		}
		if time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(out, "  %5.1fs  %s: %d/%d shards done, %d of %d users sent\n", time.Since(start).Seconds(), campaign, p.ShardsDone, p.ShardsPlanned, p.Sent, p.UsersPlanned)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("campaign %s not done within %s: %+v", campaign, timeout, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rep.elapsed = time.Since(start)
	// Every user of the crowd in the log file exactly once.
	f, err := os.Open(d.logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	seen := make(map[string]int, d.users)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m notify.Message
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.CampaignID == campaign {
			seen[m.UserID]++
			rep.lines++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	twice := 0
	for _, n := range seen {
		if n > 1 {
			twice++
		}
	}
	if len(seen) != d.users || twice > 0 || rep.progress.Sent != int64(d.users) {
		rep.breaches = append(rep.breaches, fmt.Sprintf("notification fan-out: %d of %d users notified, %d more than once, %d counted sent", len(seen), d.users, twice, rep.progress.Sent))
	}
	return rep, nil
}

func (r *notifyDemoReport) print(w io.Writer) {
	p := r.progress
	fmt.Fprintf(w, "\nNotification summary\n")
	fmt.Fprintf(w, "  campaign         %s: %d users in %d shards, %d sent, %d capped, %d failed, %d shard retries\n", r.campaign, p.UsersPlanned, p.ShardsPlanned, p.Sent, p.Capped, p.Failed, p.Retries)
	fmt.Fprintf(w, "  elapsed          %s (%.0f users/s, request → every shard sent)\n", r.elapsed.Round(time.Millisecond), float64(p.Sent)/r.elapsed.Seconds())
	fmt.Fprintf(w, "  log sender       %d lines in %s\n", r.lines, r.logFile)
	if len(r.breaches) == 0 {
		fmt.Fprintf(w, "  invariants       OK: every member of the crowd notified exactly once\n")
	}
	for _, b := range r.breaches {
		fmt.Fprintf(w, "  BROKEN           %s\n", b)
	}
}
