package load

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/tables"
)

func TestNoKeyTableFullRefreshEachRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.replicaState(t)
	e.exec(t, "CREATE TABLE nokey (a int, b varchar(5)) ENGINE=MyISAM",
		"INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (NULL, NULL)",
		changeSeq("nokey", 1))
	r := e.run(t, nil, Options{}).Tables[0]
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.EqualValues(t, 3, r.RawRows, "duplicate rows kept")
	e.exec(t, "DELETE FROM nokey WHERE a IS NULL", changeSeq("nokey", 2))
	r = e.run(t, nil, Options{}).Tables[0]
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	assert.Equal(t, "no primary key", r.Reason)
	assert.EqualValues(t, 2, r.RawRows)
}

func TestSnakeCaseNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, "CREATE TABLE PatientNote (PatNum bigint PRIMARY KEY, `Mixed Case` int, ADACode varchar(5))",
		"INSERT INTO PatientNote VALUES (7, 1, 'D0120')")
	r := e.run(t, nil, Options{SnakeCase: true}).Tables[0]
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, "patient_note", r.Target)
	got := e.texts(t, "SELECT pat_num::text, mixed_case::text, ada_code FROM raw.patient_note")
	assert.Equal(t, []*string{ptr("7"), ptr("1"), ptr("D0120")}, got)

	e.exec(t, "CREATE TABLE clash (PatNum int, pat_num int)")
	res, err := e.loader(nil).Run(context.Background(), Options{SnakeCase: true, Tables: []string{"clash"}})
	require.NoError(t, err)
	assert.Contains(t, res.Tables[0].Error, `both become "pat_num"`)
}

func TestOneFailureDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, "CREATE TABLE good (id int PRIMARY KEY)", "INSERT INTO good VALUES (1), (2)",
		"CREATE TABLE odd (id int PRIMARY KEY, v int)", "INSERT INTO odd VALUES (1, 300)")
	cfg := &tables.Config{Tables: map[string]*tables.Table{
		"missing": {Name: "missing", Strategy: tables.FullTable, Importance: tables.Critical},
		"odd": {Name: "odd", Strategy: tables.FullTable, Importance: tables.Critical,
			ColumnTypeOverride: map[string]string{"v": "boolean"}}, // 300 is no boolean: COPY fails
		"good": {Name: "good", Strategy: tables.FullTable, Importance: tables.Standard},
	}}
	res := e.run(t, cfg, Options{})
	require.Len(t, res.Tables, 3)
	assert.Equal(t, 2, res.Failed)
	assert.False(t, res.OK())
	assert.Contains(t, byName(res, "missing").Error, "not in the replica")
	assert.Contains(t, byName(res, "odd").Error, "boolean")
	assert.Equal(t, StatusOK, byName(res, "good").Status)
	var n int
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT count(*) FROM raw.good").Scan(&n))
	assert.Equal(t, 2, n)
	var status, msg string
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT status, error FROM pipeline.etl_load_status WHERE table_name = 'odd'").Scan(&status, &msg))
	assert.Equal(t, StatusFailed, status)
	assert.Contains(t, msg, "boolean")
	var leftovers int
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'pipeline_build'").Scan(&leftovers))
	assert.Zero(t, leftovers, "a failed build leaves no table behind")

	_, err := e.loader(cfg).Run(context.Background(), Options{Tables: []string{"good", "Nope"}})
	require.ErrorIs(t, err, ErrConfig)
	assert.Contains(t, err.Error(), `"Nope"`)
}

func TestDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, "CREATE TABLE claim (ClaimNum bigint unsigned PRIMARY KEY, IsOrtho tinyint(1), DateSent date)")
	res := e.run(t, nil, Options{DryRun: true})
	r := res.Tables[0]
	require.Equal(t, StatusPlanned, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	require.NotEmpty(t, r.DDL)
	assert.Contains(t, r.DDL[1], `"ClaimNum" numeric(20,0)`)
	assert.Equal(t, []string{`ALTER TABLE "pipeline_build"."claim" ADD CONSTRAINT "claim_pkey " PRIMARY KEY ("ClaimNum")`,
		`DROP TABLE IF EXISTS "raw"."claim"`, `ALTER TABLE "pipeline_build"."claim" SET SCHEMA "raw"`, "COMMIT"}, r.DDL[len(r.DDL)-4:])
	assert.Equal(t, ColumnPlan{Column: "IsOrtho", Target: "IsOrtho", Source: "tinyint(1)", Type: "smallint", Reason: r.Columns[1].Reason}, r.Columns[1])
	var n int
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw'").Scan(&n))
	assert.Zero(t, n, "no table, not even the state table")

	// A table replication has not created yet (`pipeline run --dry-run` on
	// a fresh replica) is planned, not failed; a real load still fails it.
	cfg := &tables.Config{Tables: map[string]*tables.Table{
		"claim":   {Name: "claim", Strategy: tables.FullTable, Importance: tables.Standard},
		"payment": {Name: "payment", Strategy: tables.FullTable, Importance: tables.Standard},
	}}
	res = e.run(t, cfg, Options{DryRun: true})
	assert.True(t, res.OK(), "%+v", res.Tables)
	r = byName(res, "payment")
	assert.Equal(t, StatusPlanned, r.Status)
	assert.Equal(t, ModeFull, r.Mode)
	assert.Contains(t, r.Reason, "not in the replica yet")
	r = byName(e.run(t, cfg, Options{}), "payment")
	assert.Equal(t, StatusFailed, r.Status)
	assert.Contains(t, r.Error, "run `pipeline replicate` first")
}

func TestSchemaChangesRebuildAndViewsSurvive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := &tables.Config{Tables: map[string]*tables.Table{
		"proc": {Name: "proc", PrimaryKey: []string{"ProcNum"}, WatermarkColumns: []string{"DateTStamp"}, Strategy: tables.Incremental, Importance: tables.Standard},
	}}
	e.exec(t, "CREATE TABLE proc (ProcNum bigint PRIMARY KEY, Fee double, DateTStamp datetime)", "INSERT INTO proc VALUES (1, 10, '2024-01-01')")
	require.Equal(t, StatusOK, byName(e.run(t, cfg, Options{}), "proc").Status)

	// A dbt view on the raw table survives a full refresh of unchanged shape.
	_, err := e.pg.Exec(context.Background(), `CREATE VIEW staging.stg_proc AS SELECT "ProcNum", "Fee" FROM raw.proc`)
	require.NoError(t, err)
	e.exec(t, "INSERT INTO proc VALUES (2, 20, '2024-01-01')")
	r := byName(e.run(t, cfg, Options{FullRefresh: true}), "proc")
	require.Equal(t, StatusOK, r.Status, r.Error)
	var n int
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT count(*) FROM staging.stg_proc").Scan(&n))
	assert.Equal(t, 2, n)

	// A new column needs a rebuild (old rows hold values the watermark will
	// not bring); under the view it is added to the live table, which keeps
	// the view.
	e.exec(t, "ALTER TABLE proc ADD COLUMN Note varchar(10) DEFAULT 'n' AFTER ProcNum")
	r = byName(e.run(t, cfg, Options{DryRun: true}), "proc")
	require.Equal(t, StatusPlanned, r.Status, r.Error)
	assert.Contains(t, r.DDL, `ALTER TABLE "raw"."proc" ADD COLUMN "Note" text`, "the plan shows the swap under the view")
	assert.Contains(t, r.DDL, `DELETE FROM "raw"."proc"`)
	r = byName(e.run(t, cfg, Options{}), "proc")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, ModeFull, r.Mode)
	assert.Equal(t, []string{`column "Note" added (text)`}, r.Changes)
	got := e.texts(t, `SELECT string_agg("ProcNum" || ':' || "Note" || ':' || "Fee", ',' ORDER BY "ProcNum") FROM raw.proc`)
	assert.Equal(t, "1:n:10,2:n:20", *got[0])
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT count(*) FROM staging.stg_proc").Scan(&n))
	assert.Equal(t, 2, n)
	r = byName(e.run(t, cfg, Options{FullRefresh: true}), "proc")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Empty(t, r.Changes, "the recorded shape is the new one")

	// A changed type needs a rebuild, which the view blocks with a clear
	// message until it is dropped.
	e.exec(t, "ALTER TABLE proc MODIFY Fee decimal(10,2)")
	r = byName(e.run(t, cfg, Options{DryRun: true}), "proc")
	assert.Equal(t, StatusFailed, r.Status, "the plan says the load would fail")
	assert.Contains(t, r.Error, "view(s) depend on it")
	r = byName(e.run(t, cfg, Options{}), "proc")
	assert.Equal(t, StatusFailed, r.Status)
	assert.Contains(t, r.Error, "view(s) depend on it")
	_, err = e.pg.Exec(context.Background(), `DROP VIEW staging.stg_proc`)
	require.NoError(t, err)
	r = byName(e.run(t, cfg, Options{}), "proc")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, []string{`column "Fee" type changed double precision → numeric(10,2)`}, r.Changes)
	var ty string
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'raw.proc'::regclass AND attname = 'Fee'`).Scan(&ty))
	assert.Equal(t, "numeric(10,2)", ty)
}

func TestColumnTypeOverrides(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, "CREATE TABLE sheet (SheetNum bigint PRIMARY KEY, IsHidden tinyint(1) NOT NULL, Props json, Stamp datetime)",
		`INSERT INTO sheet VALUES (1, 1, '{"b": 1, "a": 2}', '0000-00-00 00:00:00'), (2, 0, NULL, '2024-05-06 07:08:09')`)
	cfg := &tables.Config{Tables: map[string]*tables.Table{
		"sheet": {Name: "sheet", Strategy: tables.FullTable, Importance: tables.Standard,
			ColumnTypeOverride: map[string]string{"IsHidden": "boolean", "Props": "jsonb", "Stamp": "timestamp(0)"}},
	}}
	r := byName(e.run(t, cfg, Options{}), "sheet")
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, map[string]map[string]int64{"Stamp": {"zero_date": 1}}, r.Conversions, "conversions follow the MySQL type")
	got := e.texts(t, `SELECT string_agg("SheetNum" || ':' || "IsHidden"::text || ':' || coalesce("Props"->>'a', '-') || ':' || coalesce("Stamp"::text, 'NULL'), ',' ORDER BY "SheetNum") FROM raw.sheet`)
	assert.Equal(t, "1:true:2:NULL,2:false:-:2024-05-06 07:08:09", *got[0])

	cfg.Tables["sheet"].ColumnTypeOverride = map[string]string{"Nope": "text"}
	r = byName(e.run(t, cfg, Options{}), "sheet")
	assert.Equal(t, StatusFailed, r.Status)
	assert.Contains(t, r.Error, `column_types names column "Nope"`)
}

func TestCreatesRawSchemaWhenMissing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.pg.Exec(context.Background(), "DROP SCHEMA raw CASCADE")
	require.NoError(t, err)
	e.exec(t, "CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t VALUES (1)")
	r := e.run(t, nil, Options{}).Tables[0]
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.EqualValues(t, 1, r.RawRows)
}
