package main

import (
	"context"
	"fmt"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/status"
)

// statusDeps: the pipeline's own databases only. The source is never
// asked for, so status needs none of its variables and never connects to it.
type statusDeps struct {
	Deps
	Replica *connections.ReplicationDB
	Raw     *connections.AnalyticsRawDB
}

// runStatus shows per table when it was last confirmed current, its last
// successful replicate and load, the watermark, how far raw lags the
// replica, its last failure and verification. Exit 0 when every table was
// confirmed current within --stale-after, 1 when one is stale or failing:
// a monitoring probe. Exit codes: see exitFor.
func runStatus(ctx context.Context, c *call) int {
	var f phaseFlags
	var staleAfter time.Duration
	fs := c.flags()
	fs.Var(&f.tables, "tables", "comma-separated tables of tables.yml; may be repeated (default: every table not excluded)")
	fs.Var(&f.table, "table", "one table by its exact name, commas and spaces included; may be repeated")
	fs.BoolVar(&f.json, "json", false, "print the JSON result (README, JSON result) on stdout")
	fs.DurationVar(&staleAfter, "stale-after", 0, "a table not confirmed current for longer is stale (default status.stale_after of pipeline.yml, 26h)")
	fs.StringVar(&f.metricsFile, "metrics-file", "", "write Prometheus metrics to this .prom file (default metrics.file of pipeline.yml)")
	if code, ok := c.parse(fs); !ok {
		return code
	}
	if err := checkMetricsFile(f.metricsFile); err != nil || staleAfter < 0 {
		fmt.Fprintf(c.stderr, "pipeline status: %v\n", orNegative(err, "--stale-after must not be negative (0 or absent: pipeline.yml's)"))
		return exitConfig
	}
	rec := c.newRecord(report.CommandStatus, f)
	dbs := []catalog.DatabaseType{catalog.DatabaseReplication, catalog.DatabaseAnalytics}
	err := withApp(ctx, c, dbs, func(ctx context.Context, d statusDeps) error {
		if err := checkTables(d.Settings, f.tableList()); err != nil {
			return err
		}
		if staleAfter == 0 {
			staleAfter = time.Duration(d.Settings.Pipeline.Status.StaleAfter)
		}
		return rec.status(ctx, d, statusNames(d, f), staleAfter)
	})
	return rec.finish(ctx, err)
}

// statusNames are the tables status shows: --tables, else every table of
// tables.yml not excluded, else (no tables.yml) every table with state.
func statusNames(d statusDeps, f phaseFlags) []string {
	if names := f.tableList(); len(names) > 0 {
		return names
	}
	if len(d.Settings.Tables.Tables) == 0 {
		return nil
	}
	names := []string{}
	for _, t := range d.Settings.Tables.Ordered() {
		names = append(names, t.Name)
	}
	return names
}

// status builds the status report into r and prints it; the verdict is
// the error finish maps to the exit code.
func (r *record) status(ctx context.Context, d statusDeps, names []string, staleAfter time.Duration) error {
	store := history.New(d.Raw.Pool, history.Options{Log: d.Logger})
	tables, err := status.Read(ctx, status.Sources{History: store, Replica: d.Replica.DB, Raw: d.Raw.Pool}, names)
	if err != nil {
		return err
	}
	last, err := store.LatestRun(ctx)
	if err != nil {
		return err
	}
	rep, verdict := status.Build(tables, last, status.Options{Now: r.rep.StartedAt, StaleAfter: staleAfter, RunID: r.rep.RunID})
	r.rep = rep
	for _, t := range tables {
		r.states = append(r.states, t.Metrics())
	}
	if !r.json {
		status.Write(r.c.stdout, rep)
	}
	switch verdict {
	case report.StatusStale:
		return errStale
	case report.StatusFailed:
		return errTablesFailed
	}
	return nil
}

func orNegative(err error, msg string) any {
	if err != nil {
		return err
	}
	return msg
}
