package load

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// markers reads each raw patient row's loaded-at marker.
func markers(t *testing.T, e *env) map[int64]time.Time {
	t.Helper()
	rows, err := e.pg.Query(context.Background(), `SELECT "PatNum", _loaded_at FROM raw.patient`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[int64]time.Time{}
	for rows.Next() {
		var k int64
		var at time.Time
		require.NoError(t, rows.Scan(&k, &at))
		out[k] = at.UTC()
	}
	return out
}

func TestLoadedAtMarker(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), DateTStamp timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=InnoDB",
		`INSERT INTO patient VALUES (1, 'Alpha', '2024-01-01 08:00:00'), (2, 'Beta', '2024-01-01 09:00:00'), (3, 'Gamma', '2024-01-01 10:00:00')`,
		changeSeq("patient", 1))
	t1 := time.Date(2024, 1, 1, 21, 0, 0, 123456000, time.UTC)
	t2, t3 := t1.Add(24*time.Hour), t1.Add(48*time.Hour)
	at := func(ts time.Time) Options {
		return Options{LoadedAtColumn: "_loaded_at", Now: func() time.Time { return ts }}
	}
	cfg := patientConfig()
	r := byName(e.run(t, cfg, at(t1)), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, map[int64]time.Time{1: t1, 2: t1, 3: t1}, markers(t, e), "a first load stamps every row")

	// incremental: row 1 changed, row 4 new, row 3 re-read at the watermark but unchanged
	e.exec(t, "UPDATE patient SET LName = 'Alpha2', DateTStamp = '2024-01-01 10:00:00' WHERE PatNum = 1",
		"INSERT INTO patient VALUES (4, 'Delta', '2024-01-01 10:00:00')", changeSeq("patient", 2))
	r = byName(e.run(t, cfg, at(t2)), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	require.Equal(t, ModeIncremental, r.Mode)
	assert.EqualValues(t, 3, r.RowsRead, "rows 1, 3 and 4 are at or after the watermark")
	assert.Equal(t, map[int64]time.Time{1: t2, 2: t1, 3: t1, 4: t2}, markers(t, e), "only inserted and really changed rows are stamped")

	// full refresh: row 2 changed behind the watermark; the others keep their markers
	e.exec(t, "UPDATE patient SET LName = 'Beta2' WHERE PatNum = 2", "DELETE FROM patient WHERE PatNum = 3", changeSeq("patient", 3))
	r = byName(e.run(t, cfg, Options{LoadedAtColumn: "_loaded_at", Now: func() time.Time { return t3 }, FullRefresh: true}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	require.Equal(t, ModeFull, r.Mode)
	assert.Equal(t, map[int64]time.Time{1: t2, 2: t3, 4: t2}, markers(t, e))
	var hasDefault bool
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT atthasdef FROM pg_attribute WHERE attrelid = 'raw.patient'::regclass AND attname = '_loaded_at'`).Scan(&hasDefault))
	assert.False(t, hasDefault)

	// off again: the marker column goes (a shape change rebuilds)
	r = byName(e.run(t, cfg, Options{}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Contains(t, r.Changes, `column "_loaded_at" removed`)
	assert.NotContains(t, rawColumns(t, e), "_loaded_at")
}

func TestLoadedAtMarkerFirstStampAndViews(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t,
		"CREATE TABLE patient (PatNum bigint NOT NULL PRIMARY KEY, LName varchar(100), DateTStamp timestamp NOT NULL DEFAULT current_timestamp()) ENGINE=InnoDB",
		`INSERT INTO patient VALUES (1, 'Alpha', '2024-01-01 08:00:00'), (2, 'Beta', '2024-01-01 09:00:00')`, changeSeq("patient", 1))
	cfg := patientConfig()
	r := byName(e.run(t, cfg, Options{}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	_, err := e.pg.Exec(context.Background(), `CREATE VIEW raw.stg_patient AS SELECT "PatNum" FROM raw.patient`)
	require.NoError(t, err)

	// switching the marker on adds the column under the dbt view: every row stamped once
	t1 := time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC)
	r = byName(e.run(t, cfg, Options{LoadedAtColumn: "_loaded_at", Now: func() time.Time { return t1 }}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Contains(t, r.Changes, `column "_loaded_at" added (timestamptz)`)
	assert.Equal(t, map[int64]time.Time{1: t1, 2: t1}, markers(t, e))

	// a full refresh under the view keeps unchanged rows' markers
	e.exec(t, "UPDATE patient SET LName = 'Beta2' WHERE PatNum = 2", changeSeq("patient", 2))
	t2 := t1.Add(time.Hour)
	r = byName(e.run(t, cfg, Options{LoadedAtColumn: "_loaded_at", Now: func() time.Time { return t2 }, FullRefresh: true}), "patient")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, map[int64]time.Time{1: t1, 2: t2}, markers(t, e))

	// a source column of that name is refused
	e.exec(t, "ALTER TABLE patient ADD COLUMN _loaded_at int", changeSeq("patient", 3))
	r = byName(e.run(t, cfg, Options{LoadedAtColumn: "_loaded_at"}), "patient")
	assert.Equal(t, StatusFailed, r.Status)
	assert.Contains(t, r.Error, `load.loaded_at_column "_loaded_at" is also a column of patient`)
}
