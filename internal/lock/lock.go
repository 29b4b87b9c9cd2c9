// Package lock holds the two run locks, side by side: the replica lock (a
// MySQL named lock: one replicate at a time per replica) and the warehouse
// lock (a PostgreSQL advisory lock: one load or run at a time per
// warehouse). Each is taken on a connection of its own and held until
// released; neither ever waits: a second run is refused with ErrLocked,
// which the CLI turns into its "locked, retry later" exit code. The
// commands take them (cmd/pipeline); the phases assume they are held.
//
// A lock lives as long as its session: when the session dies (the server
// restarted, an administrator killed it: KILL, pg_terminate_backend) the
// lock is free and a second run may take it. So a run does not trust it
// blindly: each write transaction calls Check before it commits, which
// fails with ErrLost once the lock's session is gone (or another session
// holds the lock), and the phase stops without writing more. Check also
// closes the last gap — a transaction that checked just before the session
// died and commits just after — by fencing: a run that takes a lock first
// waits until every transaction of its predecessor that passed Check has
// ended (PostgreSQL: a shared transaction-level advisory lock each checked
// transaction holds until it ends, which the new holder takes exclusively
// once; MySQL: state.Fence, a locking read of the copy status, whose row
// every checked replica transaction has written), so two runs never write
// at the same time.
package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/gen/connections"
)

// ErrLocked is returned when another pipeline run holds the lock.
var ErrLocked = errors.New("locked by another pipeline run")

// ErrLost is returned by Check when the lock's session is gone (or another
// session holds the lock): another run may be writing; this one must stop.
var ErrLost = errors.New("the run lock was lost")

// Release gives a lock back; it never fails (closing the session releases
// the lock anyway).
type Release func()

// replicaLock names the replica's lock after its database, server-wide.
const replicaLock = "CONCAT('pipeline_replicate:', DATABASE())"

// ReplicaLock is the replica lock this process holds.
type ReplicaLock struct {
	conn *sql.Conn
	id   int64 // CONNECTION_ID() of the session holding the named lock
}

// TakeReplica takes the replica's named lock, which keeps two replicate
// runs off one replica.
func TakeReplica(ctx context.Context, db connections.ReplicationDB) (*ReplicaLock, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open replica connection for the replicate lock: %w", err)
	}
	var got sql.NullInt64
	var id int64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+replicaLock+", 0), CONNECTION_ID()").Scan(&got, &id); err != nil {
		conn.Close()
		return nil, fmt.Errorf("take the replicate lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, fmt.Errorf("%w: another pipeline replicate is running against this replica; wait for it to finish (or stop it) and run again", ErrLocked)
	}
	return &ReplicaLock{conn: conn, id: id}, nil
}

// Replica takes the replica lock and returns only its release.
func Replica(ctx context.Context, db connections.ReplicationDB) (Release, error) {
	l, err := TakeReplica(ctx, db)
	if err != nil {
		return nil, err
	}
	return l.Release, nil
}

// Release gives the replica lock back.
func (l *ReplicaLock) Release() {
	_, _ = l.conn.ExecContext(context.Background(), "DO RELEASE_LOCK("+replicaLock+")")
	l.conn.Close()
}

// Check fails with ErrLost unless the session that took the lock still
// holds it. Run it on the write transaction, after its writes to the copy
// status and before its commit (see the package comment).
// q is a *sql.DB, *sql.Conn or *sql.Tx.
func (l *ReplicaLock) Check(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) error {
	var holder sql.NullInt64
	if err := q.QueryRowContext(ctx, "SELECT IS_USED_LOCK("+replicaLock+")").Scan(&holder); err != nil {
		return fmt.Errorf("check the replicate lock: %w", err)
	}
	if holder.Valid && holder.Int64 == l.id {
		return nil
	}
	return fmt.Errorf("%w: the replica lock's session (MySQL connection %d) is gone; another replicate may be running,"+
		" so this one stops before writing more (its committed chunks are kept; the next run resumes)", ErrLost, l.id)
}

// WarehouseKey is the pg_advisory_lock key every pipeline run or load holds
// on the warehouse ("odpipe" in ASCII).
const WarehouseKey int64 = 0x6f64_7069_7065

// fenceKey is the advisory lock a checked write transaction holds shared
// until it ends, and a new holder of WarehouseKey takes once exclusively,
// waiting for them ("odfenc").
const fenceKey int64 = 0x6f64_6665_6e63

// heldBy finds the session holding advisory lock $1 in this database.
const heldBy = `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.mode = 'ExclusiveLock'
	AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND l.classid = ($1::bigint >> 32)::oid AND l.objid = ($1::bigint & 4294967295)::oid AND l.objsubid = 1`

// WarehouseLock is the warehouse lock this process holds.
type WarehouseLock struct {
	conn    *pgxpool.Conn
	pid     int32     // the backend holding the advisory lock
	started time.Time // its backend_start: a pid can be reused, a pid and its start cannot
}

// TakeWarehouse takes the warehouse-wide advisory lock, which keeps two
// loads (or runs) off one warehouse, then waits for the write transactions
// of a predecessor whose lock was lost to end (see the package comment).
func TakeWarehouse(ctx context.Context, db connections.AnalyticsRawDB) (*WarehouseLock, error) {
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
		err := refused(ctx, conn)
		conn.Release()
		return nil, err
	}
	w := &WarehouseLock{conn: conn}
	err = conn.QueryRow(ctx, `SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()`).Scan(&w.pid, &w.started)
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT pg_advisory_lock($1)", fenceKey)
	}
	if err == nil {
		_, err = conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", fenceKey)
	}
	if err != nil {
		w.Release()
		return nil, fmt.Errorf("take the run lock: %w", err)
	}
	return w, nil
}

// refused is the error for a lock another session holds, naming it when
// it is found in this database (advisory locks are per database: one held
// in another database on the same server is not this one).
func refused(ctx context.Context, conn *pgxpool.Conn) error {
	var pid int32
	if err := conn.QueryRow(ctx, heldBy, WarehouseKey).Scan(&pid); err == nil {
		return fmt.Errorf("%w: another pipeline run or load is running against this warehouse (PostgreSQL backend pid %d holds advisory lock %d); wait for it to finish",
			ErrLocked, pid, WarehouseKey)
	}
	return fmt.Errorf("%w: another pipeline run or load is running against this warehouse (advisory lock %d); wait for it to finish", ErrLocked, WarehouseKey)
}

// Warehouse takes the warehouse lock and returns only its release.
func Warehouse(ctx context.Context, db connections.AnalyticsRawDB) (Release, error) {
	w, err := TakeWarehouse(ctx, db)
	if err != nil {
		return nil, err
	}
	return w.Release, nil
}

// Release gives the warehouse lock back.
func (w *WarehouseLock) Release() {
	_, _ = w.conn.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", WarehouseKey)
	w.conn.Release()
}

// Check fails with ErrLost unless the session that took the lock still
// holds it, and otherwise holds the fence for the rest of tx, so that a run
// taking the lock after this session died waits for tx to end. Run it on
// the write transaction just before its commit.
func (w *WarehouseLock) Check(ctx context.Context, tx pgx.Tx) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock_shared($1)", fenceKey); err != nil {
		return fmt.Errorf("check the run lock: %w", err)
	}
	var pid int32
	err := tx.QueryRow(ctx, heldBy, WarehouseKey).Scan(&pid)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("check the run lock: %w", err)
	}
	var same bool
	if err == nil && pid == w.pid {
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2)", pid, w.started).Scan(&same); err != nil {
			return fmt.Errorf("check the run lock: %w", err)
		}
	}
	if same {
		return nil
	}
	return fmt.Errorf("%w: the warehouse lock's session (PostgreSQL backend pid %d) is gone; another run may be loading,"+
		" so this one stops before writing more (tables committed so far are kept; the next run continues)", ErrLost, w.pid)
}
