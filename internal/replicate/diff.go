package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/rowhash"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// diffCopy brings an existing copy of a table with a one-column key up to
// date without rewriting it: it walks the source in key ranges of batch_size
// rows, compares each range's row count and content hash with the replica's,
// and copies only the ranges that differ (removing the replica rows the
// source no longer has in them). An unchanged range costs one source query
// that returns one row. The hash is internal/rowhash's.
func (j *tableJob) diffCopy(ctx context.Context) error {
	if err := j.begin(state.ModeDiff, true).Exec(ctx, j.conn); err != nil {
		return err
	}
	j.res.Mode = state.ModeDiff
	hash := rowhash.Expr(j.src.Columns) // the same hash verify compares with
	var lo any                          // last key of the previous range; nil before the first
	for {
		src, err := j.sourceRange(ctx, hash, lo)
		if err != nil {
			return err
		}
		if src.rows == 0 {
			// Past the source's last key: replica rows beyond it were deleted.
			return j.diffRange(ctx, keyRange{lo: lo})
		}
		rng := keyRange{lo: lo, hi: src.hi}
		same, err := j.replicaMatches(ctx, hash, rng, src)
		if err != nil {
			return err
		}
		if !same {
			if err := j.diffRange(ctx, rng); err != nil {
				return err
			}
		}
		lo = src.hi
		if src.rows < int64(j.batch()) {
			return j.diffRange(ctx, keyRange{lo: lo}) // the tail beyond the last source key
		}
		if j.r.stopped() { // the next run's diff starts over: matching ranges cost one query each
			return ErrStopped
		}
	}
}

// rangeSum is a key range's row count and content hash, and its last key.
type rangeSum struct {
	rows int64
	hash uint64
	hi   any // the highest key, as a query argument
}

// sourceRange sums the batch_size source rows after key lo (nil: from the start).
func (j *tableJob) sourceRange(ctx context.Context, hash string, lo any) (rangeSum, error) {
	qk := quoteIdent(j.key[0])
	where, args := "", []any{}
	if lo != nil {
		where, args = " WHERE "+qk+" > ?", []any{lo}
	}
	q := "SELECT COUNT(*), COALESCE(BIT_XOR(h),0), MAX(k) FROM (SELECT " + qk + " AS k, " + hash + " AS h FROM " +
		quoteIdent(j.cfg.Name) + where + " ORDER BY " + qk + " LIMIT " + strconv.Itoa(j.batch()) + ") x"
	var s rangeSum
	var maxKey sql.NullString
	if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		return scanOneArgs(ctx, c, q, args, &s.rows, &s.hash, &maxKey)
	}); err != nil {
		return s, fmt.Errorf("checksum source range of %s: %w", j.cfg.Name, err)
	}
	j.res.Chunks++
	if maxKey.Valid {
		s.hi = param(maxKey.String, j.keyTypes[0])
	}
	return s, nil
}

// replicaMatches reports whether the replica's rows of rng sum to src.
func (j *tableJob) replicaMatches(ctx context.Context, hash string, rng keyRange, src rangeSum) (bool, error) {
	where, args := rng.where(j.key[0])
	var rows int64
	var h uint64
	if err := scanOneArgs(ctx, j.conn, "SELECT COUNT(*), COALESCE(BIT_XOR("+hash+"),0) FROM "+quoteIdent(j.cfg.Name)+where, args, &rows, &h); err != nil {
		return false, fmt.Errorf("checksum replica range of %s: %w", j.cfg.Name, err)
	}
	return rows == src.rows && h == src.hash, nil
}

// keyRange is the keys in (lo, hi]; a nil bound is open.
type keyRange struct{ lo, hi any }

// where is the range's WHERE clause ("" for every key) and its arguments.
func (r keyRange) where(key string) (string, []any) {
	qk := quoteIdent(key)
	var conds []string
	var args []any
	if r.lo != nil {
		conds, args = append(conds, qk+" > ?"), append(args, r.lo)
	}
	if r.hi != nil {
		conds, args = append(conds, qk+" <= ?"), append(args, r.hi)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// diffRange copies the source rows of rng and removes the replica's other
// rows of that range, in one commit.
func (j *tableJob) diffRange(ctx context.Context, rng keyRange) error {
	name := j.cfg.Name
	where, args := rng.where(j.key[0])
	if rng.hi == nil {
		// The tail: nothing to copy unless the replica has rows there (or the source gained some).
		var rc int64
		if err := scanOneArgs(ctx, j.conn, "SELECT COUNT(*) FROM "+quoteIdent(name)+where, args, &rc); err != nil {
			return fmt.Errorf("count replica tail of %s: %w", name, err)
		}
		if rc == 0 {
			return nil
		}
	}
	f := rowcopy.File{KeepKeys: true}
	rd := sourceRead{query: "SELECT " + j.sel + " FROM " + quoteIdent(name) + where + " ORDER BY " + quoteIdent(j.key[0]), args: args, idx: j.keyIdx}
	if _, err := j.readSource(ctx, rd, &f); err != nil {
		return err
	}
	var gone [][]string
	if j.cfg.DeletesEnabled() {
		var err error
		if gone, err = j.replicaOnly(ctx, rng, keysOf(&f)); err != nil {
			return err
		}
	}
	if f.Rows() == 0 && len(gone) == 0 {
		return nil
	}
	return j.commitRange(ctx, &f, gone)
}

// replicaOnly lists the replica's keys of rng that are not in have.
func (j *tableJob) replicaOnly(ctx context.Context, rng keyRange, have map[string]bool) ([][]string, error) {
	where, args := rng.where(j.key[0])
	repKeys, err := readKeys(ctx, j.conn, "SELECT "+quoteIdent(j.key[0])+" FROM "+quoteIdent(j.cfg.Name)+where, args, 1)
	if err != nil {
		return nil, fmt.Errorf("read replica keys of %s: %w", j.cfg.Name, err)
	}
	var gone [][]string
	for _, k := range repKeys {
		if !have[state.EncodeKey(k)] {
			gone = append(gone, k)
		}
	}
	return gone, nil
}

// commitRange writes a range's source rows and deletes (and records) its
// gone keys in one transaction.
func (j *tableJob) commitRange(ctx context.Context, f *rowcopy.File, gone [][]string) error {
	name := j.cfg.Name
	tx, err := j.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin replica transaction for %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := rowcopy.Load(ctx, tx, name, j.src.Columns, f); err != nil {
		return err
	}
	deleted, err := j.deleteIn(ctx, tx, gone)
	if err != nil {
		return err
	}
	if err := state.For(name).AddRows(int64(f.Rows())).BumpChangeSeq().Exec(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit range of %s: %w", name, err)
	}
	j.res.RowsRead += int64(f.Rows())
	j.res.RowsWritten += int64(f.Rows())
	j.res.RowsDeleted += deleted
	if j.r.opts.OnChunk != nil {
		j.r.opts.OnChunk(name, f.Rows())
	}
	return nil
}
