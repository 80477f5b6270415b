package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

// Topics and groups of the fan-out.
const (
	TopicCampaigns = "notify.campaigns"
	TopicShards    = "notify.shards"
	PlanGroup      = "promoflow-notify-plan"
	SendGroup      = "promoflow-notify-send"
	PlanStageName  = "notify-plan"
	SendStageName  = "notify-send"
	// AppID is the app_id of the planner's records.
	AppID = "promoflow-notify"
)

// MemberSource pages a crowd's members in ascending user id order
// (sinks/mysql's Crowds is one).
type MemberSource interface {
	// Crowd returns the crowd's locator entry (its trigger and, for a
	// routine crowd, the ready compute day); an unknown crowd wraps
	// sinks.ErrNotFound.
	Crowd(ctx context.Context, crowdID string) (sinks.Crowd, error)
	// MembersOf returns up to limit members of c greater than after, read
	// at c.Day for a routine crowd.
	MembersOf(ctx context.Context, c sinks.Crowd, after string, limit int) ([]string, error)
}

// Planner turns a campaign request into shards of the crowd's users, in
// bounded steps: each step reads up to StepShards shards' worth of
// members, writes them to notify.shards and, unless the crowd is
// exhausted, writes a bookmark (notify.campaign.continued) after them to
// its own partition. A step is claimed in Redis by the record that plans
// it, so a repeated request or a duplicated bookmark plans nothing, while
// the same record redelivered after a crash plans its step again (its
// shards get the same ids; the sender skips what it already did).
type Planner struct {
	store     *Store
	members   MemberSource
	templates *Templates
	// ShardSize is the default users per shard (1000).
	shardSize int
	// stepShards bounds the shards one step plans (100).
	stepShards int
	log        *slog.Logger
	now        func() time.Time
}

// PlannerOption configures a Planner.
type PlannerOption func(*Planner)

// WithShardSize sets the default users per shard (default 1000, at most
// schemas.MaxNotifyShardUsers).
func WithShardSize(n int) PlannerOption { return func(p *Planner) { p.shardSize = n } }

// WithStepShards sets how many shards one planning step writes (default 100).
func WithStepShards(n int) PlannerOption { return func(p *Planner) { p.stepShards = n } }

// WithPlannerLogger sets the planner's logger.
func WithPlannerLogger(l *slog.Logger) PlannerOption { return func(p *Planner) { p.log = l } }

// NewPlanner returns a planner reading crowds from members.
func NewPlanner(store *Store, members MemberSource, templates *Templates, opts ...PlannerOption) *Planner {
	p := &Planner{store: store, members: members, templates: templates, shardSize: 1000, stepShards: 100, log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(p)
	}
	p.shardSize = min(max(p.shardSize, 1), schemas.MaxNotifyShardUsers)
	p.stepShards = max(p.stepShards, 1)
	return p
}

func tv(typ string) string { return schemas.TypeVersion{Type: typ, Version: 1}.String() }

// Stage declares the planner.
func (p *Planner) Stage() stream.Stage {
	return stream.Stage{
		Name:    PlanStageName,
		Group:   PlanGroup,
		Reads:   []string{TopicCampaigns},
		Writes:  []string{TopicShards, TopicCampaigns},
		Handles: []string{tv(schemas.TypeNotifyCampaignRequested), tv(schemas.TypeNotifyCampaignContinued)},
		Handler: p,
		// A step writes up to StepShards records: take few at a time.
		MaxPollRecords: 16,
	}
}

// Reasons a campaign request is refused (dead-lettered, and the campaign's
// status says failed).
const (
	ReasonUnknownCrowd    = "unknown_crowd"
	ReasonUnknownTemplate = "unknown_template"
)

// Handle plans one step per record.
func (p *Planner) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	for _, ev := range b.Events {
		var (
			c     schemas.NotifyCampaignContinued
			first bool
		)
		switch ev.Env.Type {
		case schemas.TypeNotifyCampaignRequested:
			var r schemas.NotifyCampaignRequested
			if err := ev.Env.DecodePayload(&r); err != nil {
				res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
				continue
			}
			size := r.ShardSize
			if size <= 0 {
				size = p.shardSize
			}
			c = schemas.NotifyCampaignContinued{CampaignID: r.CampaignID, CrowdID: r.CrowdID, Template: r.Template, ShardSize: size}
			first = true
		case schemas.TypeNotifyCampaignContinued:
			if err := ev.Env.DecodePayload(&c); err != nil {
				res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
				continue
			}
		default:
			continue
		}
		record := ev.Record.Topic + "/" + strconv.Itoa(int(ev.Record.Partition)) + "@" + strconv.FormatInt(ev.Record.Offset, 10)
		mine, err := p.store.claimStep(ctx, c.CampaignID, c.Step, record)
		if err != nil {
			return stream.Result{}, err
		}
		if !mine && first {
			// A campaign refused earlier (an unknown crowd or template) may
			// be requested again under its id once that is fixed.
			if mine, err = p.store.retryFailed(ctx, c.CampaignID, record); err != nil {
				return stream.Result{}, err
			}
		}
		if !mine {
			if first {
				p.log.Info("campaign already requested: nothing planned", "campaign", c.CampaignID, "topic", ev.Record.Topic, "partition", ev.Record.Partition, "offset", ev.Record.Offset)
				res.Decide("notify.plan", "repeated", "")
			}
			continue
		}
		if first {
			dead, err := p.start(ctx, &c, ev.Env.OccurredAt)
			if err != nil {
				return stream.Result{}, err
			}
			if dead != nil {
				dead.Record = ev.Record
				res.Dead = append(res.Dead, *dead)
				res.Decide("notify.plan", "refused", dead.Reason)
				continue
			}
		}
		if err := p.step(ctx, &res, c); err != nil {
			return stream.Result{}, err
		}
	}
	return res, nil
}

// start checks a new campaign and records it; a refusal is returned as a
// dead letter (without its record).
func (p *Planner) start(ctx context.Context, c *schemas.NotifyCampaignContinued, requested time.Time) (*stream.DeadLetter, error) {
	fields := map[string]any{"crowd": c.CrowdID, "template": c.Template, "requested_at": requested.UnixMilli(), "status": StatusPlanning, "reason": ""}
	refuse := func(reason, detail string) (*stream.DeadLetter, error) {
		fields["status"], fields["reason"] = StatusFailed, reason+": "+detail
		p.log.Warn("campaign refused", "campaign", c.CampaignID, "crowd", c.CrowdID, "template", c.Template, "reason", reason, "detail", detail)
		return &stream.DeadLetter{Reason: reason, Detail: detail}, p.store.setCampaign(ctx, c.CampaignID, fields)
	}
	if !p.templates.Has(c.Template) {
		return refuse(ReasonUnknownTemplate, fmt.Sprintf("template %q is not in notify.templates", c.Template))
	}
	cr, err := p.members.Crowd(ctx, c.CrowdID)
	if errors.Is(err, sinks.ErrNotFound) {
		return refuse(ReasonUnknownCrowd, err.Error())
	}
	if err != nil {
		return nil, err
	}
	if cr.Trigger == sinks.CrowdRoutine && cr.Day == "" {
		return refuse(ReasonUnknownCrowd, fmt.Sprintf("crowd %s has no complete compute day yet", c.CrowdID))
	}
	c.Day = cr.Day
	p.log.Info("planning campaign", "campaign", c.CampaignID, "crowd", c.CrowdID, "day", c.Day, "template", c.Template, "shard_size", c.ShardSize)
	return nil, p.store.setCampaign(ctx, c.CampaignID, fields)
}

// step plans up to stepShards shards after c.After, then the next
// bookmark or the end of planning.
func (p *Planner) step(ctx context.Context, res *stream.Result, c schemas.NotifyCampaignContinued) error {
	now := p.now()
	if pr, err := p.store.Progress(ctx, c.CampaignID); err == nil && pr.Status == StatusCancelled {
		p.log.Info("campaign cancelled: planning stops", "campaign", c.CampaignID, "shards", c.NextSeq, "users", c.UsersPlanned)
		res.Decide("notify.plan", "cancelled", "")
		return nil
	}
	cr, err := p.members.Crowd(ctx, c.CrowdID)
	if err != nil && !errors.Is(err, sinks.ErrNotFound) {
		return err
	}
	// A routine crowd is read at the day fixed when planning began.
	cr.Day = c.Day
	// Read pages of up to 10 shards.
	pageShards := min(p.stepShards, max(1, 10_000/c.ShardSize))
	var (
		shards    int
		exhausted bool
	)
	for shards < p.stepShards && !exhausted {
		want := min(pageShards, p.stepShards-shards) * c.ShardSize
		var users []string
		if err == nil {
			users, err = p.members.MembersOf(ctx, cr, c.After, want)
		}
		if errors.Is(err, sinks.ErrNotFound) {
			// The crowd's table is gone (a routine day past its retention).
			p.log.Error("campaign's crowd disappeared while planning", "campaign", c.CampaignID, "crowd", c.CrowdID, "err", err)
			return p.store.setCampaign(ctx, c.CampaignID, map[string]any{"status": StatusFailed, "reason": ReasonUnknownCrowd + ": " + err.Error(),
				"shards_planned": c.NextSeq, "users_planned": c.UsersPlanned})
		}
		if err != nil {
			return err
		}
		exhausted = len(users) < want
		for lo := 0; lo < len(users); {
			hi := shardEnd(users, lo, c.ShardSize)
			part := users[lo:hi]
			lo = hi
			s := schemas.NotifyShardPlanned{ShardID: schemas.NotifyShardID(c.CampaignID, c.NextSeq), CampaignID: c.CampaignID, Seq: c.NextSeq,
				CrowdID: c.CrowdID, Template: c.Template, Users: part, PlannedAt: now}
			rec, err := stream.NewRecord(TopicShards, "shard:"+c.CampaignID+":"+strconv.FormatInt(s.Seq, 10), AppID, now, s)
			if err != nil {
				return fmt.Errorf("encoding shard %s: %w", s.ShardID, err)
			}
			res.Out = append(res.Out, rec)
			c.NextSeq++
			c.UsersPlanned += int64(len(part))
			c.After = part[len(part)-1]
			shards++
		}
	}
	c.Step++
	fields := map[string]any{"shards_planned": c.NextSeq, "users_planned": c.UsersPlanned}
	if exhausted {
		fields["status"] = StatusPlanned
		p.log.Info("campaign planned", "campaign", c.CampaignID, "shards", c.NextSeq, "users", c.UsersPlanned)
		res.Decide("notify.plan", "planned", "")
	} else {
		c.ContinuedAt = now
		rec, err := stream.NewRecord(TopicCampaigns, "plan:"+c.CampaignID+":"+strconv.FormatInt(c.Step, 10), AppID, now, c)
		if err != nil {
			return fmt.Errorf("encoding the bookmark of campaign %s: %w", c.CampaignID, err)
		}
		res.Out = append(res.Out, rec)
	}
	// Counters move with the records: a redelivered step writes the same
	// values again.
	return p.store.setCampaign(ctx, c.CampaignID, fields)
}

// maxShardUserBytes bounds the user ids of one shard, so that its record
// stays well under the events' size limit (schemas.DefaultMaxBytes) even
// with long ids.
const maxShardUserBytes = 48 << 10

// shardEnd returns where the shard starting at users[lo] ends: after size
// users, or before the ids pass maxShardUserBytes.
func shardEnd(users []string, lo, size int) int {
	n := 0
	for i := lo; i < len(users) && i < lo+size; i++ {
		n += len(users[i]) + 3 // quotes and a comma
		if n > maxShardUserBytes && i > lo {
			return i
		}
	}
	return min(lo+size, len(users))
}
