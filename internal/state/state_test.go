package state_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

func tablesOf(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}

// A replica written by an older version keeps its state under etl_…; Ensure
// renames both tables, rows included, and running it again changes nothing.
func TestEnsureMigratesLegacyTablesOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testdb.MySQL(t, "state")
	for _, q := range []string{
		"CREATE TABLE etl_copy_status (table_name VARCHAR(64) NOT NULL PRIMARY KEY, mode VARCHAR(16) NOT NULL DEFAULT ''," +
			" status VARCHAR(16) NOT NULL DEFAULT '', watermark VARCHAR(64) NULL, start_watermark VARCHAR(64) NULL, last_key LONGTEXT NULL," +
			" rows_copied BIGINT NOT NULL DEFAULT 0, source_update_time DATETIME NULL, source_started_at DATETIME NULL," +
			" change_seq BIGINT NOT NULL DEFAULT 0, last_run_start DATETIME(6) NULL, last_run_end DATETIME(6) NULL, error TEXT NULL) ENGINE=InnoDB",
		"CREATE TABLE etl_deleted_rows (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, table_name VARCHAR(64) NOT NULL," +
			" pk_values LONGTEXT NOT NULL, detected_at DATETIME(6) NOT NULL, KEY table_id (table_name, id)) ENGINE=InnoDB",
		"INSERT INTO etl_copy_status (table_name, mode, status, watermark, change_seq) VALUES ('patient', 'incremental', 'ok', '2024-05-01 10:00:00', 7)",
		"INSERT INTO etl_deleted_rows (table_name, pk_values, detected_at) VALUES ('patient', '[\"5\"]', NOW())",
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	require.NoError(t, state.Ensure(ctx, db))
	assert.Equal(t, []string{state.ChangedKeysTable, state.CopyStatusTable, state.DeletedRowsTable}, tablesOf(t, db),
		"renamed (and the changed-keys log created), nothing left under the old names")
	rows, err := state.ReadAll(ctx, db)
	require.NoError(t, err)
	require.Contains(t, rows, "patient")
	assert.Equal(t, int64(7), rows["patient"].ChangeSeq, "the state survives the rename")
	assert.Equal(t, "2024-05-01 10:00:00", rows["patient"].Watermark.String)
	id, err := state.MaxDeletionID(ctx, db, "patient")
	require.NoError(t, err)
	assert.Equal(t, int64(1), id)

	// Again, and once the source has a table of its own called etl_copy_status
	// (replicated into the replica): an ordinary table now, never renamed.
	require.NoError(t, state.Ensure(ctx, db))
	_, err = db.Exec("CREATE TABLE etl_copy_status (Id INT PRIMARY KEY, Note TEXT)")
	require.NoError(t, err)
	require.NoError(t, state.Ensure(ctx, db))
	require.NoError(t, state.Migrate(ctx, db))
	assert.Equal(t, []string{"etl_copy_status", state.ChangedKeysTable, state.CopyStatusTable, state.DeletedRowsTable}, tablesOf(t, db))
	rows, err = state.ReadAll(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, int64(7), rows["patient"].ChangeSeq)
}

// Before any replicate run the replica has no state: every read says so
// without an error.
func TestReadsOnAReplicaWithoutState(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testdb.MySQL(t, "state")
	all, err := state.ReadAll(ctx, db)
	require.NoError(t, err)
	assert.Empty(t, all)
	copies, err := state.ReadCopies(ctx, db)
	require.NoError(t, err)
	assert.Nil(t, copies)
	_, ok, err := state.ChangeSeq(ctx, db, "patient")
	require.NoError(t, err)
	assert.False(t, ok)
	id, err := state.MaxDeletionID(ctx, db, "patient")
	require.NoError(t, err)
	assert.Zero(t, id)
	id, err = state.MaxChangedKeyID(ctx, db, "patient")
	require.NoError(t, err)
	assert.Zero(t, id)
	keyed, err := state.KeyedSince(ctx, db, "patient", 0, 3)
	require.NoError(t, err)
	assert.False(t, keyed)
	require.NoError(t, state.Migrate(ctx, db))
	assert.Empty(t, tablesOf(t, db), "Migrate renames only, it creates nothing")
}

// Typed writes: each setter writes its column, AddRows accumulates,
// BumpChangeSeq counts commits, WatermarkFromStart promotes the start
// watermark, and a write on a rolled-back transaction leaves nothing.
func TestUpdateWritesTheRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testdb.MySQL(t, "state")
	require.NoError(t, state.Ensure(ctx, db))
	start := time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	require.NoError(t, state.For("patient").Mode(state.ModeFull).Status(state.StatusRunning).ClearLastKey().
		StartWatermark(sql.NullString{String: "2024-05-01 09:59:59", Valid: true}).Rows(0).
		Source("2024-05-01 09:00:00", "2024-05-01 10:00:00").RunStart(start).ClearError().Exec(ctx, db))
	for _, k := range []string{`["10"]`, `["20"]`} {
		require.NoError(t, state.For("patient").LastKey(k).AddRows(10).BumpChangeSeq().Exec(ctx, db))
	}
	tx, err := db.Begin()
	require.NoError(t, err)
	require.NoError(t, state.For("patient").AddRows(99).BumpChangeSeq().Exec(ctx, tx))
	require.NoError(t, tx.Rollback())

	all, err := state.ReadAll(ctx, db)
	require.NoError(t, err)
	r := all["patient"]
	require.NotNil(t, r)
	assert.Equal(t, state.ModeFull, r.Mode)
	assert.Equal(t, state.StatusRunning, r.Status)
	assert.Equal(t, `["20"]`, r.LastKey.String)
	assert.Equal(t, int64(20), r.RowsCopied)
	assert.Equal(t, int64(2), r.ChangeSeq, "one bump per committed chunk, none for the rolled-back one")
	assert.Equal(t, "2024-05-01 09:00:00", r.SourceUpdateTime.String)
	assert.Equal(t, "2024-05-01 10:00:00", r.SourceStartedAt.String)
	assert.False(t, r.Watermark.Valid)

	require.NoError(t, state.For("patient").Status(state.StatusOK).RunEnd(start.Add(time.Minute)).ClearError().
		WatermarkFromStart().ClearLastKey().Exec(ctx, db))
	require.NoError(t, state.For("other").Status(state.StatusFailed).Error(strings.Repeat("x", 5000)).Source("", "2024-05-01 10:00:00").Exec(ctx, db))
	all, err = state.ReadAll(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, "2024-05-01 09:59:59", all["patient"].Watermark.String, "the start watermark became the watermark")
	assert.False(t, all["patient"].LastKey.Valid)
	assert.Equal(t, int64(2), all["patient"].ChangeSeq, "finishing is no data change")
	assert.Len(t, all["other"].Error.String, 4000, "errors are cut to 4000 bytes")
	assert.False(t, all["other"].SourceUpdateTime.Valid, "an unknown UPDATE_TIME is NULL")

	require.NoError(t, state.MarkUnchanged(ctx, db, []string{"other", "patient"}, start.Add(time.Hour)))
	copies, err := state.ReadCopies(ctx, db)
	require.NoError(t, err)
	seqs := map[string]int64{}
	for name, c := range copies {
		seqs[name] = c.ChangeSeq
	}
	assert.Equal(t, map[string]int64{"patient": 2, "other": 0}, seqs)
	all, err = state.ReadAll(ctx, db)
	require.NoError(t, err)
	assert.Equal(t, state.StatusOK, all["other"].Status)
	assert.False(t, all["other"].Error.Valid)
	assert.Equal(t, "2024-05-01 11:00:00.000000", all["other"].LastRunEnd.String)
}

// The deleted-rows log: recorded keys stream back in id order between two
// ids, as the values the load stages for its DELETE.
func TestDeletedRowsLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testdb.MySQL(t, "state")
	require.NoError(t, state.Ensure(ctx, db))
	at := time.Now()
	require.NoError(t, state.RecordDeletes(ctx, db, "pairs", [][]string{{"1", "a"}, {"2", "b c"}}, at))
	require.NoError(t, state.RecordDeletes(ctx, db, "other", [][]string{{"9", "z"}}, at))
	require.NoError(t, state.RecordDeletes(ctx, db, "pairs", [][]string{{"3", `q"uote`}}, at))
	through, err := state.MaxDeletionID(ctx, db, "pairs")
	require.NoError(t, err)
	assert.Equal(t, int64(4), through)

	d, err := state.ReadDeletions(ctx, db, state.DeletionRange{Table: "pairs", After: 1, Through: through, KeyLen: 2})
	require.NoError(t, err)
	var got [][]any
	for d.Next() {
		v, err := d.Values()
		require.NoError(t, err)
		got = append(got, v)
	}
	require.NoError(t, d.Err())
	require.NoError(t, d.Close())
	assert.Equal(t, [][]any{{"2", "b c"}, {"3", `q"uote`}}, got, "after id 1, through id 4, this table only")

	d, err = state.ReadDeletions(ctx, db, state.DeletionRange{Table: "pairs", Through: through, KeyLen: 3})
	require.NoError(t, err)
	assert.False(t, d.Next())
	assert.ErrorContains(t, d.Err(), "is not a JSON array of 3 key values", "a key of the wrong width stops the stream")
	require.NoError(t, d.Close())
}

// The changed-keys log: keys logged in the transaction that wrote the rows
// (a rolled-back one leaves neither rows nor keys), each commit one
// change_seq bump tagging its keys, so a reader can tell whether every
// change since a loaded change_seq was logged.
func TestChangedKeysLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := testdb.MySQL(t, "state")
	require.NoError(t, state.Ensure(ctx, db))
	at := time.Now()
	logged := func(keys [][]string, commit bool) int64 {
		tx, err := db.Begin()
		require.NoError(t, err)
		seq, err := state.LogChanges(ctx, tx, state.Changes{Table: "pairs", Keys: keys, Reason: state.ReasonRepair, At: at})
		require.NoError(t, err)
		if commit {
			require.NoError(t, tx.Commit())
		} else {
			require.NoError(t, tx.Rollback())
		}
		return seq
	}
	assert.Equal(t, int64(1), logged([][]string{{"1", "a"}, {"2", "b"}}, true))
	assert.Equal(t, int64(2), logged([][]string{{"7", "z"}}, false), "the seq the commit would have had")
	require.NoError(t, state.For("pairs").BumpChangeSeq().Exec(ctx, db)) // a change that logged no keys: seq 2
	assert.Equal(t, int64(3), logged([][]string{{"3", `q"uote`}}, true))

	seq, _, err := state.ChangeSeq(ctx, db, "pairs")
	require.NoError(t, err)
	assert.Equal(t, int64(3), seq)
	for _, c := range []struct {
		loaded int64
		keyed  bool
	}{{0, false}, {1, false}, {2, true}, {3, false}} {
		keyed, err := state.KeyedSince(ctx, db, "pairs", c.loaded, seq)
		require.NoError(t, err)
		assert.Equal(t, c.keyed, keyed, "changes after seq %d", c.loaded)
	}
	through, err := state.MaxChangedKeyID(ctx, db, "pairs")
	require.NoError(t, err)
	ks, err := state.ReadChangedKeys(ctx, db, state.ChangeRange{Table: "pairs", After: 1, Through: through, KeyLen: 2})
	require.NoError(t, err)
	var got [][]any
	for ks.Next() {
		v, err := ks.Values()
		require.NoError(t, err)
		got = append(got, v)
	}
	require.NoError(t, ks.Err())
	require.NoError(t, ks.Close())
	assert.Equal(t, [][]any{{"2", "b"}, {"3", `q"uote`}}, got, "after id 1, the rolled-back key never logged")
}

func TestKeyEncoding(t *testing.T) {
	t.Parallel()
	assert.Equal(t, `["1","b c"]`, state.EncodeKey([]string{"1", "b c"}))
	got, err := state.ParseKey([]byte(state.EncodeKey([]string{"1", "b c"})), 2)
	require.NoError(t, err)
	assert.Equal(t, []any{"1", "b c"}, got)
	got, err = state.ParseKey([]byte(`[18446744073709551615]`), 1)
	require.NoError(t, err)
	assert.Equal(t, []any{"18446744073709551615"}, got, "numbers kept digit for digit")
	for _, bad := range []string{`["1"]`, `{"PatNum": 1}`, `[null, "x"]`, `not json`} {
		_, err := state.ParseKey([]byte(bad), 2)
		assert.Error(t, err, bad)
	}
}

func TestReservedNamesAndTempNames(t *testing.T) {
	t.Parallel()
	assert.True(t, state.Reserved(state.CopyStatusTable))
	assert.True(t, state.Reserved("_Pipeline_mine"), "MySQL table names may be case-insensitive")
	assert.False(t, state.Reserved("etl_copy_status"), "the old names are ordinary source tables now")
	assert.False(t, state.Reserved("pipeline_x"))
	assert.NoError(t, state.CheckName("patient"))
	err := state.CheckName("_pipeline_notes")
	assert.ErrorIs(t, err, state.ErrReserved)
	assert.ErrorContains(t, err, "_pipeline_notes")
	assert.ErrorContains(t, err, "rename the table at the source")

	long := strings.Repeat("a", 64)
	names := map[string]bool{}
	for _, table := range []string{"patient", "patient_", long, long[:63] + "b", "Patient"} {
		n := state.TempName("shadow", table)
		assert.True(t, state.Reserved(n), n)
		assert.LessOrEqual(t, len(n), 64, n)
		assert.Equal(t, n, state.TempName("shadow", table), "deterministic")
		assert.NotEqual(t, n, state.TempName("old", table))
		names[n] = true
	}
	assert.Len(t, names, 5, "distinct tables, distinct names")
}
