package clickhouse

import (
	"time"

	"github.com/promoflow/promoflow/schemas"
)

// resultRow returns the row func of a table of T's results: f gives the
// key and values of one decoded T, or nil values when it adds no row.
func resultRow[T schemas.Payload](f func(env *schemas.Envelope, v *T) (key string, values []any)) func(*schemas.Envelope) (string, []any, bool, error) {
	var zero T
	eventType := zero.EventType()
	return func(env *schemas.Envelope) (string, []any, bool, error) {
		if env.Type != eventType {
			return "", nil, false, nil
		}
		var v T
		if err := env.DecodePayload(&v); err != nil {
			return "", nil, false, err
		}
		key, values := f(env, &v)
		return key, values, values != nil, nil
	}
}

// optional returns the columns x, x_ms and has_x of an optional time: the
// epoch and 0 when it is absent (18.16 has Nullable, but analysts filter
// on a flag more easily than on NULL).
func optional(t *time.Time) (time.Time, uint64, uint8) {
	if t == nil {
		return minDateTime, 0, 0
	}
	return dateTime(*t), millis(*t), 1
}

// createSQL returns the CREATE TABLE IF NOT EXISTS statement of a result
// table (%s is its qualified name): result_id and app_id, the columns
// defined by columns (each line ending in a comma), and created_at. Rows
// of one result collapse into the one with the highest version, so each
// result must stay in one partition whatever its version.
func createSQL(columns, version, partition string) string {
	return "CREATE TABLE IF NOT EXISTS %s (\n" +
		"  result_id           String,\n" +
		"  app_id              String,\n" +
		columns +
		"  created_at          DateTime DEFAULT now()\n" +
		") ENGINE = ReplacingMergeTree(" + version + ")\n" +
		partition +
		"ORDER BY result_id"
}

// The lottery and gift-exchange tables hold the columns of the MySQL sink's
// tables of the same results, with each time as DateTime plus UInt64
// milliseconds (x, x_ms). rank and trigger are draw_rank and draw_trigger,
// as in MySQL.
var (
	// lotteryActivities keeps an activity's highest revision; committed_at
	// stays the same across revisions, so its partition does too.
	lotteryActivities = table{
		name: "lottery_activities",
		what: "lottery activities",
		columns: []string{
			"result_id", "app_id", "activity_id", "name", "revision", "kind", "status", "seed_hash",
			"join_from", "join_from_ms", "join_until", "join_until_ms", "draw_at", "draw_at_ms", "has_draw_at",
			"per_user_limit", "prizes", "committed_at", "committed_at_ms",
		},
		create: createSQL(""+
			"  activity_id         String,\n"+
			"  name                String,\n"+
			"  revision            UInt64,\n"+
			"  kind                String,\n"+
			"  status              String,\n"+
			"  seed_hash           String,\n"+
			"  join_from           DateTime,\n"+
			"  join_from_ms        UInt64,\n"+
			"  join_until          DateTime,\n"+
			"  join_until_ms       UInt64,\n"+
			"  draw_at             DateTime,\n"+
			"  draw_at_ms          UInt64,\n"+
			"  has_draw_at         UInt8,\n"+
			"  per_user_limit      Int64,\n"+
			"  prizes              String,\n"+
			"  committed_at        DateTime,\n"+
			"  committed_at_ms     UInt64,\n",
			"revision", "PARTITION BY toYYYYMM(committed_at)\n"),
		row: resultRow(func(env *schemas.Envelope, a *schemas.ActivityCommitted) (string, []any) {
			drawAt, drawAtMs, hasDrawAt := optional(a.DrawAt)
			return a.ResultID, []any{
				a.ResultID, env.AppID, a.ActivityID, a.Name, uint64(max(a.Revision, 0)), a.Kind, a.Status, a.SeedHash,
				dateTime(a.JoinFrom), millis(a.JoinFrom), dateTime(a.JoinUntil), millis(a.JoinUntil), drawAt, drawAtMs, hasDrawAt,
				a.PerUserLimit, a.Prizes, dateTime(a.CommittedAt), millis(a.CommittedAt),
			}
		}),
	}

	lotteryEntries = table{
		name: "lottery_entries",
		what: "lottery entries",
		columns: []string{
			"result_id", "app_id", "entry_event_id", "activity_id", "user_id", "status", "reason", "outcome",
			"tier_id", "roll", "odds", "occurred_at", "occurred_at_ms", "recorded_at", "recorded_at_ms",
		},
		create: createSQL(""+
			"  entry_event_id      String,\n"+
			"  activity_id         String,\n"+
			"  user_id             String,\n"+
			"  status              String,\n"+
			"  reason              String,\n"+
			"  outcome             String,\n"+
			"  tier_id             String,\n"+
			"  roll                Int64,\n"+
			"  odds                String,\n"+
			"  occurred_at         DateTime,\n"+
			"  occurred_at_ms      UInt64,\n"+
			"  recorded_at         DateTime,\n"+
			"  recorded_at_ms      UInt64,\n",
			"recorded_at_ms", "PARTITION BY toYYYYMM(recorded_at)\n"),
		row: resultRow(func(env *schemas.Envelope, e *schemas.EntryRecorded) (string, []any) {
			return e.ResultID, []any{
				e.ResultID, env.AppID, e.EntryEventID, e.ActivityID, e.UserID, e.Status, e.Reason, e.Outcome,
				e.TierID, e.Roll, e.Odds, dateTime(e.OccurredAt), millis(e.OccurredAt), dateTime(e.RecordedAt), millis(e.RecordedAt),
			}
		}),
	}

	lotteryDraws = table{
		name: "lottery_draws",
		what: "lottery draws",
		columns: []string{
			"result_id", "app_id", "activity_id", "draw_trigger", "draw_event_id", "seed", "seed_hash",
			"participants", "participants_digest", "winners", "prizes", "drawn_at", "drawn_at_ms",
		},
		create: createSQL(""+
			"  activity_id         String,\n"+
			"  draw_trigger        String,\n"+
			"  draw_event_id       String,\n"+
			"  seed                String,\n"+
			"  seed_hash           String,\n"+
			"  participants        Int64,\n"+
			"  participants_digest String,\n"+
			"  winners             Int64,\n"+
			"  prizes              String,\n"+
			"  drawn_at            DateTime,\n"+
			"  drawn_at_ms         UInt64,\n",
			"drawn_at_ms", "PARTITION BY toYYYYMM(drawn_at)\n"),
		row: resultRow(func(env *schemas.Envelope, d *schemas.DrawCompleted) (string, []any) {
			return d.ResultID, []any{
				d.ResultID, env.AppID, d.ActivityID, d.Trigger, d.DrawEventID, d.Seed, d.SeedHash,
				d.Participants, d.ParticipantsDigest, d.Winners, d.Prizes, dateTime(d.DrawnAt), millis(d.DrawnAt),
			}
		}),
	}

	lotteryAwards = table{
		name: "lottery_awards",
		what: "lottery awards",
		columns: []string{
			"result_id", "app_id", "activity_id", "user_id", "tier_id", "prize_kind", "batch_id", "points",
			"source", "source_id", "draw_rank", "awarded_at", "awarded_at_ms",
		},
		create: createSQL(""+
			"  activity_id         String,\n"+
			"  user_id             String,\n"+
			"  tier_id             String,\n"+
			"  prize_kind          String,\n"+
			"  batch_id            String,\n"+
			"  points              Int64,\n"+
			"  source              String,\n"+
			"  source_id           String,\n"+
			"  draw_rank           Int64,\n"+
			"  awarded_at          DateTime,\n"+
			"  awarded_at_ms       UInt64,\n",
			"awarded_at_ms", "PARTITION BY toYYYYMM(awarded_at)\n"),
		row: resultRow(func(env *schemas.Envelope, p *schemas.PrizeAwarded) (string, []any) {
			return p.ResultID, []any{
				p.ResultID, env.AppID, p.ActivityID, p.UserID, p.TierID, p.PrizeKind, p.BatchID, p.Points,
				p.Source, p.SourceID, p.Rank, dateTime(p.AwardedAt), millis(p.AwardedAt),
			}
		}),
	}

	giftMatches = table{
		name: "gift_matches",
		what: "gift matches",
		columns: []string{
			"result_id", "app_id", "send_event_id", "activity_id", "sender_id", "receiver_id", "status", "reason",
			"decided_at", "decided_at_ms",
		},
		create: createSQL(""+
			"  send_event_id       String,\n"+
			"  activity_id         String,\n"+
			"  sender_id           String,\n"+
			"  receiver_id         String,\n"+
			"  status              String,\n"+
			"  reason              String,\n"+
			"  decided_at          DateTime,\n"+
			"  decided_at_ms       UInt64,\n",
			"decided_at_ms", "PARTITION BY toYYYYMM(decided_at)\n"),
		row: resultRow(func(env *schemas.Envelope, m *schemas.MatchDecided) (string, []any) {
			return m.ResultID, []any{
				m.ResultID, env.AppID, m.SendEventID, m.ActivityID, m.SenderID, m.ReceiverID, m.Status, m.Reason,
				dateTime(m.DecidedAt), millis(m.DecidedAt),
			}
		}),
	}

	// giftMembers keeps a member's latest record. An edit moves updated_at,
	// so the table is not partitioned by it: two versions of a member in
	// different partitions would never collapse. Member lists are small.
	giftMembers = table{
		name: "gift_members",
		what: "gift members",
		columns: []string{
			"result_id", "app_id", "activity_id", "user_id", "name", "note", "status", "import_id",
			"updated_at", "updated_at_ms",
		},
		create: createSQL(""+
			"  activity_id         String,\n"+
			"  user_id             String,\n"+
			"  name                String,\n"+
			"  note                String,\n"+
			"  status              String,\n"+
			"  import_id           String,\n"+
			"  updated_at          DateTime,\n"+
			"  updated_at_ms       UInt64,\n",
			"updated_at_ms", ""),
		row: resultRow(func(env *schemas.Envelope, m *schemas.MemberRecorded) (string, []any) {
			return m.ResultID, []any{
				m.ResultID, env.AppID, m.ActivityID, m.UserID, m.Name, m.Note, m.Status, m.ImportID,
				dateTime(m.UpdatedAt), millis(m.UpdatedAt),
			}
		}),
	}
)

// lotteryDrawStats is the analysts' summary of each activity, one row per
// activity_id: participants (distinct users with an accepted entry),
// entries (every participation decided), rejected_entries, awards (prizes
// awarded, by draw or instant win) and instant_wins (entries won). It reads
// the tables with FINAL, so replays count once, and joins the two by UNION
// ALL rather than JOIN, so an activity with awards but no entries still
// shows. %[1]s is the quoted database.
const lotteryDrawStats = "CREATE VIEW IF NOT EXISTS %[1]s.`lottery_draw_stats` AS\n" +
	"SELECT activity_id,\n" +
	"  uniqExactIf(user_id, src = 'entry' AND status = '" + schemas.EntryAccepted + "') AS participants,\n" +
	"  countIf(src = 'entry') AS entries,\n" +
	"  countIf(src = 'entry' AND status = '" + schemas.EntryRejected + "') AS rejected_entries,\n" +
	"  countIf(src = 'award') AS awards,\n" +
	"  countIf(src = 'entry' AND outcome = '" + schemas.OutcomeWon + "') AS instant_wins\n" +
	"FROM (\n" +
	"  SELECT activity_id, user_id, status, outcome, 'entry' AS src FROM %[1]s.`lottery_entries` FINAL\n" +
	"  UNION ALL\n" +
	"  SELECT activity_id, user_id, '' AS status, '' AS outcome, 'award' AS src FROM %[1]s.`lottery_awards` FINAL\n" +
	")\n" +
	"GROUP BY activity_id"
