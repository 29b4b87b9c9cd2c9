package replicate

import (
	"context"
	"errors"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// Report is the table's entry in the run's result (internal/report). A
// table interrupted by a signal (its context cancelled) after committed
// chunks is stopped, like one Options.Stop ended: it resumes next run.
func (t *TableResult) Report(dryRun bool) report.Table {
	e := report.Table{Table: t.Table, Phase: report.PhaseReplicate, Mode: t.Mode, Plan: t.Plan, Status: report.TableOK,
		StartedAt: t.Started, FinishedAt: t.Finished, DurationSeconds: report.Seconds(t.Duration),
		RowsRead: t.RowsRead, RowsWritten: t.RowsWritten, RowsDeleted: t.RowsDeleted, SourceQueries: t.SourceQueries}
	for _, c := range t.Changes {
		e.SchemaChanges = append(e.SchemaChanges, c.String())
	}
	switch {
	case dryRun && t.Err == nil:
		e.Status = report.TablePlanned
	case t.Stopped || errors.Is(t.Err, context.Canceled):
		e.Status = report.TableStopped
	case t.Err != nil:
		e.Status, e.Error = report.TableFailed, t.Err.Error()
	}
	return e
}
