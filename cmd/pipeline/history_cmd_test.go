package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

// Every replicate, load and run is recorded in the run history — one run
// row, one row per table per phase — however it ends (locked out,
// interrupted, a configuration error), a dry run excepted; runs older than
// history.retention_days are pruned (the clock is injected).
func TestHistoryRecordsEveryCommand(t *testing.T) {
	o := newOps(t, "history: {retention_days: 30}\n")
	ctx := context.Background()
	day := time.Date(2025, 3, 10, 2, 0, 0, 0, time.UTC)
	runs := func() int { return count(t, o.pg, "SELECT count(*) FROM pipeline.etl_run_history") }
	tableRows := func(command string) int {
		return count(t, o.pg, "SELECT count(*) FROM pipeline.etl_table_history WHERE command = $1", command)
	}
	last := func() (status string, exit int, errText *string) {
		require.NoError(t, o.pg.QueryRow(ctx, "SELECT status, exit_code, error FROM pipeline.etl_run_history ORDER BY started_at DESC LIMIT 1").
			Scan(&status, &exit, &errText))
		return status, exit, errText
	}

	code, _, errOut := o.cli(at(day), "replicate")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 1, runs())
	assert.Equal(t, 2, tableRows("replicate"), "one row per table")
	code, _, errOut = o.cli(at(day.Add(time.Hour)), "load")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 2, tableRows("load"))

	code, out, errOut := o.cli(at(day.Add(2*time.Hour)), "run", "--json")
	require.Equal(t, exitOK, code, errOut)
	rep := decodeReport(t, out)
	assert.Equal(t, 4, tableRows("run"), "two tables, two phases")
	var stored []byte
	require.NoError(t, o.pg.QueryRow(ctx, "SELECT report FROM pipeline.etl_run_history WHERE run_id = $1", rep.RunID).Scan(&stored))
	back, err := report.Decode(stored)
	require.NoError(t, err)
	assert.Equal(t, rep, back, "the history holds the very result --json printed")
	assert.True(t, rep.StartedAt.Equal(day.Add(2*time.Hour)), "the injected clock")
	assert.Equal(t, "20250310T040000Z", rep.RunID[:16])

	code, _, errOut = o.cli(at(day.Add(3*time.Hour)), "run", "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 3, runs(), "a dry run changes nothing, history included")

	release, err := lock.Warehouse(ctx, connections.AnalyticsRawDB{Pool: o.pg})
	require.NoError(t, err)
	code, _, _ = o.cli(at(day.Add(4*time.Hour)), "load")
	release()
	require.Equal(t, exitLocked, code)
	status, exit, errText := last()
	assert.Equal(t, []any{"locked", exitLocked}, []any{status, exit})
	require.NotNil(t, errText)
	assert.Contains(t, *errText, "another pipeline run or load is running")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	code, _, _ = o.cliCtx(cancelled, at(day.Add(5*time.Hour)), "load")
	require.Equal(t, exitInterrupted, code)
	status, exit, _ = last()
	assert.Equal(t, []any{"interrupted", exitInterrupted}, []any{status, exit}, "recorded although the command's context is gone")

	code, _, _ = o.cli(at(day.Add(6*time.Hour)), "run", "--tables", "nope")
	require.Equal(t, exitConfig, code)
	status, exit, errText = last()
	assert.Equal(t, []any{"config_error", exitConfig}, []any{status, exit})
	assert.Contains(t, *errText, `"nope"`)
	assert.Equal(t, 6, runs())

	// 35 days on, the first write of a run prunes everything older than 30
	// days: the six runs above, their table rows with them.
	code, _, errOut = o.cli(at(day.Add(35*24*time.Hour)), "load")
	require.Equal(t, exitOK, code, errOut)
	assert.Equal(t, 1, runs())
	assert.Zero(t, tableRows("run")+tableRows("replicate"))
	assert.Equal(t, 2, tableRows("load"), "only the new load's")

	// A history that cannot be written is a warning, never a failed run.
	t.Setenv("TEST_POSTGRES_ANALYTICS_PORT", "1")
	code, out, errOut = o.cli(at(day.Add(36*24*time.Hour)), "replicate", "--json")
	require.Equal(t, exitOK, code, errOut)
	rep = decodeReport(t, out)
	require.Len(t, rep.Warnings, 1)
	assert.Contains(t, rep.Warnings[0], "the run was not recorded in the run history")
	assert.Contains(t, errOut, "level=WARN")
}
