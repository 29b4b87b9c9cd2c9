package report_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.json")

var chicago = func() *time.Location {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		panic(err)
	}
	return loc
}()

// sample is a `pipeline run` with a table of every kind: replicated and
// loaded with conversions and a schema change, a failed load, a table
// stopped by the window, and a verify entry.
func sample() *report.Report {
	start := time.Date(2025, 3, 9, 21, 0, 0, 123456789, chicago) // CDT, not UTC, on purpose
	r := report.New(report.CommandRun, "20250310T020000Z-0a1b2c3d", start)
	r.Add(
		report.Table{Table: "patient", Phase: report.PhaseReplicate, Mode: "incremental", Status: report.TableOK,
			DurationSeconds: 1.5, RowsRead: 120, RowsWritten: 120, RowsDeleted: 2, SourceQueries: 7,
			SchemaChanges: []string{"patient: added column Ward varchar(20)"}},
		report.Table{Table: "patient", Phase: report.PhaseLoad, Mode: "incremental", Status: report.TableOK,
			StartedAt: start.Add(10 * time.Second), DurationSeconds: 0.25, RowsRead: 120, RowsWritten: 118, RowsDeleted: 2,
			Conversions: report.Conversions{"Birthdate": {"zero_date": 3}, "FName": {"nul_byte": 1}}},
		report.Table{Table: "claim", Phase: report.PhaseLoad, Mode: "full", Status: report.TableFailed,
			StartedAt: start.Add(11 * time.Second), DurationSeconds: 2, RowsRead: 10,
			Error: "raw row count 9 differs from the replica's 10"},
		report.Table{Table: "securitylog", Phase: report.PhaseReplicate, Mode: "full", Status: report.TableStopped,
			DurationSeconds: 30, RowsRead: 50000, RowsWritten: 50000, SourceQueries: 25},
		report.Table{Table: "procedurelog", Phase: report.PhaseVerify, Mode: "ranges", Status: report.TableDiffers,
			StartedAt: start.Add(12 * time.Second), DurationSeconds: 3, SourceQueries: 12,
			Verify: &report.Verify{Complete: true, Hops: []report.HopResult{
				{Hop: report.HopSourceReplica, RowsCompared: 1000, Missing: 1, Changed: 2, SampleKeys: []string{"ProcNum=17", "ProcNum=20", "ProcNum=31"}},
				{Hop: report.HopReplicaRaw, Identical: true, RowsCompared: 1000},
			}}},
	)
	r.Warnings = []string{"1 source table is not in tables.yml (not copied): newtable"}
	return r.Finish(start.Add(95*time.Second), r.TablesStatus(), 1)
}

// TestGolden pins the JSON schema: a field renamed, removed or retyped
// changes the golden file, which must then come with a Version bump.
func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, sample().Encode(&buf))
	path := filepath.Join("testdata", "run.golden.json")
	if *update {
		require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), buf.String(), "JSON schema changed: update with -update and bump report.Version if the change is not additive")
}

func TestFinishTotalsAndTimes(t *testing.T) {
	r := sample()
	assert.Equal(t, report.Version, r.Version)
	assert.Equal(t, report.StatusFailed, r.Status)
	assert.Equal(t, time.UTC, r.StartedAt.Location())
	assert.Equal(t, "2025-03-10T02:00:00.123456Z", r.StartedAt.Format(time.RFC3339Nano), "UTC, microseconds")
	assert.Equal(t, 95.0, r.DurationSeconds)
	assert.Equal(t, report.Totals{
		Tables: 4, TablesOK: 1, TablesFailed: 1, TablesDiffer: 1, TablesStopped: 1,
		RowsRead: 50250, RowsWritten: 50238, RowsDeleted: 4, Conversions: 4, SchemaChanges: 1, SourceQueries: 44,
	}, r.Totals)
	// An entry without a start takes the run's; its end is start + duration.
	assert.Equal(t, r.StartedAt, r.Tables[0].StartedAt)
	assert.Equal(t, r.StartedAt.Add(1500*time.Millisecond), r.Tables[0].FinishedAt)
	assert.Equal(t, []string{"claim", "procedurelog"}, []string{r.Problems()[0].Table, r.Problems()[1].Table})
	assert.Equal(t, []string{"claim", "patient", "procedurelog", "securitylog"}, r.SortedTables())
}

func TestTablesStatus(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r := report.New(report.CommandLoad, "x", start)
	assert.Equal(t, report.StatusOK, r.TablesStatus(), "no tables: ok")
	r.Add(report.Table{Table: "a", Phase: report.PhaseLoad, Status: report.TableOK},
		report.Table{Table: "b", Phase: report.PhaseLoad, Status: report.TableStopped})
	assert.Equal(t, report.StatusOK, r.TablesStatus(), "stopped tables are not failures")
	r.Add(report.Table{Table: "c", Phase: report.PhaseLoad, Status: report.TableFailed})
	assert.Equal(t, report.StatusFailed, r.TablesStatus())
	assert.Equal(t, []report.Table{}, report.New(report.CommandRun, "y", start).Tables, "tables encode as [], never null")
}

func TestDecodeRoundTripAndVersion(t *testing.T) {
	want := sample()
	var buf bytes.Buffer
	require.NoError(t, want.Encode(&buf))
	got, err := report.Decode(buf.Bytes())
	require.NoError(t, err)
	assert.Equal(t, want, got)

	_, err = report.Decode([]byte(`{"version": 2, "command": "run"}`))
	assert.ErrorIs(t, err, report.ErrVersion)
	assert.Contains(t, err.Error(), "got version 2")
	_, err = report.Decode([]byte(`{"command": "run"}`))
	assert.ErrorIs(t, err, report.ErrVersion, "a document without a version is not a report")
	_, err = report.Decode([]byte(`{`))
	assert.Error(t, err)
}

func TestStatusFailure(t *testing.T) {
	failure := map[report.Status]bool{
		report.StatusOK: false, report.StatusOutsideWindow: false, report.StatusStoppedByWindow: false,
		report.StatusFailed: true, report.StatusStale: true, report.StatusConfigError: true,
		report.StatusLocked: true, report.StatusUnavailable: true, report.StatusInterrupted: true,
	}
	for s, want := range failure {
		assert.Equal(t, want, s.Failure(), s)
	}
}

func TestNewRunID(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, chicago)
	a, b := report.NewRunID(at), report.NewRunID(at)
	assert.Regexp(t, `^20250102T090405Z-[0-9a-f]{8}$`, a)
	assert.NotEqual(t, a, b)
}
