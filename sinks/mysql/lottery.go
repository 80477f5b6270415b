package mysql

import (
	"database/sql"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// results is the table of a result type T whose columns, app_id aside, map
// one to one onto T's fields, so that one list of field pointers serves the
// upsert and the reads (rows.Scan) alike.
type results[T any] struct {
	table
	// fields returns pointers to v's fields in the order of the columns
	// given to newResults; the first is the result id.
	fields func(v *T) []any
	// routeKey returns what routes v to its shard.
	routeKey func(v *T) string
	// selectList lists the columns fields points into, for SELECT.
	selectList string
}

// newResults completes t, whose columns are those of T's fields, into the
// table of T: app_id (from the envelope) is appended to the columns, and
// rows are made by decoding T.
func newResults[T any](t table, fields func(v *T) []any, routeKey func(v *T) string) *results[T] {
	r := &results[T]{table: t, fields: fields, routeKey: routeKey, selectList: strings.Join(t.columns, ", ")}
	r.columns = append(slices.Clip(t.columns), "app_id")
	r.row = r.toRow
	return r
}

func (r *results[T]) toRow(env *schemas.Envelope) (row, bool, error) {
	var v T
	if err := env.DecodePayload(&v); err != nil {
		return row{}, false, err
	}
	return r.rowOf(env, &v), true, nil
}

// rowOf returns the row of v, published in env.
func (r *results[T]) rowOf(env *schemas.Envelope, v *T) row {
	ptrs := r.fields(v)
	values := make([]any, 0, len(ptrs)+1)
	for _, p := range ptrs {
		values = append(values, value(p))
	}
	id, _ := values[0].(string)
	return row{key: id, routeKey: r.routeKey(v), values: append(values, env.AppID)}
}

// scan reads the row rows is on, whose columns are r.selectList.
func (r *results[T]) scan(rows *sql.Rows) (T, error) {
	var v T
	err := rows.Scan(r.fields(&v)...)
	return v, err
}

// value returns the column value of the field p points to: times as
// sqlTime makes them, an absent time as NULL.
func value(p any) any {
	switch p := p.(type) {
	case *string:
		return *p
	case *int64:
		return *p
	case *time.Time:
		return sqlTime(*p)
	case **time.Time:
		if *p == nil {
			return nil
		}
		return sqlTime(**p)
	}
	return reflect.ValueOf(p).Elem().Interface()
}

// createSQL returns the CREATE TABLE IF NOT EXISTS statement of a result
// table (%s is its quoted name): result_id, the columns defined by columns,
// app_id and created_at, keyed by result_id and indexed by keys. Each
// definition is one line ending in a comma; keys has no comma after the last.
func createSQL(columns, keys string) string {
	return "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  result_id           CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n" +
		columns +
		"  app_id              VARCHAR(64)   NOT NULL,\n" +
		"  created_at          DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),\n" +
		"  PRIMARY KEY (result_id),\n" +
		keys + "\n" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
}

// The lottery and gift-exchange tables. Sizes follow the schemas: activity
// ids up to 64 characters, user and event ids up to 128, hex digests in
// ASCII. rank and trigger are reserved words in MySQL 8, hence draw_rank
// and draw_trigger. Activities and draws are routed by activity id (one row
// per activity, found without a scan), the rest by the user they concern.
var (
	// lotteryActivities stores lottery.activity.committed: one row per
	// activity, its latest revision.
	lotteryActivities = newResults(table{
		eventType: schemas.TypeLotteryActivityCommitted,
		what:      "lottery activities",
		prefix:    "lottery_activity",
		columns: []string{
			"result_id", "activity_id", "name", "revision", "kind", "status", "seed_hash",
			"join_from", "join_until", "draw_at", "per_user_limit", "prizes", "committed_at",
		},
		create: createSQL(""+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  name                VARCHAR(200)  NOT NULL DEFAULT '',\n"+
			"  revision            BIGINT        NOT NULL,\n"+
			"  kind                VARCHAR(16)   NOT NULL,\n"+
			"  status              VARCHAR(16)   NOT NULL DEFAULT '',\n"+
			"  seed_hash           CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n"+
			"  join_from           DATETIME(3)   NOT NULL,\n"+
			"  join_until          DATETIME(3)   NOT NULL,\n"+
			"  draw_at             DATETIME(3)   NULL,\n"+
			"  per_user_limit      BIGINT        NOT NULL DEFAULT 0,\n"+
			"  prizes              VARCHAR(4000) NOT NULL,\n"+
			"  committed_at        DATETIME(3)   NOT NULL,\n",
			"  KEY idx_activity (activity_id)"),
	}, func(a *schemas.ActivityCommitted) []any {
		return []any{
			&a.ResultID, &a.ActivityID, &a.Name, &a.Revision, &a.Kind, &a.Status, &a.SeedHash,
			&a.JoinFrom, &a.JoinUntil, &a.DrawAt, &a.PerUserLimit, &a.Prizes, &a.CommittedAt,
		}
	}, func(a *schemas.ActivityCommitted) string { return a.ActivityID })

	// lotteryEntries stores lottery.entry.recorded, one row per
	// participation decided.
	lotteryEntries = newResults(table{
		eventType: schemas.TypeLotteryEntryRecorded,
		what:      "lottery entries",
		prefix:    "lottery_entry",
		columns: []string{
			"result_id", "entry_event_id", "activity_id", "user_id", "status", "reason", "outcome",
			"tier_id", "roll", "odds", "occurred_at", "recorded_at",
		},
		create: createSQL(""+
			"  entry_event_id      VARCHAR(128)  NOT NULL,\n"+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  user_id             VARCHAR(128)  NOT NULL,\n"+
			"  status              VARCHAR(16)   NOT NULL,\n"+
			"  reason              VARCHAR(32)   NOT NULL DEFAULT '',\n"+
			"  outcome             VARCHAR(8)    NOT NULL DEFAULT '',\n"+
			"  tier_id             VARCHAR(32)   NOT NULL DEFAULT '',\n"+
			"  roll                BIGINT        NOT NULL DEFAULT -1,\n"+
			"  odds                VARCHAR(4000) NOT NULL DEFAULT '',\n"+
			"  occurred_at         DATETIME(3)   NOT NULL,\n"+
			"  recorded_at         DATETIME(3)   NOT NULL,\n",
			// Participants and the counts read (activity_id, status) ranges
			// of this index alone.
			"  KEY idx_activity_status_user (activity_id, status, user_id)"),
	}, func(e *schemas.EntryRecorded) []any {
		return []any{
			&e.ResultID, &e.EntryEventID, &e.ActivityID, &e.UserID, &e.Status, &e.Reason, &e.Outcome,
			&e.TierID, &e.Roll, &e.Odds, &e.OccurredAt, &e.RecordedAt,
		}
	}, func(e *schemas.EntryRecorded) string { return e.UserID })

	// lotteryDraws stores lottery.draw.completed, one row per activity.
	lotteryDraws = newResults(table{
		eventType: schemas.TypeLotteryDrawCompleted,
		what:      "lottery draws",
		prefix:    "lottery_draw",
		columns: []string{
			"result_id", "activity_id", "draw_trigger", "draw_event_id", "seed", "seed_hash",
			"participants", "participants_digest", "winners", "prizes", "drawn_at",
		},
		create: createSQL(""+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  draw_trigger        VARCHAR(16)   NOT NULL,\n"+
			"  draw_event_id       VARCHAR(128)  NOT NULL DEFAULT '',\n"+
			"  seed                CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n"+
			"  seed_hash           CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n"+
			"  participants        BIGINT        NOT NULL,\n"+
			"  participants_digest CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n"+
			"  winners             BIGINT        NOT NULL,\n"+
			"  prizes              VARCHAR(4000) NOT NULL,\n"+
			"  drawn_at            DATETIME(3)   NOT NULL,\n",
			"  KEY idx_activity (activity_id)"),
	}, func(d *schemas.DrawCompleted) []any {
		return []any{
			&d.ResultID, &d.ActivityID, &d.Trigger, &d.DrawEventID, &d.Seed, &d.SeedHash,
			&d.Participants, &d.ParticipantsDigest, &d.Winners, &d.Prizes, &d.DrawnAt,
		}
	}, func(d *schemas.DrawCompleted) string { return d.ActivityID })

	// lotteryAwards stores lottery.prize.awarded. Its result id derives
	// from (activity_id, user_id), and the unique key holds the store to
	// one prize per user and activity whatever id a result carries.
	lotteryAwards = newResults(table{
		eventType: schemas.TypeLotteryPrizeAwarded,
		what:      "lottery awards",
		prefix:    "lottery_award",
		columns: []string{
			"result_id", "activity_id", "user_id", "tier_id", "prize_kind", "batch_id", "points",
			"source", "source_id", "draw_rank", "awarded_at",
		},
		create: createSQL(""+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  user_id             VARCHAR(128)  NOT NULL,\n"+
			"  tier_id             VARCHAR(32)   NOT NULL,\n"+
			"  prize_kind          VARCHAR(16)   NOT NULL,\n"+
			"  batch_id            VARCHAR(64)   NOT NULL DEFAULT '',\n"+
			"  points              BIGINT        NOT NULL DEFAULT 0,\n"+
			"  source              VARCHAR(16)   NOT NULL,\n"+
			"  source_id           CHAR(32) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,\n"+
			"  draw_rank           BIGINT        NOT NULL,\n"+
			"  awarded_at          DATETIME(3)   NOT NULL,\n",
			"  UNIQUE KEY uk_activity_user (activity_id, user_id),\n"+
				"  KEY idx_activity_tier (activity_id, tier_id)"),
	}, func(p *schemas.PrizeAwarded) []any {
		return []any{
			&p.ResultID, &p.ActivityID, &p.UserID, &p.TierID, &p.PrizeKind, &p.BatchID, &p.Points,
			&p.Source, &p.SourceID, &p.Rank, &p.AwardedAt,
		}
	}, func(p *schemas.PrizeAwarded) string { return p.UserID })

	// giftMatches stores gift.match.decided, one row per send decided,
	// routed by sender so that a member's sends share the member's shard.
	giftMatches = newResults(table{
		eventType: schemas.TypeGiftMatchDecided,
		what:      "gift matches",
		prefix:    "gift_match",
		columns: []string{
			"result_id", "send_event_id", "activity_id", "sender_id", "receiver_id", "status", "reason", "decided_at",
		},
		create: createSQL(""+
			"  send_event_id       VARCHAR(128)  NOT NULL,\n"+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  sender_id           VARCHAR(128)  NOT NULL,\n"+
			"  receiver_id         VARCHAR(128)  NOT NULL DEFAULT '',\n"+
			"  status              VARCHAR(16)   NOT NULL,\n"+
			"  reason              VARCHAR(32)   NOT NULL DEFAULT '',\n"+
			"  decided_at          DATETIME(3)   NOT NULL,\n",
			"  KEY idx_activity_sender (activity_id, sender_id),\n"+
				"  KEY idx_activity_receiver (activity_id, receiver_id),\n"+
				"  KEY idx_activity_status (activity_id, status)"),
	}, func(m *schemas.MatchDecided) []any {
		return []any{
			&m.ResultID, &m.SendEventID, &m.ActivityID, &m.SenderID, &m.ReceiverID, &m.Status, &m.Reason, &m.DecidedAt,
		}
	}, func(m *schemas.MatchDecided) string { return m.SenderID })

	// giftMembers stores gift.member.recorded, one row per member and
	// activity (the result id derives from both).
	giftMembers = newResults(table{
		eventType: schemas.TypeGiftMemberRecorded,
		what:      "gift members",
		prefix:    "gift_member",
		columns: []string{
			"result_id", "activity_id", "user_id", "name", "note", "status", "import_id", "updated_at",
		},
		create: createSQL(""+
			"  activity_id         VARCHAR(64)   NOT NULL,\n"+
			"  user_id             VARCHAR(128)  NOT NULL,\n"+
			"  name                VARCHAR(200)  NOT NULL DEFAULT '',\n"+
			"  note                VARCHAR(500)  NOT NULL DEFAULT '',\n"+
			"  status              VARCHAR(16)   NOT NULL,\n"+
			"  import_id           VARCHAR(64)   NOT NULL DEFAULT '',\n"+
			"  updated_at          DATETIME(3)   NOT NULL,\n",
			"  KEY idx_activity_user (activity_id, user_id)"),
	}, func(m *schemas.MemberRecorded) []any {
		return []any{
			&m.ResultID, &m.ActivityID, &m.UserID, &m.Name, &m.Note, &m.Status, &m.ImportID, &m.UpdatedAt,
		}
	}, func(m *schemas.MemberRecorded) string { return m.UserID })
)
