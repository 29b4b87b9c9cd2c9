package load

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// LockKey is the pg_advisory_lock key every pipeline run/load holds on the
// warehouse ("odpipe" in ASCII).
const LockKey int64 = 0x6f64_7069_7065

// ErrLocked is returned by Lock when another run holds the warehouse.
var ErrLocked = errors.New("another pipeline run or load is already running against this warehouse")

// Lock takes the warehouse-wide advisory lock on a dedicated connection and
// holds it until unlock is called, so two runs never load at once. It never
// waits: a second run is refused with ErrLocked.
func Lock(ctx context.Context, pool *pgxpool.Pool) (unlock func(), err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to analytics for the run lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", LockKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("take the run lock: %w", err)
	}
	if !ok {
		var pid *int32
		_ = conn.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, LockKey).Scan(&pid)
		conn.Release()
		if pid != nil {
			return nil, fmt.Errorf("%w (PostgreSQL backend pid %d holds advisory lock %d); wait for it to finish", ErrLocked, *pid, LockKey)
		}
		return nil, fmt.Errorf("%w (advisory lock %d); wait for it to finish", ErrLocked, LockKey)
	}
	return func() {
		_, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", LockKey)
		conn.Release()
	}, nil
}
