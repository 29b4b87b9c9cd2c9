// Package lock holds the two run locks, side by side: the replica lock (a
// MySQL named lock: one replicate at a time per replica) and the warehouse
// lock (a PostgreSQL advisory lock: one load or run at a time per
// warehouse). Each is taken on a connection of its own and held until
// released; neither ever waits: a second run is refused with ErrLocked,
// which the CLI turns into its "locked, retry later" exit code. The
// commands take them (cmd/pipeline); the phases assume they are held.
package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/opendental-pipeline/pipeline/gen/connections"
)

// ErrLocked is returned when another pipeline run holds the lock.
var ErrLocked = errors.New("locked by another pipeline run")

// Release gives a lock back; it never fails (closing the session releases
// the lock anyway).
type Release func()

// replicaLock names the replica's lock after its database, server-wide.
const replicaLock = "CONCAT('pipeline_replicate:', DATABASE())"

// Replica takes the replica's named lock, which keeps two replicate runs
// off one replica.
func Replica(ctx context.Context, db connections.ReplicationDB) (Release, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open replica connection for the replicate lock: %w", err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+replicaLock+", 0)").Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("take the replicate lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, fmt.Errorf("%w: another pipeline replicate is running against this replica; wait for it to finish (or stop it) and run again", ErrLocked)
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK("+replicaLock+")")
		conn.Close()
	}, nil
}

// WarehouseKey is the pg_advisory_lock key every pipeline run or load holds
// on the warehouse ("odpipe" in ASCII).
const WarehouseKey int64 = 0x6f64_7069_7065

// Warehouse takes the warehouse-wide advisory lock, which keeps two loads
// (or runs) off one warehouse.
func Warehouse(ctx context.Context, db connections.AnalyticsRawDB) (Release, error) {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to analytics for the run lock: %w", err)
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", WarehouseKey).Scan(&ok); err != nil {
		conn.Release()
		return nil, fmt.Errorf("take the run lock: %w", err)
	}
	if !ok {
		var pid *int32
		_ = conn.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
			AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, WarehouseKey).Scan(&pid)
		conn.Release()
		if pid != nil {
			return nil, fmt.Errorf("%w: another pipeline run or load is running against this warehouse (PostgreSQL backend pid %d holds advisory lock %d); wait for it to finish",
				ErrLocked, *pid, WarehouseKey)
		}
		return nil, fmt.Errorf("%w: another pipeline run or load is running against this warehouse (advisory lock %d); wait for it to finish", ErrLocked, WarehouseKey)
	}
	return func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", WarehouseKey)
		conn.Release()
	}, nil
}
