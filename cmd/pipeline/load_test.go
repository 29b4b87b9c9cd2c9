package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// loadEnv points the test environment at fresh databases, fills the
// replica with two small tables and returns the config dir and a pool on
// the analytics database.
func loadEnv(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	vars, _, pgName := testVars(t)
	dir := useProcessEnv(t, vars)

	repl, err := testdb.OpenMySQL(testdb.MySQLConfig(vars["TEST_MYSQL_REPLICATION_DB"], catalog.DatabaseReplication))
	require.NoError(t, err)
	defer repl.Close()
	for _, s := range []string{
		"CREATE TABLE patient (PatNum bigint PRIMARY KEY, LName varchar(50), Birthdate date NOT NULL)",
		"INSERT INTO patient VALUES (1, 'A', '0000-00-00'), (2, 'B', '1980-01-01')",
		"CREATE TABLE definition (DefNum bigint PRIMARY KEY, ItemName varchar(50))",
		"INSERT INTO definition VALUES (1, 'x')",
	} {
		_, err := repl.Exec(s)
		require.NoError(t, err)
	}
	cfg := testdb.PostgresConfig(pgName, catalog.SchemaRaw)
	pool, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", cfg.User, cfg.Addr(), cfg.Name))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return dir, pool
}

func TestLoadCommand(t *testing.T) {
	dir, pg := loadEnv(t)
	ctx := context.Background()
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(ctx, append([]string{"--config-dir", dir, "--env", "test"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}

	code, out, errOut := run("load", "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, `"Birthdate" date`)
	assert.Contains(t, out, `== patient → raw."patient": full (raw table does not exist yet)`)
	assert.Contains(t, out, "nothing was changed")
	var n int
	require.NoError(t, pg.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw'").Scan(&n))
	assert.Zero(t, n)

	code, out, errOut = run("load", "--json")
	require.Equal(t, exitOK, code, errOut)
	rep := decodeReport(t, out)
	assert.Equal(t, report.CommandLoad, rep.Command)
	require.Len(t, rep.Tables, 2, "load alone has no replicate entries")
	for _, e := range rep.Tables {
		assert.Equal(t, report.PhaseLoad, e.Phase, e.Table)
		assert.Equal(t, report.TableOK, e.Status, e.Table)
		assert.Equal(t, string(load.ModeFull), e.Mode)
		assert.Zero(t, e.SourceQueries, "the load never reads the source")
	}
	assert.Equal(t, report.Conversions{"Birthdate": {"zero_date": 1}}, rep.Tables[1].Conversions, "patient, the larger table, loads second")
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM raw.patient WHERE "Birthdate" IS NULL`).Scan(&n))
	assert.Equal(t, 1, n)

	code, out, errOut = run("load", "--tables", "patient", "--full-refresh")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^\s*patient\s+full\s+ok\s+2\s+2\s+0\s+1\s`, out)
	assert.Contains(t, out, "converted patient.Birthdate: zero_date=1")

	// A failing table: exit 1 with --json too, the JSON saying which.
	_, err := pg.Exec(ctx, `CREATE VIEW staging.v AS SELECT "LName" FROM raw.patient`)
	require.NoError(t, err)
	_, err = pg.Exec(ctx, `UPDATE pipeline.etl_load_status SET signature = '{}' WHERE table_name = 'patient'`)
	require.NoError(t, err)
	code, out, _ = run("load", "--json")
	assert.Equal(t, exitFailed, code)
	rep = decodeReport(t, out)
	assert.Equal(t, report.StatusFailed, rep.Status)
	assert.Equal(t, exitFailed, rep.ExitCode)
	assert.Equal(t, 1, rep.Totals.TablesFailed)
	_, err = pg.Exec(ctx, `DROP VIEW staging.v`)
	require.NoError(t, err)

	code, _, errOut = run("load", "--tables", "nope")
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, errOut, `"nope"`)

	code, _, _ = run("load", "stray")
	assert.Equal(t, exitConfig, code)

	// A second run while one holds the warehouse is refused.
	release, err := lock.Warehouse(ctx, connections.AnalyticsRawDB{Pool: pg})
	require.NoError(t, err)
	code, _, errOut = run("load")
	release()
	assert.Equal(t, exitLocked, code)
	assert.Contains(t, errOut, "another pipeline run or load is running")
}

func TestProgressLogsEachParallelTable(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	p := newProgress(&buf, slog.New(slog.NewTextHandler(&buf, nil)))
	require.False(t, p.tty, "a buffer is no terminal")
	p.update("a", 1, 10)
	p.update("b", 1, 10)
	p.started["a"] = p.started["a"].Add(-6 * time.Second) // a has been running for 6 s
	p.started["b"] = p.started["b"].Add(-6 * time.Second)
	p.update("a", 5, 10)
	p.update("b", 7, 10)
	p.update("a", 10, 10)
	out := buf.String()
	assert.Contains(t, out, "table=a rows=5 of=10")
	assert.Contains(t, out, "table=b rows=7 of=10")
	assert.NotContains(t, out, "rows=10", "the finished table is logged by the loader, not here")
	assert.NotContains(t, p.started, "a")
}
