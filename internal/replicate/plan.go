package replicate

import (
	"fmt"
	"sort"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// unlisted sorts the source's tables tables.yml does not list into those
// discover would add (unlisted) and those it refuses (reserved names).
func unlisted(src *schema.Database, cfg *tables.Config) (unlisted, reserved []string) {
	for name := range src.Tables {
		switch _, listed := cfg.Tables[name]; {
		case state.Reserved(name) && !listed:
			reserved = append(reserved, name)
		case !listed:
			unlisted = append(unlisted, name)
		}
	}
	sort.Strings(unlisted)
	sort.Strings(reserved)
	return unlisted, reserved
}

// plan is one table's work as decided from the schemas and state in memory.
type plan struct {
	cfg     *tables.Table
	src     *schema.Table
	rep     *schema.Table // nil: not in the replica yet
	st      *state.Row    // nil: never copied
	res     *TableResult
	create  bool   // not in the replica yet
	rebuild bool   // the primary key changed: the replica table is dropped and copied anew
	alter   bool   // the columns changed: altered, then copied in full
	reindex bool   // only the secondary or unique indexes changed: synced before the copy
	mode    string // a state.Mode…

	srcCreate string // the source's SHOW CREATE TABLE, once read in this run

	pre   *prefetch   // what the sweep read for the table (run.sweep); nil when nothing
	sweep *sweepGroup // the sweep statement that reads for the table; nil when none
}

// plan decides what to do with a table without touching any database, so
// that unchanged tables cost nothing beyond the run's three schema queries.
// It returns nil for a table with nothing to do (unchanged, or refused: see
// res.Err).
func (r *runner) plan(t *tables.Table, src, rep *schema.Table, st *state.Row, res *TableResult) *plan {
	if why, err := refusal(t, src); err != nil {
		res.Plan, res.Err = why, err
		return nil
	}
	p := &plan{cfg: t, src: src, rep: rep, st: st, res: res}
	notes := p.shape()
	notes = append(notes, p.chooseMode(r.opts.FullRefresh))
	notes = append(notes, p.notes()...)
	res.Mode = p.mode
	res.Plan = strings.Join(notes, "; ")
	if p.mode == state.ModeSkip {
		return nil
	}
	return p
}

// shape decides how the replica table's definition is brought in line with
// the source's and says so: created, rebuilt (the primary key changed or
// went: rows keyed the old way would collapse), altered (columns; every
// index that changed is rebuilt too) or only re-indexed. A tables.yml
// primary_key that is not the source's is reported, never used: the copy
// always follows the source's key.
func (p *plan) shape() []string {
	var notes []string
	if stale := configKeyStale(p.cfg, p.src); stale != "" {
		notes = append(notes, stale)
	}
	switch {
	case p.rep == nil:
		p.create = true
		return append(notes, "create replica table")
	case keyChanged(p.src, p.rep):
		p.rebuild = true
		return append(notes, fmt.Sprintf("primary key changed %s → %s: rebuild replica table", keyText(p.rep.PrimaryKey), keyText(p.src.PrimaryKey)))
	case needsDDL(p.src, p.rep):
		p.alter = true
		return append(notes, "apply schema drift")
	}
	stale, missing := indexDrift(p.src, p.rep)
	// A full copy killed before its end has not built its plain indexes yet:
	// its end builds them, missing ones are no drift then.
	if len(stale) > 0 || len(missing) > 0 && !unfinishedFull(p.st) {
		p.reindex = true
		notes = append(notes, "sync indexes")
	}
	return notes
}

// refusal says why a table cannot be copied at all, if it cannot.
func refusal(t *tables.Table, src *schema.Table) (string, error) {
	if err := state.CheckName(t.Name); err != nil {
		return "reserved name", err
	}
	if src == nil {
		return "missing at source", fmt.Errorf("table %s is in tables.yml but not in the source database (dropped at the source?); run `pipeline discover`"+
			" to remove it from tables.yml (or set exclude: true): its replica and raw copies are then reported as orphaned, and --drop-orphans drops them", t.Name)
	}
	if w := src.Column(t.Watermark()); t.Strategy.IsIncremental() && w != nil && w.Nullable {
		return "nullable watermark", fmt.Errorf("watermark column %s of %s is nullable: rows where it is NULL would never be copied;"+
			" in tables.yml name a NOT NULL column in watermark_columns or set extraction_strategy: full_table", w.Name, t.Name)
	}
	return "", nil
}

// pageable reports whether the table can be read in primary-key chunks.
func (p *plan) pageable() bool { return len(p.src.PrimaryKey) > 0 && p.src.KeyTravels() }

// incremental reports whether the table can be copied by its watermark:
// one with an index can be read in its order; one without, only if it is a
// TIMESTAMP (the server stamps it, so the scan of scanIncremental has a
// safe bound). Any other is compared by key ranges like a full_table table.
func (p *plan) incremental() bool {
	if !p.cfg.Strategy.IsIncremental() || !p.pageable() {
		return false
	}
	w := p.src.Column(p.cfg.Watermark())
	return w != nil && (wmIndex(p.src, w.Name) != "" || strings.EqualFold(w.DataType, "timestamp"))
}

// wmIndex names an index of t whose first column is col ("" when none).
func wmIndex(t *schema.Table, col string) string {
	for _, ix := range t.Indexes {
		if len(ix.Columns) > 0 && strings.EqualFold(ix.Columns[0], col) {
			return ix.Name
		}
	}
	return ""
}

// exactCount reports whether t's engine keeps its exact row count, so that
// COUNT(*) of the whole table reads no row (MyISAM, Aria).
func exactCount(t *schema.Table) bool {
	return strings.EqualFold(t.Engine, "MyISAM") || strings.EqualFold(t.Engine, "Aria")
}

// chooseMode sets the copy mode and says why, for humans.
func (p *plan) chooseMode(fullRefresh bool) string {
	st := p.st
	switch {
	case len(p.src.PrimaryKey) == 0:
		p.mode = state.ModeShadow
		return "whole copy into a shadow table (no primary key)"
	case !p.pageable():
		p.mode = state.ModeShadow
		return "whole copy into a shadow table (primary key text is not UTF-8: cannot page on it)"
	case fullRefresh || p.create || p.rebuild || p.alter || st == nil:
		p.mode = state.ModeFull
		return "full copy in key chunks"
	case unfinishedFull(st) && st.LastKey.Valid:
		p.mode = state.ModeFull
		return "resume full copy after key " + st.LastKey.String
	case unfinishedFull(st):
		p.mode = state.ModeFull
		return "restart interrupted full copy"
	case unchanged(p.src, st) && !p.reindex:
		p.mode = state.ModeSkip
		return "unchanged since last run"
	case p.incremental():
		p.mode = state.ModeIncremental
		return fmt.Sprintf("incremental on %s from %s", p.cfg.Watermark(), st.Watermark.String)
	}
	p.mode = state.ModeDiff
	return "compare key ranges by checksum, copy the rows that differ"
}

// notes are what the plan does besides its mode.
func (p *plan) notes() []string {
	var out []string
	if p.pageable() && p.cfg.DeletesEnabled() && p.mode != state.ModeSkip && !p.create && !p.rebuild {
		out = append(out, "detect deletes")
	}
	if p.cfg.Strategy.IsIncremental() && !p.incremental() && p.pageable() {
		if p.src.Column(p.cfg.Watermark()) == nil {
			out = append(out, fmt.Sprintf("watermark %q not in source: compared in full", p.cfg.Watermark()))
		} else {
			out = append(out, fmt.Sprintf("watermark %q has no index and is not a TIMESTAMP: compared in full", p.cfg.Watermark()))
		}
	}
	return out
}

// detectsDeletes reports whether the run looks for deleted rows after the
// copy (a diff copy removes them range by range itself; a shadow copy and a
// first copy have none to find).
func (p *plan) detectsDeletes() bool {
	return p.mode != state.ModeShadow && p.mode != state.ModeDiff && p.cfg.DeletesEnabled() && !p.create && !p.rebuild
}

// restarts reports whether a full copy starts over rather than resuming.
func (p *plan) restarts(fullRefresh bool) bool {
	return fullRefresh || p.create || p.rebuild || p.alter
}

// buildsIndexes reports whether the copy ends by adding the source's
// indexes the replica table lacks: left out when the table was created or
// rebuilt (or when a killed first copy is resumed), or new or changed at
// the source.
func (p *plan) buildsIndexes() bool {
	return p.create || p.rebuild || p.alter || p.reindex || p.mode == state.ModeFull && unfinishedFull(p.st)
}

// unchanged reports whether the source table has not been written since the
// last successful run: its UPDATE_TIME (kept exactly by MyISAM) is the one
// recorded then, and that time was already past when the copy began, so no
// later write can share its second.
func unchanged(src *schema.Table, st *state.Row) bool {
	return st.Status == state.StatusOK && src.UpdateTime != "" && st.SourceUpdateTime.Valid && st.SourceStartedAt.Valid &&
		sameTime(src.UpdateTime, st.SourceUpdateTime.String) && st.SourceUpdateTime.String < st.SourceStartedAt.String
}

// unfinishedFull reports whether the last full copy of a table did not
// complete: it is continued (or, killed before its first chunk, restarted)
// as a full copy, whose end also builds the indexes left out at creation.
func unfinishedFull(st *state.Row) bool {
	return st != nil && st.Mode == state.ModeFull && st.Status != state.StatusOK
}

func batchSize(t *tables.Table) int {
	if t.BatchSize > 0 {
		return t.BatchSize
	}
	return tables.DefaultBatchSize
}

func sameTime(a, b string) bool {
	return strings.TrimSuffix(a, ".000000") == strings.TrimSuffix(b, ".000000")
}
