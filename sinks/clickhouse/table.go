package clickhouse

import (
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// table is one table the sink inserts into. To store a new result type, add
// a table and list it in tables.
type table struct {
	// name is the table's name in the sink's database.
	name string
	// what names the rows in errors ("coupon grants").
	what string
	// columns lists the inserted columns, in the order of row's values.
	columns []string
	// create is the CREATE TABLE IF NOT EXISTS statement; %s is the
	// qualified table name.
	create string
	// row returns the row env adds to this table, keyed for deduplication
	// within a batch, or ok false if env adds none.
	row func(env *schemas.Envelope) (key string, values []any, ok bool, err error)
}

// tables lists every table the sink writes. Each gets a <name>_final view.
var tables = []*table{
	&couponGrants, &eventsRaw, &couponStates, &couponOperations, &notifications,
	&lotteryActivities, &lotteryEntries, &lotteryDraws, &lotteryAwards, &giftMatches, &giftMembers,
	&couponBatches,
	&referralBindings, &referralQualifications, &referralRewards,
	&recommendations,
}

// views lists the analysts' views over the tables, created after them:
// CREATE VIEW IF NOT EXISTS statements whose %[1]s is the quoted database.
var views = append([]string{lotteryDrawStats, couponBatchStats, couponTopUsers, referralActivityFunnel, referralInviterStats,
	recommendationConversion}, analyticsViews...)

func (t *table) insertSQL(database string) string {
	return "INSERT INTO `" + database + "`.`" + t.name + "` (" + strings.Join(t.columns, ", ") + ")"
}

func (t *table) viewSQL(database string) string {
	return "CREATE VIEW IF NOT EXISTS `" + database + "`.`" + t.name + "_final` AS SELECT " +
		strings.Join(t.columns, ", ") + " FROM `" + database + "`.`" + t.name + "` FINAL"
}

// DateTime's range as the driver writes it.
var (
	minDateTime = time.Unix(0, 0).UTC()
	maxDateTime = time.Date(2105, 12, 31, 23, 59, 59, 0, time.UTC)
)

// dateTime returns t for a DateTime column, clamped to its range: a time
// outside it must not fail the batch on every retry.
func dateTime(t time.Time) time.Time {
	switch {
	case t.Before(minDateTime):
		return minDateTime
	case t.After(maxDateTime):
		return maxDateTime
	}
	return t.UTC()
}

// millis returns t in milliseconds since the epoch for a UInt64 column,
// clamped like dateTime.
func millis(t time.Time) uint64 { return uint64(dateTime(t).UnixMilli()) }

// couponGrants stores coupon.grant.decided events, one row per result_id
// once merged (or read with FINAL).
var couponGrants = table{
	name: "coupon_grants",
	what: "coupon grants",
	columns: []string{
		"result_id", "claim_event_id", "app_id", "batch_id", "user_id", "status", "reason",
		"coupon_id", "grant_seq", "claimed_at", "claimed_at_ms", "decided_at", "decided_at_ms",
	},
	create: "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  result_id      String,\n" +
		"  claim_event_id String,\n" +
		"  app_id         String,\n" +
		"  batch_id       String,\n" +
		"  user_id        String,\n" +
		"  status         String,\n" +
		"  reason         String,\n" +
		"  coupon_id      String,\n" +
		"  grant_seq      Int64,\n" +
		"  claimed_at     DateTime,\n" +
		"  claimed_at_ms  UInt64,\n" +
		"  decided_at     DateTime,\n" +
		"  decided_at_ms  UInt64,\n" +
		"  created_at     DateTime DEFAULT now()\n" +
		") ENGINE = ReplacingMergeTree(decided_at_ms)\n" +
		"PARTITION BY toYYYYMM(decided_at)\n" +
		"ORDER BY result_id",
	row: func(env *schemas.Envelope) (string, []any, bool, error) {
		if env.Type != schemas.TypeCouponGrantDecided {
			return "", nil, false, nil
		}
		var g schemas.GrantDecided
		if err := env.DecodePayload(&g); err != nil {
			return "", nil, false, err
		}
		return g.ResultID, []any{
			g.ResultID, g.ClaimEventID, env.AppID, g.BatchID, g.UserID, g.Status, g.Reason,
			g.CouponID, g.GrantSeq, dateTime(g.ClaimedAt), millis(g.ClaimedAt), dateTime(g.DecidedAt), millis(g.DecidedAt),
		}, true, nil
	},
}

// eventsRaw stores every event as it arrived, one row per (type, app,
// event id) once merged.
var eventsRaw = table{
	name: "events_raw",
	what: "raw events",
	columns: []string{
		"event_id", "app_id", "type", "version", "key", "occurred_at", "occurred_at_ms", "payload",
	},
	create: "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  event_id       String,\n" +
		"  app_id         String,\n" +
		"  type           String,\n" +
		"  version        UInt32,\n" +
		"  key            String,\n" +
		"  occurred_at    DateTime,\n" +
		"  occurred_at_ms UInt64,\n" +
		"  payload        String,\n" +
		"  created_at     DateTime DEFAULT now()\n" +
		") ENGINE = ReplacingMergeTree()\n" +
		"PARTITION BY toYYYYMM(occurred_at)\n" +
		"ORDER BY (type, app_id, event_id)",
	row: func(env *schemas.Envelope) (string, []any, bool, error) {
		key := env.Type + "\x00" + env.AppID + "\x00" + env.EventID
		return key, []any{
			env.EventID, env.AppID, env.Type, uint32(env.Version), env.Key,
			dateTime(env.OccurredAt), millis(env.OccurredAt), string(env.Payload),
		}, true, nil
	},
}
