package replicate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
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
	ks       keyset.Key
	wm       string // watermark column, "" when none
	wmIdx    int
	wmType   string
	wmIndex  string // an index of the source whose first column is wm; "" when none
	exact    bool   // the source engine keeps the table's exact row count (MyISAM, Aria)

	staged bool // the diff's stage table exists (diff.go)

	pre *prefetch // what the run's sweep read for the table before its job began; nil when nothing

	// srcKeys holds every source key when a full copy read the whole table
	// in one chunk: delete detection then needs no further source query.
	srcKeys map[string]bool
}

func newTableJob(r *runner, p *plan) *tableJob {
	cfg, src := p.cfg, p.src
	j := &tableJob{r: r, cfg: cfg, src: src, st: p.st, res: p.res, wmIdx: -1, key: src.PrimaryKey, ks: keyset.Of(src),
		exact: exactCount(src), pre: p.pre}
	for _, c := range src.Columns {
		j.cols = append(j.cols, c.Name)
	}
	j.sel = rowcopy.SelectList(src.Columns) // FLOAT as DOUBLE, so no digit is lost
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
				j.wmIndex = wmIndex(src, c.Name)
			}
		}
	}
	return j
}

func (j *tableJob) batch() int { return batchSize(j.cfg) }

// copy copies the rows in mode (a state.Mode…); restart starts a full copy
// over rather than resuming it.
func (j *tableJob) copy(ctx context.Context, mode string, restart bool) error {
	switch mode {
	case state.ModeShadow:
		return j.shadowCopy(ctx)
	case state.ModeDiff:
		return j.diffCopy(ctx)
	case state.ModeIncremental:
		return j.incremental(ctx)
	}
	return j.fullCopy(ctx, restart)
}

// begin records that a copy in mode starts: what the source said at the
// start of the run, and (resetRows) that no row is copied yet.
func (j *tableJob) begin(mode string, resetRows bool) *state.Update {
	u := state.For(j.cfg.Name).Mode(mode).Status(state.StatusRunning).Source(j.src.UpdateTime, j.r.srcNow).
		RunStart(time.Now()).ClearError()
	if resetRows {
		u.Rows(0)
	}
	return u
}

// source runs fn on a source connection, counted as the table's.
func (j *tableJob) source(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	return j.r.sourceFor(ctx, j.res, fn)
}

// sourceRead is one chunk's source query.
type sourceRead struct {
	query string
	args  []any
	idx   []int // columns whose values of the last row are returned
	// pre, if set, runs first on the same connection in the same
	// rate-limited turn.
	pre func(context.Context, *sql.Conn) error
}

// readSource runs rd on a source connection, adding every row to f and
// returning the last row's values at rd.idx.
func (j *tableJob) readSource(ctx context.Context, rd sourceRead, f *rowcopy.File) ([]string, error) {
	start := time.Now()
	defer func() {
		j.r.log.Debug("chunk read", "table", j.cfg.Name, "rows", f.Rows(), "seconds", time.Since(start).Seconds())
	}()
	var last []string
	err := j.source(ctx, func(ctx context.Context, conn *sql.Conn) error {
		f.Reset()
		last = nil
		if rd.pre != nil {
			if err := rd.pre(ctx, conn); err != nil {
				return err
			}
		}
		return eachRawRow(ctx, conn, rd, len(j.cols), func(vals []sql.RawBytes) error {
			f.Add(vals)
			last = rawStrings(vals, rd.idx)
			if f.KeepKeys {
				f.Keys = append(f.Keys, state.EncodeKey(last))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read %s from source: %w", j.cfg.Name, err)
	}
	return last, nil
}

// commitChunk writes f and the state that describes it (u, to which it
// adds the rows and the change_seq bump) in one transaction.
func (j *tableJob) commitChunk(ctx context.Context, f *rowcopy.File, u *state.Update) error {
	start := time.Now()
	tx, err := j.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin replica transaction for %s: %w", j.cfg.Name, err)
	}
	defer tx.Rollback()
	if _, err := rowcopy.Load(ctx, tx, j.cfg.Name, j.src.Columns, f); err != nil {
		return err
	}
	if err := u.AddRows(int64(f.Rows())).BumpChangeSeq().Exec(ctx, tx); err != nil {
		return err
	}
	if err := j.commit(ctx, tx, "chunk"); err != nil {
		return err
	}
	j.res.RowsRead += int64(f.Rows())
	j.res.RowsWritten += int64(f.Rows())
	j.res.Chunks++
	j.r.log.Debug("chunk committed", "table", j.cfg.Name, "rows", f.Rows(), "total", j.res.RowsWritten, "seconds", time.Since(start).Seconds())
	if j.r.opts.OnChunk != nil {
		j.r.opts.OnChunk(j.cfg.Name, f.Rows())
	}
	if j.r.stopped() {
		return ErrStopped
	}
	return nil
}

// commit commits a replica write transaction (what it wrote, for errors)
// after its state writes, once the run has checked it still holds the
// replica lock (Options.Guard): a run that lost it writes nothing more.
func (j *tableJob) commit(ctx context.Context, tx *sql.Tx, what string) error {
	if err := j.r.holds(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit %s of %s: %w", what, j.cfg.Name, err)
	}
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
	if err := j.r.holds(ctx, j.conn); err != nil {
		return err
	}
	return u.Exec(ctx, j.conn)
}

// stop records a copy stopped by Options.Stop after a committed chunk: the
// resume point (last_key, watermark) is already committed with the chunk;
// status stopped makes the next run continue it (an unfinished full copy
// resumes after last_key, an incremental one from its watermark).
func (j *tableJob) stop(ctx context.Context) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := state.For(j.cfg.Name).Status(state.StatusStopped).ClearError().RunEnd(time.Now()).Exec(wctx, j.conn); err != nil {
		j.r.log.Error("record stop", "table", j.cfg.Name, "err", err)
	}
	j.r.log.Info("table stopped after a committed chunk; resumes next run", "table", j.cfg.Name, "rows", j.res.RowsWritten)
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
