package replicate

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/state"
)

// TableResult is the outcome for one table.
type TableResult struct {
	Table       string
	Mode        string // a state.Mode…: full | incremental | shadow | diff | unchanged; the plan in a dry run
	Plan        string // what was (or would be) done, for humans
	Changes     []Change
	RowsRead    int64
	RowsWritten int64
	RowsDeleted int64
	Chunks      int
	Resumed     bool
	// Started is when the run read the source's schema and clock, before
	// any table was copied: the instant the table's copy is current as of
	// (its own work began when a worker took it; Duration is that work).
	Started  time.Time
	Finished time.Time
	Duration time.Duration
	// SourceQueries counts the queries the table sent to the source,
	// retries included.
	SourceQueries int64
	// Stopped: Options.Stop ended the table after a committed chunk (or
	// before it began); it resumes next run. Err is nil then.
	Stopped bool
	Err     error
}

// Summary is the outcome of a run, one entry per table in run order.
type Summary struct {
	Tables   []*TableResult
	Duration time.Duration
	DryRun   bool
	Unlisted []string // source tables tables.yml does not list (not copied), sorted
	Reserved []string // source tables named with state.Prefix, which cannot be copied, sorted
	// Orphans are replica tables the pipeline copied whose source table is
	// gone (and tables.yml does not copy), sorted: kept unless
	// Options.DropOrphans, then also in DroppedOrphans.
	Orphans        []string
	DroppedOrphans []string
	// SourceQueries counts every query the run sent to the source: the
	// tables' and the schema read.
	SourceQueries int64
}

// Stopped counts the tables Options.Stop stopped.
func (s Summary) Stopped() int {
	n := 0
	for _, t := range s.Tables {
		if t.Stopped {
			n++
		}
	}
	return n
}

// Failed counts the tables that failed.
func (s Summary) Failed() int {
	n := 0
	for _, t := range s.Tables {
		if t.Err != nil {
			n++
		}
	}
	return n
}

// Write prints one line per table and a total line.
func (s Summary) Write(w io.Writer) {
	var read, written, deleted int64
	fmt.Fprintf(w, "%-28s %-12s %10s %10s %8s %9s %10s  %s\n", "TABLE", "MODE", "READ", "WRITTEN", "DELETED", "SECONDS", "ROWS/S", "NOTE")
	for _, t := range s.Tables {
		fmt.Fprintf(w, "%-28s %-12s %10d %10d %8d %9.2f %10.0f  %s\n", t.Table, t.Mode, t.RowsRead, t.RowsWritten, t.RowsDeleted,
			t.Duration.Seconds(), t.rate(), t.note())
		read, written, deleted = read+t.RowsRead, written+t.RowsWritten, deleted+t.RowsDeleted
	}
	stopped := ""
	if n := s.Stopped(); n > 0 {
		stopped = fmt.Sprintf(", %d stopped (resume next run)", n)
	}
	fmt.Fprintf(w, "%d tables, %d failed%s; rows read %d, written %d, deleted %d in %.2fs\n",
		len(s.Tables), s.Failed(), stopped, read, written, deleted, s.Duration.Seconds())
	if len(s.Unlisted) > 0 {
		fmt.Fprintf(w, "%d source tables not in tables.yml, not copied (run `pipeline discover`): %s\n", len(s.Unlisted), strings.Join(s.Unlisted, ", "))
	}
	if text := s.OrphanNote(); text != "" {
		fmt.Fprintln(w, text)
	}
	if len(s.Reserved) > 0 {
		fmt.Fprintf(w, "%d source tables not copied: names starting with %s are reserved for the pipeline's own tables in the replica (rename them at the source): %s\n",
			len(s.Reserved), state.Prefix, strings.Join(s.Reserved, ", "))
	}
}

// note is the plan, or the failure, followed by the schema changes.
func (t *TableResult) note() string {
	note := t.Plan
	switch {
	case t.Err != nil:
		note = "FAILED: " + t.Err.Error()
	case t.Stopped:
		note = "STOPPED after a committed chunk: resumes next run"
	}
	for _, c := range t.Changes {
		note += "; " + c.String()
	}
	return note
}

// rate is rows read per second.
func (t *TableResult) rate() float64 {
	if secs := t.Duration.Seconds(); secs > 0 {
		return float64(t.RowsRead) / secs
	}
	return 0
}

// OrphanNote says which replica tables are orphaned and whether they were
// dropped; "" when none.
func (s Summary) OrphanNote() string {
	switch {
	case len(s.Orphans) == 0:
		return ""
	case len(s.DroppedOrphans) == len(s.Orphans):
		return fmt.Sprintf("%d orphaned replica tables dropped (their source table is gone): %s", len(s.Orphans), strings.Join(s.Orphans, ", "))
	}
	return fmt.Sprintf("%d replica tables are orphaned (their source table is gone; kept): %s — `pipeline replicate --drop-orphans` drops them",
		len(s.Orphans), strings.Join(s.Orphans, ", "))
}
