package load

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Issue 8 item 4: source tables named like the pipeline's objects — its
// old building tables, its old and new state tables, a key constraint —
// arrive intact in raw beside the table they seem to belong to, full,
// incremental and after a full refresh. The load's own objects live in
// schemas pipeline and pipeline_build.
func TestSourceNamesLikeOurObjects(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	names := []string{"x", "_etl_new_x", "etl_load_status", "etl_copy_status", "etl_deleted_rows", "x_pkey", "pipeline_build", "_pipeline_x"}
	cfg := &tables.Config{Tables: map[string]*tables.Table{}}
	for i, n := range names {
		q := "`" + n + "`"
		e.exec(t, "CREATE TABLE "+q+" (Id INT NOT NULL PRIMARY KEY, Who VARCHAR(30) NOT NULL, Stamp DATETIME NOT NULL) ENGINE=InnoDB",
			"INSERT INTO "+q+" SELECT seq, '"+n+"', '2024-01-01' FROM seq_1_to_"+strings.Repeat("1", 1)+string(rune('0'+i)), changeSeq(n, 1))
		cfg.Tables[n] = &tables.Table{Name: n, PrimaryKey: []string{"Id"}, WatermarkColumns: []string{"Stamp"}, Strategy: tables.Incremental, Importance: tables.Standard}
	}
	check := func(when string) {
		t.Helper()
		for i, n := range names {
			var rows int
			var who string
			require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT count(*), min("Who") FROM raw."`+n+`"`).Scan(&rows, &who), "%s: raw.%s", when, n)
			assert.Equal(t, 10+i, rows, "%s: raw.%s rows", when, n)
			assert.Equal(t, n, who, "%s: raw.%s holds its own rows", when, n)
		}
		var ours int
		require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT count(*) FROM pipeline.etl_load_status WHERE status = 'ok'`).Scan(&ours))
		assert.Equal(t, len(names), ours, "%s: the load state is in schema pipeline", when)
	}
	res := e.run(t, cfg, Options{})
	require.Zero(t, res.Failed, "%+v", res.Tables)
	check("full")
	for _, n := range names {
		e.exec(t, "INSERT INTO `"+n+"` VALUES (100, '"+n+"', '2024-02-01')", changeSeq(n, 2))
	}
	res = e.run(t, cfg, Options{})
	require.Zero(t, res.Failed, "%+v", res.Tables)
	for _, n := range names {
		e.exec(t, "DELETE FROM `"+n+"` WHERE Id = 100", changeSeq(n, 3))
	}
	res = e.run(t, cfg, Options{FullRefresh: true})
	require.Zero(t, res.Failed, "%+v", res.Tables)
	check("full refresh")
	var building int
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT count(*) FROM pg_class WHERE relnamespace = 'pipeline_build'::regnamespace`).Scan(&building))
	assert.Zero(t, building, "nothing left under construction")
}

// Issue 8 item 8 on the real servers: table names of 54 to 63 bytes with a
// primary key load full, incremental and again in full (the building
// table's key once took the building table's own name).
func TestLongNamesWithPrimaryKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	cfg := &tables.Config{Tables: map[string]*tables.Table{}}
	var names []string
	for n := 54; n <= 63; n++ {
		name := strings.Repeat("n", n-2) + "_k"
		names = append(names, name)
		e.exec(t, "CREATE TABLE `"+name+"` (Id INT NOT NULL PRIMARY KEY, Stamp DATETIME NOT NULL) ENGINE=InnoDB",
			"INSERT INTO `"+name+"` VALUES (1, '2024-01-01'), (2, '2024-01-01')", changeSeq(name, 1))
		cfg.Tables[name] = &tables.Table{Name: name, PrimaryKey: []string{"Id"}, WatermarkColumns: []string{"Stamp"}, Strategy: tables.Incremental, Importance: tables.Standard}
	}
	for i, opts := range []Options{{}, {}, {FullRefresh: true}} {
		if i == 1 {
			for _, n := range names {
				e.exec(t, "INSERT INTO `"+n+"` VALUES (3, '2024-02-01')", changeSeq(n, 2))
			}
		}
		res := e.run(t, cfg, opts)
		require.Zero(t, res.Failed, "run %d: %+v", i, res.Tables)
		for _, n := range names {
			var rows int
			require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT count(*) FROM raw."`+n+`"`).Scan(&rows))
			assert.Equal(t, 2+min(i, 1), rows, "run %d: %s", i, n)
		}
	}
}

// A raw.etl_load_status written by an older version moves to schema
// pipeline (once, keeping its rows); a source table of that name found in
// raw is left alone. A key constraint an older version named
// "<table>_pkey" gives way when a source table of that name arrives.
func TestLoadStateMovesOutOfRaw(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.replicaState(t)
	e.exec(t, "CREATE TABLE x (Id INT NOT NULL PRIMARY KEY) ENGINE=InnoDB", "INSERT INTO x VALUES (1)", changeSeq("x", 1))
	cfg := &tables.Config{Tables: map[string]*tables.Table{"x": {Name: "x", PrimaryKey: []string{"Id"}, Strategy: tables.FullTable}}}
	// What an older version left: its state table in raw, and raw.x with a key named x_pkey.
	_, err := e.pg.Exec(ctx, strings.Replace(statusDDL, statusTable, "raw.etl_load_status", 1))
	require.NoError(t, err)
	_, err = e.pg.Exec(ctx, `INSERT INTO raw.etl_load_status (table_name, target_table, mode, status, change_seq, signature)
		VALUES ('x', 'x', 'full', 'ok', 1, '{"columns":[["Id","integer"]],"key":["Id"]}');
		CREATE TABLE raw.x ("Id" integer CONSTRAINT x_pkey PRIMARY KEY)`)
	require.NoError(t, err)

	res := e.run(t, cfg, Options{})
	require.Zero(t, res.Failed, "%+v", res.Tables)
	assert.Equal(t, ModeUnchanged, byName(res, "x").Mode, "the moved state is read: raw.x stays, with its old key name: %+v", byName(res, "x"))
	var n int
	require.NoError(t, e.pg.QueryRow(ctx, `SELECT count(*) FROM pipeline.etl_load_status WHERE table_name = 'x' AND status = 'ok'`).Scan(&n))
	assert.Equal(t, 1, n)
	var inRaw bool
	require.NoError(t, e.pg.QueryRow(ctx, `SELECT to_regclass('raw.etl_load_status') IS NOT NULL`).Scan(&inRaw))
	assert.False(t, inRaw, "moved")

	// Now the source gains tables named x_pkey and etl_load_status.
	for _, name := range []string{"x_pkey", "etl_load_status"} {
		e.exec(t, "CREATE TABLE `"+name+"` (Id INT NOT NULL PRIMARY KEY, Note TEXT) ENGINE=InnoDB", "INSERT INTO `"+name+"` VALUES (7, 'mine')", changeSeq(name, 1))
		cfg.Tables[name] = &tables.Table{Name: name, PrimaryKey: []string{"Id"}, Strategy: tables.FullTable}
	}
	res = e.run(t, cfg, Options{})
	require.Zero(t, res.Failed, "%+v", res.Tables)
	var key string
	require.NoError(t, e.pg.QueryRow(ctx, `SELECT conname FROM pg_constraint WHERE conrelid = 'raw.x'::regclass AND contype = 'p'`).Scan(&key))
	assert.Equal(t, "x_pkey ", key, "raw.x's key gave way")
	for _, name := range []string{"x_pkey", "etl_load_status"} {
		var note string
		require.NoError(t, e.pg.QueryRow(ctx, `SELECT "Note" FROM raw."`+name+`" WHERE "Id" = 7`).Scan(&note))
		assert.Equal(t, "mine", note)
	}
}
