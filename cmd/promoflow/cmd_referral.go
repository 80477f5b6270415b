package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/promoflow/promoflow/internal/sharelink"
	"github.com/promoflow/promoflow/processors/referral"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

const referralHelp = `  define  publishes a referral activity (--file, JSON or YAML with the fields of
          referral.activity.defined: activity_id, revision, status, starts_at,
          ends_at, qualify_until, qualifying_action, link_ttl_seconds, rewards
          [{threshold, batch_id}]; see docs/referrals.md) to referral.admin after
          checking it. Raise the revision to change an activity.
  link    signs a share link of --activity for --inviter with the signing key of
          referral.link_keys, valid for --ttl, and prints the token, its URL
          (referral.link_url) and expiry. It does not check the activity; the
          HTTP API (POST /v1/share-links) does. With --resolve TOKEN it verifies
          a token instead and prints what it names (exit 1 if forged or expired).
  status  prints what the system of record (MySQL) holds for the activity: clicks,
          registrations, bindings, invitees that count, rewards and refusals by
          reason; with --inviter, the inviter's invitees and rewards; with
          --invitee, who invited them.

The activity is --activity ID or the first argument after the action.

Examples:
  promoflow referral define --file spring-share.yaml
  promoflow referral link spring-share --inviter u42 --ttl 72h
  promoflow referral link --resolve AQJrMQxzcHJpbmctc2hhcmUDdTQy...
  promoflow referral status spring-share --inviter u42`

func init() {
	register(&command{
		name:    "referral",
		summary: "define share-with-gift activities, sign and check share links, show an activity's or an inviter's standing",
		usage:   "define|link|status [ACTIVITY] [flags]",
		help:    referralHelp,
		flags:   referralFlags,
	})
}

func referralFlags(fs *flag.FlagSet) func(context.Context, []string) error {
	cfgPath := fs.String("config", "", "YAML configuration file")
	brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
	activity := fs.String("activity", "", "activity id")
	file := fs.String("file", "", "define: the activity definition, JSON or YAML (- for stdin)")
	app := fs.String("app", "promoflow-admin", "define: app_id the definition is published under")
	inviter := fs.String("inviter", "", "link: who shares the link; status: show this inviter's invitees and rewards")
	invitee := fs.String("invitee", "", "status: show who invited this user")
	ttl := fs.Duration("ttl", 7*24*time.Hour, "link: how long the link binds")
	resolve := fs.String("resolve", "", "link: verify this token instead of signing one")
	asJSON := fs.Bool("json", false, "link, status: print JSON")
	return func(ctx context.Context, args []string) error {
		if len(args) == 0 {
			return usagef("want an action: define, link or status")
		}
		action := args[0]
		if *activity == "" && len(args) > 1 {
			*activity = args[1]
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
			def, err := readReferral(*file)
			if err != nil {
				return err
			}
			pr, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: *app}, producers.WithClientOpts(cfg.kafkaOpts()...))
			if err != nil {
				return err
			}
			defer pr.Close()
			id := fmt.Sprintf("referral-def-%d", time.Now().UnixNano())
			if err := pr.DefineReferral(ctx, id, *def); err != nil {
				return err
			}
			fmt.Fprintf(out, "published %s %s revision %d (event %s)\n", schemas.TypeReferralActivityDefined, def.ActivityID, def.Revision, id)
			return nil
		case "link":
			keys, err := cfg.Referral.keyring(os.Getenv)
			if err != nil {
				return err
			}
			return referralLink(keys, &cfg.Referral, *resolve, *activity, *inviter, *ttl, *asJSON, out)
		case "status":
			if *activity == "" {
				return usagef("status needs an activity (--activity or an argument)")
			}
			s, err := mysql.New(ctx, cfg.MySQL)
			if err != nil {
				return fmt.Errorf("opening the system of record: %w", err)
			}
			defer s.Close()
			return referralStatus(ctx, s, *activity, *inviter, *invitee, *asJSON, out)
		}
		return usagef("unknown action %q", action)
	}
}

// readReferral reads and checks a definition from JSON or YAML.
func readReferral(path string) (*schemas.ReferralActivityDefined, error) {
	return readDefinition(path, referral.CheckActivity)
}

// readDefinition reads a definition of type T from JSON or YAML at path
// (- for stdin), refusing fields T does not have, and checks it.
func readDefinition[T any](path string, check func(*T) error) (*T, error) {
	b, err := readInput(path)
	if err != nil {
		return nil, err
	}
	if b, err = yamlToJSON(b); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var def T
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&def); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := check(&def); err != nil {
		return nil, fmt.Errorf("checking %s: %w", path, err)
	}
	return &def, nil
}

// referralLink signs a link, or resolves one when token is set.
func referralLink(keys *sharelink.Keyring, rc *ReferralConfig, token, activity, inviter string, ttl time.Duration, asJSON bool, out io.Writer) error {
	var l sharelink.Link
	if token != "" {
		var err error
		if l, err = keys.Resolve(token, time.Now()); err != nil {
			return fmt.Errorf("the token does not resolve: %w", err)
		}
	} else {
		if activity == "" || inviter == "" {
			return usagef("link needs an activity and --inviter (or --resolve TOKEN)")
		}
		if ttl < time.Minute {
			return usagef("--ttl %s: at least 1m", ttl)
		}
		var err error
		if token, err = keys.Sign(activity, inviter, time.Now().Add(ttl).Truncate(time.Second).Add(time.Second)); err != nil {
			return err
		}
		l, _ = keys.Verify(token)
	}
	issued := sharelink.Issued{Token: token, URL: rc.linkURL(token), ActivityID: l.ActivityID, Inviter: l.Inviter, ExpiresAt: l.ExpiresAt, KeyID: l.KeyID}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(issued)
	}
	fmt.Fprintf(out, "activity   %s\ninviter    %s\nexpires_at %s\nkey        %s\ntoken      %s\nurl        %s\n",
		issued.ActivityID, issued.Inviter, issued.ExpiresAt.Format(time.RFC3339), issued.KeyID, issued.Token, issued.URL)
	return nil
}

type referralStatusReport struct {
	ActivityID string                       `json:"activity_id"`
	Counts     sinks.ReferralCounts         `json:"counts"`
	Inviter    string                       `json:"inviter,omitempty"`
	Invitees   []sinks.Invitee              `json:"invitees,omitempty"`
	Rewards    []schemas.RewardGranted      `json:"rewards,omitempty"`
	Invitee    string                       `json:"invitee,omitempty"`
	Binding    *schemas.ReferralBoundResult `json:"binding,omitempty"`
}

func referralStatus(ctx context.Context, r sinks.ReferralReader, activity, inviter, invitee string, asJSON bool, out io.Writer) error {
	rep := referralStatusReport{ActivityID: activity, Inviter: inviter, Invitee: invitee}
	var err error
	if rep.Counts, err = r.ReferralCounts(ctx, activity); err != nil {
		return err
	}
	if inviter != "" {
		if rep.Invitees, err = r.Invitees(ctx, activity, inviter); err != nil {
			return err
		}
		if rep.Rewards, err = r.Rewards(ctx, activity, inviter); err != nil {
			return err
		}
	}
	if invitee != "" {
		if rep.Binding, err = r.Binding(ctx, activity, invitee); err != nil && !errors.Is(err, sinks.ErrNotFound) {
			return err
		}
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	c := rep.Counts
	fmt.Fprintf(out, "activity %s: %d clicks, %d registrations; %d bound, %d counting toward rewards, %d rewards\n",
		activity, c.Clicks, c.Registrations, c.Bound, c.Counted, c.Rewards)
	if len(c.RefusedBy) > 0 {
		reasons := make([]string, 0, len(c.RefusedBy))
		for k := range c.RefusedBy {
			reasons = append(reasons, k)
		}
		sort.Strings(reasons)
		parts := make([]string, len(reasons))
		for i, k := range reasons {
			parts[i] = fmt.Sprintf("%s %d", k, c.RefusedBy[k])
		}
		fmt.Fprintf(out, "refused: %s\n", strings.Join(parts, ", "))
	}
	if inviter != "" {
		counted := 0
		for _, v := range rep.Invitees {
			if v.Counted {
				counted++
			}
		}
		fmt.Fprintf(out, "\ninviter %s: %d invitees, %d counting\n", inviter, len(rep.Invitees), counted)
		tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INVITEE\tBOUND AT\tCOUNTS")
		for _, v := range rep.Invitees {
			fmt.Fprintf(tw, "%s\t%s\t%v\n", v.InviteeID, v.BoundAt.Format(time.RFC3339), v.Counted)
		}
		tw.Flush()
		for _, rw := range rep.Rewards {
			fmt.Fprintf(out, "reward: threshold %d, batch %s, at %d invitees, %s (coupon issue %s)\n",
				rw.Threshold, rw.BatchID, rw.Successful, rw.GrantedAt.Format(time.RFC3339), rw.ClaimEventID)
		}
	}
	if invitee != "" {
		if rep.Binding == nil {
			fmt.Fprintf(out, "\ninvitee %s: not bound\n", invitee)
		} else {
			b := rep.Binding
			fmt.Fprintf(out, "\ninvitee %s: invited by %s (%s %s, at %s)\n", invitee, b.BoundInviterID, b.EventKind, b.SourceEventID, b.DecidedAt.Format(time.RFC3339))
		}
	}
	return nil
}
