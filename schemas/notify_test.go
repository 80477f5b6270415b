package schemas

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeNotifyEvents(t *testing.T) {
	at := time.Date(2026, 11, 22, 1, 2, 3, 0, time.UTC)
	many := make([]string, MaxNotifyShardUsers+1)
	for i := range many {
		many[i] = "u"
	}
	shard := func(id, campaign string, seq int64, users ...string) NotifyShardPlanned {
		return NotifyShardPlanned{ShardID: id, CampaignID: campaign, Seq: seq, CrowdID: "vip", Template: "t", Users: users, PlannedAt: at}
	}
	cases := []struct {
		name string
		p    Payload
		want Reason
	}{
		{"request", NotifyCampaignRequested{CampaignID: "d11", CrowdID: "vip", Template: "presale", RequestedAt: at}, ""},
		{"request with shard size", NotifyCampaignRequested{CampaignID: "d11", CrowdID: "vip", Template: "presale", ShardSize: 5000, RequestedAt: at}, ""},
		{"shard size too big", NotifyCampaignRequested{CampaignID: "d11", CrowdID: "vip", Template: "presale", ShardSize: 5001, RequestedAt: at}, ReasonInvalidPayload},
		{"template with a space", NotifyCampaignRequested{CampaignID: "d11", CrowdID: "vip", Template: "pre sale", RequestedAt: at}, ReasonInvalidPayload},
		{"hostile campaign", NotifyCampaignRequested{CampaignID: "x'; DROP", CrowdID: "vip", Template: "t", RequestedAt: at}, ReasonInvalidPayload},
		{"bookmark", NotifyCampaignContinued{CampaignID: "d11", CrowdID: "vip", Template: "t", Day: "20261122", After: "u9", Step: 3, NextSeq: 300, UsersPlanned: 300000, ShardSize: 1000, ContinuedAt: at}, ""},
		{"bookmark step 0", NotifyCampaignContinued{CampaignID: "d11", CrowdID: "vip", Template: "t", Step: 0, ShardSize: 1000, ContinuedAt: at}, ReasonInvalidPayload},
		{"shard", shard("d11/12", "d11", 12, "u1", "u2"), ""},
		{"shard id of another campaign", shard("d12/12", "d11", 12, "u1"), ReasonInvalidPayload},
		{"shard id not a number", shard("d11/x", "d11", 12, "u1"), ReasonInvalidPayload},
		{"shard id with a leading zero", shard("d11/012", "d11", 12, "u1"), ReasonInvalidPayload},
		{"shard without users", shard("d11/1", "d11", 1), ReasonInvalidPayload},
		{"shard with a bad user", shard("d11/1", "d11", 1, "u1", "<script>"), ReasonInvalidPayload},
		{"shard too large", shard("d11/1", "d11", 1, many...), ReasonInvalidPayload},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkDecodeReason(t, "ops", at, c.p, c.want) })
	}
	if NotifyShardID("d11", 12) != "d11/12" || !strings.HasPrefix(NotifyShardID("a", 0), "a/") {
		t.Fatal("NotifyShardID")
	}
}
