package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

// status reads only the pipeline's own state: these runs of it have no
// source variables at all.
func (o *ops) status(t *testing.T, clock func() time.Time, args ...string) (int, string, string) {
	t.Helper()
	vars := []string{"HOST", "PORT", "DB", "USER", "PASSWORD"}
	saved := map[string]string{}
	for _, v := range vars {
		name := "TEST_OPENDENTAL_SOURCE_" + v
		saved[name] = os.Getenv(name)
		require.NoError(t, os.Unsetenv(name))
	}
	defer func() {
		for k, v := range saved {
			require.NoError(t, os.Setenv(k, v))
		}
	}()
	return o.cli(clock, append([]string{"status"}, args...)...)
}

func byTable(rep *report.Report) map[string]report.Table {
	out := map[string]report.Table{}
	for _, e := range rep.Tables {
		out[e.Table] = e
	}
	return out
}

// breakLoad makes table's next load fail: its load state claims another
// raw shape, so the load rebuilds it, which a dependent view forbids.
func (o *ops) breakLoad(t *testing.T, table string) func() {
	t.Helper()
	ctx := context.Background()
	_, err := o.pg.Exec(ctx, `CREATE VIEW staging.v AS SELECT * FROM raw.`+table)
	require.NoError(t, err)
	_, err = o.pg.Exec(ctx, `UPDATE `+load.StateSchema+`.`+load.StatusTable+` SET signature = '{}' WHERE table_name = $1`, table)
	require.NoError(t, err)
	return func() {
		_, err := o.pg.Exec(ctx, `DROP VIEW staging.v`)
		require.NoError(t, err)
	}
}

// pipeline status before any run, after a successful one, with a stale
// table and after a failed table: exit codes and the JSON fields.
func TestStatusCommand(t *testing.T) {
	o := newOps(t, "")

	// Before any run: nothing was ever confirmed current.
	code, out, errOut := o.status(t, nil, "--json")
	require.Equal(t, exitFailed, code, errOut)
	rep := decodeReport(t, out)
	assert.Equal(t, []any{report.CommandStatus, report.StatusStale, exitFailed}, []any{rep.Command, rep.Status, rep.ExitCode})
	assert.Nil(t, rep.LastRun)
	assert.Equal(t, 26*3600.0, rep.StaleAfterSeconds, "pipeline.yml's default")
	require.Len(t, rep.Tables, 2)
	for _, e := range rep.Tables {
		assert.Equal(t, report.TableStale, e.Status, e.Table)
		assert.Nil(t, e.Freshness.ConfirmedCurrentAt, e.Table)
		assert.Empty(t, e.Phase, "one entry per table")
	}
	code, out, _ = o.status(t, nil)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "last run: none recorded yet; 2 tables: 0 ok, 2 stale, 0 failing")

	// After a successful run: current, raw holds every replica commit.
	code, out, errOut = o.cli(nil, "run", "--json")
	require.Equal(t, exitOK, code, errOut)
	run := decodeReport(t, out)
	code, out, errOut = o.status(t, nil, "--json")
	require.Equal(t, exitOK, code, "%s\n%s", out, errOut)
	rep = decodeReport(t, out)
	assert.Equal(t, report.StatusOK, rep.Status)
	require.NotNil(t, rep.LastRun)
	assert.Equal(t, []any{run.RunID, report.CommandRun, report.StatusOK}, []any{rep.LastRun.RunID, rep.LastRun.Command, rep.LastRun.Status})
	p := byTable(rep)["patient"]
	f := p.Freshness
	assert.Equal(t, report.TableOK, p.Status)
	require.NotNil(t, f.ConfirmedCurrentAt)
	assert.True(t, f.ConfirmedCurrentAt.Equal(run.Tables[0].StartedAt), "as of the replicate's start: %v", f.ConfirmedCurrentAt)
	assert.Equal(t, []any{"full", int64(20)}, []any{f.LastReplicate.Mode, f.LastReplicate.RowsWritten})
	assert.Equal(t, []any{"full", int64(20), run.RunID}, []any{f.LastLoad.Mode, f.LastLoad.RowsWritten, f.LastLoad.RunID})
	assert.Equal(t, "2024-01-01 00:20:00", f.Watermark)
	assert.Equal(t, "ok", f.ReplicaStatus)
	assert.Equal(t, []any{int64(0), 0.0}, []any{*f.ChangesBehind, *f.LagSeconds})
	assert.Equal(t, *f.ReplicaChangeSeq, *f.LoadedChangeSeq)
	assert.Equal(t, report.Conversions{"Birthdate": {"zero_date": 1}}, p.Conversions)
	assert.Nil(t, f.LastFailure)
	assert.Nil(t, f.LastVerify, "never verified")

	// A day and a half later, with nothing run since: stale.
	later := time.Now().Add(36 * time.Hour)
	code, out, _ = o.status(t, at(later), "--json")
	assert.Equal(t, exitFailed, code)
	rep = decodeReport(t, out)
	assert.Equal(t, report.StatusStale, rep.Status)
	assert.Equal(t, 2, rep.Totals.TablesStale)
	// --stale-after widens it; --tables narrows the list.
	code, out, _ = o.status(t, at(later), "--json", "--stale-after", "48h", "--tables", "patient")
	assert.Equal(t, exitOK, code)
	rep = decodeReport(t, out)
	require.Len(t, rep.Tables, 1)
	assert.Equal(t, 48*3600.0, rep.StaleAfterSeconds)

	// The source changes, the replicate copies it, raw lags the replica.
	mustExec(t, o.src, "UPDATE patient SET LName = 'moved', DateTStamp = '2024-02-01 00:00:00' WHERE PatNum = 5")
	code, _, errOut = o.cli(nil, "replicate")
	require.Equal(t, exitOK, code, errOut)
	code, out, _ = o.status(t, nil, "--json")
	assert.Equal(t, exitOK, code, "the last confirmation is recent enough")
	f = byTable(decodeReport(t, out))["patient"].Freshness
	assert.Equal(t, int64(1), *f.ChangesBehind, "one replica commit raw does not hold")
	assert.Positive(t, *f.LagSeconds)

	// A failed table: exit 1, failing with its error, but not stale.
	restore := o.breakLoad(t, "definition")
	code, _, _ = o.cli(nil, "run")
	require.Equal(t, exitFailed, code)
	restore()
	code, out, _ = o.status(t, nil, "--json")
	assert.Equal(t, exitFailed, code)
	rep = decodeReport(t, out)
	assert.Equal(t, report.StatusFailed, rep.Status)
	d := byTable(rep)["definition"]
	assert.Equal(t, report.TableFailed, d.Status)
	assert.NotEmpty(t, d.Error)
	assert.True(t, d.Freshness.Failing)
	assert.False(t, d.Freshness.Stale)
	assert.Equal(t, report.PhaseLoad, d.Freshness.LastFailure.Phase)
	assert.Equal(t, report.TableOK, byTable(rep)["patient"].Status)
	code, out, _ = o.status(t, nil)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out, "FAILING definition (load, ")

	// The next good run clears it.
	code, _, errOut = o.cli(nil, "run")
	require.Equal(t, exitOK, code, errOut)
	code, _, errOut = o.status(t, nil)
	assert.Equal(t, exitOK, code, errOut)
}
