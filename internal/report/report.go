// Package report is the one result schema of a pipeline run: what `run`,
// `replicate`, `load`, `verify` and `status` print with --json, what the run
// history stores, what webhooks carry and what metrics are made from.
//
// The JSON form is an interface schedulers and dashboards parse, so it is
// versioned: adding a field keeps Version, removing or changing the meaning
// of one bumps it (see README, "JSON result").
package report

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// Version of the JSON schema this package writes.
const Version = 1

// Command is the pipeline command a report describes.
type Command string

// Commands that produce a report.
const (
	CommandRun       Command = "run"
	CommandReplicate Command = "replicate"
	CommandLoad      Command = "load"
	CommandVerify    Command = "verify"
	CommandStatus    Command = "status"
)

// Status is how a whole run ended.
type Status string

// Run statuses. Each maps to one exit code (cmd/pipeline/exitcodes.go).
const (
	StatusOK              Status = "ok"                // every table done
	StatusFailed          Status = "failed"            // some tables failed or differ (verify); the others were done
	StatusStale           Status = "stale"             // status: some table not confirmed current within stale_after
	StatusConfigError     Status = "config_error"      // nothing was touched
	StatusLocked          Status = "locked"            // another run holds the lock; nothing was touched
	StatusUnavailable     Status = "unavailable"       // a database could not be reached
	StatusOutsideWindow   Status = "outside_window"    // refused to start outside schedule.window
	StatusStoppedByWindow Status = "stopped_by_window" // the window closed mid-run; committed work kept, resumes next run
	StatusInterrupted     Status = "interrupted"       // SIGINT/SIGTERM; committed work kept, resumes next run
)

// Failure reports whether s is something an operator must look at: the
// statuses a `failure` notification is sent for. A run refused outside its
// window or stopped by it did what it was configured to do.
func (s Status) Failure() bool {
	switch s {
	case StatusFailed, StatusStale, StatusConfigError, StatusLocked, StatusUnavailable, StatusInterrupted:
		return true
	}
	return false
}

// Report is one run's result.
type Report struct {
	Version         int       `json:"version"`
	Command         Command   `json:"command"`
	RunID           string    `json:"run_id"`
	StartedAt       time.Time `json:"started_at"`  // RFC 3339, UTC
	FinishedAt      time.Time `json:"finished_at"` // RFC 3339, UTC
	DurationSeconds float64   `json:"duration_seconds"`
	Status          Status    `json:"status"`
	ExitCode        int       `json:"exit_code"`
	Error           string    `json:"error,omitempty"` // why the run as a whole stopped (locked, config, …)
	DryRun          bool      `json:"dry_run,omitempty"`
	Totals          Totals    `json:"totals"`
	Tables          []Table   `json:"tables"`
	Warnings        []string  `json:"warnings,omitempty"` // e.g. source tables tables.yml does not list

	// status only: the latest stored run, the staleness limit, and the
	// table confirmed current longest ago (or never).
	LastRun           *RunRef `json:"last_run,omitempty"`
	StaleAfterSeconds float64 `json:"stale_after_seconds,omitempty"`
	OldestTable       string  `json:"oldest_table,omitempty"`
}

// Totals add up the table entries (Finish computes them).
type Totals struct {
	Tables        int   `json:"tables"` // distinct tables
	TablesOK      int   `json:"tables_ok"`
	TablesFailed  int   `json:"tables_failed"`          // a table with any failed entry
	TablesDiffer  int   `json:"tables_differ"`          // verify: some hop differs
	TablesStopped int   `json:"tables_stopped"`         // stopped by the window or a signal, to resume
	TablesStale   int   `json:"tables_stale,omitempty"` // status: not confirmed current within stale_after
	RowsRead      int64 `json:"rows_read"`
	RowsWritten   int64 `json:"rows_written"`
	RowsDeleted   int64 `json:"rows_deleted"`
	Conversions   int64 `json:"conversions"`
	SchemaChanges int   `json:"schema_changes"`
	SourceQueries int64 `json:"source_queries"`
}

// New starts the report of a run of cmd that began at started.
func New(cmd Command, runID string, started time.Time) *Report {
	return &Report{Version: Version, Command: cmd, RunID: runID, StartedAt: instant(started), Tables: []Table{}}
}

// NewRunID is a run id that sorts by start time and is unique across
// machines: 20250102T030405Z-1a2b3c4d.
func NewRunID(started time.Time) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return started.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Add appends table entries. Times are normalised to UTC microseconds (what
// PostgreSQL keeps); an entry without a start takes the run's start (an
// earlier instant, so "current as of" is never overstated) and one without
// an end is given start + duration.
func (r *Report) Add(tables ...Table) {
	for _, t := range tables {
		if t.StartedAt.IsZero() {
			t.StartedAt = r.StartedAt
		}
		t.StartedAt = instant(t.StartedAt)
		if t.FinishedAt.IsZero() {
			t.FinishedAt = t.StartedAt.Add(time.Duration(t.DurationSeconds * float64(time.Second)))
		}
		t.FinishedAt = instant(t.FinishedAt)
		r.Tables = append(r.Tables, t)
	}
}

// Finish records the end, the run's status and exit code, and the totals.
// It returns r for chaining.
func (r *Report) Finish(finished time.Time, status Status, exitCode int) *Report {
	r.FinishedAt = instant(finished)
	r.DurationSeconds = Seconds(r.FinishedAt.Sub(r.StartedAt))
	r.Status, r.ExitCode = status, exitCode
	r.Totals = total(r.Tables)
	return r
}

// TablesStatus is StatusFailed when some entry failed or differs, else
// StatusOK: the status of a run that was not stopped as a whole.
func (r *Report) TablesStatus() Status {
	for _, t := range r.Tables {
		if t.Status == TableFailed || t.Status == TableSkipped || t.Status == TableDiffers {
			return StatusFailed
		}
	}
	return StatusOK
}

// Problems are the entries that failed or differ, in report order.
func (r *Report) Problems() []Table {
	var out []Table
	for _, t := range r.Tables {
		if t.Status == TableFailed || t.Status == TableSkipped || t.Status == TableDiffers {
			out = append(out, t)
		}
	}
	return out
}

func total(tables []Table) Totals {
	var tot Totals
	worst := map[string]TableStatus{}
	for _, t := range tables {
		if rank(t.Status) >= rank(worst[t.Table]) {
			worst[t.Table] = t.Status
		}
		tot.RowsRead += t.RowsRead
		tot.RowsWritten += t.RowsWritten
		tot.RowsDeleted += t.RowsDeleted
		tot.Conversions += t.ConversionTotal()
		tot.SchemaChanges += len(t.SchemaChanges)
		tot.SourceQueries += t.SourceQueries
	}
	tot.Tables = len(worst)
	for _, s := range worst {
		switch s {
		case TableFailed, TableSkipped:
			tot.TablesFailed++
		case TableDiffers:
			tot.TablesDiffer++
		case TableStopped:
			tot.TablesStopped++
		case TableStale:
			tot.TablesStale++
		default:
			tot.TablesOK++
		}
	}
	return tot
}

// rank orders entry statuses so a table counts once, by its worst entry.
func rank(s TableStatus) int {
	switch s {
	case TableFailed, TableSkipped:
		return 4
	case TableDiffers:
		return 3
	case TableStopped, TableStale:
		return 2
	case "":
		return 0
	}
	return 1
}

// Encode writes r as indented JSON and a newline.
func (r *Report) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ErrVersion is returned by Decode for a report of a newer schema version.
var ErrVersion = errors.New("report schema version not supported")

// Decode reads a report written by Encode (or stored in the history),
// refusing versions newer than this package understands.
func Decode(data []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("decoding report: %w", err)
	}
	if r.Version < 1 || r.Version > Version {
		return nil, fmt.Errorf("%w: got version %d, this pipeline reads up to %d", ErrVersion, r.Version, Version)
	}
	return &r, nil
}

// Seconds is d in seconds, rounded to the millisecond.
func Seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}

// instant is t in UTC at PostgreSQL's microsecond precision, so a report
// read back from the history equals the one written.
func instant(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// SortedTables returns the distinct table names of r, sorted.
func (r *Report) SortedTables() []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range r.Tables {
		if !seen[t.Table] {
			seen[t.Table] = true
			out = append(out, t.Table)
		}
	}
	sort.Strings(out)
	return out
}
