package lock_test

import (
	"context"
	"testing"

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
