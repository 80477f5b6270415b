package schemas

import (
	"strconv"
	"strings"
	"time"
)

// Notification fan-out event types (docs/notifications.md).
const (
	TypeNotifyCampaignRequested = "notify.campaign.requested"
	TypeNotifyCampaignContinued = "notify.campaign.continued"
	TypeNotifyShardPlanned      = "notify.shard.planned"
)

// MaxNotifyShardUsers bounds the users of one notification shard.
const MaxNotifyShardUsers = 5000

// NotifyCampaignRequested asks for a template to be sent to every member of
// a crowd (notify.campaign.requested v1), keyed by campaign_id. The
// campaign id is the idempotency key: a second request for the same
// campaign plans nothing and sends nothing.
type NotifyCampaignRequested struct {
	CampaignID string `json:"campaign_id"`
	CrowdID    string `json:"crowd_id"`
	Template   string `json:"template"`
	// ShardSize overrides the planner's users per shard (0: its default).
	ShardSize   int       `json:"shard_size,omitempty"`
	RequestedAt time.Time `json:"requested_at"`
}

func (NotifyCampaignRequested) EventType() string      { return TypeNotifyCampaignRequested }
func (NotifyCampaignRequested) EventVersion() int      { return 1 }
func (r NotifyCampaignRequested) PartitionKey() string { return r.CampaignID }

// NotifyCampaignContinued is the planner's bookmark (notify.campaign.continued
// v1): planning resumes after user After with shard NextSeq. The planner
// plans a campaign in bounded steps, each ending with the next bookmark on
// the same partition, so no single record holds a partition for long.
type NotifyCampaignContinued struct {
	CampaignID string `json:"campaign_id"`
	CrowdID    string `json:"crowd_id"`
	Template   string `json:"template"`
	// Day is the routine crowd's compute day planning reads, fixed at the
	// first step so that a campaign never mixes two days ("" for manual).
	Day          string    `json:"day,omitempty"`
	After        string    `json:"after"`
	Step         int64     `json:"step"`
	NextSeq      int64     `json:"next_seq"`
	UsersPlanned int64     `json:"users_planned"`
	ShardSize    int       `json:"shard_size"`
	ContinuedAt  time.Time `json:"continued_at"`
}

func (NotifyCampaignContinued) EventType() string      { return TypeNotifyCampaignContinued }
func (NotifyCampaignContinued) EventVersion() int      { return 1 }
func (c NotifyCampaignContinued) PartitionKey() string { return c.CampaignID }

// NotifyShardPlanned is one shard of a campaign's users (notify.shard.planned
// v1), keyed by shard_id (<campaign_id>/<seq>) so that shards spread over
// the partitions and their senders.
type NotifyShardPlanned struct {
	ShardID    string    `json:"shard_id"`
	CampaignID string    `json:"campaign_id"`
	Seq        int64     `json:"seq"`
	CrowdID    string    `json:"crowd_id"`
	Template   string    `json:"template"`
	Users      []string  `json:"users"`
	PlannedAt  time.Time `json:"planned_at"`
}

func (NotifyShardPlanned) EventType() string      { return TypeNotifyShardPlanned }
func (NotifyShardPlanned) EventVersion() int      { return 1 }
func (s NotifyShardPlanned) PartitionKey() string { return s.ShardID }

// NotifyShardID names shard seq of a campaign.
func NotifyShardID(campaign string, seq int64) string {
	return campaign + "/" + strconv.FormatInt(seq, 10)
}

// checkShardID requires shard_id to be <campaign_id>/<digits>; the sender
// checks the digits against seq once the payload is decoded.
func checkShardID(_ string, field func(string) string) error {
	id, campaign := field("shard_id"), field("campaign_id")
	rest, ok := strings.CutPrefix(id, campaign+"/")
	if !ok || rest == "" || strings.TrimLeft(rest, "0123456789") != "" || (len(rest) > 1 && rest[0] == '0') {
		return invalid(ReasonInvalidPayload, "shard_id %q is not <campaign_id>/<seq> for campaign %q", truncateString(id, 80), truncateString(campaign, 64))
	}
	return nil
}
