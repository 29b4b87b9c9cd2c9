package verify

import (
	"strconv"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// pendingRule tells, on the source ↔ replica hop, a difference the next
// run carries over anyway (the clinic changed the row after the last
// replicate read it: pending) from one no run would ever copy (drift).
// A row of an incremental table is pending when its watermark is at or
// after the watermark the replica has copied up to; a row of another
// table, or a row the source no longer has, when the source table may have
// been written since the last replicate began (and, for a deleted row, the
// next run looks for deletes): replicate then compares the whole table
// again and copies what differs. Written since means its UPDATE_TIME (kept
// to the second by MyISAM) is not the one recorded when the copy began; a
// write in that same second looks unwritten, so its rows count as
// differences (a false alarm the next run clears, never a hidden one). An
// engine that does not keep UPDATE_TIME makes every such difference count.
type pendingRule struct {
	wm      string // the incremental watermark column; "" when none applies
	copied  string // the replica's watermark: what the last replicate copied up to
	changed bool   // the source table was written since the last replicate began
	deletes bool   // the next run finds deletes
}

func newPendingRule(cfg *tables.Table, src *schema.Table, st *state.Row) pendingRule {
	var p pendingRule
	if st == nil {
		return p
	}
	p.changed = src.UpdateTime != "" && st.SourceUpdateTime.Valid && !sameTime(src.UpdateTime, st.SourceUpdateTime.String)
	p.deletes = cfg.DeletesEnabled()
	if c := src.Column(cfg.Watermark()); cfg.Strategy.IsIncremental() && c != nil && st.Watermark.Valid {
		p.wm, p.copied = c.Name, st.Watermark.String
	}
	return p
}

// pending reports whether a difference of kind is pending; wm is the
// source row's watermark value (missing and changed rows).
func (p pendingRule) pending(kind int, wm string) bool {
	switch {
	case kind == kindExtra:
		return p.changed && p.deletes
	case p.wm != "":
		return !before(wm, p.copied)
	}
	return p.changed
}

// before reports whether watermark value a sorts before b: as numbers,
// as times, or else as text.
func before(a, b string) bool {
	if x, err := strconv.ParseInt(a, 10, 64); err == nil {
		if y, err := strconv.ParseInt(b, 10, 64); err == nil {
			return x < y
		}
	}
	if x, err := strconv.ParseUint(a, 10, 64); err == nil {
		if y, err := strconv.ParseUint(b, 10, 64); err == nil {
			return x < y
		}
	}
	const layout = "2006-01-02 15:04:05.999999"
	if x, err := time.Parse(layout, a); err == nil {
		if y, err := time.Parse(layout, b); err == nil {
			return x.Before(y)
		}
	}
	return a < b
}

func sameTime(a, b string) bool {
	return strings.TrimSuffix(a, ".000000") == strings.TrimSuffix(b, ".000000")
}
