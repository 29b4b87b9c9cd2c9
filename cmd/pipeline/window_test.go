package main

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

const windowYML = "schedule: {window: \"21:00-06:00\", time_zone: UTC}\n"

// Outside schedule.window, run and replicate refuse to start (exit 5),
// naming the window and its next opening, without connecting to the
// source; --force overrides. The refusal is recorded.
func TestWindowRefusesToStart(t *testing.T) {
	o := newOps(t, windowYML)
	noon := at(time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC))
	port := os.Getenv("TEST_OPENDENTAL_SOURCE_PORT")
	require.NoError(t, os.Setenv("TEST_OPENDENTAL_SOURCE_PORT", "1")) // any connection attempt would fail: exit 4
	for _, cmd := range []string{"run", "replicate"} {
		code, out, errOut := o.cli(noon, cmd, "--json")
		require.Equal(t, exitOutsideWindow, code, "%s: %s", cmd, errOut)
		assert.Contains(t, errOut, "outside the run window: nothing was done: schedule.window is 21:00-06:00 UTC (pipeline.yml); it opens next at 2025-03-10 21:00 UTC", cmd)
		assert.Contains(t, errOut, "--force runs now anyway")
		rep := decodeReport(t, out)
		assert.Equal(t, []any{report.StatusOutsideWindow, exitOutsideWindow}, []any{rep.Status, rep.ExitCode}, cmd)
		assert.Empty(t, rep.Tables)
	}
	assert.Equal(t, 2, count(t, o.pg, "SELECT count(*) FROM pipeline.etl_run_history WHERE status = 'outside_window' AND exit_code = 5"))
	var n int
	require.NoError(t, o.repl.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()").Scan(&n))
	assert.Zero(t, n, "nothing in the replica")

	code, _, errOut := o.cli(noon, "run", "--force")
	assert.Equal(t, exitUnavailable, code, "--force starts the run, which then cannot reach the source: %s", errOut)
	require.NoError(t, os.Setenv("TEST_OPENDENTAL_SOURCE_PORT", port))
	code, _, errOut = o.cli(noon, "run", "--force")
	assert.Equal(t, exitOK, code, errOut)
	code, _, errOut = o.cli(at(time.Date(2025, 3, 10, 23, 0, 0, 0, time.UTC)), "run")
	assert.Equal(t, exitOK, code, "inside the window: %s", errOut)
}

// When the window closes mid-run, replication stops after the chunk it is
// committing, the load does not start, and the run reports it stopped by
// the window (exit 5); the next run finishes with a replica identical to
// the source.
func TestWindowStopsRunCleanly(t *testing.T) {
	o := newOps(t, windowYML)
	// Every reading of the clock moves it a minute on: the window (closing
	// at 06:00) closes after a few of patient's ten chunks of two rows.
	clock := &stepClock{now: time.Date(2025, 3, 10, 5, 55, 0, 0, time.UTC), step: time.Minute}
	code, out, errOut := o.cli(clock.Now, "run", "--json")
	require.Equal(t, exitOutsideWindow, code, errOut)
	assert.Contains(t, errOut, "stopped by the window, resumes next run: schedule.window 21:00-06:00 UTC closed at 06:00 UTC")
	rep := decodeReport(t, out)
	assert.Equal(t, []any{report.StatusStoppedByWindow, exitOutsideWindow}, []any{rep.Status, rep.ExitCode})
	assert.Contains(t, rep.Error, "committed work is kept")
	assert.Equal(t, 2, rep.Totals.TablesStopped)
	assert.Zero(t, rep.Totals.TablesFailed)
	entries := map[string]report.Table{}
	for _, e := range rep.Tables {
		entries[e.Table+" "+string(e.Phase)] = e
		assert.Equal(t, report.TableStopped, e.Status, "%s %s", e.Table, e.Phase)
	}
	p := entries["patient replicate"]
	assert.Greater(t, p.RowsWritten, int64(0), "some chunks were committed")
	assert.Less(t, p.RowsWritten, int64(20), "not all")
	assert.Zero(t, entries["definition replicate"].RowsRead, "not begun")
	assert.Equal(t, "not_started", entries["patient load"].Mode, "the load does not start after the window closed")

	copied := rows(t, o.repl, "patient")
	assert.Len(t, copied, int(p.RowsWritten), "the committed chunks are kept")
	assert.Equal(t, rows(t, o.src, "patient")[:len(copied)], copied, "the first rows by key, exactly")
	var status string
	require.NoError(t, o.repl.QueryRow("SELECT status FROM _pipeline_copy_status WHERE table_name = 'patient'").Scan(&status))
	assert.Equal(t, "stopped", status)
	assert.Zero(t, count(t, o.pg, "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw' AND tablename = 'patient'"), "raw untouched")
	assert.Equal(t, 1, count(t, o.pg, "SELECT count(*) FROM pipeline.etl_run_history WHERE status = 'stopped_by_window'"))

	// The next night: the copy resumes and everything arrives.
	code, out, errOut = o.cli(at(time.Date(2025, 3, 10, 22, 0, 0, 0, time.UTC)), "run", "--json")
	require.Equal(t, exitOK, code, errOut)
	rep = decodeReport(t, out)
	for _, e := range rep.Tables {
		if e.Table == "patient" && e.Phase == report.PhaseReplicate {
			assert.Equal(t, int64(20)-p.RowsWritten, e.RowsRead, "resumed after the last committed chunk")
		}
	}
	for _, table := range []string{"patient", "definition"} {
		assert.Equal(t, rows(t, o.src, table), rows(t, o.repl, table), table)
	}
	assert.Equal(t, 20, count(t, o.pg, "SELECT count(*) FROM raw.patient"))
	assert.Equal(t, 3, count(t, o.pg, "SELECT count(*) FROM raw.definition"))
}
