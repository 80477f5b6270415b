// Package mysql is the sink that writes pipeline results to sharded MySQL,
// the system of record other services query. It owns the shard layout (the
// databases and tables, created on start, and [Config.Route], which says
// where a user's rows live) and the upserts that make replays harmless. It
// reads nothing from Kafka and must not import processors/: the caller hands
// it decoded envelopes and commits offsets after WriteBatch succeeds.
//
// # Shards
//
// Results are spread over N databases × M tables by user:
//
//	idx   = crc32.ChecksumIEEE(user_id) % (N*M)
//	db    = idx / M
//	table = idx % M          // coupon_grant_<table> in database <db>
//
// so all of a user's rows sit in one table, which a reader finds with
// [Config.Route] without scanning shards. Rows about an activity as a whole
// (lottery_activity, lottery_draw) are routed the same way by activity_id,
// and gift sends by their sender, so a member and the member's sends share
// a shard. N and M are fixed for the life of the data: changing either
// moves users to other tables.
//
// In development the databases live on one server, named <prefix>_0 …
// <prefix>_<N-1> (by default 2 databases promoflow_0, promoflow_1 on
// root@tcp(127.0.0.1:3306)/, 4 tables each). In production each database is
// usually on its own server and listed as one DSN per shard, in shard order.
// An 8×8 layout (64 tables) looks like this:
//
//	mysql:
//	  shards:
//	    - "promoflow:password@tcp(mysql-0.db:3306)/promoflow_0"
//	    - "promoflow:password@tcp(mysql-1.db:3306)/promoflow_1"
//	    - "promoflow:password@tcp(mysql-2.db:3306)/promoflow_2"
//	    - "promoflow:password@tcp(mysql-3.db:3306)/promoflow_3"
//	    - "promoflow:password@tcp(mysql-4.db:3306)/promoflow_4"
//	    - "promoflow:password@tcp(mysql-5.db:3306)/promoflow_5"
//	    - "promoflow:password@tcp(mysql-6.db:3306)/promoflow_6"
//	    - "promoflow:password@tcp(mysql-7.db:3306)/promoflow_7"
//	  tables_per_database: 8
//	  max_open_conns: 4      # per shard database and sink instance
//
// A user u is then in table crc32(u)%64 % 8 of shard crc32(u)%64 / 8.
//
// # Writes
//
// [Sink.WriteBatch] turns every event into a row of its type's table, routes
// it, drops duplicates within the batch and writes each table with multi-row
// INSERT … ON DUPLICATE KEY UPDATE keyed by result_id, at most
// Config.BatchRows rows per statement. Each database's statements run in one
// transaction, the databases concurrently. A replayed batch carries the same
// values, so the update changes nothing and every result keeps one row.
// Values always travel as placeholders. Rows are written in primary-key order
// so concurrent batches lock in the same order, and a transaction InnoDB
// chose as a deadlock victim is retried a few times before WriteBatch fails.
// A failed batch may have been committed in some databases and not others;
// the caller retries all of it, which is safe.
//
// Times are stored in UTC as DATETIME(3), truncated to the millisecond (MySQL
// 8 would otherwise round and MariaDB truncate). The SQL runs on MySQL 8 and
// MariaDB 10.11; VALUES() in ON DUPLICATE KEY UPDATE is deprecated by MySQL
// 8.0.20 but is the form both accept.
//
// # Tables
//
// Each result type has its table writers (see table.go, lottery.go and
// coupon.go), every table holding the envelope's app_id and keyed by
// result_id unless said otherwise:
//
//	coupon.grant.decided        coupon_grant_<j>      by user_id
//	coupon.state.changed        coupon_op_<j>         by user_id, the operation record
//	                            coupon_<j>            by user_id, key coupon_id, applied only
//	notification.requested      coupon_reminder_<j>   by user_id, key notification_id, coupon_expiry only,
//	                                                  UNIQUE (user_id, subject_id, due_day)
//	lottery.activity.committed  lottery_activity_<j>  by activity_id
//	lottery.entry.recorded      lottery_entry_<j>     by user_id
//	lottery.draw.completed      lottery_draw_<j>      by activity_id
//	lottery.prize.awarded       lottery_award_<j>     by user_id, UNIQUE (activity_id, user_id)
//	gift.match.decided          gift_match_<j>        by sender_id
//	gift.member.recorded        gift_member_<j>       by user_id
//	recommendation.made         recommendation_<j>    by user_id, key recommendation_id: the history;
//	                                                  a user's latest top N is its rows of the greatest made_at
//
// Two tables keep something other than the last row written. coupon_<j> is
// each coupon's current state: the applied operation with the highest seq.
// Its upsert changes a column only when the row brings a higher seq
// (state = IF(VALUES(seq) > seq, VALUES(state), state), …, seq assigned
// last because MySQL assigns left to right), and a batch keeps each
// coupon's highest seq, so replays and operations delivered out of order
// leave the latest state. coupon_reminder_<j> holds one coupon expiry
// reminder per user, batch (subject_id) and day (due_at's date in UTC):
// the first notification of the day stays, a later one under another id
// changes nothing, as in INSERT IGNORE but for that key only (every other
// error still fails the batch). Notifications of other templates have no
// table here and are skipped.
//
// The lottery and gift-exchange columns are the results' JSON fields, but
// rank and trigger (reserved words in MySQL 8) are draw_rank and
// draw_trigger; an absent draw_at is NULL. Adding a result type means adding
// a table writer. A batch holding an event of any other type is refused
// before anything is written, with an error wrapping [ErrUnsupportedType].
//
// # Reads
//
// The sink is a [github.com/promoflow/promoflow/sinks.CouponReader] for the
// order-time validation service (see coupon.go): a user's coupons come from
// the one coupon_<j> the user routes to, through its (user_id, state)
// index, in about a quarter of a millisecond for a user of 20 coupons
// among 100,000 (BenchmarkUserCoupons); a coupon's operations from the
// same shard's coupon_op_<j>. It is also a
// [github.com/promoflow/promoflow/sinks.LotteryReader] for the admin
// commands (see query.go). A read whose routing key is known (an
// activity, its draw, a sender's sends, one member) reads one table; the
// others read every shard through the activity_id indexes, one connection
// per database at a time, the databases concurrently, streaming rows.
// Participants of a million users take about a second. Ids compare with
// utf8mb4_bin, which ignores trailing spaces: the schemas allow none in
// ids, and the bytewise order and distinctness of participants are made in
// Go.
//
// # Station messages
//
// [Sink.Station] returns the station-message (站内信) store on the sink's
// connections: a writer of station.message.published and .withdrawn for
// the sink-station stage, and the [github.com/promoflow/promoflow/sinks.Inbox]
// the HTTP API reads (station.go, inbox.go; docs/station-messages.md).
//
//	station_message       first shard database only: each message to all
//	                      users once, keyed by message_id, numbered by seq
//	station_seq           first shard database: the one-row counter of seq
//	station_inbox_<j>     by user_id, key (user_id, message_id): messages to
//	                      one user, and the messages to all users a user's
//	                      reads delivered (broadcast = 1, content in
//	                      station_message); read_at
//	station_cursor_<j>    by user_id: the seq a user's inbox is up to
//
// Writers of station_message lock the station_seq row first and number
// their rows after it, so seq follows the commit order and a cursor never
// passes a message that commits later. A user's inbox receives the
// messages to all users above its cursor when the user reads it: they are
// read, then one transaction locks the cursor row and, if the cursor has
// not moved meanwhile, inserts the rows that are absent and moves it;
// users who never read have no rows. The app that
// first stored a message_id owns it; a withdrawal is final and wins over
// a publish that arrives after it.
package mysql
