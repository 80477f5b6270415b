package notify

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/promoflow/promoflow/schemas"
)

// Audit reconciles a campaign's shards, as read back from notify.shards,
// with the users' records in Redis and the campaign's counters: every user
// of every shard must be settled (sent, capped or failed), and the counts
// must agree. Memory stays small: it keeps the shard numbers seen, not
// the users.
type Audit struct {
	store    *Store
	campaign string
	seen     map[int64]bool
	// Records counts the campaign's shard records read; Shards the
	// distinct shards among them; Users the users of the first record of
	// each shard.
	Records, Shards, Users int64
	// What the users' records say, over the first record of each shard.
	Sent, Capped, Failed, Reserved, Missing int64
	// Unsettled names a few users neither sent, capped nor failed.
	Unsettled []string
	// Repeats counts users of later records of a shard (a shard planned
	// again) that are not settled.
	RepeatsUnsettled int64
}

// NewAudit starts the audit of a campaign.
func (s *Store) NewAudit(campaign string) *Audit {
	return &Audit{store: s, campaign: campaign, seen: map[int64]bool{}}
}

// Add checks one shard record; records of other campaigns are ignored.
func (a *Audit) Add(ctx context.Context, s schemas.NotifyShardPlanned) error {
	if s.CampaignID != a.campaign {
		return nil
	}
	a.Records++
	users := dedupe(s.Users)
	states, err := a.store.states(ctx, a.campaign, users)
	if err != nil {
		return err
	}
	first := !a.seen[s.Seq]
	a.seen[s.Seq] = true
	if first {
		a.Shards++
		a.Users += int64(len(users))
	}
	for i, st := range states {
		settled := st == 's' || st == 'c' || st == 'f'
		if !first {
			if !settled {
				a.RepeatsUnsettled++
			}
			continue
		}
		switch st {
		case 's':
			a.Sent++
		case 'c':
			a.Capped++
		case 'f':
			a.Failed++
		case 'r':
			a.Reserved++
		default:
			a.Missing++
		}
		if !settled && len(a.Unsettled) < 5 {
			a.Unsettled = append(a.Unsettled, users[i])
		}
	}
	return nil
}

// Problems compares what was read with the campaign's progress; none when
// the campaign is done and everything agrees.
func (a *Audit) Problems(p Progress) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if !p.Done() {
		add("the campaign is not done: %s, %d of %d shards", p.Status, p.ShardsDone, p.ShardsPlanned)
	}
	if a.Shards != p.ShardsPlanned {
		add("%d distinct shards on the topic, the planner counted %d", a.Shards, p.ShardsPlanned)
	}
	if a.Users != p.UsersPlanned {
		add("%d users in the shards, the planner counted %d", a.Users, p.UsersPlanned)
	}
	// A cancelled campaign leaves the rest of its users unsent on purpose.
	if n := a.Reserved + a.Missing; n > 0 && p.Status != StatusCancelled {
		add("%d users not settled (%d reserved, %d with no record), e.g. %s", n, a.Reserved, a.Missing, strings.Join(a.Unsettled, ", "))
	}
	if a.RepeatsUnsettled > 0 && p.Status != StatusCancelled {
		add("%d users of shards planned again not settled", a.RepeatsUnsettled)
	}
	if a.Sent != p.Sent || a.Capped != p.Capped || a.Failed != p.Failed {
		add("the users' records say %d sent, %d capped, %d failed; the counters %d, %d, %d", a.Sent, a.Capped, a.Failed, p.Sent, p.Capped, p.Failed)
	}
	return out
}

// states returns, per user, the first letter of the user's record of the
// campaign (s, c, f, r) or 0 for none, reading in pipelines of 1,000.
func (s *Store) states(ctx context.Context, campaign string, users []string) ([]byte, error) {
	out := make([]byte, len(users))
	for lo := 0; lo < len(users); lo += 1000 {
		hi := min(lo+1000, len(users))
		cmds := make([]*redis.StringCmd, hi-lo)
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, u := range users[lo:hi] {
				cmds[i] = p.HGet(ctx, s.userKey(u), campaign)
			}
			return nil
		})
		if err != nil && err != redis.Nil {
			return nil, fmt.Errorf("reading the users of campaign %s: %w", campaign, err)
		}
		for i, c := range cmds {
			if v, err := c.Result(); err == nil && v != "" {
				out[lo+i] = v[0]
			}
		}
	}
	return out, nil
}
