package clickhouse

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/promoflow/promoflow/schemas"
	"github.com/promoflow/promoflow/sinks"
)

var _ sinks.ThroughputReader = (*Sink)(nil)

// throughputSources are the tables a campaign's decisions are counted in,
// by campaign kind: the table, its id column, its time column (a DateTime
// whose _ms twin holds the milliseconds) and the status that counts as
// accepted.
var throughputSources = map[string]struct{ table, id, at, accepted string }{
	sinks.CampaignCouponBatch: {couponGrants.name, "batch_id", "decided_at", schemas.StatusGranted},
	sinks.CampaignLottery:     {lotteryEntries.name, "activity_id", "recorded_at", schemas.EntryAccepted},
}

// Throughput counts the campaign's decisions per bucket: coupon grant
// decisions by decided_at, lottery entries by recorded_at. Each result is
// counted once (uniqExact of result_id) without FINAL, so replays not yet
// merged count once and the read stays a scan of a few columns of the
// months the range touches (the tables are partitioned by month).
func (s *Sink) Throughput(ctx context.Context, q sinks.ThroughputQuery) ([]sinks.ThroughputBucket, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("reading throughput from clickhouse: %w", ErrClosed)
	}
	src, ok := throughputSources[q.Kind]
	if !ok {
		return nil, fmt.Errorf("reading throughput from clickhouse: unknown campaign kind %q", q.Kind)
	}
	bucket := strconv.FormatInt(max(q.Bucket.Milliseconds(), 1), 10)
	from, to := max(q.From.UnixMilli(), 0), max(q.To.UnixMilli(), 0)
	stmt := "SELECT intDiv(" + src.at + "_ms, " + bucket + ") * " + bucket + " AS b," +
		" uniqExactIf(result_id, status = '" + src.accepted + "')," +
		" uniqExactIf(result_id, status != '" + src.accepted + "')" +
		" FROM `" + s.cfg.Database + "`.`" + src.table + "`" +
		" WHERE " + src.id + " = ?" +
		// The DateTime bounds let ClickHouse skip the months outside the
		// range; the millisecond bounds are exact.
		" AND " + src.at + " >= toDateTime(?) AND " + src.at + " <= toDateTime(?)" +
		" AND " + src.at + "_ms >= ? AND " + src.at + "_ms < ?" +
		" GROUP BY b ORDER BY b"
	rows, err := s.conn.Query(ctx, stmt, q.ID, uint32(from/1000), uint32(to/1000), uint64(from), uint64(to))
	if err != nil {
		return nil, fmt.Errorf("reading throughput from %s.%s: %w", s.cfg.Database, src.table, err)
	}
	defer rows.Close()
	out := []sinks.ThroughputBucket{}
	for rows.Next() {
		var start, accepted, rejected uint64
		if err := rows.Scan(&start, &accepted, &rejected); err != nil {
			return nil, fmt.Errorf("reading throughput from %s.%s: %w", s.cfg.Database, src.table, err)
		}
		out = append(out, sinks.ThroughputBucket{Start: time.UnixMilli(int64(start)).UTC(), Accepted: int64(accepted), Rejected: int64(rejected)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading throughput from %s.%s: %w", s.cfg.Database, src.table, err)
	}
	return out, nil
}
