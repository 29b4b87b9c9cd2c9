package load

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// legacyBookkeepingDDL is the replica state as an older version named it
// (before the reserved prefix).
const legacyBookkeepingDDL = `CREATE TABLE etl_copy_status (table_name VARCHAR(64) PRIMARY KEY, mode VARCHAR(16) NOT NULL DEFAULT '',
	change_seq BIGINT NOT NULL, status VARCHAR(20), last_run_end DATETIME NULL, error TEXT NULL) ENGINE=InnoDB;
CREATE TABLE etl_deleted_rows (id BIGINT AUTO_INCREMENT PRIMARY KEY, table_name VARCHAR(64) NOT NULL,
	pk_values LONGTEXT NOT NULL, detected_at DATETIME(6) NOT NULL, KEY (table_name, id)) ENGINE=InnoDB`

// replicaState creates the replica's state tables as replicate does.
func (e *env) replicaState(t *testing.T) {
	t.Helper()
	require.NoError(t, state.Ensure(context.Background(), e.my))
}

// changeSeq sets a table's replica change_seq (as replication's commits move it).
func changeSeq(table string, seq int) string {
	return fmt.Sprintf("INSERT INTO %s (table_name, status, change_seq) VALUES ('%s', 'ok', %d) ON DUPLICATE KEY UPDATE change_seq = %d",
		state.CopyStatusTable, table, seq, seq)
}

// deleted records deleted keys (JSON arrays) as replication does.
func deleted(table string, keys ...string) string {
	rows := make([]string, len(keys))
	for i, k := range keys {
		rows[i] = fmt.Sprintf("('%s', '%s', NOW(6))", table, k)
	}
	return "INSERT INTO " + state.DeletedRowsTable + " (table_name, pk_values, detected_at) VALUES " + strings.Join(rows, ", ")
}

func patientConfig() *tables.Config {
	return &tables.Config{Tables: map[string]*tables.Table{
		"patient": {Name: "patient", PrimaryKey: []string{"PatNum"}, WatermarkColumns: []string{"DateTStamp"},
			Strategy: tables.Incremental, BatchSize: 1000, Importance: tables.Critical},
	}}
}

// xmins returns each raw patient row's xmin: it changes only when a row is rewritten.
func xmins(t *testing.T, e *env) map[int64]string {
	rows, err := e.pg.Query(context.Background(), `SELECT "PatNum", xmin::text FROM raw.patient`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var k int64
		var x string
		require.NoError(t, rows.Scan(&k, &x))
		out[k] = x
	}
	return out
}

func TestIncrementalUpdateInsertDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), Birthdate date NOT NULL, DateTStamp timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=InnoDB",
		`INSERT INTO patient VALUES (1, 'Alpha', '0000-00-00', '2024-01-01 10:00:00'), (2, 'Beta', '1980-05-05', '2024-01-01 09:00:00'),
			(3, 'Gamma', '1990-01-01', '2024-01-01 08:00:00'), (5, 'Epsilon', '1970-01-01', '2023-12-31 00:00:00')`,
		changeSeq("patient", 1),
	)
	cfg := patientConfig()
	res := e.run(t, cfg, Options{})
	r := byName(res, "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	assert.EqualValues(t, 4, r.RawRows)
	assert.Equal(t, map[string]map[string]int64{"Birthdate": {"zero_date": 1}}, r.Conversions)
	before := xmins(t, e)

	// Nothing changed in the replica: change_seq says so, the table is skipped.
	res = e.run(t, cfg, Options{})
	assert.Equal(t, ModeUnchanged, byName(res, "patient").Mode)

	// Update 2, insert 4, delete 3 (recorded by replication), leave 1 (on the
	// watermark boundary, so re-read) and 5 (older) alone.
	e.exec(t,
		"UPDATE patient SET LName = 'Beta2', DateTStamp = '2024-01-02 00:00:00' WHERE PatNum = 2",
		"INSERT INTO patient VALUES (4, 'Delta', '2000-02-29', '2024-01-02 00:00:01')",
		"DELETE FROM patient WHERE PatNum = 3",
		deleted("patient", `["3"]`),
		changeSeq("patient", 2),
	)
	res = e.run(t, cfg, Options{})
	r = byName(res, "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeIncremental, r.Mode)
	assert.EqualValues(t, 3, r.RowsRead, "rows 1 (boundary), 2, 4")
	assert.EqualValues(t, 2, r.RowsWritten, "update 2, insert 4; 1 unchanged is not rewritten")
	assert.EqualValues(t, 1, r.RowsDeleted)
	assert.EqualValues(t, 4, r.RawRows)

	after := xmins(t, e)
	assert.Equal(t, before[1], after[1], "unchanged row 1 untouched")
	assert.Equal(t, before[5], after[5], "unchanged row 5 untouched")
	assert.NotEqual(t, before[2], after[2], "row 2 rewritten")
	assert.NotContains(t, after, int64(3))

	got := e.texts(t, `SELECT string_agg("PatNum" || ':' || "LName" || ':' || coalesce("Birthdate"::text, 'NULL'), ',' ORDER BY "PatNum") FROM raw.patient`)
	assert.Equal(t, "1:Alpha:NULL,2:Beta2:1980-05-05,4:Delta:2000-02-29,5:Epsilon:1970-01-01", *got[0])

	st := e.texts(t, `SELECT watermark, last_deleted_id::text, change_seq::text, mode FROM pipeline.etl_load_status WHERE table_name = 'patient'`)
	assert.Equal(t, "2024-01-02 00:00:01", *st[0])
	assert.Equal(t, "1", *st[1])
	assert.Equal(t, "2", *st[2])
	assert.Equal(t, "incremental", *st[3])

	// A row the watermark cannot see (older stamp) makes the counts differ:
	// the table fails loudly and nothing is applied.
	e.exec(t, "INSERT INTO patient VALUES (6, 'Old', '2001-01-01', '2020-01-01 00:00:00')",
		changeSeq("patient", 3))
	res = e.run(t, cfg, Options{})
	r = byName(res, "patient")
	assert.Equal(t, StatusFailed, r.Status)
	assert.Equal(t, 1, res.Failed)
	assert.Contains(t, r.Error, "row count mismatch")
	assert.Contains(t, r.Error, "--full-refresh")
	st = e.texts(t, `SELECT status, watermark, change_seq::text FROM pipeline.etl_load_status WHERE table_name = 'patient'`)
	assert.Equal(t, []*string{ptr("failed"), ptr("2024-01-02 00:00:01"), ptr("2")}, st, "last good watermark kept")

	// --full-refresh repairs it.
	res = e.run(t, cfg, Options{FullRefresh: true})
	r = byName(res, "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.EqualValues(t, 5, r.RawRows)
}

func TestIncrementalCompositeKeyDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE `order` (`select` int NOT NULL, `Mixed Case` varchar(20) NOT NULL, `with space` int, stamp datetime NOT NULL, PRIMARY KEY (`select`, `Mixed Case`)) ENGINE=InnoDB",
		"INSERT INTO `order` VALUES (1, 'a', 10, '2024-01-01'), (1, 'b', 20, '2024-01-01'), (2, 'a', 30, '2024-01-01')",
		changeSeq("order", 1),
	)
	cfg := &tables.Config{Tables: map[string]*tables.Table{
		"order": {Name: "order", PrimaryKey: []string{"select", "Mixed Case"}, WatermarkColumns: []string{"stamp"}, Strategy: tables.Incremental, Importance: tables.Standard},
	}}
	r := byName(e.run(t, cfg, Options{}), "order")
	require.Equal(t, StatusOK, r.Status, r.Error)
	e.exec(t, "DELETE FROM `order` WHERE `select` = 1 AND `Mixed Case` = 'b'",
		deleted("order", `["1", "b"]`), deleted("other", `["1"]`),
		"UPDATE `order` SET `with space` = 31, stamp = '2024-01-02' WHERE `select` = 2", changeSeq("order", 2))
	r = byName(e.run(t, cfg, Options{}), "order")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeIncremental, r.Mode)
	assert.EqualValues(t, 1, r.RowsDeleted)
	assert.EqualValues(t, 1, r.RowsWritten)
	got := e.texts(t, `SELECT string_agg("select" || "Mixed Case" || "with space", ',' ORDER BY 1) FROM raw."order"`)
	assert.Equal(t, "1a10,2a31", *got[0])
	var pk string
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'raw."order"'::regclass AND contype = 'p'`).Scan(&pk))
	assert.Equal(t, `PRIMARY KEY ("select", "Mixed Case")`, pk)
}

// A key deleted and inserted again between two loads is kept: the recorded
// delete does not remove the row the same load brings back.
func TestIncrementalDeleteThenReinsertKeepsRow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), DateTStamp datetime NOT NULL) ENGINE=InnoDB",
		"INSERT INTO patient VALUES (1, 'Ann', '2024-01-01 00:00:00'), (2, 'Bob', '2024-01-01 00:00:00')", changeSeq("patient", 1))
	cfg := patientConfig()
	require.Equal(t, StatusOK, byName(e.run(t, cfg, Options{}), "patient").Status)
	e.exec(t, "DELETE FROM patient WHERE PatNum IN (1, 2)",
		deleted("patient", `["1"]`, `["2"]`),
		"INSERT INTO patient VALUES (2, 'Bob again', '2024-01-02 00:00:00')", changeSeq("patient", 2))
	r := byName(e.run(t, cfg, Options{}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeIncremental, r.Mode)
	assert.EqualValues(t, 1, r.RowsDeleted, "only key 1: key 2 came back")
	got := e.texts(t, `SELECT string_agg("PatNum" || ':' || "LName", ',' ORDER BY "PatNum") FROM raw.patient`)
	assert.Equal(t, "2:Bob again", *got[0])
}

// A replica written by an older version (state under etl_…) is loaded:
// the load renames the state tables, reads change_seq and applies the
// recorded deletes, and nothing is left under the old names.
func TestLoadMigratesALegacyReplica(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, legacyBookkeepingDDL,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), DateTStamp datetime NOT NULL) ENGINE=InnoDB",
		"INSERT INTO patient VALUES (1, 'Ann', '2024-01-01 00:00:00'), (2, 'Bob', '2024-01-01 00:00:00')",
		"INSERT INTO etl_copy_status (table_name, change_seq, status) VALUES ('patient', 1, 'ok')")
	cfg := patientConfig()
	require.Equal(t, StatusOK, byName(e.run(t, cfg, Options{}), "patient").Status)
	assert.Equal(t, ModeUnchanged, byName(e.run(t, cfg, Options{}), "patient").Mode, "change_seq read under the new name")
	var old int
	require.NoError(t, e.my.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME LIKE 'etl\\_%'").Scan(&old))
	assert.Zero(t, old, "the old names are gone")

	e.exec(t, "DELETE FROM patient WHERE PatNum = 1", deleted("patient", `["1"]`), changeSeq("patient", 2))
	r := byName(e.run(t, cfg, Options{}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.EqualValues(t, 1, r.RowsDeleted)
	assert.EqualValues(t, 1, r.RawRows)
}

// A row stamped in the future (a TIMESTAMP after the server's clock, which
// a full copy brings into the replica like any row) never becomes the loaded
// watermark: it would hide every later change until then. Later changes are
// loaded, and the future row is kept.
func TestIncrementalFutureStampIsNotTheWatermark(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), DateTStamp timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=InnoDB",
		"INSERT INTO patient VALUES (1, 'Ann', '2024-01-01 00:00:00'), (2, 'Bob', '2024-01-01 00:00:00'), (3, 'Future', '2037-12-31 00:00:00')",
		changeSeq("patient", 1))
	cfg := patientConfig()
	require.Equal(t, StatusOK, byName(e.run(t, cfg, Options{}), "patient").Status)
	st := e.texts(t, `SELECT watermark FROM pipeline.etl_load_status WHERE table_name = 'patient'`)
	assert.Equal(t, "2024-01-01 00:00:00", *st[0], "the future stamp is not the watermark")

	e.exec(t, "UPDATE patient SET LName = 'Bobby', DateTStamp = '2024-06-01 00:00:00' WHERE PatNum = 2", changeSeq("patient", 2))
	r := byName(e.run(t, cfg, Options{}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeIncremental, r.Mode)
	got := e.texts(t, `SELECT string_agg("PatNum" || ':' || "LName", ',' ORDER BY "PatNum") FROM raw.patient`)
	assert.Equal(t, "1:Ann,2:Bobby,3:Future", *got[0])
}
