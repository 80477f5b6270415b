package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/processors/notify"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
)

// Stage names of the fan-out.
const (
	stageNotifyPlan = notify.PlanStageName
	stageNotifySend = notify.SendStageName
)

// notifyStore opens the fan-out state on rdb with the configured windows.
func (cfg *Config) notifyStore(rdb redis.UniversalClient) *notify.Store {
	return notify.NewStore(rdb, notify.WithKeyPrefix(cfg.Redis.KeyPrefix), notify.WithKeep(cfg.Notify.Keep),
		notify.WithLease(cfg.Notify.Lease), notify.WithCaps(cfg.Notify.Caps...))
}

// addNotifyPlan adds the fan-out planner, reading crowds from the crowd
// tables of my (the pipeline's MySQL sink when it has one).
func (p *pipeline) addNotifyPlan(ctx context.Context, pt parts, my sinkWriter, scfg stream.Config) error {
	sink, err := p.mysqlFor(ctx, my, stageNotifyPlan, "the notification planner (it reads crowds)")
	if err != nil || sink == nil {
		return err
	}
	crowds, err := openCrowds(ctx, p.cfg, sink)
	if err != nil {
		return fmt.Errorf("starting the notification planner: %w", err)
	}
	rdb, err := p.redis(ctx, pt)
	if err != nil {
		return err
	}
	tpl, err := notify.CompileTemplates(p.cfg.Notify.Templates)
	if err != nil {
		return err
	}
	if len(tpl.Names()) == 0 {
		p.log.Warn("notify.templates is empty: every campaign request is refused as unknown_template (docs/notifications.md)")
	}
	store := p.cfg.notifyStore(rdb)
	if err := store.Load(ctx); err != nil {
		return err
	}
	planner := notify.NewPlanner(store, crowds, tpl, notify.WithShardSize(p.cfg.Notify.ShardSize),
		notify.WithStepShards(p.cfg.Notify.StepShards), notify.WithPlannerLogger(p.log))
	r, err := stream.New(scfg, planner.Stage())
	if err != nil {
		return err
	}
	p.runners = append(p.runners, r)
	return nil
}

// addNotifySend adds a sender member of the fan-out.
func (p *pipeline) addNotifySend(ctx context.Context, pt parts, scfg stream.Config) error {
	rdb, err := p.redis(ctx, pt)
	if err != nil {
		return err
	}
	tpl, err := notify.CompileTemplates(p.cfg.Notify.Templates)
	if err != nil {
		return err
	}
	sender, closeSender, err := p.cfg.Notify.sender(os.Getenv)
	if err != nil {
		return err
	}
	p.closers = append(p.closers, closeSender)
	store := p.cfg.notifyStore(rdb)
	if err := store.Load(ctx); err != nil {
		return err
	}
	sc := scfg
	sc.Fencer = &stream.RedisFencer{Client: rdb, Prefix: p.cfg.Redis.KeyPrefix}
	r, err := stream.New(sc, notify.NewDispatcher(store, sender, tpl, p.log).Stage())
	if err != nil {
		return err
	}
	p.runners = append(p.runners, r)
	p.log.Info("notification sender ready", "sender", p.cfg.Notify.Sender, "templates", len(tpl.Names()), "caps", len(p.cfg.Notify.Caps))
	return nil
}

const notifyHelp = `Notification fan-out (docs/notifications.md): a campaign sends a template
(notify.templates) to every member of a crowd. The notify-plan stage of
promoflow run pages the crowd (a routine crowd at its ready day, fixed for the
whole campaign) into shards of about notify.shard_size users on notify.shards,
in bounded steps; any number of notify-send members deliver the shards through
notify.sender (log or webhook), under the frequency caps notify.caps across
campaigns. A failed shard is retried; no user is sent a campaign twice, and a
repeated request for a campaign sends nothing.

  send      requests a campaign: --crowd, --template, and --campaign (default
            <crowd>-<template>-<UTC time>; the campaign id is the idempotency
            key). --wait follows its progress on stderr until every shard is
            done. "promoflow notify --crowd C --template T" is the same.
  status    prints a campaign's progress: planned shards and users, shards
            done, users sent, capped and failed, retries (--json for JSON;
            --user U adds what became of one user).
  cancel    stops a campaign: nothing more is planned, and every shard not
            yet being sent is skipped (a shard being sent finishes). The
            campaign id stays used.
  verify    reads the campaign's shards back from notify.shards and checks
            every user's record in Redis (sent, capped or failed, none left
            reserved or missing) against the campaign's counters; exit 1 on
            any disagreement. Run it within notify.keep of the campaign.
  templates lists the configured templates.

Examples:
  promoflow notify --crowd vip-d11 --template d11-presale --wait
  promoflow notify send --crowd beta --template welcome --campaign welcome-2026-12
  promoflow notify status welcome-2026-12 --user u42
  promoflow notify cancel welcome-2026-12
  promoflow notify verify welcome-2026-12`

var campaignIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)

func init() {
	register(&command{
		name:    "notify",
		summary: "send a notification template to a crowd; follow, show, cancel and verify a campaign",
		usage:   "[send|status|cancel|verify|templates] [CAMPAIGN] [flags]",
		help:    notifyHelp,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			crowd := fs.String("crowd", "", "send: the crowd to notify")
			template := fs.String("template", "", "send: the template (notify.templates)")
			campaign := fs.String("campaign", "", "send: the campaign id (default <crowd>-<template>-<UTC time>)")
			shardSize := fs.Int("shard-size", 0, "send: users per shard (default notify.shard_size)")
			wait := fs.Bool("wait", false, "send: follow the campaign until it is done")
			timeout := fs.Duration("timeout", 0, "send --wait: give up after this long (default no limit)")
			asJSON := fs.Bool("json", false, "status: print JSON")
			user := fs.String("user", "", "status: also show what became of this user")
			return func(ctx context.Context, args []string) error {
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				action := "send"
				if len(args) > 0 {
					action, args = args[0], args[1:]
				}
				switch action {
				case "send":
					if len(args) != 0 {
						return usagef("send takes no arguments, got %q", args)
					}
					req := notifyRequest{campaign: *campaign, crowd: *crowd, template: *template, shardSize: *shardSize}
					id, err := requestCampaign(ctx, cfg, req)
					if err != nil {
						return err
					}
					fmt.Fprintln(cmdStdout, id)
					if !*wait {
						fmt.Fprintf(cmdStderr, "campaign %s requested; follow it with: promoflow notify status %s\n", id, id)
						return nil
					}
					return followCampaign(ctx, cfg, id, *timeout, cmdStderr)
				case "status":
					if len(args) != 1 {
						return usagef("status takes one CAMPAIGN")
					}
					return campaignStatus(ctx, cfg, args[0], *user, *asJSON, cmdStdout)
				case "cancel":
					if len(args) != 1 {
						return usagef("cancel takes one CAMPAIGN")
					}
					rdb := newRedis(cfg.Redis)
					defer rdb.Close()
					p, err := cfg.notifyStore(rdb).Cancel(ctx, args[0])
					if err != nil {
						return err
					}
					fmt.Fprintf(cmdStdout, "campaign %s cancelled: %d users sent before it, %d of %d shards done; shards being sent now finish, the rest are skipped\n",
						p.CampaignID, p.Sent, p.ShardsDone, p.ShardsPlanned)
					return nil
				case "verify":
					if len(args) != 1 {
						return usagef("verify takes one CAMPAIGN")
					}
					return verifyCampaign(ctx, cfg, args[0], cmdStdout, cmdStderr)
				case "templates":
					tpl, err := notify.CompileTemplates(cfg.Notify.Templates)
					if err != nil {
						return err
					}
					for _, n := range tpl.Names() {
						fmt.Fprintf(cmdStdout, "%s\t%s\n", n, cfg.Notify.Templates[n].Title)
					}
					if len(tpl.Names()) == 0 {
						fmt.Fprintln(cmdStderr, "no templates: add some under notify.templates (docs/configuration.md)")
					}
					return nil
				}
				return usagef("unknown action %q (send, status, cancel, verify or templates)", action)
			}
		},
	})
}

type notifyRequest struct {
	campaign, crowd, template string
	shardSize                 int
}

// requestCampaign checks and publishes a campaign request and returns its id.
func requestCampaign(ctx context.Context, cfg *Config, r notifyRequest) (string, error) {
	switch {
	case !crowdIDPattern.MatchString(r.crowd):
		return "", usagef("--crowd %q: want a crowd id", r.crowd)
	case r.template == "":
		return "", usagef("--template is required")
	case r.shardSize < 0 || r.shardSize > schemas.MaxNotifyShardUsers:
		return "", usagef("--shard-size %d: want 1 to %d", r.shardSize, schemas.MaxNotifyShardUsers)
	}
	tpl, err := notify.CompileTemplates(cfg.Notify.Templates)
	if err != nil {
		return "", err
	}
	if !tpl.Has(r.template) {
		return "", usagef("--template %q is not in notify.templates (have: %s)", r.template, strings.Join(tpl.Names(), ", "))
	}
	now := time.Now().UTC()
	if r.campaign == "" {
		r.campaign = fmt.Sprintf("%s-%s-%s", r.crowd, r.template, now.Format("20060102T150405"))
		if len(r.campaign) > 64 {
			r.campaign = r.campaign[len(r.campaign)-64:]
			r.campaign = strings.TrimLeft(r.campaign, "._:-")
		}
	}
	if !campaignIDPattern.MatchString(r.campaign) {
		return "", usagef("--campaign %q: want letters, digits, . _ : -, up to 64", r.campaign)
	}
	pr, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: "ops"}, producers.WithClientOpts(cfg.kafkaOpts()...))
	if err != nil {
		return "", err
	}
	defer pr.Close()
	req := schemas.NotifyCampaignRequested{CampaignID: r.campaign, CrowdID: r.crowd, Template: r.template, ShardSize: r.shardSize, RequestedAt: now}
	if err := pr.Publish(ctx, "notify-"+r.campaign, now, req); err != nil {
		return "", cfg.Kafka.wrap(err)
	}
	return r.campaign, nil
}

// followCampaign prints a campaign's progress every 2 seconds until it is
// done; a failed campaign is an error.
func followCampaign(ctx context.Context, cfg *Config, campaign string, timeout time.Duration, out io.Writer) error {
	rdb := newRedis(cfg.Redis)
	defer rdb.Close()
	store := cfg.notifyStore(rdb)
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	var last notify.Progress
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		p, err := store.Progress(ctx, campaign)
		switch {
		case errors.Is(err, notify.ErrUnknownCampaign):
			// Not picked up yet: is notify-plan running?
		case err != nil:
			return err
		default:
			last = p
			el := time.Since(start).Seconds()
			fmt.Fprintf(out, "campaign %s: %s, %d/%d shards done, %d of %d users settled (%d sent, %d capped, %d failed), %d retries, %.0f users/s\n",
				campaign, p.Status, p.ShardsDone, p.ShardsPlanned, p.Settled(), p.UsersPlanned, p.Sent, p.Capped, p.Failed, p.Retries, float64(p.Settled())/max(el, 1e-9))
			if p.Status == notify.StatusFailed {
				return fmt.Errorf("campaign %s failed: %s", campaign, p.Reason)
			}
			if p.Status == notify.StatusCancelled {
				return fmt.Errorf("campaign %s was cancelled at %s", campaign, p.Cancelled.Format(time.RFC3339))
			}
			if p.Done() {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if last.Status == "" {
				return fmt.Errorf("campaign %s was not picked up (is the %s stage running?): %w", campaign, stageNotifyPlan, ctx.Err())
			}
			return fmt.Errorf("campaign %s not done: %w", campaign, ctx.Err())
		case <-tick.C:
		}
	}
}

// campaignStatus prints a campaign's progress.
func campaignStatus(ctx context.Context, cfg *Config, campaign, user string, asJSON bool, out io.Writer) error {
	rdb := newRedis(cfg.Redis)
	defer rdb.Close()
	store := cfg.notifyStore(rdb)
	p, err := store.Progress(ctx, campaign)
	if err != nil {
		return err
	}
	var state string
	if user != "" {
		if state, err = store.UserState(ctx, campaign, user); err != nil {
			return err
		}
		if state == "" {
			state = "not sent"
		}
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if user != "" {
			return enc.Encode(struct {
				notify.Progress
				User      string `json:"user"`
				UserState string `json:"user_state"`
			}{p, user, state})
		}
		return enc.Encode(p)
	}
	fmt.Fprintf(out, "campaign   %s\ncrowd      %s\ntemplate   %s\nstatus     %s\n", p.CampaignID, p.CrowdID, p.Template, p.Status)
	if p.Reason != "" {
		fmt.Fprintf(out, "reason     %s\n", p.Reason)
	}
	if !p.Requested.IsZero() {
		fmt.Fprintf(out, "requested  %s\n", p.Requested.Format(time.RFC3339))
	}
	fmt.Fprintf(out, "shards     %d done of %d planned\nusers      %d planned: %d sent, %d capped, %d failed\nretries    %d\n",
		p.ShardsDone, p.ShardsPlanned, p.UsersPlanned, p.Sent, p.Capped, p.Failed, p.Retries)
	if user != "" {
		fmt.Fprintf(out, "user %s: %s\n", user, state)
	}
	return nil
}

// verifyCampaign reads notify.shards whole and audits the campaign's
// shards against Redis (notify.Audit).
func verifyCampaign(ctx context.Context, cfg *Config, campaign string, out, progress io.Writer) error {
	rdb := newRedis(cfg.Redis)
	defer rdb.Close()
	store := cfg.notifyStore(rdb)
	p, err := store.Progress(ctx, campaign)
	if err != nil {
		return err
	}
	audit := store.NewAudit(campaign)
	var dec schemas.Decoder
	last := time.Now()
	var ferr error
	err = readTopic(ctx, cfg.Kafka.Brokers, append([]kgo.Opt{kgo.ClientID("promoflow-notify-verify")}, cfg.kafkaOpts()...), notify.TopicShards, "topic", 0, nil,
		func(r *kgo.Record) bool {
			env, err := dec.Decode(r.Value)
			if err != nil || env.Type != schemas.TypeNotifyShardPlanned {
				return true // not a shard: the sender dead-lettered it
			}
			var s schemas.NotifyShardPlanned
			if env.DecodePayload(&s) == nil {
				if ferr = audit.Add(ctx, s); ferr != nil {
					return false
				}
			}
			if time.Since(last) >= time.Second {
				last = time.Now()
				fmt.Fprintf(progress, "verify %s: %d shards read, %d of %d users checked\n", campaign, audit.Shards, audit.Users, p.UsersPlanned)
			}
			return true
		})
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return cfg.Kafka.wrap(err)
	}
	if p, err = store.Progress(ctx, campaign); err != nil {
		return err
	}
	fmt.Fprintf(out, "campaign %s: %d shard records (%d distinct shards) on %s, %d users: %d sent, %d capped, %d failed, %d reserved, %d with no record\n",
		campaign, audit.Records, audit.Shards, notify.TopicShards, audit.Users, audit.Sent, audit.Capped, audit.Failed, audit.Reserved, audit.Missing)
	probs := audit.Problems(p)
	for _, pr := range probs {
		fmt.Fprintf(out, "BREACH %s\n", pr)
	}
	if len(probs) > 0 {
		return fmt.Errorf("campaign %s: %d problem(s)", campaign, len(probs))
	}
	if p.Status == notify.StatusCancelled {
		fmt.Fprintf(out, "OK: cancelled at %s; counters agree (%d sent, %d capped, %d failed), %d users of the planned shards not sent\n",
			p.Cancelled.Format(time.RFC3339), p.Sent, p.Capped, p.Failed, audit.Reserved+audit.Missing)
		return nil
	}
	fmt.Fprintf(out, "OK: every user settled once, counters agree (%d sent, %d capped, %d failed)\n", p.Sent, p.Capped, p.Failed)
	return nil
}
