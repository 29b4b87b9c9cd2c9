package replicate

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// incremental copies the rows whose watermark is at or after the last one
// (minus the lookback), paging on (watermark, key) so rows sharing a
// timestamp across a chunk boundary are all read. For TIMESTAMP watermarks
// it reads through the second the run started in, so every row changed
// before the run started is copied by it, and stops there: a future stamp
// would otherwise become the watermark and hide every later change. Rows
// stamped in that last second after the copy passed them are not skipped:
// the next run starts at the recorded watermark, inclusive, which is at most
// that second.
func (j *tableJob) incremental(ctx context.Context) error {
	if err := j.begin(state.ModeIncremental, true).Exec(ctx, j.conn); err != nil {
		return err
	}
	w := j.watermarkWalk()
	var f rowcopy.File
	var cursor []string
	for {
		last, err := j.readSource(ctx, w.chunk(cursor), &f)
		if err != nil {
			return err
		}
		if f.Rows() == 0 {
			break
		}
		if err := j.commitChunk(ctx, &f, state.For(j.cfg.Name).Watermark(last[0]).LastKey(state.EncodeKey(last[1:]))); err != nil {
			return err
		}
		cursor = last
		if f.Rows() < w.n {
			break
		}
	}
	j.res.Mode = state.ModeIncremental
	return nil
}

// walk pages through a table's changed rows in (watermark, key) order.
type walk struct {
	from     string   // FROM clause and select list: "SELECT … FROM t"
	order    []string // the watermark, then the key columns but it
	idx      []int    // their indexes among the columns
	types    []string // their DATA_TYPEs
	base     []string // conditions of every chunk (from the last watermark, before the cut-off)
	baseArgs []any
	n        int // batch_size
}

// watermarkWalk is the walk of this run: from the recorded watermark (minus
// the lookback), and for a TIMESTAMP watermark through the second the run
// started in.
func (j *tableJob) watermarkWalk() walk {
	w := walk{from: "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name), order: []string{j.wm}, idx: []int{j.wmIdx},
		types: []string{j.wmType}, n: j.batch()}
	for i, k := range j.key {
		if !strings.EqualFold(k, j.wm) {
			w.order = append(w.order, k)
			w.idx = append(w.idx, j.keyIdx[i])
			w.types = append(w.types, j.keyTypes[i])
		}
	}
	if j.st != nil && j.st.Watermark.Valid {
		w.base = append(w.base, quoteIdent(j.wm)+" >= ?")
		w.baseArgs = append(w.baseArgs, param(lookback(j.st.Watermark.String, j.wmType, j.cfg.LookbackSeconds), j.wmType))
	}
	if strings.EqualFold(j.wmType, "timestamp") {
		w.base = append(w.base, quoteIdent(j.wm)+" < ?")
		w.baseArgs = append(w.baseArgs, j.r.cutoff)
	}
	return w
}

// chunk reads the batch_size rows after cursor (from the start: nil).
func (w walk) chunk(cursor []string) sourceRead {
	conds := append([]string{}, w.base...)
	args := append([]any{}, w.baseArgs...)
	if cursor != nil {
		pred, a := after(w.order, params(cursor, w.types))
		conds = append(conds, pred)
		args = append(args, a...)
	}
	q := w.from
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY " + identList(w.order) + " LIMIT " + fmt.Sprint(w.n)
	return sourceRead{query: q, args: args, idx: w.idx}
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
