package main

import (
	"context"
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
)

// promFile reads a metrics file back with Prometheus's own text parser.
func promFile(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(f)
	require.NoError(t, err)
	return fams
}

// gauge is the value of name{labels} ("k=v"), failing the test without one.
func gauge(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	fam, ok := fams[name]
	require.True(t, ok, "no metric %s", name)
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

// --metrics-file and pipeline.yml's metrics.file: the run, its tables, and
// each table's freshness from the history, parsed back.
func TestMetricsFileAfterRuns(t *testing.T) {
	dir := t.TempDir()
	o := newOps(t, "metrics: {file: "+filepath.Join(dir, "pipeline.prom")+"}\n")
	flagPath := filepath.Join(dir, "by-flag.prom")

	code, out, errOut := o.cli(nil, "run", "--json", "--metrics-file", flagPath)
	require.Equal(t, exitOK, code, errOut)
	rep := decodeReport(t, out)
	fams := promFile(t, flagPath)
	assert.Equal(t, 1.0, gauge(t, fams, "pipeline_run_status", "command=run", "status=ok"))
	assert.Equal(t, 0.0, gauge(t, fams, "pipeline_run_status", "command=run", "status=failed"))
	assert.Equal(t, 0.0, gauge(t, fams, "pipeline_run_exit_code", "command=run"))
	assert.Equal(t, 2.0, gauge(t, fams, "pipeline_run_tables", "command=run"))
	assert.Equal(t, 20.0, gauge(t, fams, "pipeline_table_rows_written", "command=run", "table=patient", "phase=load"))
	assert.Equal(t, 1.0, gauge(t, fams, "pipeline_table_conversions", "command=run", "table=patient", "phase=load"))
	assert.Positive(t, gauge(t, fams, "pipeline_table_source_queries", "command=run", "table=patient", "phase=replicate"))
	var confirmed time.Time
	require.NoError(t, o.pg.QueryRow(context.Background(),
		"SELECT last_confirmed_current_at FROM pipeline.etl_table_freshness WHERE table_name = 'patient'").Scan(&confirmed))
	assert.InDelta(t, float64(confirmed.UnixMicro())/1e6, gauge(t, fams, "pipeline_table_confirmed_current_timestamp_seconds", "table=patient"), 1e-6,
		"the history's confirmation")
	assert.Equal(t, 0.0, gauge(t, fams, "pipeline_table_lag_seconds", "table=patient"))
	var loaded time.Time
	for _, e := range rep.Tables {
		if e.Table == "patient" && e.Phase == "load" {
			loaded = e.FinishedAt
		}
	}
	require.False(t, loaded.IsZero())
	assert.InDelta(t, float64(loaded.UnixMicro())/1e6,
		gauge(t, fams, "pipeline_table_last_success_timestamp_seconds", "table=patient", "phase=load"), 1e-6)
	_, err := os.Stat(filepath.Join(dir, "pipeline-run.prom"))
	assert.True(t, os.IsNotExist(err), "--metrics-file replaces pipeline.yml's")

	// Without the flag: pipeline.yml's file, named per command.
	restore := o.breakLoad(t, "definition")
	code, _, _ = o.cli(nil, "run")
	restore()
	require.Equal(t, exitFailed, code)
	fams = promFile(t, filepath.Join(dir, "pipeline-run.prom"))
	assert.Equal(t, 1.0, gauge(t, fams, "pipeline_run_status", "command=run", "status=failed"))
	assert.Equal(t, 1.0, gauge(t, fams, "pipeline_table_failed", "command=run", "table=definition", "phase=load"))
	assert.Equal(t, 1.0, gauge(t, fams, "pipeline_run_tables_failed", "command=run"))

	code, _, _ = o.status(t, nil)
	require.Equal(t, exitFailed, code)
	fams = promFile(t, filepath.Join(dir, "pipeline-status.prom"))
	assert.Equal(t, 1.0, gauge(t, fams, "pipeline_run_status", "command=status", "status=failed"))
	assert.Positive(t, gauge(t, fams, "pipeline_table_confirmed_current_timestamp_seconds", "table=definition"))
	assert.NotContains(t, fams, "pipeline_table_rows_written", "status has no run rows, only freshness")

	code, _, errOut = o.cli(nil, "load", "--metrics-file", filepath.Join(dir, "x.txt"))
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, errOut, "must end in .prom")
}
