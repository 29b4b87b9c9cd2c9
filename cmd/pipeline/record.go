package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/metrics"
	"github.com/opendental-pipeline/pipeline/internal/notify"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/verify"
	"github.com/opendental-pipeline/pipeline/internal/window"
)

// record is one command's result in the making (the internal/report
// schema) and what publishing it at the end needs: the settings once
// loaded, the run window, the flags. Every run of run, replicate and load
// ends in finish, however it ended.
type record struct {
	c           *call
	rep         *report.Report
	json        bool   // --json: print the report on stdout
	metricsFile string // --metrics-file; "" takes pipeline.yml's
	force       bool   // --force: ignore the run window
	obeysWindow bool   // the command reads the source: run and replicate

	settings *providers.Settings // nil until loaded (and when loading failed)
	log      *slog.Logger
	notifier *notify.Notifier
	win      *window.Window
	closes   time.Time // when the window the run started in closes; zero: no window (or --force)
	// queries the run sent to the source beyond its tables' (the schema read).
	extraQueries int64
	// states are the tables' freshness when the command read it (status);
	// otherwise publish reads it for the metrics.
	states []metrics.TableState
}

// newRecord starts the result of command cmd now, from the phase flags.
func (c *call) newRecord(cmd report.Command, f phaseFlags) *record {
	started := c.now()
	r := &record{c: c, rep: report.New(cmd, report.NewRunID(started), started), json: f.json,
		metricsFile: f.metricsFile, force: f.force}
	r.rep.DryRun = f.dryRun
	c.rec = r
	return r
}

// loaded receives the settings as soon as they are read, so that even a
// run stopped by a configuration error is recorded.
func (r *record) loaded(s *providers.Settings, log *slog.Logger) {
	r.settings, r.log = s, log
}

// Errors of the run window: exit 5, status outside_window or stopped_by_window.
var (
	errOutsideWindow   = errors.New("outside the run window: nothing was done")
	errStoppedByWindow = errors.New("stopped by the window, resumes next run")
)

// gate decides, after the settings were validated and before any database
// is touched, whether the command may start: the webhooks' variables must
// be set, and run and replicate start only inside schedule.window (unless
// --force).
func (r *record) gate() error {
	n, err := notify.New(r.settings.Pipeline.Notify.Config(), r.settings.Env, r.log)
	if err != nil {
		return err
	}
	r.notifier = n
	if !r.obeysWindow || r.force {
		return nil
	}
	w, err := r.settings.Pipeline.Schedule.RunWindow()
	if err != nil || w == nil {
		return err
	}
	now := r.rep.StartedAt
	if !w.Open(now) {
		return fmt.Errorf("%w: schedule.window is %s (pipeline.yml); it opens next at %s. The next scheduled run inside it does the work; --force runs now anyway",
			errOutsideWindow, w, w.Next(now).In(w.Location()).Format("2006-01-02 15:04 MST"))
	}
	r.win, r.closes = w, w.Closes(now)
	return nil
}

// stopFunc is replicate's Options.Stop: true once the window the run
// started in has closed. nil without a window.
func (r *record) stopFunc() func() bool {
	if r.closes.IsZero() {
		return nil
	}
	return r.windowClosed
}

// windowClosed reports whether the window the run started in has closed.
func (r *record) windowClosed() bool {
	return !r.closes.IsZero() && !r.c.now().Before(r.closes)
}

// stoppedByWindow is the error of a run the window's closing stopped.
func (r *record) stoppedByWindow() error {
	return fmt.Errorf("%w: schedule.window %s closed at %s; committed work is kept and the next run (window opens %s) continues",
		errStoppedByWindow, r.win, r.closes.In(r.win.Location()).Format("15:04 MST"),
		r.win.Next(r.closes).In(r.win.Location()).Format("2006-01-02 15:04 MST"))
}

// addReplicate adds the replicate phase's tables and warnings.
func (r *record) addReplicate(sum *replicate.Summary) {
	var tables int64
	for _, t := range sum.Tables {
		r.rep.Add(t.Report(sum.DryRun))
		tables += t.SourceQueries
	}
	r.extraQueries += max(sum.SourceQueries-tables, 0)
	if n := len(sum.Unlisted); n > 0 {
		r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("%d source tables are not in tables.yml (not copied; run `pipeline discover`): %s", n, list(sum.Unlisted)))
	}
	if n := len(sum.Reserved); n > 0 {
		r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("%d source tables use the reserved prefix _pipeline_ (not copied; rename them at the source): %s", n, list(sum.Reserved)))
	}
	if note := sum.OrphanNote(); note != "" {
		r.rep.Warnings = append(r.rep.Warnings, note)
	}
}

// addLoad adds the load phase's tables and its orphans.
func (r *record) addLoad(res *load.Result) {
	for _, t := range res.Tables {
		r.rep.Add(t.Report())
	}
	if note := res.OrphanNote(); note != "" {
		r.rep.Warnings = append(r.rep.Warnings, note)
	}
}

// addVerify adds the verified tables and what was left for next time.
func (r *record) addVerify(res *verify.Result) {
	var tables int64
	for _, t := range res.Tables {
		e := t.Report()
		r.rep.Add(e)
		tables += e.SourceQueries
	}
	r.extraQueries += max(res.SourceQueries-tables, 0) // the schema read
	if len(res.Skipped) > 0 {
		r.rep.Warnings = append(r.rep.Warnings, fmt.Sprintf("%d tables left for the next verification (budget spent): %s", len(res.Skipped), list(res.Skipped)))
	}
}

// notLoaded adds a stopped load entry for every table sum replicated: the
// run window closed before the load phase, which then does not start.
func (r *record) notLoaded(sum *replicate.Summary) {
	for _, t := range sum.Tables {
		r.rep.Add(report.Table{Table: t.Table, Phase: report.PhaseLoad, Mode: "not_started", Status: report.TableStopped,
			StartedAt: r.c.now(), Plan: "not started: the run window closed; the next run loads it"})
	}
}

func list(names []string) string {
	const most = 20
	if len(names) > most {
		return fmt.Sprintf("%s … and %d more", strings.Join(names[:most], ", "), len(names)-most)
	}
	return strings.Join(names, ", ")
}

// outcome is the run's status and exit code from what the command
// returned: the one place they are decided together (the code by exitFor).
func outcome(ctx context.Context, err error) (report.Status, int) {
	code := exitFor(ctx, err)
	switch code {
	case exitOK:
		return report.StatusOK, code
	case exitConfig:
		return report.StatusConfigError, code
	case exitLocked:
		return report.StatusLocked, code
	case exitUnavailable:
		return report.StatusUnavailable, code
	case exitInterrupted:
		return report.StatusInterrupted, code
	case exitOutsideWindow:
		if errors.Is(err, errStoppedByWindow) {
			return report.StatusStoppedByWindow, code
		}
		return report.StatusOutsideWindow, code
	}
	if errors.Is(err, errStale) {
		return report.StatusStale, code
	}
	return report.StatusFailed, code
}

// finish ends the command: the report gets its status, exit code and end,
// is recorded, notified and written as metrics (publish), printed with
// --json, and a failure is one line on stderr. It returns the exit code.
func (r *record) finish(ctx context.Context, err error) int {
	status, code := outcome(ctx, err)
	if code != exitOK && !errors.Is(err, errTablesFailed) && !errors.Is(err, errStale) {
		r.rep.Error = message(code, err)
	}
	r.rep.Finish(r.c.now(), status, code)
	r.rep.Totals.SourceQueries += r.extraQueries
	r.publish(ctx)
	if r.json {
		if werr := r.rep.Encode(r.c.stdout); werr != nil {
			fmt.Fprintf(r.c.stderr, "pipeline %s: writing the JSON result: %v\n", r.c.name, werr)
		}
	}
	r.c.printExit(code, err)
	return code
}
