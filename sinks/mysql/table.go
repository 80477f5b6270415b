package mysql

import (
	"fmt"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// table writes the results of one event type to its table in every shard.
// To store a new result type, add a table and list it in tables.
type table struct {
	// eventType is the envelope type whose events become rows of this table.
	eventType string
	// what names the rows in errors ("coupon grants").
	what string
	// prefix names the table: shard j's table is <prefix>_<j>.
	prefix string
	// columns lists the inserted columns; the first is the primary key,
	// never updated on a duplicate.
	columns []string
	// create is the CREATE TABLE IF NOT EXISTS statement; %s is the
	// quoted table name.
	create string
	// row turns one event into a row, or returns ok false when the event
	// adds none to this table (a rejected operation to coupon_<j>).
	row func(env *schemas.Envelope) (r row, ok bool, err error)
	// newer, when set, names the column whose higher value makes a row
	// newer (coupon_<j>'s seq): a duplicate key updates the stored row only
	// when it brings a strictly higher value, and within a batch the row
	// with the highest value (the first of equals) is written, so replays
	// and late deliveries leave the newest row whatever their order.
	newer string
	// firstWins marks a table with a unique key besides the primary key
	// (row.unique) whose first row stays: a row colliding with a stored or
	// batched row on that key, under another primary key, changes nothing.
	// A row with the same primary key is a replay and updates as usual.
	firstWins bool
}

// row is one row to upsert.
type row struct {
	// key is the primary key: duplicates within a batch are dropped by it,
	// and rows are written in its order.
	key string
	// routeKey routes the row to its shard: the user id, or the activity
	// id for rows of an activity as a whole.
	routeKey string
	values   []any
	// version is the row's value of table.newer.
	version int64
	// unique is the row's value of the table's other unique key, for
	// tables whose first row wins (table.firstWins).
	unique string
}

// tables lists every table the sink writes.
var tables = []*table{
	&couponGrants, &coupons.table, &couponOps.table, &couponReminders,
	&lotteryActivities.table, &lotteryEntries.table, &lotteryDraws.table, &lotteryAwards.table,
	&giftMatches.table, &giftMembers.table,
	&referralBindings.table, &referralQualifications.table, &referralRewards.table,
	&recommendations.table,
}

// tablesFor maps an event type to its tables, in the order of tables.
var tablesFor = func() map[string][]*table {
	m := map[string][]*table{}
	for _, t := range tables {
		m[t.eventType] = append(m[t.eventType], t)
	}
	return m
}()

func (t *table) name(j int) string { return fmt.Sprintf("%s_%d", t.prefix, j) }

// insertSQL returns the upsert of n rows into table name.
func (t *table) insertSQL(name string, n int) string {
	var b strings.Builder
	tuple := "(" + strings.Repeat("?,", len(t.columns)-1) + "?)"
	b.Grow(64 + 32*len(t.columns) + n*(len(tuple)+1))
	fmt.Fprintf(&b, "INSERT INTO `%s` (%s) VALUES ", name, strings.Join(t.columns, ", "))
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(tuple)
	}
	// The replay of a result carries the values already stored, so this
	// changes nothing; a corrected result would overwrite them.
	b.WriteString(" ON DUPLICATE KEY UPDATE ")
	b.WriteString(strings.Join(t.updates(), ", "))
	return b.String()
}

// updates returns the assignments of ON DUPLICATE KEY UPDATE, one per
// column but the primary key. INSERT IGNORE would keep the first row of a
// firstWins table too, but would also turn every other error (a value too
// long, a bad date) into a warning and a silently altered row.
func (t *table) updates() []string {
	out := make([]string, 0, len(t.columns))
	for _, c := range t.columns[1:] {
		switch {
		case c == t.newer:
		case t.newer != "":
			out = append(out, fmt.Sprintf("%[1]s = IF(VALUES(%[2]s) > %[2]s, VALUES(%[1]s), %[1]s)", c, t.newer))
		case t.firstWins:
			out = append(out, fmt.Sprintf("%[1]s = IF(%[2]s = VALUES(%[2]s), VALUES(%[1]s), %[1]s)", c, t.columns[0]))
		default:
			out = append(out, fmt.Sprintf("%[1]s = VALUES(%[1]s)", c))
		}
	}
	if t.newer != "" {
		// MySQL assigns left to right, each assignment seeing the values
		// of those before it: the guard column goes last, so that every
		// other assignment compares against the stored value.
		out = append(out, fmt.Sprintf("%[1]s = GREATEST(%[1]s, VALUES(%[1]s))", t.newer))
	}
	return out
}

// sqlTime prepares a time for a DATETIME(3) column: UTC, truncated to the
// millisecond so MySQL 8 (which rounds) and MariaDB (which truncates) store
// the same value.
func sqlTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// couponGrants stores coupon.grant.decided events, one row per result_id.
// Sizes follow the schema: ids up to 128 characters, batch and app ids up
// to 64, coupon ids up to 32. utf8mb4_bin compares ids exactly, case and
// all, as the processors do.
var couponGrants = table{
	eventType: schemas.TypeCouponGrantDecided,
	what:      "coupon grants",
	prefix:    "coupon_grant",
	columns: []string{
		"result_id", "claim_event_id", "app_id", "batch_id", "user_id",
		"status", "reason", "coupon_id", "grant_seq", "claimed_at", "decided_at",
	},
	create: "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  result_id      CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
		"  claim_event_id VARCHAR(128) NOT NULL,\n" +
		"  app_id         VARCHAR(64)  NOT NULL,\n" +
		"  batch_id       VARCHAR(64)  NOT NULL,\n" +
		"  user_id        VARCHAR(128) NOT NULL,\n" +
		"  status         VARCHAR(16)  NOT NULL,\n" +
		"  reason         VARCHAR(32)  NOT NULL DEFAULT '',\n" +
		"  coupon_id      VARCHAR(32)  NOT NULL DEFAULT '',\n" +
		"  grant_seq      BIGINT       NOT NULL DEFAULT 0,\n" +
		"  claimed_at     DATETIME(3)  NOT NULL,\n" +
		"  decided_at     DATETIME(3)  NOT NULL,\n" +
		"  created_at     DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" +
		"  PRIMARY KEY (result_id),\n" +
		"  KEY idx_user_batch (user_id, batch_id),\n" +
		"  KEY idx_batch_status (batch_id, status)\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
	row: func(env *schemas.Envelope) (row, bool, error) {
		var g schemas.GrantDecided
		if err := env.DecodePayload(&g); err != nil {
			return row{}, false, err
		}
		return row{
			key:      g.ResultID,
			routeKey: g.UserID,
			values: []any{
				g.ResultID, g.ClaimEventID, env.AppID, g.BatchID, g.UserID,
				g.Status, g.Reason, g.CouponID, g.GrantSeq, sqlTime(g.ClaimedAt), sqlTime(g.DecidedAt),
			},
		}, true, nil
	},
}
