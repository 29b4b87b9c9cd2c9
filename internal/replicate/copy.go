package replicate

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// tableJob copies one table. It owns one replica connection for its lifetime
// and borrows a source connection (through the manager) per query.
type tableJob struct {
	r    *runner
	cfg  *tables.Table
	src  *schema.Table
	st   *state.Row // nil before the first run
	res  *TableResult
	conn *sql.Conn // replica session

	cols     []string // source columns in order
	sel      string   // select list (FLOAT read as DOUBLE so no digit is lost)
	key      []string
	keyIdx   []int
	keyTypes []string
	wm       string // watermark column, "" when none
	wmIdx    int
	wmType   string

	// srcKeys holds every source key when a full copy read the whole table
	// in one chunk: delete detection then needs no further source query.
	srcKeys map[string]bool
}

func newTableJob(r *runner, cfg *tables.Table, src *schema.Table, st *state.Row, res *TableResult) *tableJob {
	j := &tableJob{r: r, cfg: cfg, src: src, st: st, res: res, wmIdx: -1}
	sel := make([]string, len(src.Columns))
	for i, c := range src.Columns {
		j.cols = append(j.cols, c.Name)
		sel[i] = quoteIdent(c.Name)
		if strings.EqualFold(c.DataType, "float") {
			// FLOAT prints with 6 digits as text; as DOUBLE it round-trips exactly.
			sel[i] = "CAST(" + quoteIdent(c.Name) + " AS DOUBLE)"
		}
	}
	j.sel = strings.Join(sel, ",")
	j.key = src.PrimaryKey
	for _, k := range j.key {
		for i, c := range src.Columns {
			if strings.EqualFold(c.Name, k) {
				j.keyIdx = append(j.keyIdx, i)
				j.keyTypes = append(j.keyTypes, c.DataType)
			}
		}
	}
	if w := cfg.Watermark(); w != "" && cfg.Strategy.IsIncremental() {
		for i, c := range src.Columns {
			if strings.EqualFold(c.Name, w) {
				j.wm, j.wmIdx, j.wmType = c.Name, i, c.DataType
			}
		}
	}
	return j
}

// readSource runs query on a source connection, adding every row to f and
// returning the last row's values at the given column indexes. pre, if set,
// runs first on the same connection in the same rate-limited turn.
func (j *tableJob) readSource(ctx context.Context, query string, args []any, f *rowFile, idx []int, pre ...func(context.Context, *sql.Conn) error) ([]string, error) {
	var last []string
	err := j.r.source(ctx, func(ctx context.Context, conn *sql.Conn) error {
		f.reset()
		last = nil
		for _, p := range pre {
			if err := p(ctx, conn); err != nil {
				return err
			}
		}
		rows, err := conn.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		vals, dest := rawRow(len(j.cols))
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			f.add(vals)
			last = rawStrings(vals, idx)
			if f.keepKeys {
				f.keys = append(f.keys, state.EncodeKey(last))
			}
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("read %s from source: %w", j.cfg.Name, err)
	}
	return last, nil
}

// commitChunk writes f and the state that describes it (u, to which it
// adds the rows and the change_seq bump) in one transaction.
func (j *tableJob) commitChunk(ctx context.Context, f *rowFile, u *state.Update) error {
	tx, err := j.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin replica transaction for %s: %w", j.cfg.Name, err)
	}
	defer tx.Rollback()
	if _, err := loadRows(ctx, tx, j.cfg.Name, j.src.Columns, f); err != nil {
		return err
	}
	if err := u.AddRows(int64(f.rows)).BumpChangeSeq().Exec(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit chunk of %s: %w", j.cfg.Name, err)
	}
	j.res.RowsRead += int64(f.rows)
	j.res.RowsWritten += int64(f.rows)
	j.res.Chunks++
	j.r.log.Debug("chunk committed", "table", j.cfg.Name, "rows", f.rows, "total", j.res.RowsWritten)
	if j.r.opts.OnChunk != nil {
		j.r.opts.OnChunk(j.cfg.Name, f.rows)
	}
	return nil
}

// keysOf collects the keys of the rows in f (kept as a side list by readSource).
func keysOf(f *rowFile) map[string]bool {
	out := make(map[string]bool, len(f.keys))
	for _, k := range f.keys {
		out[k] = true
	}
	return out
}

func (j *tableJob) batch() int { return batchSize(j.cfg) }

// resumable reports whether an interrupted full copy can continue.
func (j *tableJob) resumable() bool {
	return unfinishedFull(j.st) && j.st.LastKey.Valid
}

// fullCopy copies the whole table in primary-key order, batch_size rows per
// short query, resuming after the last committed chunk of an interrupted copy.
func (j *tableJob) fullCopy(ctx context.Context, restart bool) error {
	var lastKey []string
	if !restart && j.resumable() {
		if err := json.Unmarshal([]byte(j.st.LastKey.String), &lastKey); err != nil || len(lastKey) != len(j.key) {
			lastKey = nil // an unreadable resume point: start over, upserts make it harmless
		}
		j.res.Resumed = lastKey != nil
	}
	// A fresh copy of a table with a watermark reads MAX(watermark) before its
	// first chunk, in the same source turn; it becomes the watermark at the end.
	var startWM sql.NullString
	var pre []func(context.Context, *sql.Conn) error
	if lastKey == nil && j.wm != "" {
		q := "SELECT MAX(" + quoteIdent(j.wm) + ") FROM " + quoteIdent(j.cfg.Name)
		pre = append(pre, func(ctx context.Context, c *sql.Conn) error { return scanOne(ctx, c, q, &startWM) })
	}
	if lastKey == nil {
		if err := state.For(j.cfg.Name).Mode(state.ModeFull).Status(state.StatusRunning).ClearLastKey().
			StartWatermark(sql.NullString{}).Rows(0).Source(j.src.UpdateTime, j.r.srcNow).
			RunStart(time.Now()).ClearError().Exec(ctx, j.conn); err != nil {
			return err
		}
	} else if err := state.For(j.cfg.Name).Status(state.StatusRunning).RunStart(time.Now()).ClearError().Exec(ctx, j.conn); err != nil {
		return err
	}
	f := rowFile{keepKeys: lastKey == nil}
	n := j.batch()
	order := " ORDER BY " + identList(j.key) + " LIMIT " + fmt.Sprint(n)
	for {
		q := "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name)
		var args []any
		if lastKey != nil {
			pred, a := after(j.key, params(lastKey, j.keyTypes))
			q += " WHERE " + pred
			args = a
		}
		last, err := j.readSource(ctx, q+order, args, &f, j.keyIdx, pre...)
		if err != nil {
			return err
		}
		u := state.For(j.cfg.Name).LastKey(state.EncodeKey(last))
		if pre != nil {
			u.StartWatermark(startWM)
			pre = nil
		}
		if f.rows == 0 {
			if lastKey == nil {
				j.srcKeys = map[string]bool{} // the source table is empty
				if err := state.For(j.cfg.Name).StartWatermark(startWM).Exec(ctx, j.conn); err != nil {
					return err
				}
			}
			break
		}
		if lastKey == nil && f.rows < n {
			j.srcKeys = keysOf(&f)
		}
		if err := j.commitChunk(ctx, &f, u); err != nil {
			return err
		}
		lastKey = last
		f.keepKeys = false // only a one-chunk table keeps its key list
		if f.rows < n {
			break
		}
	}
	j.res.Mode = state.ModeFull
	return nil
}

// incremental copies the rows whose watermark is at or after the last one
// (minus the lookback), paging on (watermark, key) so rows sharing a
// timestamp across a chunk boundary are all read. For TIMESTAMP watermarks
// it stops before the source's clock second at the start, so a row changed
// while the copy runs always carries a later stamp than the one recorded.
func (j *tableJob) incremental(ctx context.Context) error {
	if err := state.For(j.cfg.Name).Mode(state.ModeIncremental).Status(state.StatusRunning).Rows(0).
		Source(j.src.UpdateTime, j.r.srcNow).RunStart(time.Now()).ClearError().Exec(ctx, j.conn); err != nil {
		return err
	}
	order := []string{j.wm}
	orderIdx := []int{j.wmIdx}
	orderTypes := []string{j.wmType}
	for i, k := range j.key {
		if !strings.EqualFold(k, j.wm) {
			order = append(order, k)
			orderIdx = append(orderIdx, j.keyIdx[i])
			orderTypes = append(orderTypes, j.keyTypes[i])
		}
	}
	var base []string
	var baseArgs []any
	if j.st != nil && j.st.Watermark.Valid {
		base = append(base, quoteIdent(j.wm)+" >= ?")
		baseArgs = append(baseArgs, param(lookback(j.st.Watermark.String, j.wmType, j.cfg.LookbackSeconds), j.wmType))
	}
	if strings.EqualFold(j.wmType, "timestamp") {
		base = append(base, quoteIdent(j.wm)+" < ?")
		baseArgs = append(baseArgs, j.r.srcNow)
	}
	var f rowFile
	n := j.batch()
	var cursor []string
	for {
		conds := append([]string{}, base...)
		args := append([]any{}, baseArgs...)
		if cursor != nil {
			pred, a := after(order, params(cursor, orderTypes))
			conds = append(conds, pred)
			args = append(args, a...)
		}
		q := "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name)
		if len(conds) > 0 {
			q += " WHERE " + strings.Join(conds, " AND ")
		}
		q += " ORDER BY " + identList(order) + " LIMIT " + fmt.Sprint(n)
		last, err := j.readSource(ctx, q, args, &f, orderIdx)
		if err != nil {
			return err
		}
		if f.rows == 0 {
			break
		}
		if err := j.commitChunk(ctx, &f, state.For(j.cfg.Name).Watermark(last[0]).LastKey(state.EncodeKey(last[1:]))); err != nil {
			return err
		}
		cursor = last
		if f.rows < n {
			break
		}
	}
	j.res.Mode = state.ModeIncremental
	return nil
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

// shadowCopy copies a table without a primary key whole into a shadow table
// and swaps it in with one atomic RENAME TABLE. Such tables cannot be paged
// by key, so the source is read in one query: they are expected to be small.
func (j *tableJob) shadowCopy(ctx context.Context) error {
	name := j.cfg.Name
	shadow, old := state.TempName("shadow", name), state.TempName("old", name)
	if err := state.For(name).Mode(state.ModeShadow).Status(state.StatusRunning).Source(j.src.UpdateTime, j.r.srcNow).
		RunStart(time.Now()).ClearError().Exec(ctx, j.conn); err != nil {
		return err
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + quoteIdent(shadow) + ", " + quoteIdent(old),
		"CREATE TABLE " + quoteIdent(shadow) + " LIKE " + quoteIdent(name),
	} {
		if _, err := j.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("prepare shadow table of %s: %w", name, err)
		}
	}
	n := j.batch()
	var total int64
	err := j.r.source(ctx, func(ctx context.Context, conn *sql.Conn) error {
		total = 0
		if _, err := j.conn.ExecContext(ctx, "TRUNCATE TABLE "+quoteIdent(shadow)); err != nil {
			return err
		}
		rows, err := conn.QueryContext(ctx, "SELECT "+j.sel+" FROM "+quoteIdent(name))
		if err != nil {
			return err
		}
		defer rows.Close()
		vals, dest := rawRow(len(j.cols))
		var f rowFile
		flush := func() error {
			if _, err := loadRows(ctx, j.conn, shadow, j.src.Columns, &f); err != nil {
				return err
			}
			total += int64(f.rows)
			f.reset()
			return nil
		}
		for rows.Next() {
			if err := rows.Scan(dest...); err != nil {
				return err
			}
			f.add(vals)
			if f.rows >= n {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return flush()
	})
	if err != nil {
		return fmt.Errorf("copy %s into its shadow table: %w", name, err)
	}
	if _, err := j.conn.ExecContext(ctx, "RENAME TABLE "+quoteIdent(name)+" TO "+quoteIdent(old)+", "+quoteIdent(shadow)+" TO "+quoteIdent(name)); err != nil {
		return fmt.Errorf("swap shadow table of %s: %w", name, err)
	}
	if _, err := j.conn.ExecContext(ctx, "DROP TABLE "+quoteIdent(old)); err != nil {
		return fmt.Errorf("drop previous copy of %s: %w", name, err)
	}
	if err := state.For(name).Rows(total).BumpChangeSeq().Exec(ctx, j.conn); err != nil {
		return err
	}
	j.res.Mode = state.ModeShadow
	j.res.RowsRead += total
	j.res.RowsWritten += total
	return nil
}

// finish records a successful run of the table.
func (j *tableJob) finish(ctx context.Context) error {
	u := state.For(j.cfg.Name).Status(state.StatusOK).RunEnd(time.Now()).ClearError()
	switch j.res.Mode {
	case state.ModeFull:
		// start_watermark was taken before the first chunk of this copy was read.
		u.WatermarkFromStart().ClearLastKey()
	case state.ModeIncremental: // last_key is the resume point within the watermark
	default:
		u.ClearLastKey()
	}
	return u.Exec(ctx, j.conn)
}

// fail records a failed run; it writes even when ctx was cancelled.
func (j *tableJob) fail(ctx context.Context, err error) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "interrupted: " + msg
	}
	var ex state.Execer = j.r.deps.Replica
	if j.conn != nil {
		ex = j.conn
	}
	if werr := state.For(j.cfg.Name).Status(state.StatusFailed).Error(msg).RunEnd(time.Now()).Exec(wctx, ex); werr != nil {
		j.r.log.Error("record failure", "table", j.cfg.Name, "err", werr)
	}
}
