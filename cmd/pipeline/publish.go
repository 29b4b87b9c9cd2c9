package main

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/metrics"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/status"
)

// publishTimeout bounds recording the run and writing its metrics, after
// the run and also after an interrupt; the webhooks have their own budget
// (notify.timeout).
const publishTimeout = 30 * time.Second

// publish records the finished report in the run history (not for status
// or a dry run), writes the metrics file and notifies the webhooks. None
// of it fails the command: a problem is a warning in the log and in the
// report. It runs on a context that survives SIGINT, within publishTimeout.
func (r *record) publish(ctx context.Context) {
	if r.settings == nil {
		return // the configuration could not be read: nothing configured to publish to
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	own := r.openOwn()
	defer own.close()
	if r.rep.Command != report.CommandStatus && !r.rep.DryRun {
		r.writeHistory(ctx, own)
	}
	if path := r.metricsPath(); path != "" && !r.rep.DryRun {
		r.writeMetrics(ctx, own, path)
	}
	if r.rep.Command != report.CommandStatus || r.rep.Status == report.StatusStale {
		r.notifier.Notify(ctx, r.rep)
	}
}

// ownDBs are the pipeline's own databases, opened for publishing: the
// analytics database (the history) and the replica (how far raw lags it).
// Either is nil when its configuration is incomplete. Their pools connect
// only when used.
type ownDBs struct {
	analytics *pgxpool.Pool // the history, and raw's load state
	replica   *sql.DB
	problem   error // why analytics is nil
}

func (r *record) openOwn() *ownDBs {
	o := &ownDBs{}
	s := r.settings
	cfg, err := connections.AnalyticsConfig(s, s.Environment)
	if err == nil {
		err = s.Validate(catalog.DatabaseAnalytics)
	}
	if err == nil {
		o.analytics, err = factory.New().Postgres(cfg)
	}
	o.problem = err
	if rc, err := connections.ReplicationConfig(s, s.Environment); err == nil && s.Validate(catalog.DatabaseReplication) == nil {
		o.replica, _ = factory.New().MySQL(rc)
	}
	return o
}

func (o *ownDBs) close() {
	if o.analytics != nil {
		o.analytics.Close()
	}
	if o.replica != nil {
		o.replica.Close()
	}
}

func (r *record) store(own *ownDBs) *history.Store {
	return history.New(own.analytics, history.Options{RetentionDays: r.settings.Pipeline.History.RetentionDays, Now: r.c.now, Log: r.log})
}

// writeHistory stores the report (and prunes what is older than
// history.retention_days).
func (r *record) writeHistory(ctx context.Context, own *ownDBs) {
	if own.analytics == nil {
		r.warn("the run was not recorded in the run history", own.problem)
		return
	}
	if err := r.store(own).Write(ctx, r.rep); err != nil {
		r.warn("the run was not recorded in the run history", err)
	}
}

// writeMetrics writes the metrics file: the run, and per table of it the
// last successes, when it was confirmed current and its lag.
func (r *record) writeMetrics(ctx context.Context, own *ownDBs, path string) {
	states, rep := r.states, r.rep
	if rep.Command == report.CommandStatus {
		shallow := *rep
		shallow.Tables = nil // per table status has the freshness gauges, not a run's rows
		rep = &shallow
	} else if own.analytics != nil {
		tables, err := status.Read(ctx, status.Sources{History: r.store(own), Replica: own.replica, Raw: own.analytics}, r.rep.SortedTables())
		if err != nil {
			r.warn("the metrics file has no per-table freshness", err)
		}
		for _, t := range tables {
			states = append(states, t.Metrics())
		}
	}
	if err := metrics.Write(path, rep, states); err != nil {
		r.warn("the metrics file was not written", err)
	}
}

// metricsPath is --metrics-file, else pipeline.yml's metrics.file with the
// command's name before .prom (pipeline.prom → pipeline-run.prom), so that
// the commands' files never overwrite each other's series.
func (r *record) metricsPath() string {
	if r.metricsFile != "" {
		return r.metricsFile
	}
	f := r.settings.Pipeline.Metrics.File
	if f == "" {
		return ""
	}
	dir, base := filepath.Split(f)
	return dir + strings.TrimSuffix(base, ".prom") + "-" + string(r.rep.Command) + ".prom"
}

// warn logs a publishing problem and adds it to the report's warnings.
func (r *record) warn(what string, err error) {
	msg := what
	if err != nil {
		msg += ": " + err.Error()
	}
	r.log.Warn(what+"; the run's result is not affected", "error", err)
	r.rep.Warnings = append(r.rep.Warnings, msg)
}
