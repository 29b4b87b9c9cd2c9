package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

const runTablesYML = `tables:
  patient:
    primary_key: [PatNum]
    watermark_columns: [DateTStamp]
    extraction_strategy: incremental
    batch_size: 1000
    importance: critical
    estimated_rows: 3
    estimated_size_mb: 0
`

func TestRunReplicatesThenLoads(t *testing.T) {
	dir, pg := loadEnv(t)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tables.yml"), []byte(runTablesYML), 0o600))
	src, err := testdb.OpenMySQL(testdb.MySQLConfig(os.Getenv("TEST_OPENDENTAL_SOURCE_DB"), catalog.DatabaseSource))
	require.NoError(t, err)
	defer src.Close()
	for _, s := range []string{
		"CREATE TABLE patient (PatNum bigint PRIMARY KEY, LName varchar(50), DateTStamp timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp())",
		"INSERT INTO patient VALUES (1, 'Ann', '2024-01-01 00:00:00'), (2, 'Bob', '2024-01-02 00:00:00'), (3, 'Cy', '2024-01-03 00:00:00')",
	} {
		_, err := src.Exec(s)
		require.NoError(t, err)
	}
	ctx := context.Background()
	var stdout, stderr bytes.Buffer

	// A table name tables.yml does not know is a configuration error.
	code := dispatch(ctx, []string{"--config-dir", dir, "--env", "test", "run", "--tables", "nope"}, &stdout, &stderr)
	assert.Equal(t, exitConfig, code, stderr.String())
	assert.Contains(t, stderr.String(), "nope")

	// No subcommand is `run`.
	stdout.Reset()
	code = dispatch(ctx, []string{"--config-dir", dir, "--env", "test"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Regexp(t, `(?m)^\s*patient\s+full\s+ok\s+3\s+3\s`, stdout.String())

	// A change at the source flows through both phases; --dry-run first
	// plans both and changes nothing.
	_, err = src.Exec("UPDATE patient SET LName = 'Bobby', DateTStamp = '2024-02-01 00:00:00' WHERE PatNum = 2")
	require.NoError(t, err)
	stdout.Reset()
	code = dispatch(ctx, []string{"--config-dir", dir, "--env", "test", "run", "--dry-run"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), "nothing was changed")
	var name string
	repl, err := testdb.OpenMySQL(testdb.MySQLConfig(os.Getenv("TEST_MYSQL_REPLICATION_DB"), catalog.DatabaseReplication))
	require.NoError(t, err)
	defer repl.Close()
	require.NoError(t, repl.QueryRow("SELECT LName FROM patient WHERE PatNum = 2").Scan(&name))
	assert.Equal(t, "Bob", name, "replica unchanged")
	require.NoError(t, pg.QueryRow(ctx, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 2`).Scan(&name))
	assert.Equal(t, "Bob", name, "raw unchanged")

	stdout.Reset()
	code = dispatch(ctx, []string{"--config-dir", dir, "--env", "test", "run", "--json"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	rep := decodeReport(t, stdout.String())
	require.Len(t, rep.Tables, 2)
	assert.Equal(t, []any{report.PhaseReplicate, report.TableOK, "incremental", int64(2)}, // from the last watermark, inclusive
		[]any{rep.Tables[0].Phase, rep.Tables[0].Status, rep.Tables[0].Mode, rep.Tables[0].RowsWritten}, rep.Tables[0].Error)
	assert.Equal(t, []any{report.PhaseLoad, report.TableOK, string(load.ModeIncremental), int64(1)},
		[]any{rep.Tables[1].Phase, rep.Tables[1].Status, rep.Tables[1].Mode, rep.Tables[1].RowsWritten}, rep.Tables[1].Error)
	assert.Equal(t, report.StatusOK, rep.Status)
	assert.Zero(t, rep.Totals.TablesFailed)
	require.NoError(t, pg.QueryRow(ctx, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 2`).Scan(&name))
	assert.Equal(t, "Bobby", name)

	// A second run while one holds the warehouse, or while a replicate holds
	// the replica, is refused ("locked, retry later") and touches nothing.
	_, err = src.Exec("UPDATE patient SET LName = 'Later', DateTStamp = '2024-03-01 00:00:00' WHERE PatNum = 2")
	require.NoError(t, err)
	release, err := lock.Warehouse(ctx, connections.AnalyticsRawDB{Pool: pg})
	require.NoError(t, err)
	stderr.Reset()
	code = dispatch(ctx, []string{"--config-dir", dir, "--env", "test", "run"}, &stdout, &stderr)
	release()
	assert.Equal(t, exitLocked, code)
	assert.Contains(t, stderr.String(), "running against this warehouse")

	replica, err := factory.New().MySQL(testdb.MySQLConfig(os.Getenv("TEST_MYSQL_REPLICATION_DB"), catalog.DatabaseReplication))
	require.NoError(t, err)
	defer replica.Close()
	release, err = lock.Replica(ctx, connections.ReplicationDB{DB: replica})
	require.NoError(t, err)
	for _, cmd := range []string{"run", "replicate"} {
		stderr.Reset()
		code = dispatch(ctx, []string{"--config-dir", dir, "--env", "test", cmd}, &stdout, &stderr)
		assert.Equal(t, exitLocked, code, cmd)
		assert.Contains(t, stderr.String(), "another pipeline replicate is running against this replica", cmd)
	}
	release()
	require.NoError(t, repl.QueryRow("SELECT LName FROM patient WHERE PatNum = 2").Scan(&name))
	assert.Equal(t, "Bobby", name, "replica unchanged")
	require.NoError(t, pg.QueryRow(ctx, `SELECT "LName" FROM raw.patient WHERE "PatNum" = 2`).Scan(&name))
	assert.Equal(t, "Bobby", name, "raw unchanged")
}
