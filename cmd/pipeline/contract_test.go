package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// The command-line contract of issue 8: run takes every phase flag,
// replicate has --json, a bad --tables list is refused before anything is
// touched, discover needs no pipeline.yml, check accepts a fresh warehouse,
// batch_size: 0 is refused.

const contractTables = `tables:
  patient:
    primary_key: [PatNum]
    extraction_strategy: full_table
    importance: critical
  secret:
    primary_key: [Id]
    extraction_strategy: full_table
    exclude: true
`

// contractEnv is fresh databases in the process environment, a config dir
// with contractTables and a source holding those tables.
func contractEnv(t *testing.T) (cli func(args ...string) (int, string, string), dir string) {
	vars, _, _ := testVars(t)
	dir = useProcessEnv(t, vars)
	writeTables(t, dir, contractTables)
	mustExec(t, openTestMySQL(t, vars["TEST_OPENDENTAL_SOURCE_DB"]),
		"CREATE TABLE patient (PatNum BIGINT PRIMARY KEY, LName VARCHAR(20))", "INSERT INTO patient VALUES (1, 'Ann')",
		"CREATE TABLE secret (Id INT PRIMARY KEY)")
	return func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), append([]string{"--env", "test", "--config-dir", dir}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}, dir
}

func TestRunAcceptsEveryPhaseFlag(t *testing.T) {
	cli, _ := contractEnv(t)
	code, _, errOut := cli("replicate") // the load plan shows columns of tables in the replica
	require.Equal(t, exitOK, code, errOut)
	code, out, errOut := cli("run", "--dry-run", "--workers", "3", "--source-connections", "1", "--load-workers", "2",
		"--snake-case", "--full-refresh", "--tables", "patient")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^patient\s+full\s.*full copy`, out, "the replicate plan, --full-refresh")
	assert.Contains(t, out, `== patient → raw."patient"`, "the load plan")
	assert.Contains(t, out, "pat_num", "--snake-case reached the load phase")

	code, _, errOut = cli("run", "--workers", "-1")
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, errOut, "must not be negative")
}

func TestReplicateJSON(t *testing.T) {
	cli, _ := contractEnv(t)
	code, out, errOut := cli("replicate", "--json")
	require.Equal(t, exitOK, code, errOut)
	rep := decodeReport(t, out)
	assert.Equal(t, report.CommandReplicate, rep.Command)
	assert.Equal(t, report.StatusOK, rep.Status)
	assert.Zero(t, rep.ExitCode)
	require.Len(t, rep.Tables, 1, "replicate alone has no load entries")
	e := rep.Tables[0]
	assert.Equal(t, []any{"patient", report.PhaseReplicate, report.TableOK, int64(1)}, []any{e.Table, e.Phase, e.Status, e.RowsWritten})
	assert.Empty(t, e.Error)
	assert.Positive(t, e.SourceQueries)
	assert.Greater(t, rep.Totals.SourceQueries, e.SourceQueries, "the total adds the schema read")
}

// A --tables list naming an excluded or unknown table is refused by every
// phase command with exit 2, the message naming each table and its fix,
// and nothing is touched: no replica state, no raw table.
func TestTablesListIsCheckedBeforeAnythingIsTouched(t *testing.T) {
	cli, _ := contractEnv(t)
	replica := openTestMySQL(t, os.Getenv("TEST_MYSQL_REPLICATION_DB"))
	raw := openTestPostgres(t, os.Getenv("TEST_POSTGRES_ANALYTICS_DB"))
	for _, cmd := range []string{"replicate", "load", "run"} {
		t.Run(cmd, func(t *testing.T) {
			code, out, errOut := cli(cmd, "--tables", "patient,secret,nosuch")
			assert.Equal(t, exitConfig, code, out)
			assert.Contains(t, errOut, `--tables names "nosuch", not in tables.yml: check the spelling`)
			assert.Contains(t, errOut, `--tables names "secret", excluded in tables.yml: drop it from --tables or remove its `+"`exclude: true`")
			code, _, errOut = cli(cmd, "--tables", "secret")
			assert.Equal(t, exitConfig, code, "an excluded table alone is refused too")
			assert.Contains(t, errOut, `"secret", excluded in tables.yml`)
			var n int
			require.NoError(t, replica.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&n))
			assert.Zero(t, n, "no replica table or state")
			require.NoError(t, raw.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw'").Scan(&n))
			assert.Zero(t, n, "no raw table")
		})
	}
}

// A new user needs only the environment variables: no config directory,
// no pipeline.yml.
func TestDiscoverWithoutPipelineYML(t *testing.T) {
	vars, _, _ := testVars(t)
	useProcessEnv(t, vars)
	mustExec(t, openTestMySQL(t, vars["TEST_OPENDENTAL_SOURCE_DB"]), "CREATE TABLE patient (PatNum BIGINT PRIMARY KEY)")
	dir := filepath.Join(t.TempDir(), "config")
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "discover"}, &stdout, &stderr)
	require.Equal(t, exitOK, code, stderr.String())
	assert.Contains(t, stdout.String(), "wrote "+filepath.Join(dir, "tables.yml")+": 1 tables")
	assert.Contains(t, stdout.String(), "no pipeline.yml in "+dir+": the defaults apply")
	assert.Empty(t, stderr.String())
	assert.FileExists(t, filepath.Join(dir, "tables.yml"))
}

// On a fresh warehouse dbt's schemas (and raw, before the first load) do
// not exist yet: check says so and exits 0.
func TestCheckOnAFreshWarehouse(t *testing.T) {
	dir := checkEnv(t)
	pg := openTestPostgres(t, os.Getenv("TEST_POSTGRES_ANALYTICS_DB"))
	_, err := pg.Exec(context.Background(), "DROP SCHEMA staging, intermediate, marts")
	require.NoError(t, err)
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "check"}, &stdout, &stderr)
	out := stdout.String()
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())
	for _, s := range []string{"staging", "intermediate", "marts"} {
		assert.Regexp(t, `(?m)^analytics/`+s+`\s+\S+\s+\S+\s+not created yet\s`, out)
	}
	assert.Regexp(t, `(?m)^analytics/raw\s+\S+\s+\S+\s+ok\s`, out)
	assert.Contains(t, out, "schemas not created yet: staging, intermediate, marts (load creates raw, dbt the others; nothing to fix)")
	assert.Contains(t, out, "all 6 connections ok")
}

func TestBatchSizeZeroIsRefused(t *testing.T) {
	cli, dir := contractEnv(t)
	writeTables(t, dir, "tables:\n  patient:\n    primary_key: [PatNum]\n    extraction_strategy: full_table\n    batch_size: 0\n")
	code, _, errOut := cli("replicate")
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, errOut, filepath.Join(dir, "tables.yml")+`:5: table "patient": batch_size must be at least 1, got 0`)
}
