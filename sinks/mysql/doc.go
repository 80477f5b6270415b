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
// [Config.Route] without scanning shards. N and M are fixed for the life of
// the data: changing either moves users to other tables.
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
// Each result type has its own table writer (see table.go); today that is
// coupon.grant.decided → coupon_grant_<j>. Adding a result type (lottery draw
// results, …) means adding a table writer. A batch holding an event of any
// other type is refused before anything is written, with an error wrapping
// [ErrUnsupportedType].
package mysql
