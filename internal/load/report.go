package load

import "github.com/opendental-pipeline/pipeline/internal/report"

// Report is the table's entry in the run's result (internal/report). The
// load never reads the source: it spends no source queries.
func (r TableResult) Report() report.Table {
	e := report.Table{Table: r.Table, Phase: report.PhaseLoad, Mode: string(r.Mode), Plan: r.Reason, Status: report.TableOK,
		StartedAt: r.Started, FinishedAt: r.Started.Add(r.Duration), DurationSeconds: report.Seconds(r.Duration),
		RowsRead: r.RowsRead, RowsWritten: r.RowsWritten, RowsDeleted: r.RowsDeleted,
		Conversions: report.Conversions(r.Conversions), SchemaChanges: r.Changes}
	if r.Target != r.Table {
		e.Target = r.Target
	}
	switch r.Status {
	case StatusPlanned:
		e.Status = report.TablePlanned
	case StatusStopped:
		e.Status = report.TableStopped
	case StatusFailed:
		e.Status, e.Error = report.TableFailed, r.Error
	case StatusSkipped:
		e.Status, e.Error = report.TableSkipped, r.Error
	}
	if len(e.Conversions) == 0 {
		e.Conversions = nil
	}
	return e
}
