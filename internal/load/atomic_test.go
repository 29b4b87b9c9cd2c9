package load

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// A reader queued behind the swap sees the complete new table: not an
// error for the dropped old table, not an empty or half-loaded one.
func TestFullRefreshReaderSeesOldOrNewTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.exec(t, "CREATE TABLE fee (FeeNum int PRIMARY KEY, Amount decimal(10,2))", "INSERT INTO fee VALUES (1, 1), (2, 2), (3, 3)")
	require.Equal(t, StatusOK, e.run(t, nil, Options{}).Tables[0].Status)
	e.exec(t, "INSERT INTO fee SELECT seq, seq FROM seq_4_to_500")

	// An open reader transaction holds the old table: the swap must wait for it.
	old, err := e.pg.Begin(ctx)
	require.NoError(t, err)
	defer old.Rollback(ctx)
	var n int
	require.NoError(t, old.QueryRow(ctx, `SELECT count(*) FROM raw.fee`).Scan(&n))
	require.Equal(t, 3, n)

	loaded := make(chan *Result, 1)
	go func() {
		res, _ := e.loader(nil).Run(ctx, Options{FullRefresh: true})
		loaded <- res
	}()
	waitForLockWaits(t, e, "raw.fee", 1)

	// A second reader arrives while the swap waits; it queues behind it.
	counted := make(chan error, 1)
	var seen int
	go func() { counted <- e.pg.QueryRow(ctx, `SELECT count(*) FROM raw.fee`).Scan(&seen) }()
	waitForLockWaits(t, e, "raw.fee", 2)
	require.NoError(t, old.QueryRow(ctx, `SELECT count(*) FROM raw.fee`).Scan(&n))
	assert.Equal(t, 3, n, "the open reader still sees the old rows")
	require.NoError(t, old.Rollback(ctx))

	res := <-loaded
	require.NotNil(t, res)
	require.Equal(t, StatusOK, res.Tables[0].Status, res.Tables[0].Error)
	require.NoError(t, <-counted, "the queued reader finds the swapped-in table")
	assert.Equal(t, 500, seen)
}

// A repeatable-read transaction that began before a full refresh (pg_dump,
// a dbt run in one transaction) and reads the table after it committed
// never finds it empty, whichever way the table was swapped.
func TestFullRefreshOlderSnapshotNeverSeesEmptyTable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, view string }{
		{"renamed in", ""},
		{"moved under a view", `CREATE VIEW staging.stg_fee AS SELECT * FROM raw.fee`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			e.exec(t, "CREATE TABLE fee (FeeNum int PRIMARY KEY, Amount decimal(10,2))", "INSERT INTO fee VALUES (1, 1), (2, 2), (3, 3)")
			require.Equal(t, StatusOK, e.run(t, nil, Options{}).Tables[0].Status)
			if tt.view != "" {
				_, err := e.pg.Exec(ctx, tt.view)
				require.NoError(t, err)
			}
			e.exec(t, "INSERT INTO fee SELECT seq, seq FROM seq_4_to_500")

			reader, err := e.pg.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
			require.NoError(t, err)
			defer reader.Rollback(ctx)
			var one int
			require.NoError(t, reader.QueryRow(ctx, "SELECT 1").Scan(&one)) // takes the snapshot

			r := e.run(t, nil, Options{FullRefresh: true}).Tables[0]
			require.Equal(t, StatusOK, r.Status, r.Error)
			var n int
			require.NoError(t, reader.QueryRow(ctx, `SELECT count(*) FROM raw.fee`).Scan(&n))
			assert.Contains(t, []int{3, 500}, n, "the old or the new rows, never none")
		})
	}
}

// A refresh that fails in the middle of its COPY leaves the live table and
// its load state as they were.
func TestFullRefreshFailureKeepsOldTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.exec(t, "CREATE TABLE pref (PrefNum int PRIMARY KEY, IsOn tinyint(1))", "INSERT INTO pref VALUES (1, 0), (2, 1), (3, 1)")
	cfg := &tables.Config{Tables: map[string]*tables.Table{
		"pref": {Name: "pref", Strategy: tables.FullTable, Importance: tables.Standard, ColumnTypeOverride: map[string]string{"IsOn": "boolean"}},
	}}
	require.Equal(t, StatusOK, byName(e.run(t, cfg, Options{}), "pref").Status)
	e.exec(t, "INSERT INTO pref SELECT seq, seq % 2 FROM seq_4_to_300", "INSERT INTO pref VALUES (301, 4)") // 4 is no boolean: COPY fails on the last row

	r := byName(e.run(t, cfg, Options{FullRefresh: true}), "pref")
	require.Equal(t, StatusFailed, r.Status)
	assert.Contains(t, r.Error, "boolean")
	got := e.texts(t, `SELECT string_agg("PrefNum" || ':' || "IsOn"::text, ',' ORDER BY "PrefNum") FROM raw.pref`)
	assert.Equal(t, "1:false,2:true,3:true", *got[0])
	var raw int64
	require.NoError(t, e.pg.QueryRow(ctx, `SELECT raw_rows FROM pipeline.etl_load_status WHERE table_name = 'pref'`).Scan(&raw))
	assert.EqualValues(t, 3, raw, "the state still describes the live table")
}

// waitForLockWaits waits until n sessions wait for a lock on table.
func waitForLockWaits(t *testing.T, e *env, table string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		var waiting int
		err := e.pg.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted`, table).Scan(&waiting)
		return err == nil && waiting >= n
	}, 30*time.Second, 20*time.Millisecond, "%d session(s) waiting for a lock on %s", n, table)
}
