package verify

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// maxKeys caps the differing keys kept per hop of a table (for the report's
// samples and for repair); the counts stay exact beyond it.
const maxKeys = 100_000

// sampleKeys is how many differing keys a report shows per hop.
const sampleKeys = 10

// Diff is what one hop found in one table.
type Diff struct {
	Hop      report.Hop
	Compared int64 // rows of the upstream side compared
	Missing  int64 // upstream rows the downstream side lacks
	Extra    int64 // downstream rows the upstream side lacks
	Changed  int64 // same key, different values
	// Keys of the rows that differ (EncodeKey'd values as the replica
	// prints them), missing first, in the order found; at most maxKeys.
	MissingKeys, ExtraKeys, ChangedKeys [][]string
	Truncated                           bool  // more rows differ than keys kept
	Keyless                             bool  // compared whole: counts, no keys
	Repaired                            int64 // rows re-copied by --repair
	// Pending counts rows that differ because the clinic changed them after
	// the last replicate read the table: the next run copies them, so they
	// are not differences (see pendingRule).
	Pending int64
}

// Identical reports whether the hop found no difference.
func (d *Diff) Identical() bool { return d.Missing == 0 && d.Extra == 0 && d.Changed == 0 }

// Differing is the number of rows that differ.
func (d *Diff) Differing() int64 { return d.Missing + d.Extra + d.Changed }

// Keys is every kept differing key: missing, changed, extra.
func (d *Diff) Keys() [][]string {
	out := make([][]string, 0, len(d.MissingKeys)+len(d.ChangedKeys)+len(d.ExtraKeys))
	out = append(out, d.MissingKeys...)
	out = append(out, d.ChangedKeys...)
	return append(out, d.ExtraKeys...)
}

// kinds of differences
const (
	kindMissing = iota
	kindExtra
	kindChanged
)

// add records one differing row.
func (d *Diff) add(kind int, key []string) {
	dst := &d.MissingKeys
	switch kind {
	case kindMissing:
		d.Missing++
	case kindExtra:
		d.Extra++
		dst = &d.ExtraKeys
	case kindChanged:
		d.Changed++
		dst = &d.ChangedKeys
	}
	if len(d.MissingKeys)+len(d.ExtraKeys)+len(d.ChangedKeys) >= maxKeys {
		d.Truncated = true
		return
	}
	*dst = append(*dst, key)
}

// Report is the hop's entry of the JSON result.
func (d *Diff) Report() report.HopResult {
	h := report.HopResult{Hop: d.Hop, Identical: d.Identical(), RowsCompared: d.Compared,
		Missing: d.Missing, Extra: d.Extra, Changed: d.Changed, Repaired: d.Repaired, Pending: d.Pending}
	for _, k := range d.Keys() {
		if len(h.SampleKeys) == sampleKeys {
			break
		}
		h.SampleKeys = append(h.SampleKeys, state.EncodeKey(k))
	}
	return h
}

// Modes of a table's verification.
const (
	ModeKeys    = "key_ranges" // compared by primary-key ranges
	ModeKeyless = "whole"      // no usable primary key: compared whole
)

// TableResult is one table's verification.
type TableResult struct {
	Table         string
	Mode          string
	SourceReplica Diff
	ReplicaRaw    Diff
	// Complete is false when the budget ran out before the table's last
	// range; the next verification resumes after LastKey.
	Complete bool
	Resumed  bool     // this run continued a pass an earlier run began
	LastKey  []string // the last key verified, when not Complete
	// PassStarted is when the table's pass began (earlier than Started when
	// it was resumed): what an identical result vouches for.
	PassStarted   time.Time
	Started       time.Time
	Finished      time.Time
	SourceQueries int64
	Ranges        int   // key ranges compared in this run
	Err           error // the table could not be compared
	RepairErr     error // --repair could not repair the table
	// After is the verification after --repair (nil when the table was not
	// repaired); the hops above then say what was found and repaired.
	After *TableResult
}

// Differs reports whether a hop differs (after the repair, if any).
func (t *TableResult) Differs() bool {
	if t.After != nil {
		return t.After.Differs()
	}
	return !t.SourceReplica.Identical() || !t.ReplicaRaw.Identical()
}

// done reports whether the table's pass is complete (after the repair, if any).
func (t *TableResult) done() bool {
	if t.After != nil {
		return t.After.Complete
	}
	return t.Complete
}

// Status is the table's status in the JSON result.
func (t *TableResult) Status() report.TableStatus {
	switch {
	case t.Err != nil, t.RepairErr != nil:
		return report.TableFailed
	case t.Differs():
		return report.TableDiffers
	case !t.done():
		return report.TableStopped
	}
	return report.TableOK
}

// hops are the two hops' entries of the JSON result: what was found, with
// identical as it stands after the repair, if any.
func (t *TableResult) hops() []report.HopResult {
	hops := []report.HopResult{t.SourceReplica.Report(), t.ReplicaRaw.Report()}
	if t.After != nil {
		hops[0].Identical, hops[1].Identical = t.After.SourceReplica.Identical(), t.After.ReplicaRaw.Identical()
	}
	return hops
}

// Report is the table's entry of the JSON result. An identical table's
// entry starts when its pass started, so "proven equal as of" is never
// later than the oldest range compared.
func (t *TableResult) Report() report.Table {
	e := report.Table{Table: t.Table, Phase: report.PhaseVerify, Mode: t.Mode, Status: t.Status(),
		StartedAt: t.Started, FinishedAt: t.Finished, DurationSeconds: report.Seconds(t.Finished.Sub(t.Started)),
		RowsRead: t.SourceReplica.Compared + t.ReplicaRaw.Compared, SourceQueries: t.SourceQueries,
		Verify: &report.Verify{Complete: t.done(), Hops: t.hops()}}
	if t.Status() == report.TableOK && !t.PassStarted.IsZero() {
		e.StartedAt = t.PassStarted
	}
	if t.Resumed {
		e.Plan = "resumed its pass begun " + t.PassStarted.UTC().Format(time.RFC3339)
	}
	if t.SourceReplica.Keyless {
		e.Plan = "no usable primary key: counts and a whole-table hash, rows not located"
	}
	if t.After != nil {
		e.Plan = fmt.Sprintf("repaired %d rows in the replica and %d in raw; verified again: %s", t.SourceReplica.Repaired, t.ReplicaRaw.Repaired, t.Status())
	}
	if t.Err != nil {
		e.Error = t.Err.Error()
	} else if t.RepairErr != nil {
		e.Error = "repair: " + t.RepairErr.Error()
	}
	return e
}

// Result is one verification over many tables.
type Result struct {
	Tables        []*TableResult
	Skipped       []string // selected tables the budget left for the next run
	Started       time.Time
	Finished      time.Time
	SourceQueries int64
}

// Merge adds the verification after a repair (again) to the tables it
// verified again: their After, source queries and end.
func (r *Result) Merge(again *Result) {
	byName := map[string]*TableResult{}
	for _, t := range again.Tables {
		byName[t.Table] = t
	}
	for _, t := range r.Tables {
		if n := byName[t.Table]; n != nil {
			t.After, t.PassStarted = n, t.Started
			t.SourceQueries += n.SourceQueries
			t.Finished = n.Finished
		}
	}
	r.SourceQueries += again.SourceQueries
	r.Finished = again.Finished
}

// Differ counts the tables that differ.
func (r *Result) Differ() int {
	n := 0
	for _, t := range r.Tables {
		if t.Err == nil && t.Differs() {
			n++
		}
	}
	return n
}

// Failed counts the tables that could not be compared.
func (r *Result) Failed() int {
	n := 0
	for _, t := range r.Tables {
		if t.Err != nil {
			n++
		}
	}
	return n
}

// Write prints one line per table and hop, and a total line.
func (r *Result) Write(w io.Writer) {
	fmt.Fprintf(w, "%-28s %-15s %-9s %10s %8s %8s %8s  %s\n", "TABLE", "HOP", "RESULT", "COMPARED", "MISSING", "EXTRA", "CHANGED", "KEYS / NOTE")
	for _, t := range r.Tables {
		if t.Err != nil {
			fmt.Fprintf(w, "%-28s %-15s %-9s %10s %8s %8s %8s  %s\n", t.Table, "", "FAILED", "", "", "", "", t.Err)
			continue
		}
		for i, d := range []*Diff{&t.SourceReplica, &t.ReplicaRaw} {
			fmt.Fprintf(w, "%-28s %-15s %-9s %10d %8d %8d %8d  %s\n", t.Table, d.Hop, hopWord(t, i, d), d.Compared, d.Missing, d.Extra, d.Changed, hopNote(t, d))
		}
	}
	fmt.Fprintf(w, "%d tables verified: %d identical, %d differ, %d failed, %d not finished; %d source queries in %.2fs\n",
		len(r.Tables), len(r.Tables)-r.Differ()-r.Failed()-r.unfinished(), r.Differ(), r.Failed(), r.unfinished(),
		r.SourceQueries, r.Finished.Sub(r.Started).Seconds())
	if len(r.Skipped) > 0 {
		fmt.Fprintf(w, "%d tables left for the next verification (budget spent): %s\n", len(r.Skipped), strings.Join(r.Skipped, ", "))
	}
}

func (r *Result) unfinished() int {
	n := 0
	for _, t := range r.Tables {
		if t.Err == nil && !t.Differs() && !t.done() {
			n++
		}
	}
	return n
}

// hopWord is hop i's result: after a repair, whether it worked.
func hopWord(t *TableResult, i int, d *Diff) string {
	after := d
	if t.After != nil {
		after = []*Diff{&t.After.SourceReplica, &t.After.ReplicaRaw}[i]
	}
	switch {
	case !after.Identical():
		return "DIFFERS"
	case !d.Identical():
		return "repaired"
	case !t.done():
		return "partial"
	}
	return "identical"
}

func hopNote(t *TableResult, d *Diff) string {
	var notes []string
	for _, k := range d.Keys() {
		if len(notes) == 3 {
			notes = append(notes, "…")
			break
		}
		notes = append(notes, state.EncodeKey(k))
	}
	if d.Keyless && !d.Identical() {
		notes = append(notes, "no primary key: rows cannot be named")
	}
	if d.Repaired > 0 {
		notes = append(notes, fmt.Sprintf("%d repaired", d.Repaired))
	}
	if d.Pending > 0 {
		notes = append(notes, fmt.Sprintf("%d changed since the last run (copied by the next)", d.Pending))
	}
	if !t.done() && t.LastKey != nil {
		notes = append(notes, "resumes after "+state.EncodeKey(t.LastKey))
	}
	return strings.Join(notes, " ")
}
