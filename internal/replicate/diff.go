package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/rowhash"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// diffCopy brings an existing copy of a table without a usable watermark
// (a full_table table, or a watermark that has neither an index nor the
// TIMESTAMP type) up to date, writing only the rows that changed and
// logging exactly their keys, and the deleted ones, in the changed-keys log
// (internal/state) in the same commits, so the load rewrites only those
// rows too.
//
// A table no larger than batch_size (whose engine knows its exact size) is
// read whole in one statement, often by the run's sweep together with other
// tables. A larger one is compared in key ranges of batch_size rows up to
// the replica's highest key: each costs one source statement returning one
// row (the range's row count and content hash, internal/rowhash); only a
// range that differs is read. The rows above the replica's highest key are
// new and are copied in key chunks. Rows read are staged in the replica and
// compared there row by row, so a row unchanged in a changed range is not
// rewritten.
func (j *tableJob) diffCopy(ctx context.Context) error {
	if err := j.begin(state.ModeDiff, true).Exec(ctx, j.conn); err != nil {
		return err
	}
	j.res.Mode = state.ModeDiff
	defer j.dropStage(ctx)
	whole, err := j.readWhole(ctx)
	if err != nil || whole != nil {
		if err != nil {
			return err
		}
		return j.applyRange(ctx, &whole.f, nil, nil)
	}
	chk, err := replicaMax(ctx, j.conn, j.cfg.Name, j.key)
	if err != nil {
		return err
	}
	if chk.repMax != nil {
		if err := j.diffRanges(ctx, chk.repMax); err != nil {
			return err
		}
	}
	return j.copyAfter(ctx, chk.repMax)
}

// readWhole returns the whole table when the sweep read it or it is small
// enough to read in one statement (and was: no more than batch_size rows).
func (j *tableJob) readWhole(ctx context.Context) (*chunk, error) {
	c := j.takePrefetch()
	if c == nil && j.smallExact() {
		c = j.newChunk(j.batch())
		if err := j.readChunk(ctx, sourceRead{query: "SELECT " + j.sel + j.wholeTail(c.limit)}, c); err != nil {
			return nil, err
		}
	}
	if c == nil || c.f.Rows() > c.limit {
		return nil, nil
	}
	return c, nil
}

// wholeTail reads up to limit+1 rows of the table (after the select
// list): all of them, when it has no more than limit.
func (j *tableJob) wholeTail(limit int) string {
	return " FROM " + quoteIdent(j.cfg.Name) + " LIMIT " + strconv.Itoa(limit+1)
}

// diffRanges compares the keys up to hi range by range and applies the
// ranges that differ.
func (j *tableJob) diffRanges(ctx context.Context, hi []string) error {
	hash := rowhash.Expr(j.src.Columns) // the same hash verify compares with
	var lo []string
	for {
		s, err := j.sourceRange(ctx, hash, lo, hi)
		if err != nil {
			return err
		}
		end := hi
		if s.rows == int64(j.batch()) {
			end = s.hi
		}
		same, err := j.replicaMatches(ctx, hash, lo, end, s)
		if err != nil {
			return err
		}
		if !same {
			if err := j.diffRange(ctx, lo, end); err != nil {
				return err
			}
		}
		if end == nil || s.rows < int64(j.batch()) {
			return nil
		}
		if j.r.stopped() { // the next run's diff starts over: matching ranges cost one query each
			return ErrStopped
		}
		lo = end
	}
}

// rangeSum is a key range's row count and content hash, and its last key.
type rangeSum struct {
	rows int64
	hash uint64
	hi   []string
}

// sourceRange sums the first batch_size source rows in (lo, hi]. A
// one-column key's range ends at the highest key summed; a composite key's
// at the batch_size-th key, read from the primary-key index first.
func (j *tableJob) sourceRange(ctx context.Context, hash string, lo, hi []string) (rangeSum, error) {
	var s rangeSum
	n := j.batch()
	t := quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY)"
	var q string
	var args []any
	if len(j.key) == 1 {
		pred, a := j.ks.Range(lo, hi)
		k := quoteIdent(j.key[0])
		q, args = "SELECT COUNT(*), COALESCE(BIT_XOR(h),0), MAX(k) FROM (SELECT "+k+" AS k, "+hash+" AS h FROM "+t+
			" WHERE "+pred+" ORDER BY "+k+" LIMIT "+strconv.Itoa(n)+") x", a
	} else {
		end, err := j.nthKeyIn(ctx, lo, hi, n)
		if err != nil {
			return s, err
		}
		if end == nil {
			end = hi
		}
		s.hi = end
		pred, a := j.ks.Range(lo, end)
		q, args = "SELECT COUNT(*), COALESCE(BIT_XOR("+hash+"),0), NULL FROM "+t+" WHERE "+pred, a
	}
	var last sql.NullString
	if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		return schema.ScanOne(ctx, c, q, args, &s.rows, &s.hash, &last)
	}); err != nil {
		return s, fmt.Errorf("checksum source range of %s: %w", j.cfg.Name, err)
	}
	j.res.Chunks++
	if last.Valid {
		s.hi = []string{last.String}
	}
	return s, nil
}

// nthKeyIn reads the n-th key in (lo, hi] from the primary-key index; nil
// when there are fewer.
func (j *tableJob) nthKeyIn(ctx context.Context, lo, hi []string, n int) ([]string, error) {
	pred, args := j.ks.Range(lo, hi)
	q := "SELECT " + identList(j.key) + " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY) WHERE " + pred +
		" ORDER BY " + identList(j.key) + " LIMIT 1 OFFSET " + strconv.Itoa(n-1)
	keys, err := j.readSourceKeys(ctx, q, args)
	if err != nil {
		return nil, fmt.Errorf("read key range of %s: %w", j.cfg.Name, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys[0], nil
}

// replicaMatches reports whether the replica's rows of (lo, hi] sum to src.
func (j *tableJob) replicaMatches(ctx context.Context, hash string, lo, hi []string, src rangeSum) (bool, error) {
	pred, args := j.ks.Range(lo, hi)
	var rows int64
	var h uint64
	if err := schema.ScanOne(ctx, j.conn, "SELECT COUNT(*), COALESCE(BIT_XOR("+hash+"),0) FROM "+quoteIdent(j.cfg.Name)+" WHERE "+pred, args, &rows, &h); err != nil {
		return false, fmt.Errorf("checksum replica range of %s: %w", j.cfg.Name, err)
	}
	return rows == src.rows && h == src.hash, nil
}

// diffRange reads the source rows of (lo, hi] and applies them.
func (j *tableJob) diffRange(ctx context.Context, lo, hi []string) error {
	pred, args := j.ks.Range(lo, hi)
	c := j.newChunk(j.batch())
	q := "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY) WHERE " + pred
	if err := j.readChunk(ctx, sourceRead{query: q, args: args}, c); err != nil {
		return err
	}
	return j.applyRange(ctx, &c.f, lo, hi)
}

// copyAfter copies the source rows above the replica's highest key (every
// row when hi is nil) in key chunks: all of them new to the replica.
func (j *tableJob) copyAfter(ctx context.Context, hi []string) error {
	cursor := hi
	for {
		rd := j.keyChunk(cursor)
		c := j.newChunk(j.batch())
		c.keyIdx = j.keyIdx
		if err := j.readChunk(ctx, rd, c); err != nil {
			return err
		}
		if c.f.Rows() == 0 {
			return nil
		}
		if err := j.commitLogged(ctx, &c.f, c.keys, nil); err != nil {
			return err
		}
		if c.f.Rows() < j.batch() {
			return nil
		}
		cursor = c.keys[len(c.keys)-1]
	}
}

// applyRange stages f (the source's rows of (lo, hi]; nil bounds are open)
// in the replica, compares it there with the replica's rows of the range
// row by row, and writes the rows that differ or are new and deletes the
// replica's rows the source no longer has, logging their keys, in one
// commit.
func (j *tableJob) applyRange(ctx context.Context, f *rowcopy.File, lo, hi []string) error {
	j.res.RowsRead += int64(f.Rows())
	if err := j.stage(ctx, f); err != nil {
		return err
	}
	changed, gone, err := j.stagedDiff(ctx, lo, hi)
	if !j.cfg.DeletesEnabled() {
		gone = nil // detect_deletes: false keeps rows the source deleted
	}
	if err != nil || (len(changed) == 0 && len(gone) == 0) {
		return err
	}
	return j.commitLogged(ctx, nil, changed, gone)
}

// stageName is the replica work table the rows of a range are staged in.
func (j *tableJob) stageName() string { return state.TempName("stage", j.cfg.Name) }

// stage empties the stage table (creating it like the replica table the
// first time) and loads f into it.
func (j *tableJob) stage(ctx context.Context, f *rowcopy.File) error {
	st := quoteIdent(j.stageName())
	stmts := []string{"TRUNCATE TABLE " + st}
	if !j.staged {
		stmts = []string{"DROP TABLE IF EXISTS " + st, "CREATE TABLE " + st + " LIKE " + quoteIdent(j.cfg.Name)}
	}
	for _, q := range stmts {
		if _, err := j.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("stage rows of %s: %w", j.cfg.Name, err)
		}
	}
	j.staged = true
	_, err := rowcopy.Load(ctx, j.conn, j.stageName(), j.src.Columns, f)
	return err
}

// dropStage drops the stage table, if the job made one.
func (j *tableJob) dropStage(ctx context.Context) {
	if !j.staged {
		return
	}
	if _, err := j.conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+quoteIdent(j.stageName())); err != nil {
		j.r.log.Warn("drop stage table", "table", j.cfg.Name, "err", err)
	}
}

// stagedDiff lists the staged keys whose row is new or differs from the
// replica's (changed), and the replica's keys of (lo, hi] not staged (gone).
func (j *tableJob) stagedDiff(ctx context.Context, lo, hi []string) (changed, gone [][]string, err error) {
	hash := rowhash.Expr(j.src.Columns)
	keys, t, st := identList(j.key), quoteIdent(j.cfg.Name), quoteIdent(j.stageName())
	pred, args := j.ks.Range(lo, hi)
	var on, onGone []string
	for _, k := range j.key {
		on = append(on, "s."+quoteIdent(k)+" = r."+quoteIdent(k))
		onGone = append(onGone, "s."+quoteIdent(k)+" = "+t+"."+quoteIdent(k))
	}
	var sk []string
	for _, k := range j.key {
		sk = append(sk, "s."+quoteIdent(k))
	}
	q := "SELECT " + strings.Join(sk, ",") + " FROM (SELECT " + keys + ", " + hash + " AS h FROM " + st + ") s LEFT JOIN (SELECT " + keys + ", " + hash +
		" AS h FROM " + t + " WHERE " + pred + ") r ON " + strings.Join(on, " AND ") + " WHERE r." + quoteIdent(j.key[0]) + " IS NULL OR s.h <> r.h"
	if changed, err = readKeys(ctx, j.conn, q, args, len(j.key)); err != nil {
		return nil, nil, fmt.Errorf("compare staged rows of %s: %w", j.cfg.Name, err)
	}
	q = "SELECT " + keys + " FROM " + t + " WHERE " + pred + " AND NOT EXISTS (SELECT 1 FROM " + st + " s WHERE " + strings.Join(onGone, " AND ") + ")"
	if gone, err = readKeys(ctx, j.conn, q, args, len(j.key)); err != nil {
		return nil, nil, fmt.Errorf("compare staged rows of %s: %w", j.cfg.Name, err)
	}
	return changed, gone, nil
}

// commitLogged writes, in one transaction, f's rows (or, with f nil, the
// staged rows of changed), deletes gone, and logs changed and gone in the
// changed-keys log (which bumps change_seq).
func (j *tableJob) commitLogged(ctx context.Context, f *rowcopy.File, changed, gone [][]string) error {
	tx, err := j.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin replica transaction for %s: %w", j.cfg.Name, err)
	}
	defer tx.Rollback()
	if f != nil {
		_, err = rowcopy.Load(ctx, tx, j.cfg.Name, j.src.Columns, f)
		j.res.RowsRead += int64(f.Rows())
	} else {
		err = j.copyStaged(ctx, tx, changed)
	}
	if err != nil {
		return err
	}
	deleted, err := j.deleteIn(ctx, tx, gone)
	if err != nil {
		return err
	}
	if err := state.For(j.cfg.Name).AddRows(int64(len(changed))).Exec(ctx, tx); err != nil {
		return err
	}
	if _, err := state.LogChanges(ctx, tx, state.Changes{Table: j.cfg.Name, Keys: append(append([][]string{}, changed...), gone...),
		Reason: state.ReasonDiff, At: time.Now()}); err != nil {
		return err
	}
	if err := j.commit(ctx, tx, "changes"); err != nil {
		return err
	}
	j.res.RowsWritten += int64(len(changed))
	j.res.RowsDeleted += deleted
	j.res.Chunks++
	if j.r.opts.OnChunk != nil {
		j.r.opts.OnChunk(j.cfg.Name, len(changed))
	}
	if j.r.stopped() {
		return ErrStopped
	}
	return nil
}

// copyStaged writes the staged rows of keys into the replica table.
func (j *tableJob) copyStaged(ctx context.Context, tx *sql.Tx, keys [][]string) error {
	var cols []string
	for _, c := range j.src.Columns {
		if !c.Computed {
			cols = append(cols, quoteIdent(c.Name))
		}
	}
	list := strings.Join(cols, ",")
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		pred, args := j.ks.In(keys[:n])
		if _, err := tx.ExecContext(ctx, "REPLACE INTO "+quoteIdent(j.cfg.Name)+" ("+list+") SELECT "+list+" FROM "+
			quoteIdent(j.stageName())+" WHERE "+pred, args...); err != nil {
			return fmt.Errorf("write changed rows of %s: %w", j.cfg.Name, err)
		}
		keys = keys[n:]
	}
	return nil
}
