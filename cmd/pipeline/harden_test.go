package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// hardenEnv is fresh databases in the process environment and handles on
// them: the source (written as the clinic would), the replica and the
// warehouse; cli runs a command and returns its exit code and output.
type hardenEnv struct {
	src, repl *sql.DB
	pg        *pgxpool.Pool
	dir       string
}

func newHardenEnv(t *testing.T) *hardenEnv {
	vars, _, pgName := testVars(t)
	e := &hardenEnv{dir: useProcessEnv(t, vars)}
	e.src = openTestMySQL(t, vars["TEST_OPENDENTAL_SOURCE_DB"])
	e.repl = openTestMySQL(t, vars["TEST_MYSQL_REPLICATION_DB"])
	cfg := testdb.PostgresConfig(pgName, catalog.SchemaRaw)
	pg, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, cfg.Addr(), cfg.Name))
	require.NoError(t, err)
	t.Cleanup(pg.Close)
	e.pg = pg
	return e
}

func (e *hardenEnv) cli(args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), append([]string{"--env", "test", "--config-dir", e.dir}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// ok runs a command that must exit 0 and returns its stdout.
func (e *hardenEnv) ok(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := e.cli(args...)
	require.Equal(t, exitOK, code, "%v\nstdout:\n%s\nstderr:\n%s", args, out, errOut)
	return out
}

func (e *hardenEnv) rawCount(t *testing.T, table string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT count(*) FROM raw.`+table).Scan(&n))
	return n
}

func mysqlCount(t *testing.T, db *sql.DB, q string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(q).Scan(&n), q)
	return n
}

// Issue 8 item 1, as found: a source primary-key change is followed by
// replica and raw (no row collapses), tables.yml's primary_key follows via
// discover, which reports it; dropping the key is followed too. A run
// before discover is re-run follows the source's key as well.
func TestPrimaryKeyChangeReachesReplicaAndRaw(t *testing.T) {
	e := newHardenEnv(t)
	mustExec(t, e.src, "CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10) NOT NULL)", "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	e.ok(t, "discover")
	e.ok(t, "run")

	mustExec(t, e.src, "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (v)", "INSERT INTO t VALUES (1, 'c')")
	out := e.ok(t, "discover")
	assert.Contains(t, out, "t: primary key changed from (id) to (v)")
	out = e.ok(t, "run")
	assert.Contains(t, out, "primary key changed from (id) to (v): replica table rebuilt")
	assert.Equal(t, int64(3), mysqlCount(t, e.repl, "SELECT COUNT(*) FROM t"), "replica")
	assert.Equal(t, int64(3), e.rawCount(t, "t"), "raw")
	var key string
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT string_agg(a.attname, ',' ORDER BY k.i) FROM pg_index x
		CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY k(attnum, i) JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
		WHERE x.indrelid = 'raw.t'::regclass AND x.indisprimary`).Scan(&key))
	assert.Equal(t, "v", key, "raw's primary key follows")

	// Before discover runs again: the source's key is followed, the stale
	// tables.yml key reported.
	mustExec(t, e.src, "ALTER TABLE t DROP PRIMARY KEY", "INSERT INTO t VALUES (1, 'c')")
	out = e.ok(t, "run")
	assert.Contains(t, out, "tables.yml primary_key (v) is not the source's (none)")
	assert.Equal(t, int64(4), mysqlCount(t, e.repl, "SELECT COUNT(*) FROM t"), "replica")
	assert.Equal(t, int64(4), e.rawCount(t, "t"), "raw")
	out = e.ok(t, "discover")
	assert.Contains(t, out, "t: primary key changed from (v) to (none)")
	e.ok(t, "run")
	assert.Equal(t, int64(4), e.rawCount(t, "t"))
}

// Issue 8 item 3, as found: a table whose replication failed is not
// published to a fresh warehouse as an empty table: the load skips it,
// says why, and the run exits 1; the table that replicated is loaded.
func TestRunSkipsTableWhoseReplicationFailed(t *testing.T) {
	e := newHardenEnv(t)
	mustExec(t, e.src, "CREATE TABLE good (id INT PRIMARY KEY)", "INSERT INTO good VALUES (1)",
		"CREATE TABLE bad (id INT PRIMARY KEY)", "INSERT INTO bad VALUES (1), (2)")
	mustExec(t, e.repl, "CREATE VIEW bad AS SELECT 1 AS id") // the replica cannot create table bad
	e.ok(t, "discover")
	code, out, errOut := e.cli("run")
	require.Equal(t, exitFailed, code, "stdout:\n%s\nstderr:\n%s", out, errOut)
	assert.Regexp(t, `(?m)^SKIPPED bad: replica copy incomplete \(full copy not completed; last replicate failed: create replica table bad`, out)
	assert.Equal(t, int64(1), e.rawCount(t, "good"))
	var exists bool
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT to_regclass('raw.bad') IS NOT NULL").Scan(&exists))
	assert.False(t, exists, "no empty table published")
	var status string
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT status FROM pipeline.etl_load_status WHERE table_name = 'bad'").Scan(&status))
	assert.Equal(t, "skipped", status)

	mustExec(t, e.repl, "DROP VIEW bad")
	e.ok(t, "run")
	assert.Equal(t, int64(2), e.rawCount(t, "bad"))
}

// Issue 8 item 13: a table dropped at the source is never dropped
// silently: before discover the run fails it naming the fix; after
// discover its replica and raw copies are kept and reported as orphaned
// (summary, --json warnings, check) until --drop-orphans drops them.
func TestOrphanedTablesAreReportedThenDropped(t *testing.T) {
	e := newHardenEnv(t)
	mustExec(t, e.src, "CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a VALUES (1)",
		"CREATE TABLE gone (id INT PRIMARY KEY)", "INSERT INTO gone VALUES (1), (2)")
	e.ok(t, "discover")
	e.ok(t, "run")
	mustExec(t, e.src, "DROP TABLE gone")

	code, out, _ := e.cli("run")
	assert.Equal(t, exitFailed, code, "tables.yml still lists it")
	assert.Contains(t, out, "table gone is in tables.yml but not in the source database (dropped at the source?); run `pipeline discover`")

	assert.Contains(t, e.ok(t, "discover"), "dropped table gone")
	out = e.ok(t, "run")
	assert.Contains(t, out, "1 replica tables are orphaned (their source table is gone; kept): gone — `pipeline replicate --drop-orphans` drops them")
	assert.Contains(t, out, "1 raw tables are orphaned (no longer in tables.yml, or excluded; kept): gone — `pipeline load --drop-orphans` drops them")
	assert.Equal(t, int64(2), mysqlCount(t, e.repl, "SELECT COUNT(*) FROM gone"), "kept")
	assert.Equal(t, int64(2), e.rawCount(t, "gone"), "kept")
	out = e.ok(t, "run", "--json")
	assert.Contains(t, out, `"warnings": [`)
	assert.Contains(t, out, "1 replica tables are orphaned")
	assert.Contains(t, out, "1 raw tables are orphaned")
	out = e.ok(t, "check")
	assert.Contains(t, out, "warning: 1 replica tables are orphaned (their source table is gone): gone")
	assert.Contains(t, out, "warning: 1 raw tables are orphaned (no longer in tables.yml, or excluded): gone")

	out = e.ok(t, "run", "--drop-orphans")
	assert.Contains(t, out, "1 orphaned replica tables dropped (their source table is gone): gone")
	assert.Contains(t, out, "1 orphaned raw tables dropped (no longer in tables.yml): gone")
	assert.Zero(t, mysqlCount(t, e.repl, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'gone'"))
	assert.Zero(t, mysqlCount(t, e.repl, "SELECT COUNT(*) FROM _pipeline_copy_status WHERE table_name = 'gone'"))
	var n int
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw' AND tablename = 'gone'").Scan(&n))
	assert.Zero(t, n)
	require.NoError(t, e.pg.QueryRow(context.Background(), "SELECT count(*) FROM pipeline.etl_load_status WHERE table_name = 'gone'").Scan(&n))
	assert.Zero(t, n)
	out = e.ok(t, "run")
	assert.NotContains(t, out, "orphan")
	assert.Contains(t, e.ok(t, "check"), "no orphaned tables")
}
