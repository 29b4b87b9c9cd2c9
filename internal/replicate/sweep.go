package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/opendental-pipeline/pipeline/internal/state"
)

// The sweep: most tables a run copies need one short read (the few rows
// that changed in them, the whole of a small full_table table, or on a
// first run the whole of a small table with its MAX(watermark)) and, for
// delete detection, one count. With the rate limit every source statement
// costs at least rate_limit_ms, and a clinic day touches a hundred tables
// (a first run four hundred), so the run asks for many tables' first reads
// and counts in one statement, a UNION ALL whose parts each read one table
// exactly as its job would (and its rows land in the job as its first
// chunk):
//
//	(SELECT 0, a.c1, a.c2, NULL, NULL, NULL, NULL, NULL FROM a FORCE INDEX (wm) WHERE wm >= ? AND wm < ? ORDER BY wm LIMIT 501)
//	UNION ALL (SELECT 2, NULL, NULL, b.c1, b.c2, NULL, NULL, NULL FROM b LIMIT 10001)
//	UNION ALL (SELECT 1, NULL, NULL, NULL, NULL, (SELECT COUNT(*) FROM a), (SELECT COUNT(*) FROM (SELECT 1 FROM a … LIMIT n) x), NULL)
//
// Every table has columns of its own in the result (NULL in the other
// parts), so each result column takes the type of one source column and
// its values arrive exactly as a read of that table alone would send them.
// A statement holds parts until their rows add up to a chunk's worth (the
// largest batch_size among them), maxSweepBytes or maxSweepColumns, and is
// run when the first of its tables' jobs starts, so what it read waits
// only for the next few jobs. Each part stays bounded as its job's read
// is: a watermark index walked for at most the rows asked for, a small
// table (exact row count at most its batch_size) read whole, a count that
// reads no row but those above the replica's highest key. MyISAM locks the
// statement's tables for its duration, which is short: the parts are small.

// maxSweepColumns caps the result columns of one sweep statement.
const maxSweepColumns = 1000

// maxSweepParts caps the parts (tables) of one sweep statement.
const maxSweepParts = 60

// prefetch is what the sweep read for one table.
type prefetch struct {
	rows  *chunk         // the job's first chunk (for a small table: all of it); nil when none
	check *deleteCheck   // the delete count made before the copy; nil when none
	maxWM sql.NullString // a fresh full copy's start watermark: MAX(watermark) in the same statement as its rows
}

// sweepPart is one table's share of a sweep statement.
type sweepPart struct {
	p          *plan
	j          *tableJob
	tail       string // the row read after its select list: " FROM … WHERE … LIMIT …"; "" for no row read
	args       []any
	c          *chunk
	check      *deleteCheck // a count is asked when set
	maxWM      bool         // MAX(watermark) is asked (a fresh full copy of a table with one)
	maxWMValue sql.NullString
	cost       int64 // rows the part may examine
	excess     int64 // rows it may examine without returning them
	bytes      int64 // bytes its rows may take in memory
	off        int   // its first result column (after the tag)
}

// sweepGroup is the parts one statement reads, run once, by the first job
// of the group that starts: the groups follow the jobs' order, so the
// rows read wait in memory only until their jobs, which start next, take
// them.
type sweepGroup struct {
	parts []*sweepPart
	once  sync.Once
}

// read runs the group's statement once; a failure is logged and the
// group's jobs read for themselves.
func (g *sweepGroup) read(ctx context.Context, r *runner) {
	g.once.Do(func() {
		if err := r.sweepRead(ctx, g.parts); err != nil && ctx.Err() == nil {
			r.log.Warn("sweep statement failed: its tables read for themselves", "tables", len(g.parts), "err", err)
		}
	})
}

// sweep plans the statements that will read the first chunk, delete count
// or start watermark of every job it can, in as few statements as it can,
// and gives each job its group (plan.sweep), read when the group's first
// job starts (sweepGroup.read).
func (r *runner) sweep(ctx context.Context, jobs []*plan) {
	parts, err := r.sweepParts(ctx, jobs)
	if err != nil {
		r.log.Warn("sweep skipped: jobs read for themselves", "err", err)
		return
	}
	for len(parts) > 0 {
		n := sweepGroupSize(parts)
		g := &sweepGroup{parts: parts[:n]}
		for _, sp := range g.parts {
			sp.p.sweep = g
		}
		parts = parts[n:]
	}
}

// sweepParts decides each job's part: the read its job would start with,
// when that read is bounded and small, and a delete count where the engine
// keeps an exact row count and the replica has rows.
func (r *runner) sweepParts(ctx context.Context, jobs []*plan) ([]*sweepPart, error) {
	var parts []*sweepPart
	for _, p := range jobs {
		if !p.sweepable(r.opts.FullRefresh) {
			continue
		}
		j := newTableJob(r, p)
		sp := &sweepPart{p: p, j: j}
		sp.tail, sp.args, sp.c, sp.cost = j.firstRead(p.mode)
		sp.bytes = sp.cost * max(p.src.AvgRowLen, 1)
		if sp.c != nil && p.mode == state.ModeIncremental && j.wmIndex == "" {
			sp.excess = sp.cost // a scan: its rows are examined, few returned
		}
		sp.maxWM = sp.c != nil && p.mode == state.ModeFull && j.wm != ""
		if p.mode == state.ModeIncremental && p.cfg.DeletesEnabled() && j.exact {
			chk, err := replicaMax(ctx, r.deps.Replica, p.cfg.Name, j.key)
			if err != nil {
				return nil, err
			}
			if chk.repMax != nil {
				sp.check = chk
			}
		}
		if sp.c != nil || sp.check != nil {
			parts = append(parts, sp)
		}
	}
	return parts, nil
}

// sweepable reports whether the sweep may read for the table: changed rows
// of an existing copy, or the whole of a table copied afresh.
func (p *plan) sweepable(fullRefresh bool) bool {
	switch p.mode {
	case state.ModeIncremental, state.ModeDiff:
		return !p.create && !p.rebuild && !p.alter
	case state.ModeFull:
		return p.restarts(fullRefresh) || !unfinishedFull(p.st) || !p.st.LastKey.Valid
	}
	return false
}

// firstRead is the job's first source read when the sweep may take it:
// the read after the select list, its arguments, the chunk it fills and
// the rows it may examine; no chunk when the first read is not the sweep's.
func (j *tableJob) firstRead(mode string) (string, []any, *chunk, int64) {
	switch {
	case mode == state.ModeFull && j.smallExact():
		c := j.newChunk(j.batch())
		c.keyIdx = j.keyIdx
		tail, _ := j.keyChunkTail(nil, c.limit+1)
		return tail, nil, c, j.src.Rows
	case mode == state.ModeFull:
	case j.wm != "" && j.wmIndex != "":
		c := j.newChunk(j.sweepLimit())
		tail, args := j.wmTail(j.startBound(), c.limit)
		return tail, args, c, int64(c.limit + 1)
	case j.wm != "" && j.smallExact():
		tail, args := j.scanTail()
		return tail, args, j.newChunk(j.batch()), j.src.Rows
	case j.wm == "" && j.smallExact():
		c := j.newChunk(j.batch())
		return j.wholeTail(c.limit), nil, c, j.src.Rows
	}
	return "", nil, nil, 0
}

// sweepLimit is how many changed rows the sweep asks of a table with a
// watermark index: about twice what its last incremental run copied (at
// least 100, at most batch_size); a table that changed more goes on
// reading in its own job.
func (j *tableJob) sweepLimit() int {
	last := int64(0)
	if j.st != nil && j.st.Mode == state.ModeIncremental && j.st.Status == state.StatusOK {
		last = j.st.RowsCopied
	}
	return int(min(max(2*last+100, 100), int64(j.batch())))
}

// maxSweepBytes caps the bytes of rows one sweep statement may bring
// (by the tables' average row length).
const maxSweepBytes = 8 << 20

// sweepGroupSize is how many of parts (at least one) one statement takes:
// the rows its parts may examine without returning them stay within a
// chunk's worth (the largest batch_size among them), all the rows they
// may examine within four, their rows' bytes within maxSweepBytes.
func sweepGroupSize(parts []*sweepPart) int {
	var budget, cost, excess, bytes int64
	cols := 0
	for i, sp := range parts {
		budget = max(budget, int64(sp.j.batch()))
		width := len(sp.j.cols)
		if i > 0 && (excess+sp.excess > budget || cost+sp.cost > 4*budget || bytes+sp.bytes > maxSweepBytes ||
			cols+width > maxSweepColumns || i == maxSweepParts) {
			return i
		}
		cost, excess, bytes, cols = cost+sp.cost, excess+sp.excess, bytes+sp.bytes, cols+width
	}
	return len(parts)
}

// sweepRead runs one statement for parts and hands each job its rows and
// count.
func (r *runner) sweepRead(ctx context.Context, parts []*sweepPart) error {
	q, args, width := sweepSQL(parts)
	err := r.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		for _, sp := range parts {
			if sp.c != nil {
				sp.c.reset()
			}
		}
		return eachRawRow(ctx, c, sourceRead{query: q, args: args}, 1+width+3, func(vals []sql.RawBytes) error {
			return routeSweepRow(parts, vals, width)
		})
	})
	if err != nil {
		return err
	}
	for _, sp := range parts {
		sp.p.pre = &prefetch{rows: sp.c, check: sp.check, maxWM: sp.maxWMValue}
		if sp.check != nil && !sp.check.known {
			sp.p.pre.check = nil
		}
		sp.c = nil // the job's now: freed once it takes it (takePrefetch)
	}
	return nil
}

// sweepSQL writes the statement of parts: its text, arguments and the
// number of table columns (between the tag and the three columns of
// counts and watermarks: the table's row count, the rows above the
// replica's highest key, MAX(watermark) as text).
func sweepSQL(parts []*sweepPart) (string, []any, int) {
	width := 0
	for _, sp := range parts {
		sp.off = width
		width += len(sp.j.cols)
	}
	var sel []string
	var args []any
	for i, sp := range parts {
		if sp.c != nil {
			sel = append(sel, "(SELECT "+strconv.Itoa(2*i)+", "+nulls(sp.off)+sp.j.sel+","+nulls(width-sp.off-len(sp.j.cols))+"NULL, NULL, NULL"+sp.tail+")")
			args = append(args, sp.args...)
		}
		switch {
		case sp.check != nil:
			exprs, a := sp.j.countExprs(sp.check.repMax)
			sel = append(sel, "(SELECT "+strconv.Itoa(2*i+1)+", "+nulls(width)+exprs[0]+", "+exprs[1]+", NULL)")
			args = append(args, a...)
		case sp.maxWM:
			q, a := sp.j.maxWatermarkSQL("")
			sel = append(sel, "(SELECT "+strconv.Itoa(2*i+1)+", "+nulls(width)+"NULL, NULL, CAST(("+q+") AS CHAR))")
			args = append(args, a...)
		}
	}
	return strings.Join(sel, " UNION ALL "), args, width
}

// nulls is "NULL, " n times.
func nulls(n int) string { return strings.Repeat("NULL, ", n) }

// routeSweepRow hands one result row to its part: a row of its table, or
// its count.
func routeSweepRow(parts []*sweepPart, vals []sql.RawBytes, width int) error {
	tag, err := strconv.Atoi(string(vals[0]))
	if err != nil || tag < 0 || tag/2 >= len(parts) {
		return fmt.Errorf("sweep: unexpected part tag %q", vals[0])
	}
	sp := parts[tag/2]
	if tag%2 == 0 {
		sp.c.add(vals[1+sp.off : 1+sp.off+len(sp.j.cols)])
		return nil
	}
	if sp.maxWM {
		sp.maxWMValue = sql.NullString{String: string(vals[3+width]), Valid: vals[3+width] != nil}
		return nil
	}
	total, err1 := strconv.ParseInt(string(vals[1+width]), 10, 64)
	above, err2 := strconv.ParseInt(string(vals[2+width]), 10, 64)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("sweep: unreadable count of %s", sp.p.cfg.Name)
	}
	sp.check.set(total, above, sp.j.aboveLimit())
	return nil
}
