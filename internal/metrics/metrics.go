// Package metrics writes a run's result as Prometheus text exposition for
// node_exporter's textfile collector, through client_golang's registry and
// WriteToTextfile (written beside the target and renamed over it, so the
// collector never reads half a file).
//
// The file is a snapshot of the last run, not a running process, so every
// series is a gauge (no _total counters: a counter would restart at every
// run). Labels are bounded: command (run, replicate, load, verify, status),
// phase (replicate, load, verify), status (the report's run statuses) and
// table (the configured tables). Each command should write its own file
// (pipeline-run.prom, pipeline-verify.prom): the command label keeps their
// series apart.
package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// TableState is what is known about a table beyond one run (from the run
// history and the replica's state), for the freshness gauges.
type TableState struct {
	Table            string
	LastSuccess      map[report.Phase]time.Time // latest successful end per phase
	ConfirmedCurrent time.Time                  // zero: never
	Lag              *time.Duration             // how far raw is behind the replica, when known
}

// Statuses are the values of pipeline_run_status's status label: all are
// written, the run's own as 1 and the others as 0, so an alert can match
// one value without the series disappearing.
var Statuses = []report.Status{
	report.StatusOK, report.StatusFailed, report.StatusStale, report.StatusConfigError, report.StatusLocked,
	report.StatusUnavailable, report.StatusOutsideWindow, report.StatusStoppedByWindow, report.StatusInterrupted,
}

// Write writes r (and states, which may be nil) to path, replacing it
// atomically.
func Write(path string, r *report.Report, states []TableState) error {
	reg, err := Gather(r, states)
	if err != nil {
		return err
	}
	if err := prometheus.WriteToTextfile(path, reg); err != nil {
		return fmt.Errorf("writing the metrics file %s: %w", path, err)
	}
	return nil
}

// Gather builds the registry Write writes.
func Gather(r *report.Report, states []TableState) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	for _, c := range append(runCollectors(r), append(tableCollectors(r), stateCollectors(r, states)...)...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "pipeline", Name: name, Help: help}, labels)
}

func runCollectors(r *report.Report) []prometheus.Collector {
	cmd := string(r.Command)
	duration := gauge("run_duration_seconds", "Wall time of the last run.", "command")
	duration.WithLabelValues(cmd).Set(r.DurationSeconds)
	finished := gauge("run_finished_timestamp_seconds", "When the last run ended, Unix time.", "command")
	finished.WithLabelValues(cmd).Set(unix(r.FinishedAt))
	exit := gauge("run_exit_code", "Exit code of the last run (0 ok, 1 tables failed, 2 configuration, 3 locked, 4 database unavailable, 5 outside window, 130 interrupted).", "command")
	exit.WithLabelValues(cmd).Set(float64(r.ExitCode))
	status := gauge("run_status", "1 for the last run's status, 0 for the others.", "command", "status")
	for _, s := range Statuses {
		status.WithLabelValues(cmd, string(s)).Set(boolean(r.Status == s))
	}
	tables := gauge("run_tables", "Distinct tables the last run handled.", "command")
	tables.WithLabelValues(cmd).Set(float64(r.Totals.Tables))
	failed := gauge("run_tables_failed", "Tables of the last run with a failed (or, for verify, differing) phase.", "command")
	failed.WithLabelValues(cmd).Set(float64(r.Totals.TablesFailed + r.Totals.TablesDiffer))
	return []prometheus.Collector{duration, finished, exit, status, tables, failed}
}

func tableCollectors(r *report.Report) []prometheus.Collector {
	labels := []string{"command", "table", "phase"}
	read := gauge("table_rows_read", "Rows the table's phase read in the last run.", labels...)
	written := gauge("table_rows_written", "Rows the table's phase wrote in the last run.", labels...)
	deleted := gauge("table_rows_deleted", "Rows the table's phase deleted in the last run.", labels...)
	duration := gauge("table_duration_seconds", "Wall time of the table's phase in the last run.", labels...)
	conversions := gauge("table_conversions", "Values the load converted on purpose in the last run (zero dates to NULL, NUL bytes stripped, ...).", labels...)
	queries := gauge("table_source_queries", "Queries the table's phase sent to the clinic's server in the last run.", labels...)
	failed := gauge("table_failed", "1 when the table's phase failed (or, for verify, differs) in the last run, else 0.", labels...)
	for _, t := range r.Tables {
		l := prometheus.Labels{"command": string(r.Command), "table": t.Table, "phase": string(t.Phase)}
		read.With(l).Set(float64(t.RowsRead))
		written.With(l).Set(float64(t.RowsWritten))
		deleted.With(l).Set(float64(t.RowsDeleted))
		duration.With(l).Set(t.DurationSeconds)
		conversions.With(l).Set(float64(t.ConversionTotal()))
		queries.With(l).Set(float64(t.SourceQueries))
		failed.With(l).Set(boolean(t.Status == report.TableFailed || t.Status == report.TableDiffers))
	}
	return []prometheus.Collector{read, written, deleted, duration, conversions, queries, failed}
}

// stateCollectors are the freshness gauges: the latest success per table
// and phase (from states, or from r's own successful entries, whichever is
// later), when the table was confirmed current, and raw's lag.
func stateCollectors(r *report.Report, states []TableState) []prometheus.Collector {
	success := gauge("table_last_success_timestamp_seconds", "When the table's phase last ended successfully, Unix time.", "table", "phase")
	confirmed := gauge("table_confirmed_current_timestamp_seconds", "Since when raw is known to match the source for the table, Unix time.", "table")
	lag := gauge("table_lag_seconds", "How far the table in raw is behind the replica.", "table")
	latest := map[[2]string]time.Time{}
	note := func(table string, phase report.Phase, at time.Time) {
		k := [2]string{table, string(phase)}
		if at.After(latest[k]) {
			latest[k] = at
		}
	}
	for _, t := range r.Tables {
		if t.Status == report.TableOK && !r.DryRun {
			note(t.Table, t.Phase, t.FinishedAt)
		}
	}
	for _, s := range states {
		for phase, at := range s.LastSuccess {
			note(s.Table, phase, at)
		}
		if !s.ConfirmedCurrent.IsZero() {
			confirmed.WithLabelValues(s.Table).Set(unix(s.ConfirmedCurrent))
		}
		if s.Lag != nil {
			lag.WithLabelValues(s.Table).Set(s.Lag.Seconds())
		}
	}
	for k, at := range latest {
		success.WithLabelValues(k[0], k[1]).Set(unix(at))
	}
	return []prometheus.Collector{success, confirmed, lag}
}

func unix(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixMicro()) / 1e6
}

func boolean(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
