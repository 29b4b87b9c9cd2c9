package lock_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

func TestReplicaLockRefusesSecondRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, cfg := testdb.MySQL(t, "lock")
	db, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	replica := connections.ReplicationDB{DB: db}

	release, err := lock.Replica(ctx, replica)
	require.NoError(t, err)
	_, err = lock.Replica(ctx, replica)
	assert.ErrorIs(t, err, lock.ErrLocked)
	assert.ErrorContains(t, err, "another pipeline replicate is running against this replica")

	// Another replica on the same server is not locked by it.
	_, otherCfg := testdb.MySQL(t, "lock")
	other, err := factory.New().MySQL(otherCfg)
	require.NoError(t, err)
	t.Cleanup(func() { other.Close() })
	releaseOther, err := lock.Replica(ctx, connections.ReplicationDB{DB: other})
	require.NoError(t, err)
	releaseOther()

	release()
	again, err := lock.Replica(ctx, replica)
	require.NoError(t, err, "released")
	again()
}

func TestWarehouseLockRefusesSecondRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, _ := testdb.Postgres(t, "lock")
	raw := connections.AnalyticsRawDB{Pool: pg}
	release, err := lock.Warehouse(ctx, raw)
	require.NoError(t, err)
	_, err = lock.Warehouse(ctx, raw)
	assert.ErrorIs(t, err, lock.ErrLocked)
	assert.ErrorContains(t, err, "backend pid")
	release()
	again, err := lock.Warehouse(ctx, raw)
	require.NoError(t, err, "released")
	again()
}

// Issue 8 item 5: the warehouse lock's holder notices when its session
// dies (pg_terminate_backend of this test's own lock session): Check fails
// from then on, and another run can take the lock.
func TestWarehouseLockLostIsNoticed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, _ := testdb.Postgres(t, "lock")
	raw := connections.AnalyticsRawDB{Pool: pg}
	a, err := lock.TakeWarehouse(ctx, raw)
	require.NoError(t, err)
	t.Cleanup(a.Release) // a lost lock is released too (its connection goes back to the pool)
	check := func(w *lock.WarehouseLock) error {
		tx, err := pg.Begin(ctx)
		require.NoError(t, err)
		defer tx.Rollback(ctx)
		return w.Check(ctx, tx)
	}
	require.NoError(t, check(a), "held")
	terminate(t, pg, lockPID(t, pg))
	err = check(a)
	assert.ErrorIs(t, err, lock.ErrLost)
	assert.ErrorContains(t, err, "stops before writing more")

	b, err := lock.TakeWarehouse(ctx, raw)
	require.NoError(t, err, "the lock is free once its session is gone")
	require.NoError(t, check(b))
	assert.ErrorIs(t, check(a), lock.ErrLost, "still lost: another run holds it")
	b.Release()
}

// A run taking the lock waits for the write transaction of the run that
// lost it, when that transaction checked the lock before the loss: the two
// never write at the same time. The wait is observed in pg_locks, not
// timed.
func TestWarehouseLockFencesTheLosersLastTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pg, _ := testdb.Postgres(t, "lock")
	raw := connections.AnalyticsRawDB{Pool: pg}
	a, err := lock.TakeWarehouse(ctx, raw)
	require.NoError(t, err)
	t.Cleanup(a.Release)
	tx, err := pg.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	require.NoError(t, a.Check(ctx, tx), "a's last write transaction checked the lock")
	terminate(t, pg, lockPID(t, pg))

	taken := make(chan error, 1)
	var b *lock.WarehouseLock
	go func() {
		var err error
		b, err = lock.TakeWarehouse(ctx, raw)
		taken <- err
	}()
	waitFor(t, func() bool { // b holds the run lock and waits for the fence
		var n int
		require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n))
		return n == 1
	})
	select {
	case err := <-taken:
		t.Fatalf("b took the lock while a's checked transaction was open (err %v)", err)
	default:
	}
	require.NoError(t, tx.Commit(ctx))
	require.NoError(t, <-taken)
	b.Release()
}

// The refusal names the backend holding the lock in this database, not
// one holding the same key in another database on the server.
func TestWarehouseLockNamesTheHolderOfThisDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var others []lock.Release
	for range 6 { // other warehouses on the same server, each locked (pg_locks lists them in no fixed order)
		other, _ := testdb.Postgres(t, "lock")
		rel, err := lock.Warehouse(ctx, connections.AnalyticsRawDB{Pool: other})
		require.NoError(t, err)
		others = append(others, rel)
	}
	pg, _ := testdb.Postgres(t, "lock")
	release, err := lock.Warehouse(ctx, connections.AnalyticsRawDB{Pool: pg})
	require.NoError(t, err)
	holder := lockPID(t, pg)
	_, err = lock.Warehouse(ctx, connections.AnalyticsRawDB{Pool: pg})
	require.ErrorIs(t, err, lock.ErrLocked)
	assert.Contains(t, err.Error(), fmt.Sprintf("backend pid %d holds", holder))
	release()
	for _, r := range others {
		r()
	}
}

// The replica lock's holder notices a KILL of its lock connection (this
// test's own session): Check fails, and another run can take the lock.
func TestReplicaLockLostIsNoticed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, cfg := testdb.MySQL(t, "lock")
	db, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	replica := connections.ReplicationDB{DB: db}
	a, err := lock.TakeReplica(ctx, replica)
	require.NoError(t, err)
	require.NoError(t, a.Check(ctx, db))
	var id int64
	require.NoError(t, db.QueryRow("SELECT IS_USED_LOCK(CONCAT('pipeline_replicate:', DATABASE()))").Scan(&id))
	_, err = db.Exec(fmt.Sprintf("KILL CONNECTION %d", id))
	require.NoError(t, err)
	waitFor(t, func() bool { // KILL only flags the session; it ends (and frees the lock) soon after
		var n int
		require.NoError(t, db.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id).Scan(&n))
		return n == 0
	})
	err = a.Check(ctx, db)
	assert.ErrorIs(t, err, lock.ErrLost)
	b, err := lock.TakeReplica(ctx, replica)
	require.NoError(t, err, "the lock is free once its session is gone")
	require.NoError(t, b.Check(ctx, db))
	assert.ErrorIs(t, a.Check(ctx, db), lock.ErrLost, "still lost: another run holds it")
	b.Release()
}

// lockPID is the backend holding the warehouse lock in pg's database.
func lockPID(t *testing.T, pg *pgxpool.Pool) int32 {
	t.Helper()
	var pid int32
	require.NoError(t, pg.QueryRow(context.Background(), `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid`, lock.WarehouseKey).Scan(&pid))
	return pid
}

// terminate ends a backend of this test's database and waits until it is gone.
func terminate(t *testing.T, pg *pgxpool.Pool, pid int32) {
	t.Helper()
	var ok bool
	require.NoError(t, pg.QueryRow(context.Background(), `SELECT pg_terminate_backend($1) FROM pg_stat_activity
		WHERE pid = $1 AND datname = current_database()`, pid).Scan(&ok))
	require.True(t, ok)
	waitFor(t, func() bool {
		var n int
		require.NoError(t, pg.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid).Scan(&n))
		return n == 0
	})
}

// waitFor polls cond until it holds (a barrier on server state, not a
// timing assumption), failing after a generous deadline.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		require.True(t, time.Now().Before(deadline), "condition not reached")
		time.Sleep(10 * time.Millisecond)
	}
}
