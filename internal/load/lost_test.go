package load

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Issue 8 item 5: a load whose warehouse lock is lost mid-run (its lock
// session terminated: this test's own) notices before its next commit and
// stops: the table in flight is not published, no other table begins,
// nothing more is written, and another run can take the lock.
func TestLoadStopsWhenItsWarehouseLockIsLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	e.replicaState(t)
	cfg := &tables.Config{Tables: map[string]*tables.Table{}}
	for _, n := range []string{"a", "b", "c"} {
		e.exec(t, "CREATE TABLE "+n+" (Id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO "+n+" SELECT seq FROM seq_1_to_100", changeSeq(n, 1))
		cfg.Tables[n] = &tables.Table{Name: n, PrimaryKey: []string{"Id"}, Strategy: tables.FullTable}
	}
	raw := connections.AnalyticsRawDB{Pool: e.pg}
	w, err := lock.TakeWarehouse(ctx, raw)
	require.NoError(t, err)
	t.Cleanup(w.Release)
	var pid int32
	require.NoError(t, e.pg.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&pid))
	terminated := false
	opts := Options{Workers: 1, Guard: w, Progress: func(string, int64, int64) {
		if !terminated { // while the first table's rows stream
			terminated = true
			_, err := e.pg.Exec(ctx, "SELECT pg_terminate_backend($1)", pid)
			require.NoError(t, err)
		}
	}}
	res, err := e.loader(cfg).Run(ctx, opts)
	require.ErrorIs(t, err, lock.ErrLost)
	require.Len(t, res.Tables, 1, "no table begins after the loss")
	assert.Equal(t, StatusFailed, res.Tables[0].Status)
	assert.Contains(t, res.Tables[0].Error, "the run lock was lost")
	var published, states int
	require.NoError(t, e.pg.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw'").Scan(&published))
	assert.Zero(t, published, "the table in flight was not committed")
	require.NoError(t, e.pg.QueryRow(ctx, "SELECT count(*) FROM "+statusTable).Scan(&states))
	assert.Zero(t, states, "not even its failure is written: another run may own the warehouse")

	again, err := lock.TakeWarehouse(ctx, raw)
	require.NoError(t, err, "the next run takes the lock")
	res, err = e.loader(cfg).Run(ctx, Options{Guard: again})
	require.NoError(t, err)
	assert.Zero(t, res.Failed)
	again.Release()
}
