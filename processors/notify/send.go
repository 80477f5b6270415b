package notify

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/promoflow/promoflow/internal/stream"
	"github.com/promoflow/promoflow/schemas"
)

// Dispatcher sends shards: for each, one script call decides every user
// (already sent for this campaign, over a frequency cap, or reserved to
// send now), the Sender delivers the reserved ones, and a second call
// marks them sent, failed for good, or released to try again. A shard with
// released or busy users fails its batch, which the runtime retries after
// a backoff; what was sent stays sent, so a retry sends only the rest.
type Dispatcher struct {
	store     *Store
	sender    Sender
	templates *Templates
	log       *slog.Logger
}

// NewDispatcher returns a Dispatcher delivering through sender.
func NewDispatcher(store *Store, sender Sender, templates *Templates, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.Default()
	}
	return &Dispatcher{store: store, sender: sender, templates: templates, log: log}
}

// Stage declares the sender stage. Scale it by adding members: shards
// spread over notify.shards' partitions.
func (d *Dispatcher) Stage() stream.Stage {
	return stream.Stage{
		Name:    SendStageName,
		Group:   SendGroup,
		Reads:   []string{TopicShards},
		Handles: []string{tv(schemas.TypeNotifyShardPlanned)},
		Handler: d,
		// Each worker's epoch orders reservations across owners.
		Fenced: true,
		// A shard is ~1,000 sends: a few per batch keep retries small.
		MaxPollRecords: 8,
	}
}

// Reasons a shard is refused.
const (
	ReasonBadShard = "bad_shard"
)

// errRetry fails a batch whose shard must be sent again later.
type errRetry struct {
	shard          string
	released, busy int
	cause          error
}

func (e *errRetry) Error() string {
	return fmt.Sprintf("shard %s: %d users to send again, %d held by another sender: %v", e.shard, e.released, e.busy, e.cause)
}

// Handle sends each shard of the batch in order.
func (d *Dispatcher) Handle(ctx context.Context, b *stream.Batch) (stream.Result, error) {
	var res stream.Result
	for _, ev := range b.Events {
		var s schemas.NotifyShardPlanned
		if err := ev.Env.DecodePayload(&s); err != nil {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: string(schemas.ReasonInvalidPayload), Detail: err.Error()})
			continue
		}
		if want := schemas.NotifyShardID(s.CampaignID, s.Seq); s.ShardID != want {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: ReasonBadShard, Detail: fmt.Sprintf("shard_id %q, want %q", s.ShardID, want)})
			continue
		}
		if !d.templates.Has(s.Template) {
			res.Dead = append(res.Dead, stream.DeadLetter{Record: ev.Record, Reason: ReasonUnknownTemplate,
				Detail: fmt.Sprintf("template %q is not in notify.templates (fix the config, then promoflow dlq replay)", s.Template)})
			continue
		}
		if err := d.send(ctx, &res, b.Epoch, s); err != nil {
			if re, ok := err.(*errRetry); ok {
				d.log.Warn("shard to be sent again", "shard", re.shard, "released", re.released, "busy", re.busy, "err", re.cause,
					"topic", ev.Record.Topic, "partition", ev.Record.Partition, "offset", ev.Record.Offset)
				_ = d.store.incr(ctx, s.CampaignID, "retries", 1)
			}
			return stream.Result{}, err
		}
	}
	return res, nil
}

// decisionSend is the decision kind of the sender's users.
const decisionSend = "notify.send"

// send delivers one shard.
func (d *Dispatcher) send(ctx context.Context, res *stream.Result, epoch int64, s schemas.NotifyShardPlanned) error {
	users := dedupe(s.Users)
	codes, err := d.store.reserve(ctx, s.CampaignID, s.Seq, epoch, users)
	if err == ErrCancelled {
		res.DecideN(decisionSend, "cancelled", "", len(users))
		return nil
	}
	if err != nil {
		return err
	}
	var (
		msgs []Message
		busy int
	)
	for i, u := range users {
		switch codes[i] {
		case codeReserved:
			m := Message{CampaignID: s.CampaignID, ShardID: s.ShardID, UserID: u, Template: s.Template, IdempotencyKey: s.CampaignID + ":" + u, PlannedAt: s.PlannedAt}
			if err := d.templates.render(s.Template, &m, s.CrowdID); err != nil {
				return fmt.Errorf("rendering template %q for %s: %w", s.Template, u, err)
			}
			msgs = append(msgs, m)
		case codeBusy:
			busy++
		case codeSent, codeFailed:
			res.DecideN(decisionSend, "duplicate", "", 1)
		case codeCapped:
			res.DecideN(decisionSend, "capped", "", 1)
		}
	}
	outcomes := make([]string, len(msgs))
	var sendErr error
	if len(msgs) > 0 {
		errs, err := d.sender.Send(ctx, msgs)
		if err == nil && len(errs) != len(msgs) {
			err = fmt.Errorf("sender answered %d results for %d messages", len(errs), len(msgs))
		}
		for i := range outcomes {
			switch {
			case err != nil:
				outcomes[i], sendErr = outcomeReleased, err
			case errs[i] == nil:
				outcomes[i] = outcomeSent
			case IsPermanent(errs[i]):
				outcomes[i] = outcomeFailed
			default:
				outcomes[i], sendErr = outcomeReleased, errs[i]
			}
		}
	}
	released := 0
	for _, o := range outcomes {
		if o == outcomeReleased {
			released++
		}
	}
	done := released == 0 && busy == 0
	reserved := make([]string, len(msgs))
	for i, m := range msgs {
		reserved[i] = m.UserID
	}
	// The mark is made with a context that outlives a shutdown: what was
	// sent must be recorded as sent.
	mctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), markTimeout)
	defer cancel()
	mr, err := d.store.mark(mctx, s.CampaignID, s.Seq, epoch, reserved, outcomes, done)
	if err != nil {
		return err
	}
	res.DecideN(decisionSend, "sent", "", int(mr.Sent))
	res.DecideN(decisionSend, "failed", "", int(mr.Failed))
	if mr.Lost > 0 {
		// A newer owner of the partition took the users over: it sends
		// the shard; this worker stops.
		return fmt.Errorf("shard %s: %d reservations taken over by a newer owner: %w", s.ShardID, mr.Lost, stream.ErrFenced)
	}
	if !done {
		if sendErr == nil {
			sendErr = fmt.Errorf("users reserved by another sender")
		}
		return &errRetry{shard: s.ShardID, released: released, busy: busy, cause: sendErr}
	}
	return nil
}

// dedupe drops repeated users, keeping the first.
func dedupe(users []string) []string {
	seen := make(map[string]struct{}, len(users))
	out := users[:0:0]
	for _, u := range users {
		if _, ok := seen[u]; ok {
			continue
		}
		seen[u] = struct{}{}
		out = append(out, u)
	}
	return out
}
