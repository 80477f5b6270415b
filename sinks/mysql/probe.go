package mysql

import (
	"context"
	"fmt"
)

// Probe checks, cheaply, that every shard database answers and takes
// writes: one query per shard reading the server's read_only flag (a
// replica or a server being failed over refuses the sink's writes). It is
// the sink's readiness check.
func (s *Sink) Probe(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	for i, db := range s.dbs {
		var ro int
		if err := db.QueryRowContext(ctx, "SELECT @@global.read_only").Scan(&ro); err != nil {
			return fmt.Errorf("probing mysql shard %s: %w", s.names[i], err)
		}
		if ro != 0 {
			return fmt.Errorf("mysql shard %s is read-only", s.names[i])
		}
	}
	return nil
}
