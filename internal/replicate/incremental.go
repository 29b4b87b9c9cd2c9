package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// incremental copies the rows whose watermark is at or after the last one
// (minus the lookback). For TIMESTAMP watermarks it reads through the second
// the run started in, so every row changed before the run started is copied
// by it, and stops there: a future stamp would otherwise become the
// watermark and hide every later change. Rows stamped in that last second
// after the copy passed them are not skipped: the next run starts at the
// recorded watermark, inclusive, which is at most that second.
//
// Every source statement is bounded (issue: a read sorted on an unindexed
// column is a full scan and a sort, holding MyISAM's table lock throughout):
// with an index on the watermark the rows are read in its order, batch_size
// at a time (indexedIncremental); without one the table is scanned in
// primary-key spans of batch_size rows, keeping the changed rows of each
// (scanIncremental). plan only chooses incremental for a watermark with an
// index or of type TIMESTAMP (the scan's safe bound, see scanIncremental).
func (j *tableJob) incremental(ctx context.Context) error {
	if err := j.begin(state.ModeIncremental, true).Exec(ctx, j.conn); err != nil {
		return err
	}
	j.res.Mode = state.ModeIncremental
	if j.wmIndex == "" {
		return j.scanIncremental(ctx)
	}
	return j.indexedIncremental(ctx)
}

// bound is a lower bound on the watermark: none, inclusive or exclusive.
type bound struct {
	val  string
	set  bool
	excl bool
}

// startBound is where this run starts: the recorded watermark (minus the
// lookback), inclusive; nothing before a first incremental run.
func (j *tableJob) startBound() bound {
	if j.st == nil || !j.st.Watermark.Valid {
		return bound{}
	}
	return bound{val: lookback(j.st.Watermark.String, j.wmType, j.cfg.LookbackSeconds), set: true}
}

// wmConds are the watermark conditions of a read from lo: the bound, and
// for a TIMESTAMP watermark the run's cut-off.
func (j *tableJob) wmConds(lo bound) ([]string, []any) {
	var conds []string
	var args []any
	w := quoteIdent(j.wm)
	if lo.set {
		op := " >= ?"
		if lo.excl {
			op = " > ?"
		}
		conds, args = append(conds, w+op), append(args, param(lo.val, j.wmType))
	}
	if strings.EqualFold(j.wmType, "timestamp") {
		conds, args = append(conds, w+" < ?"), append(args, j.r.cutoff)
	}
	return conds, args
}

func where(conds []string) string {
	if len(conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(conds, " AND ")
}

// wmChunk reads the first limit+1 rows from lo in the watermark index's
// order: the index is walked, so the read examines only what it returns.
func (j *tableJob) wmChunk(lo bound, limit int) sourceRead {
	tail, args := j.wmTail(lo, limit)
	return sourceRead{query: "SELECT " + j.sel + tail, args: args}
}

// wmTail is wmChunk's statement after the select list.
func (j *tableJob) wmTail(lo bound, limit int) (string, []any) {
	conds, args := j.wmConds(lo)
	return " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (" + quoteIdent(j.wmIndex) + ")" + where(conds) +
		" ORDER BY " + quoteIdent(j.wm) + " LIMIT " + strconv.Itoa(limit+1), args
}

// scanTail is the read of a small table's changed rows after the select
// list: every row is examined.
func (j *tableJob) scanTail() (string, []any) {
	conds, args := j.wmConds(j.startBound())
	return " FROM " + quoteIdent(j.cfg.Name) + where(conds), args
}

// indexedIncremental reads the changed rows in watermark order, limit+1 at
// a time. A chunk that came back whole (more rows follow) keeps all but
// the rows of its last watermark value, which the next chunk reads again
// from that value on; so rows sharing a timestamp across a chunk boundary
// are all read, without ordering by the key (which would sort every row
// from the watermark on). A chunk that is all one value (more rows share a
// stamp than a chunk holds) is read by tieGroup.
func (j *tableJob) indexedIncremental(ctx context.Context) error {
	lo := j.startBound()
	c := j.takePrefetch()
	for {
		if c == nil {
			c = j.newChunk(j.batch())
			if err := j.readChunk(ctx, j.wmChunk(lo, c.limit), c); err != nil {
				return err
			}
		}
		t := &c.wm
		switch {
		case c.f.Rows() <= c.limit: // the last chunk
			return j.commitWm(ctx, c, t.last)
		case t.first == t.last:
			if err := j.tieGroup(ctx, t.last); err != nil {
				return err
			}
			lo = bound{val: t.last, set: true, excl: true}
		default:
			c.f.Truncate(t.lastStart)
			if err := j.commitWm(ctx, c, t.prevLast); err != nil {
				return err
			}
			lo = bound{val: t.last, set: true}
		}
		c = nil
	}
}

// commitWm commits c's rows with wm as the table's watermark.
func (j *tableJob) commitWm(ctx context.Context, c *chunk, wm string) error {
	if c.f.Rows() == 0 {
		return nil
	}
	return j.commitChunk(ctx, &c.f, state.For(j.cfg.Name).Watermark(wm))
}

// tieGroup copies every row whose watermark is v, when more of them share
// it than a chunk holds (a bulk update stamps them alike), in primary-key
// spans of batch_size rows. Each span commits with v as the watermark: a
// run killed in between re-reads from v, inclusive.
func (j *tableJob) tieGroup(ctx context.Context, v string) error {
	cond := quoteIdent(j.wm) + " = ?"
	return j.keySpans(ctx, j.batch(), func(pred string, args []any) error {
		c := j.newChunk(j.batch())
		q := "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY) WHERE " + pred + " AND " + cond
		if err := j.readChunk(ctx, sourceRead{query: q, args: append(args, param(v, j.wmType))}, c); err != nil {
			return err
		}
		return j.commitWm(ctx, c, v)
	})
}

// scanIncremental copies the changed rows of a table whose watermark has
// no index: every row is examined once, in primary-key spans of batch_size
// rows (one statement for a table no larger than that), and the changed
// rows are committed batch_size at a time. The watermark recorded at the
// end is the highest one read. That is safe only because a TIMESTAMP
// watermark is read below the run's cut-off: a row changed behind the
// scan's cursor is stamped at or after the second the run started in, so
// at or after every stamp the scan read, and the next run (from the
// recorded watermark, inclusive) reads it. Until the scan ends the
// watermark is not moved: a run killed mid-scan scans again from the old one.
func (j *tableJob) scanIncremental(ctx context.Context) error {
	conds, cargs := j.wmConds(j.startBound())
	var high string
	pending := j.takePrefetch() // the sweep read the whole table
	prefetched := pending != nil
	if !prefetched {
		pending = j.newChunk(j.batch())
	}
	flush := func(least int) error {
		if m := pending.wm.max; m != "" && (high == "" || j.wmLess(high, m)) {
			high = m
		}
		if pending.f.Rows() < max(least, 1) {
			if j.r.stopped() {
				return ErrStopped
			}
			return nil
		}
		err := j.commitChunk(ctx, &pending.f, state.For(j.cfg.Name))
		pending = j.newChunk(j.batch())
		return err
	}
	if !prefetched && j.smallExact() {
		tail, args := j.scanTail()
		if err := j.readChunk(ctx, sourceRead{query: "SELECT " + j.sel + tail, args: args}, pending); err != nil {
			return err
		}
	} else if !prefetched {
		if err := j.keySpans(ctx, j.batch(), func(pred string, args []any) error {
			q := "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY)" + where(append([]string{pred}, conds...))
			if err := j.appendChunk(ctx, sourceRead{query: q, args: append(args, cargs...)}, pending); err != nil {
				return err
			}
			return flush(j.batch())
		}); err != nil {
			return err
		}
	}
	if err := flush(1); err != nil || high == "" {
		return err
	}
	return state.For(j.cfg.Name).Watermark(high).Exec(ctx, j.conn)
}

// smallExact reports whether the table is read in one statement: its
// engine knows its exact row count and it holds no more than a batch.
func (j *tableJob) smallExact() bool {
	return j.exact && j.src.Rows <= int64(j.batch())
}

// wmLess orders two watermark values: numbers by value, dates and times as
// MySQL prints them (fixed width, so as text).
func (j *tableJob) wmLess(a, b string) bool {
	if isInt(j.wmType) {
		x, errA := strconv.ParseInt(a, 10, 64)
		y, errB := strconv.ParseInt(b, 10, 64)
		if errA == nil && errB == nil {
			return x < y
		}
		if len(a) != len(b) {
			return len(a) < len(b)
		}
	}
	return a < b
}

// chunk is one read's rows and what the watermark did in them.
type chunk struct {
	f     rowcopy.File
	limit int     // rows asked for (the read asks one more when it is ordered)
	wm    wmTrack // set when the table has a watermark

	keyIdx []int // when set, each row's key is kept in keys
	keys   [][]string
}

func (j *tableJob) newChunk(limit int) *chunk {
	c := &chunk{limit: limit}
	c.wm.idx = j.wmIdx
	c.wm.less = j.wmLess
	return c
}

// add adds one row.
func (c *chunk) add(vals []sql.RawBytes) {
	if c.wm.idx >= 0 {
		c.wm.see(&c.f, string(vals[c.wm.idx]))
	}
	if c.keyIdx != nil {
		c.keys = append(c.keys, rawStrings(vals, c.keyIdx))
	}
	c.f.Add(vals)
}

// wmTrack follows the watermark through rows read in its order: the first
// and last value, where the rows of the last value begin and the value
// before it; and the highest value in any order.
type wmTrack struct {
	idx           int
	less          func(a, b string) bool
	rows          int
	first, last   string
	prevLast, max string
	lastStart     rowcopy.Mark
}

func (t *wmTrack) see(f *rowcopy.File, v string) {
	if t.rows == 0 || v != t.last {
		t.prevLast, t.last, t.lastStart = t.last, v, f.Mark()
	}
	if t.rows == 0 {
		t.first = v
	}
	if t.rows == 0 || t.less(t.max, v) {
		t.max = v
	}
	t.rows++
}

// readChunk empties c and reads rd into it.
func (j *tableJob) readChunk(ctx context.Context, rd sourceRead, c *chunk) error {
	c.reset()
	return j.appendChunk(ctx, rd, c)
}

// reset empties c, keeping what it tracks.
func (c *chunk) reset() {
	c.f.Reset()
	c.wm = wmTrack{idx: c.wm.idx, less: c.wm.less}
	c.keys = nil
}

// appendChunk runs rd on a source connection and adds its rows to c (a
// retried read starts again from what c held before).
func (j *tableJob) appendChunk(ctx context.Context, rd sourceRead, c *chunk) error {
	mark, wm, keys := c.f.Mark(), c.wm, len(c.keys)
	err := j.source(ctx, func(ctx context.Context, conn *sql.Conn) error {
		c.f.Truncate(mark)
		c.wm, c.keys = wm, c.keys[:keys]
		return eachRawRow(ctx, conn, rd, len(j.cols), func(vals []sql.RawBytes) error {
			c.add(vals)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read %s from source: %w", j.cfg.Name, err)
	}
	return nil
}

// takePrefetch returns the rows the run's sweep already read for this
// table (its first chunk), once; nil when there are none.
func (j *tableJob) takePrefetch() *chunk {
	if j.pre == nil || j.pre.rows == nil {
		return nil
	}
	c := j.pre.rows
	j.pre.rows = nil
	return c
}

// lookback moves a temporal watermark back by secs; other kinds are kept.
func lookback(wm, dataType string, secs int) string {
	if secs <= 0 || !isTemporal(dataType) {
		return wm
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02"} {
		if t, err := time.Parse(layout, wm); err == nil {
			if len(wm) == len("2006-01-02") {
				return t.Add(-time.Duration(secs) * time.Second).Format("2006-01-02")
			}
			return t.Add(-time.Duration(secs) * time.Second).Format("2006-01-02 15:04:05")
		}
	}
	return wm // a zero date: nothing earlier to look back to
}
