package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// rowHash is a SQL expression hashing a row's exact bytes to 64 bits: every
// column as binary text (FLOAT as DOUBLE so all its digits count), NULL
// distinct from any value; both sides use the same column types.
func rowHash(cols []schema.Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		v := quoteIdent(c.Name)
		if strings.EqualFold(c.DataType, "float") {
			v = "CAST(" + v + " AS DOUBLE)"
		}
		parts[i] = "IFNULL(HEX(CAST(" + v + " AS BINARY)),'N')"
	}
	return "CAST(CONV(LEFT(MD5(CONCAT_WS(',', " + strings.Join(parts, ",") + ")),16),16,10) AS UNSIGNED)"
}

// diffCopy brings an existing copy of a table with a one-column key up to
// date without rewriting it: it walks the source in key ranges of batch_size
// rows, compares each range's row count and content hash with the replica's,
// and copies only the ranges that differ (removing the replica rows the
// source no longer has in them). An unchanged range costs one source query
// that returns one row.
func (j *tableJob) diffCopy(ctx context.Context) error {
	name, key := j.cfg.Name, j.key[0]
	if err := state.For(name).Mode(state.ModeDiff).Status(state.StatusRunning).Rows(0).Source(j.src.UpdateTime, j.r.srcNow).
		RunStart(time.Now()).ClearError().Exec(ctx, j.conn); err != nil {
		return err
	}
	hash := rowHash(j.src.Columns)
	n := j.batch()
	qk := quoteIdent(key)
	var after any // last key of the previous range; nil before the first
	for {
		where, args := "", []any{}
		if after != nil {
			where, args = " WHERE "+qk+" > ?", []any{after}
		}
		srcQ := "SELECT COUNT(*), COALESCE(BIT_XOR(h),0), MAX(k) FROM (SELECT " + qk + " AS k, " + hash + " AS h FROM " +
			quoteIdent(name) + where + " ORDER BY " + qk + " LIMIT " + strconv.Itoa(n) + ") x"
		var sc int64
		var sh uint64
		var maxKey sql.NullString
		if err := j.r.source(ctx, func(ctx context.Context, c *sql.Conn) error {
			return scanOneArgs(ctx, c, srcQ, args, &sc, &sh, &maxKey)
		}); err != nil {
			return fmt.Errorf("checksum source range of %s: %w", name, err)
		}
		j.res.Chunks++
		if sc == 0 {
			// Past the source's last key: replica rows beyond it were deleted.
			j.res.Mode = state.ModeDiff
			return j.diffRange(ctx, after, nil)
		}
		hi := param(maxKey.String, j.keyTypes[0])
		rng, rargs := qk+" <= ?", []any{hi}
		if after != nil {
			rng, rargs = qk+" > ? AND "+qk+" <= ?", []any{after, hi}
		}
		var rc int64
		var rh uint64
		if err := scanOneArgs(ctx, j.conn, "SELECT COUNT(*), COALESCE(BIT_XOR("+hash+"),0) FROM "+quoteIdent(name)+" WHERE "+rng, rargs, &rc, &rh); err != nil {
			return fmt.Errorf("checksum replica range of %s: %w", name, err)
		}
		if rc != sc || rh != sh {
			if err := j.diffRange(ctx, after, hi); err != nil {
				return err
			}
		}
		after = hi
		if sc < int64(n) {
			j.res.Mode = state.ModeDiff
			return j.diffRange(ctx, after, nil) // the tail beyond the last source key
		}
	}
}

// diffRange copies the source rows with key in (lo, hi] (hi nil: no upper
// bound) and removes the replica's other rows of that range, in one commit.
func (j *tableJob) diffRange(ctx context.Context, lo, hi any) error {
	name, qk := j.cfg.Name, quoteIdent(j.key[0])
	var conds []string
	var args []any
	if lo != nil {
		conds, args = append(conds, qk+" > ?"), append(args, lo)
	}
	if hi != nil {
		conds, args = append(conds, qk+" <= ?"), append(args, hi)
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	if hi == nil {
		// The tail: nothing to copy unless the replica has rows there (or the source gained some).
		var rc int64
		if err := scanOneArgs(ctx, j.conn, "SELECT COUNT(*) FROM "+quoteIdent(name)+where, args, &rc); err != nil {
			return fmt.Errorf("count replica tail of %s: %w", name, err)
		}
		if rc == 0 {
			return nil
		}
	}
	f := rowFile{keepKeys: true}
	if _, err := j.readSource(ctx, "SELECT "+j.sel+" FROM "+quoteIdent(name)+where+" ORDER BY "+qk, args, &f, j.keyIdx); err != nil {
		return err
	}
	var gone [][]string
	if j.cfg.DeletesEnabled() {
		have := make(map[string]bool, len(f.keys))
		for _, k := range f.keys {
			have[k] = true
		}
		repKeys, err := readKeys(ctx, j.conn, "SELECT "+qk+" FROM "+quoteIdent(name)+where, args, 1)
		if err != nil {
			return fmt.Errorf("read replica keys of %s: %w", name, err)
		}
		for _, k := range repKeys {
			if !have[state.EncodeKey(k)] {
				gone = append(gone, k)
			}
		}
	}
	if f.rows == 0 && len(gone) == 0 {
		return nil
	}
	tx, err := j.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin replica transaction for %s: %w", name, err)
	}
	defer tx.Rollback()
	if _, err := loadRows(ctx, tx, name, j.src.Columns, &f); err != nil {
		return err
	}
	deleted, err := j.deleteIn(ctx, tx, gone)
	if err != nil {
		return err
	}
	if err := state.For(name).AddRows(int64(f.rows)).BumpChangeSeq().Exec(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit range of %s: %w", name, err)
	}
	j.res.RowsRead += int64(f.rows)
	j.res.RowsWritten += int64(f.rows)
	j.res.RowsDeleted += deleted
	if j.r.opts.OnChunk != nil {
		j.r.opts.OnChunk(name, f.rows)
	}
	return nil
}
