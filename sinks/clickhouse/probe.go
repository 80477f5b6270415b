package clickhouse

import (
	"context"
	"fmt"
)

// Probe checks, cheaply, that ClickHouse answers and that the sink's user
// may write (its readonly setting is 0). It is the sink's readiness check.
func (s *Sink) Probe(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	var ro string
	if err := s.conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'readonly'").Scan(&ro); err != nil {
		return fmt.Errorf("probing clickhouse at %s: %w", s.cfg.Addr, err)
	}
	if ro != "0" {
		return fmt.Errorf("clickhouse at %s: the sink's user is read-only (readonly=%s)", s.cfg.Addr, ro)
	}
	return nil
}
