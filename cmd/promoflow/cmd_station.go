package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/producers"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
	"github.com/promoflow/promoflow/sinks/mysql"
)

// topicStation carries station messages and their withdrawals.
const topicStation = "station.messages"

// stationStage declares the sink stage that stores station messages in
// MySQL: messages to all users once, messages to one user in the user's
// shard (sinks/mysql Station).
func stationStage(w stream.BatchWriter) stream.Stage {
	st := stream.SinkStage(stageStation, "promoflow-sink-station", []string{topicStation},
		typesV1(schemas.TypeStationMessagePublished, schemas.TypeStationMessageWithdrawn), w)
	st.MaxPollRecords = 5000
	return st
}

// addStation adds the sink-station stage on my, the pipeline's MySQL sink
// when it has one; otherwise it opens one. The demo's in-memory stand-in
// has no station store: the stage is left out, and says so.
func (p *pipeline) addStation(ctx context.Context, my sinkWriter, scfg stream.Config) error {
	sink, err := p.mysqlFor(ctx, my, stageStation, "station messages")
	if err != nil || sink == nil {
		return err
	}
	st, err := sink.Station(ctx, mysql.WithLookback(p.cfg.Station.Lookback))
	if err != nil {
		return fmt.Errorf("starting the station sink: %w", err)
	}
	r, err := stream.New(scfg, stationStage(st))
	if err != nil {
		return err
	}
	p.runners = append(p.runners, r)
	return nil
}

const stationHelp = `Station messages (站内信, docs/station-messages.md): a message to all users
is stored once, and reaches a user's inbox when the user next reads it; a
message to one user goes to that user's inbox. Apps read inboxes through
promoflow serve (GET /v1/users/{user}/inbox, .../unread-count, and POST
.../{message}/read, .../read-all).

  send      publishes station.message.published: --all, or --user U; --title
            and --body; --link (an https:// URL or an in-app /path);
            --expires (a duration after --at, or an RFC 3339 time); --at
            schedules it (RFC 3339, default now). --id names the message
            (default: generated and printed); sending the same --id again
            corrects its title, body and link.
  withdraw  publishes station.message.withdrawn for --id (with --user for a
            message to one user): it leaves every inbox, read or not. Only
            the app that sent a message (--app) can withdraw it.
  inbox     shows USER's inbox, newest first, and the unread count, from
            MySQL. Like the user's own read, it delivers the messages to all
            users published since the user's last read.

Examples:
  promoflow station send --all --title "Double 11 starts" --body "Coupons at 20:00" --link /d11 --expires 72h
  promoflow station send --user u42 --title "Your parcel shipped" --body "Order 8812"
  promoflow station withdraw --id m-20261111T120000-1a2b3c4d
  promoflow station inbox u42 --limit 20`

func init() {
	register(&command{
		name:    "station",
		summary: "send and withdraw station messages (站内信); show a user's inbox",
		usage:   "send|withdraw|inbox [USER] [flags]",
		help:    stationHelp,
		flags: func(fs *flag.FlagSet) func(context.Context, []string) error {
			cfgPath := fs.String("config", "", "YAML configuration file")
			brokers := fs.String("brokers", "", "comma-separated brokers (overrides config)")
			all := fs.Bool("all", false, "send: to every user")
			user := fs.String("user", "", "send, withdraw: the one user of the message")
			id := fs.String("id", "", "send: the message id (default generated); withdraw: the message to withdraw")
			title := fs.String("title", "", "send: the title (1-200 characters)")
			body := fs.String("body", "", "send: the text (up to 4000 characters)")
			link := fs.String("link", "", "send: where the message leads: https://… or /in-app/path")
			at := fs.String("at", "", "send: when it shows, RFC 3339 (default now)")
			expires := fs.String("expires", "", "send: when it leaves inboxes: a duration after --at (72h) or RFC 3339 (default never)")
			app := fs.String("app", "promoflow-admin", "app_id the events are published under (the owner of the message)")
			limit := fs.Int("limit", 20, "inbox: messages per page (1-100)")
			after := fs.String("after", "", "inbox: continue after this cursor (the next of a previous page)")
			return func(ctx context.Context, args []string) error {
				if len(args) == 0 {
					return usagef("want an action: send, withdraw or inbox")
				}
				cfg, err := loadConfigBrokers(*cfgPath, *brokers)
				if err != nil {
					return err
				}
				out := cmdStdout
				switch args[0] {
				case "send", "withdraw":
					if len(args) != 1 {
						return usagef("%s takes no arguments, got %q", args[0], args[1:])
					}
					var p schemas.Payload
					var eventID string
					if args[0] == "send" {
						m, err := stationMessage(*all, *user, *id, *title, *body, *link, *at, *expires, time.Now())
						if err != nil {
							return err
						}
						p, eventID = m, "station-publish-"+m.MessageID
					} else {
						if *id == "" {
							return usagef("withdraw needs --id")
						}
						w := schemas.StationMessageWithdrawn{MessageID: *id, Audience: schemas.AudienceAll, WithdrawnAt: time.Now().UTC()}
						if *user != "" {
							w.Audience, w.UserID = schemas.AudienceUser, *user
						}
						p, eventID = w, "station-withdraw-"+*id
					}
					pr, err := producers.New(producers.Config{Brokers: cfg.Kafka.Brokers, AppID: *app}, producers.WithClientOpts(cfg.kafkaOpts()...))
					if err != nil {
						return err
					}
					defer pr.Close()
					if err := pr.Publish(ctx, eventID, time.Now(), p); err != nil {
						return err
					}
					describeStation(out, p)
					return nil
				case "inbox":
					if len(args) != 2 {
						return usagef("inbox takes one USER")
					}
					return showInbox(ctx, cfg, args[1], *after, *limit, out)
				}
				return usagef("unknown action %q", args[0])
			}
		},
	})
}

// stationMessage builds and checks the message of `station send`.
func stationMessage(all bool, user, id, title, body, link, at, expires string, now time.Time) (schemas.StationMessagePublished, error) {
	m := schemas.StationMessagePublished{MessageID: id, Title: title, Body: body, Link: link, PublishedAt: now.UTC()}
	switch {
	case all == (user != ""):
		return m, usagef("send needs exactly one of --all and --user")
	case all:
		m.Audience = schemas.AudienceAll
	default:
		m.Audience, m.UserID = schemas.AudienceUser, user
	}
	if title == "" {
		return m, usagef("send needs --title")
	}
	if at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return m, usagef("--at %q: want an RFC 3339 time (2026-11-11T20:00:00+08:00)", at)
		}
		m.PublishedAt = t.UTC()
	}
	if expires != "" {
		if d, err := time.ParseDuration(expires); err == nil {
			m.ExpiresAt = m.PublishedAt.Add(d)
		} else if t, err := time.Parse(time.RFC3339Nano, expires); err == nil {
			m.ExpiresAt = t.UTC()
		} else {
			return m, usagef("--expires %q: want a duration (72h) or an RFC 3339 time", expires)
		}
		if !m.ExpiresAt.After(m.PublishedAt) {
			return m, usagef("--expires %s is not after the message shows (%s)", m.ExpiresAt.Format(time.RFC3339), m.PublishedAt.Format(time.RFC3339))
		}
	}
	if m.MessageID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		m.MessageID = "m-" + now.UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b)
	}
	return m, nil
}

func describeStation(out io.Writer, p schemas.Payload) {
	to := func(audience, user string) string {
		if audience == schemas.AudienceAll {
			return "all users"
		}
		return "user " + user
	}
	switch p := p.(type) {
	case schemas.StationMessagePublished:
		fmt.Fprintf(out, "published message %s to %s, showing from %s", p.MessageID, to(p.Audience, p.UserID), p.PublishedAt.Format(time.RFC3339))
		if !p.ExpiresAt.IsZero() {
			fmt.Fprintf(out, " until %s", p.ExpiresAt.Format(time.RFC3339))
		}
		fmt.Fprintln(out)
	case schemas.StationMessageWithdrawn:
		fmt.Fprintf(out, "withdrew message %s of %s\n", p.MessageID, to(p.Audience, p.UserID))
	}
}

// showInbox prints one page of a user's inbox and the unread count.
func showInbox(ctx context.Context, cfg *Config, user, after string, limit int, out io.Writer) error {
	if limit < 1 || limit > 100 {
		return usagef("--limit must be from 1 to 100")
	}
	cur, err := sinks.ParseInboxCursor(after)
	if err != nil {
		return usagef("--after: %v", err)
	}
	sink, err := mysql.New(ctx, cfg.MySQL)
	if err != nil {
		return fmt.Errorf("opening the system of record: %w", err)
	}
	defer sink.Close()
	st, err := sink.Station(ctx, mysql.WithLookback(cfg.Station.Lookback))
	if err != nil {
		return err
	}
	page, err := st.Inbox(ctx, user, cur, limit)
	if err != nil {
		return err
	}
	unread, err := st.UnreadCount(ctx, user)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "inbox of %s: %d unread\n", user, unread)
	for _, m := range page.Messages {
		state := "unread"
		if m.Read {
			state = "read " + m.ReadAt.Format(time.RFC3339)
		}
		expires := ""
		if m.ExpiresAt != nil {
			expires = ", expires " + m.ExpiresAt.Format(time.RFC3339)
		}
		fmt.Fprintf(out, "%s  %-4s %-24s %q (%s%s)\n", m.PublishedAt.Format(time.RFC3339), m.Audience, m.MessageID, m.Title, state, expires)
	}
	if !page.Next.IsZero() {
		fmt.Fprintf(out, "more: --after %s\n", page.Next)
	}
	return nil
}
