package status_test

import (
	"bytes"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/status"
)

var now = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

func entry(phase report.Phase, st report.TableStatus, start time.Time) history.Entry {
	return history.Entry{RunID: "r-" + start.Format("0102T15"), Command: report.CommandRun,
		Table: report.Table{Phase: phase, Status: st, Mode: "incremental", StartedAt: start, FinishedAt: start.Add(time.Minute), RowsWritten: 5}}
}

func seq(n int64) *int64 { return &n }

// table is a table replicated and loaded at night (hours before now), its
// replica at change_seq replicaSeq and raw holding loadedSeq.
func table(name string, night time.Duration, replicaSeq, loadedSeq int64) status.Table {
	start := now.Add(-night)
	loadStart := start.Add(10 * time.Minute)
	return status.Table{Name: name,
		History: history.TableStatus{Table: name, ConfirmedCurrent: start,
			LastSuccess: map[report.Phase]history.Entry{report.PhaseReplicate: entry(report.PhaseReplicate, report.TableOK, start),
				report.PhaseLoad: entry(report.PhaseLoad, report.TableOK, loadStart)},
			Latest: map[report.Phase]history.Entry{}},
		Replica: &state.Row{Table: name, Status: state.StatusOK, ChangeSeq: replicaSeq, Watermark: sql.NullString{String: "2025-03-10 01:59:58", Valid: true},
			LastRunEnd: sql.NullString{String: loadStart.Add(30 * time.Minute).Format("2006-01-02 15:04:05.000000"), Valid: true}},
		Load: &load.State{Table: name, Status: load.StatusOK, ChangeSeq: seq(loadedSeq), Conversions: map[string]map[string]int64{"Birthdate": {"zero_date": 3}}},
	}
}

func TestBuildVerdicts(t *testing.T) {
	t.Parallel()
	o := status.Options{Now: now, StaleAfter: 26 * time.Hour, RunID: "status-1"}
	fresh := table("patient", 9*time.Hour, 7, 7)
	behind := table("claim", 10*time.Hour, 9, 7)
	old := table("procedurelog", 30*time.Hour, 3, 3)
	failing := table("appointment", 10*time.Hour, 4, 4)
	f := entry(report.PhaseLoad, report.TableFailed, now.Add(-time.Hour))
	f.Error = "raw row count 9 differs from the replica's 10"
	failing.History.LastFailure = &f
	never := status.Table{Name: "newtable"}

	cases := []struct {
		name    string
		tables  []status.Table
		verdict report.Status
		oldest  string
	}{
		{"all current", []status.Table{fresh, behind}, report.StatusOK, "claim"},
		{"a failed table", []status.Table{fresh, failing}, report.StatusFailed, "appointment"},
		{"a stale table", []status.Table{fresh, failing, old}, report.StatusStale, "procedurelog"},
		{"never run", []status.Table{never, fresh}, report.StatusStale, "newtable"},
		{"no tables", nil, report.StatusOK, ""},
	}
	for _, c := range cases {
		rep, verdict := status.Build(c.tables, nil, o)
		assert.Equal(t, c.verdict, verdict, c.name)
		assert.Equal(t, c.oldest, rep.OldestTable, c.name)
		assert.Equal(t, report.CommandStatus, rep.Command)
		assert.Equal(t, 26*3600.0, rep.StaleAfterSeconds)
	}

	last := report.New(report.CommandRun, "run-9", now.Add(-10*time.Hour)).Finish(now.Add(-9*time.Hour), report.StatusOK, 0)
	rep, _ := status.Build([]status.Table{behind, failing, old, never}, last, o)
	rep.Finish(now, report.StatusStale, 1)
	assert.Equal(t, "run-9", rep.LastRun.RunID)
	byName := map[string]report.Table{}
	for _, e := range rep.Tables {
		byName[e.Table] = e
		assert.Empty(t, e.Phase, "status entries are per table")
	}
	c := byName["claim"]
	assert.Equal(t, report.TableOK, c.Status)
	require.NotNil(t, c.Freshness.ChangesBehind)
	assert.Equal(t, int64(2), *c.Freshness.ChangesBehind, "replica change_seq 9, raw holds 7")
	assert.Equal(t, 30*60.0, *c.Freshness.LagSeconds, "the replica's last copy ended 30 minutes after the load raw holds began")
	assert.Equal(t, "2025-03-10 01:59:58", c.Freshness.Watermark)
	assert.Equal(t, int64(3), c.ConversionTotal())
	assert.Equal(t, 10*3600.0, *c.Freshness.AgeSeconds)
	assert.Equal(t, report.TableFailed, byName["appointment"].Status)
	assert.Contains(t, byName["appointment"].Error, "differs from the replica")
	assert.True(t, byName["appointment"].Freshness.Failing)
	assert.Equal(t, report.TableStale, byName["procedurelog"].Status)
	assert.Zero(t, *byName["procedurelog"].Freshness.LagSeconds, "raw holds every replica commit")
	n := byName["newtable"]
	assert.Equal(t, report.TableStale, n.Status)
	assert.Nil(t, n.Freshness.ConfirmedCurrentAt)
	assert.Nil(t, n.Freshness.ChangesBehind, "no replica state: unknown")
	assert.Equal(t, report.Totals{Tables: 4, TablesOK: 1, TablesFailed: 1, TablesStale: 2, RowsWritten: 15, Conversions: 9}, rep.Totals)

	var out bytes.Buffer
	status.Write(&out, rep)
	text := out.String()
	assert.Contains(t, text, "last run: run run-9 at 2025-03-10 02:00 UTC: ok (exit 0, 1h0m0s); 4 tables: 1 ok, 2 stale, 1 failing; oldest: newtable (confirmed current never); stale after 26h0m0s")
	assert.Regexp(t, `(?m)^claim\s+ok\s+2025-03-10 02:00 UTC\s+10h00m\s+03-10 02:01 incremental 5 rows\s+03-10 02:11 incremental 5 rows\s+2025-03-10 01:59:58\s+2\s+30m0s\s+3\s+never$`, text)
	assert.Regexp(t, `(?m)^newtable\s+stale\s+never\s+-\s+never\s+never\s+-\s+-\s+-\s+0\s+never$`, text)
	assert.Contains(t, text, "FAILING appointment (load, 2025-03-10 11:00 UTC): raw row count 9 differs from the replica's 10")
}
