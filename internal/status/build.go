package status

import (
	"time"

	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

// Options are what Build judges the tables by.
type Options struct {
	Now        time.Time     // the status's instant (tests inject one)
	StaleAfter time.Duration // a table not confirmed current for longer is stale
	RunID      string        // the status report's run id; default report.NewRunID(Now)
}

// Build is the status report of tables (not finished: the caller sets its
// status and exit code from the verdict) and its verdict: StatusStale when
// some table is stale, else StatusFailed when some table's latest phase
// failed (or verify differs), else StatusOK. last is the latest stored
// run, nil when none.
func Build(tables []Table, last *report.Report, o Options) (*report.Report, report.Status) {
	id := o.RunID
	if id == "" {
		id = report.NewRunID(o.Now)
	}
	rep := report.New(report.CommandStatus, id, o.Now)
	rep.StaleAfterSeconds = o.StaleAfter.Seconds()
	if last != nil {
		rep.LastRun = last.Ref()
	}
	verdict := report.StatusOK
	var oldest *Table
	for i, t := range tables {
		e := entry(t, o)
		rep.Add(e)
		switch {
		case e.Status == report.TableStale:
			verdict = report.StatusStale
		case e.Status == report.TableFailed && verdict == report.StatusOK:
			verdict = report.StatusFailed
		}
		if oldest == nil || t.History.ConfirmedCurrent.Before(oldest.History.ConfirmedCurrent) {
			oldest = &tables[i]
		}
	}
	if oldest != nil {
		rep.OldestTable = oldest.Name
	}
	return rep, verdict
}

// entry is the table's line: stale, failed (its latest phase failed) or
// ok; mode, times, rows and conversions of its last successful load (what
// raw holds), the error of a failure not yet followed by a success.
func entry(t Table, o Options) report.Table {
	h := t.History
	e := report.Table{Table: t.Name, Status: report.TableOK, Freshness: freshness(t, o)}
	if l, ok := h.LastSuccess[report.PhaseLoad]; ok {
		e.Mode, e.StartedAt, e.FinishedAt, e.DurationSeconds = l.Mode, l.StartedAt, l.FinishedAt, l.DurationSeconds
		e.RowsRead, e.RowsWritten, e.RowsDeleted, e.Conversions = l.RowsRead, l.RowsWritten, l.RowsDeleted, l.Conversions
	}
	if t.Load != nil && t.Load.Status == "ok" && len(t.Load.Conversions) > 0 {
		e.Conversions = report.Conversions(t.Load.Conversions) // the load state keeps the last load's, unchanged tables too
	}
	if len(e.Conversions) == 0 {
		e.Conversions = nil
	}
	if h.Failing() {
		e.Status, e.Error = report.TableFailed, h.LastFailure.Error
	}
	if e.Freshness.Stale {
		e.Status = report.TableStale
	}
	return e
}

func freshness(t Table, o Options) *report.Freshness {
	h := t.History
	f := &report.Freshness{Stale: h.Stale(o.Now, o.StaleAfter), Failing: h.Failing()}
	if !h.ConfirmedCurrent.IsZero() {
		at := h.ConfirmedCurrent
		age := o.Now.Sub(at).Seconds()
		f.ConfirmedCurrentAt, f.AgeSeconds = &at, &age
	}
	f.LastReplicate = phaseRun(h.LastSuccess, report.PhaseReplicate)
	f.LastLoad = phaseRun(h.LastSuccess, report.PhaseLoad)
	f.LastVerify = phaseRun(h.Latest, report.PhaseVerify)
	if h.LastFailure != nil {
		f.LastFailure = run(*h.LastFailure)
	}
	if r := t.Replica; r != nil {
		seq := r.ChangeSeq
		f.Watermark, f.ReplicaStatus, f.ReplicaChangeSeq = r.Watermark.String, r.Status, &seq
	}
	if t.Load != nil {
		f.LoadedChangeSeq = t.Load.ChangeSeq
	}
	changes, lag := t.Behind()
	f.ChangesBehind = changes
	if lag != nil {
		s := report.Seconds(*lag)
		f.LagSeconds = &s
	}
	return f
}

func phaseRun(entries map[report.Phase]history.Entry, phase report.Phase) *report.PhaseRun {
	if e, ok := entries[phase]; ok {
		return run(e)
	}
	return nil
}

func run(e history.Entry) *report.PhaseRun {
	return &report.PhaseRun{RunID: e.RunID, Command: e.Command, Phase: e.Phase, Mode: e.Mode, Status: e.Status,
		StartedAt: e.StartedAt, FinishedAt: e.FinishedAt, RowsRead: e.RowsRead, RowsWritten: e.RowsWritten,
		RowsDeleted: e.RowsDeleted, Error: e.Error, Verify: e.Verify}
}
