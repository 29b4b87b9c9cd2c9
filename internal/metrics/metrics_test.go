package metrics_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/metrics"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

var start = time.Date(2025, 6, 10, 2, 0, 0, 0, time.UTC)

func run() *report.Report {
	r := report.New(report.CommandRun, "run-1", start)
	r.Add(
		report.Table{Table: "patient", Phase: report.PhaseReplicate, Mode: "incremental", Status: report.TableOK,
			DurationSeconds: 1.5, RowsRead: 120, RowsWritten: 118, RowsDeleted: 2, SourceQueries: 7},
		report.Table{Table: "patient", Phase: report.PhaseLoad, Mode: "incremental", Status: report.TableOK,
			StartedAt: start.Add(time.Minute), DurationSeconds: 0.25, RowsRead: 118, RowsWritten: 118, RowsDeleted: 2,
			Conversions: report.Conversions{"Birthdate": {"zero_date": 3}, "FName": {"nul_byte": 1}}},
		report.Table{Table: "claim", Phase: report.PhaseLoad, Mode: "full", Status: report.TableFailed,
			StartedAt: start.Add(time.Minute), DurationSeconds: 2, RowsRead: 10, Error: "boom"},
	)
	return r.Finish(start.Add(95*time.Second), report.StatusFailed, 1)
}

// parse reads the file back with Prometheus's own text parser.
func parse(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	require.NoError(t, err)
	return fams
}

// value is the gauge of family name whose labels are exactly labels
// ("k=v" pairs); it fails the test when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "no metric %s", name)
	assert.Equal(t, dto.MetricType_GAUGE, fam.GetType(), name)
	sort.Strings(labels)
	for _, m := range fam.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(got)
		if strings.Join(got, ",") == strings.Join(labels, ",") {
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s{%s}", name, strings.Join(labels, ","))
	return 0
}

func TestWriteParsesBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipeline-run.prom")
	lag := 42 * time.Second
	states := []metrics.TableState{
		{Table: "claim", LastSuccess: map[report.Phase]time.Time{report.PhaseLoad: start.Add(-24 * time.Hour)},
			ConfirmedCurrent: start.Add(-24 * time.Hour), Lag: &lag},
		// An older success than this run's: the run's own wins.
		{Table: "patient", LastSuccess: map[report.Phase]time.Time{report.PhaseLoad: start.Add(-24 * time.Hour)}, ConfirmedCurrent: start},
	}
	require.NoError(t, metrics.Write(path, run(), states))
	fams := parse(t, path)

	cmd := "command=run"
	assert.Equal(t, 95.0, value(t, fams, "pipeline_run_duration_seconds", cmd))
	assert.Equal(t, 1.0, value(t, fams, "pipeline_run_exit_code", cmd))
	assert.Equal(t, float64(start.Add(95*time.Second).Unix()), value(t, fams, "pipeline_run_finished_timestamp_seconds", cmd))
	assert.Equal(t, 1.0, value(t, fams, "pipeline_run_status", cmd, "status=failed"))
	assert.Equal(t, 0.0, value(t, fams, "pipeline_run_status", cmd, "status=ok"))
	assert.Len(t, fams["pipeline_run_status"].GetMetric(), len(metrics.Statuses), "every status value present")
	assert.Equal(t, 2.0, value(t, fams, "pipeline_run_tables", cmd))
	assert.Equal(t, 1.0, value(t, fams, "pipeline_run_tables_failed", cmd))

	pl := []string{cmd, "table=patient", "phase=load"}
	assert.Equal(t, 118.0, value(t, fams, "pipeline_table_rows_read", pl...))
	assert.Equal(t, 118.0, value(t, fams, "pipeline_table_rows_written", pl...))
	assert.Equal(t, 2.0, value(t, fams, "pipeline_table_rows_deleted", pl...))
	assert.Equal(t, 0.25, value(t, fams, "pipeline_table_duration_seconds", pl...))
	assert.Equal(t, 4.0, value(t, fams, "pipeline_table_conversions", pl...))
	assert.Equal(t, 0.0, value(t, fams, "pipeline_table_failed", pl...))
	assert.Equal(t, 7.0, value(t, fams, "pipeline_table_source_queries", cmd, "table=patient", "phase=replicate"))
	assert.Equal(t, 1.0, value(t, fams, "pipeline_table_failed", cmd, "table=claim", "phase=load"))

	assert.Equal(t, float64(start.Add(time.Minute+250*time.Millisecond).UnixMilli())/1e3,
		value(t, fams, "pipeline_table_last_success_timestamp_seconds", "table=patient", "phase=load"), "this run's success")
	assert.Equal(t, float64(start.Add(-24*time.Hour).Unix()),
		value(t, fams, "pipeline_table_last_success_timestamp_seconds", "table=claim", "phase=load"), "failed now: the history's")
	assert.Equal(t, float64(start.Add(-24*time.Hour).Unix()), value(t, fams, "pipeline_table_confirmed_current_timestamp_seconds", "table=claim"))
	assert.Equal(t, 42.0, value(t, fams, "pipeline_table_lag_seconds", "table=claim"))
	_, hasLag := fams["pipeline_table_lag_seconds"]
	assert.True(t, hasLag)
	assert.Len(t, fams["pipeline_table_lag_seconds"].GetMetric(), 1, "lag only where known")

	for name, fam := range fams {
		assert.NotEmpty(t, fam.GetHelp(), name)
		assert.False(t, strings.HasSuffix(name, "_total"), "%s: a snapshot is not a counter", name)
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				assert.Contains(t, []string{"command", "table", "phase", "status"}, l.GetName(), "bounded labels only")
			}
		}
	}
}

// TestWriteReplaces: the file is rewritten whole (atomically), so a table
// of the previous run does not linger, and no temporary file is left.
func TestWriteReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pipeline-run.prom")
	require.NoError(t, metrics.Write(path, run(), nil))
	second := report.New(report.CommandRun, "run-2", start.Add(24*time.Hour))
	second.Add(report.Table{Table: "appointment", Phase: report.PhaseLoad, Status: report.TableOK, RowsWritten: 5})
	require.NoError(t, metrics.Write(path, second.Finish(start.Add(25*time.Hour), report.StatusOK, 0), nil))

	fams := parse(t, path)
	assert.Equal(t, 5.0, value(t, fams, "pipeline_table_rows_written", "command=run", "table=appointment", "phase=load"))
	assert.Len(t, fams["pipeline_table_rows_written"].GetMetric(), 1)
	assert.Equal(t, 1.0, value(t, fams, "pipeline_run_status", "command=run", "status=ok"))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "only the .prom file")
	info, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), info.Mode().Perm(), "readable by node_exporter")

	err = metrics.Write(filepath.Join(dir, "missing", "x.prom"), second, nil)
	assert.ErrorContains(t, err, "writing the metrics file "+filepath.Join(dir, "missing", "x.prom"))
}
