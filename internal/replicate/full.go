package replicate

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// fullCopy copies the whole table in primary-key order, batch_size rows per
// short query, resuming after the last committed chunk of an interrupted copy.
func (j *tableJob) fullCopy(ctx context.Context, restart bool) error {
	lastKey := j.resumeKey(restart)
	first := lastKey == nil
	if err := j.beginFull(ctx, first); err != nil {
		return err
	}
	if c := j.takePrefetch(); c != nil && first && c.f.Rows() <= c.limit {
		return j.prefetchedFull(ctx, c)
	}
	// A fresh copy of a table with a watermark reads MAX(watermark) before its
	// first chunk, in the same source turn; it becomes the watermark at the
	// end, so rows changed behind the copy's cursor are taken next time.
	var startWM sql.NullString
	withWM := first && j.wm != ""
	spanned := withWM && j.wmIndex == "" && !j.smallExact() // else one bounded MAX
	if spanned {
		var err error
		if startWM, err = j.spanMax(ctx); err != nil {
			return err
		}
	}
	f := rowcopy.File{KeepKeys: first}
	n := j.batch()
	for {
		rd := j.keyChunk(lastKey)
		if withWM && !spanned {
			rd.pre = j.maxWatermark(&startWM)
		}
		last, err := j.readSource(ctx, rd, &f)
		if err != nil {
			return err
		}
		if f.Rows() == 0 {
			if first {
				return j.emptyFull(ctx, startWM)
			}
			break
		}
		u := state.For(j.cfg.Name).LastKey(state.EncodeKey(last))
		if withWM {
			u.StartWatermark(startWM)
		}
		if first && f.Rows() < n {
			j.srcKeys = keysOf(&f)
		}
		if err := j.commitChunk(ctx, &f, u); err != nil {
			return err
		}
		lastKey, first, withWM = last, false, false
		f.KeepKeys = false // only a one-chunk table keeps its key list
		if f.Rows() < n {
			break
		}
	}
	j.res.Mode = state.ModeFull
	return nil
}

// prefetchedFull copies a small table the run's sweep read whole (in key
// order, with its MAX(watermark) in the same statement: the copy's start
// watermark) as the copy's only chunk.
func (j *tableJob) prefetchedFull(ctx context.Context, c *chunk) error {
	startWM := j.pre.maxWM
	if c.f.Rows() == 0 {
		return j.emptyFull(ctx, startWM)
	}
	u := state.For(j.cfg.Name).LastKey(state.EncodeKey(c.keys[len(c.keys)-1]))
	if j.wm != "" {
		u.StartWatermark(startWM)
	}
	j.srcKeys = make(map[string]bool, len(c.keys))
	for _, k := range c.keys {
		j.srcKeys[state.EncodeKey(k)] = true
	}
	if err := j.commitChunk(ctx, &c.f, u); err != nil {
		return err
	}
	j.res.Mode = state.ModeFull
	return nil
}

// resumeKey is the key after which an interrupted full copy continues; nil
// to start from the beginning.
func (j *tableJob) resumeKey(restart bool) []string {
	if restart || !unfinishedFull(j.st) || !j.st.LastKey.Valid {
		return nil
	}
	var lastKey []string
	if err := json.Unmarshal([]byte(j.st.LastKey.String), &lastKey); err != nil || len(lastKey) != len(j.key) {
		return nil // an unreadable resume point: start over, upserts make it harmless
	}
	j.res.Resumed = true
	return lastKey
}

// beginFull records the start of a fresh full copy, or of its resumption.
func (j *tableJob) beginFull(ctx context.Context, fresh bool) error {
	if fresh {
		return j.begin(state.ModeFull, true).ClearLastKey().StartWatermark(sql.NullString{}).Exec(ctx, j.conn)
	}
	return state.For(j.cfg.Name).Status(state.StatusRunning).RunStart(time.Now()).ClearError().Exec(ctx, j.conn)
}

// keyChunk reads the batch_size rows after lastKey (from the start: nil).
func (j *tableJob) keyChunk(lastKey []string) sourceRead {
	tail, args := j.keyChunkTail(lastKey, j.batch())
	return sourceRead{query: "SELECT " + j.sel + tail, args: args, idx: j.keyIdx}
}

// keyChunkTail is a key chunk's statement after the select list: the n
// rows after lastKey in key order. FORCE INDEX: without a WHERE (the first
// chunk) MariaDB would rather scan the whole table and sort it than walk
// the key's index.
func (j *tableJob) keyChunkTail(lastKey []string, n int) (string, []any) {
	tail := " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY)"
	var args []any
	if lastKey != nil {
		var pred string
		pred, args = after(j.key, params(lastKey, j.keyTypes))
		tail += " WHERE " + pred
	}
	return tail + " ORDER BY " + identList(j.key) + " LIMIT " + fmt.Sprint(n), args
}

// maxWatermark reads the source's highest watermark into wm; for a
// TIMESTAMP one, the highest before the incremental cut-off, so that a row
// stamped in the future cannot become the watermark. It is one index
// lookup, or without an index on the watermark a scan of a table no larger
// than a batch; a larger one's is taken by spanMax.
func (j *tableJob) maxWatermark(wm *sql.NullString) func(context.Context, *sql.Conn) error {
	q, args := j.maxWatermarkSQL("")
	return func(ctx context.Context, c *sql.Conn) error { return schema.ScanOne(ctx, c, q, args, wm) }
}

// maxWatermarkSQL is the MAX(watermark) statement, over the rows of pred
// when given (a key span, whose arguments come first).
func (j *tableJob) maxWatermarkSQL(pred string) (string, []any) {
	q := "SELECT MAX(" + quoteIdent(j.wm) + ") FROM " + quoteIdent(j.cfg.Name)
	var conds []string
	var args []any
	if pred != "" {
		q += " FORCE INDEX (PRIMARY)"
		conds = append(conds, pred)
	}
	if strings.EqualFold(j.wmType, "timestamp") {
		conds, args = append(conds, quoteIdent(j.wm)+" < ?"), append(args, j.r.cutoff)
	}
	return q + where(conds), args
}

// spanMax is MAX(watermark) of a table whose watermark has no index: one
// MAX over the whole table would read every row in one statement, holding
// MyISAM's table lock throughout, so it is taken span by span (keySpans)
// before the copy starts. A row changed while the spans are read is read
// by the copy that follows.
func (j *tableJob) spanMax(ctx context.Context) (sql.NullString, error) {
	var high sql.NullString
	err := j.keySpans(ctx, j.batch(), func(pred string, args []any) error {
		q, a := j.maxWatermarkSQL(pred)
		var m sql.NullString
		if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
			return schema.ScanOne(ctx, c, q, append(args, a...), &m)
		}); err != nil {
			return fmt.Errorf("read watermark of %s: %w", j.cfg.Name, err)
		}
		if m.Valid && (!high.Valid || j.wmLess(high.String, m.String)) {
			high = m
		}
		return nil
	})
	return high, err
}

// emptyFull ends the full copy of a source table that has no row.
func (j *tableJob) emptyFull(ctx context.Context, startWM sql.NullString) error {
	j.srcKeys = map[string]bool{}
	if err := state.For(j.cfg.Name).StartWatermark(startWM).Exec(ctx, j.conn); err != nil {
		return err
	}
	j.res.Mode = state.ModeFull
	return nil
}

// keysOf collects the keys of the rows in f (kept as a side list by readSource).
func keysOf(f *rowcopy.File) map[string]bool {
	out := make(map[string]bool, len(f.Keys))
	for _, k := range f.Keys {
		out[k] = true
	}
	return out
}
