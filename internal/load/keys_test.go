package load

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// logChange writes replica rows with stmts and logs keys in the same
// transaction, as a keyed writer (verify's repair) does.
func (e *env) logChange(t *testing.T, table string, keys [][]string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.my.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer tx.Rollback()
	for _, s := range stmts {
		_, err := tx.ExecContext(ctx, s)
		require.NoError(t, err, s)
	}
	_, err = state.LogChanges(ctx, tx, state.Changes{Table: table, Keys: keys, Reason: state.ReasonRepair, At: time.Now()})
	require.NoError(t, err)
	require.NoError(t, tx.Commit())
}

// The changed-keys log is applied whatever the table's mode. When every
// change since the last load logged its keys, only those rows are loaded
// (a full_table table included): the logged rows upserted, logged keys the
// replica no longer has deleted, no other raw row rewritten. A change that
// logged no keys falls back to the table's own mode, which applies the log
// too (an incremental load takes logged rows whatever their watermark).
func TestLoadAppliesChangedKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), DateTStamp timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=InnoDB",
		"INSERT INTO patient SELECT seq, CONCAT('p', seq), '2024-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_50",
		"CREATE TABLE def (DefNum bigint NOT NULL PRIMARY KEY, ItemName varchar(50)) ENGINE=InnoDB",
		"INSERT INTO def SELECT seq, CONCAT('d', seq) FROM seq_1_to_20",
		changeSeq("patient", 1), changeSeq("def", 1),
	)
	cfg := patientConfig()
	cfg.Tables["def"] = &tables.Table{Name: "def", PrimaryKey: []string{"DefNum"}, Strategy: tables.FullTable, BatchSize: 1000, Importance: tables.Standard}
	e.run(t, cfg, Options{})
	before := xmins(t, e)

	// Keyed only: an old-stamped edit and a delete in patient, an edit in def.
	e.logChange(t, "patient", [][]string{{"7"}, {"9"}},
		"UPDATE patient SET LName = 'edited', DateTStamp = '2001-01-01' WHERE PatNum = 7", "DELETE FROM patient WHERE PatNum = 9")
	e.logChange(t, "def", [][]string{{"3"}}, "UPDATE def SET ItemName = 'changed' WHERE DefNum = 3")
	res := e.run(t, cfg, Options{})
	for _, name := range []string{"patient", "def"} {
		r := byName(res, name)
		require.Equal(t, StatusOK, r.Status, r.Error)
		assert.Equal(t, ModeKeys, r.Mode, "%s: %s", name, r.Reason)
	}
	p := byName(res, "patient")
	assert.EqualValues(t, 1, p.RowsWritten)
	assert.EqualValues(t, 1, p.RowsDeleted)
	assert.EqualValues(t, 1, byName(res, "def").RowsWritten)
	after := xmins(t, e)
	assert.NotContains(t, after, int64(9))
	assert.NotEqual(t, before[7], after[7])
	for k, x := range after {
		if k != 7 {
			assert.Equal(t, before[k], x, "row %d not rewritten", k)
		}
	}
	var name string
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT "LName" FROM raw.patient WHERE "PatNum" = 7`).Scan(&name))
	assert.Equal(t, "edited", name)
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT "ItemName" FROM raw.def WHERE "DefNum" = 3`).Scan(&name))
	assert.Equal(t, "changed", name)

	// A keyed change and an unlogged one: the table's own mode, log applied.
	e.logChange(t, "patient", [][]string{{"11"}}, "UPDATE patient SET LName = 'old stamp' WHERE PatNum = 11")
	e.exec(t, "UPDATE patient SET LName = 'new stamp', DateTStamp = '2030-01-01' WHERE PatNum = 12",
		"UPDATE "+state.CopyStatusTable+" SET change_seq = change_seq + 1 WHERE table_name = 'patient'")
	res = e.run(t, cfg, Options{})
	p = byName(res, "patient")
	require.Equal(t, StatusOK, p.Status, p.Error)
	assert.Equal(t, ModeIncremental, p.Mode)
	assert.EqualValues(t, 2, p.RowsWritten, "the stamped row and the logged one")
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT "LName" FROM raw.patient WHERE "PatNum" = 11`).Scan(&name))
	assert.Equal(t, "old stamp", name)

	// Nothing new: unchanged, and the applied log is not applied again.
	res = e.run(t, cfg, Options{})
	assert.Equal(t, ModeUnchanged, byName(res, "patient").Mode)
	var lastID int64
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT last_changed_key_id FROM pipeline.etl_load_status WHERE table_name = 'patient'").Scan(&lastID))
	maxID, err := state.MaxChangedKeyID(context.Background(), e.my, "patient")
	require.NoError(t, err)
	assert.Equal(t, maxID, lastID)
}

// A status table made before the changed-keys log (then in raw) moves to
// schema pipeline and gets its column.
func TestStatusTableGainsLastChangedKeyID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.pg.Exec(ctx, `CREATE TABLE raw.etl_load_status (table_name text PRIMARY KEY, target_table text NOT NULL, mode text NOT NULL,
		status text NOT NULL, watermark text, rows_read bigint NOT NULL DEFAULT 0, rows_written bigint NOT NULL DEFAULT 0,
		rows_deleted bigint NOT NULL DEFAULT 0, raw_rows bigint, conversions jsonb NOT NULL DEFAULT '{}',
		last_deleted_id bigint NOT NULL DEFAULT 0, change_seq bigint, signature text, started_at timestamptz,
		finished_at timestamptz, error text)`)
	require.NoError(t, err)
	require.NoError(t, ensureStatusTable(ctx, e.pg))
	var n int
	require.NoError(t, e.pg.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = 'pipeline'
		AND table_name = 'etl_load_status' AND column_name = 'last_changed_key_id'`).Scan(&n))
	assert.Equal(t, 1, n)
	require.NoError(t, ensureStatusTable(ctx, e.pg), "again: nothing to do")
}
