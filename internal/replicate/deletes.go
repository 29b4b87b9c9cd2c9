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

// detectDeletes removes from the replica the rows deleted at the source and
// records each in the deleted-rows log (internal/state), in the same commit.
//
// It first compares counts of the same set of rows: the rows with a key up
// to the replica's highest key M, in the replica and at the source. On
// MyISAM and Aria, which keep a table's exact row count, the source's is
// one statement reading only the rows above M (those the copy had not
// taken: few), and the run's sweep asks it for many tables at once, with M
// read before their copies (run.sweep); the replica's rows up to that M are
// counted after the copy, which may have added some (a row inserted at the
// source with a low key, say). Equal counts: nothing to delete. Else the
// source's keys up to M are listed from the primary-key index in chunks and
// compared with the replica's (walkKeys), stopping once as many deletes
// were found as the counts differ by. On other engines the keys are always
// listed (a COUNT(*) there reads every row).
//
// Counting up to M keeps the comparison sound: rows added at the source
// since (higher keys) cannot make the counts equal again, nor can a row
// inserted with a low key that the copy took. A source row at or below M
// that the replica lacks (a row never copied, such as one stamped in the
// future) can, as it could hide a delete from the old single COUNT. Where
// the source has more rows than the replica the walk copies the rows the
// replica lacks.
func (j *tableJob) detectDeletes(ctx context.Context) error {
	if j.srcKeys != nil {
		return j.deleteMissing(ctx)
	}
	chk := j.preCheck()
	if chk == nil {
		var err error
		if chk, err = replicaMax(ctx, j.conn, j.cfg.Name, j.key); err != nil {
			return err
		}
		if chk.repMax != nil && j.exact {
			if err := j.countSource(ctx, chk); err != nil {
				return err
			}
		}
	}
	if chk.repMax == nil {
		return nil
	}
	want := int64(-1) // unknown: walk every key
	if chk.known {
		rep, err := j.replicaRowsUpTo(ctx, chk.repMax)
		if err != nil || rep == chk.srcRows {
			return err
		}
		if rep > chk.srcRows {
			want = rep - chk.srcRows
		}
	}
	return j.walkKeys(ctx, chk.repMax, want)
}

// deleteCheck is what is known about a table's deletes before its walk.
type deleteCheck struct {
	repMax  []string // the replica's highest key; nil when it has no row
	srcRows int64    // the source's rows with a key up to repMax, when known
	known   bool
}

// preCheck is the count the sweep made before the copy, if it made one.
func (j *tableJob) preCheck() *deleteCheck {
	if j.pre == nil || j.pre.check == nil || !j.pre.check.known {
		return nil
	}
	return j.pre.check
}

// replicaMax reads the replica table's highest key.
func replicaMax(ctx context.Context, q querier, table string, key []string) (*deleteCheck, error) {
	desc := make([]string, len(key))
	for i, k := range key {
		desc[i] = quoteIdent(k) + " DESC"
	}
	keys, err := readKeys(ctx, q, "SELECT "+identList(key)+" FROM "+quoteIdent(table)+" ORDER BY "+strings.Join(desc, ",")+" LIMIT 1", nil, len(key))
	if err != nil {
		return nil, fmt.Errorf("read highest replica key of %s: %w", table, err)
	}
	c := &deleteCheck{}
	if len(keys) == 1 {
		c.repMax = keys[0]
	}
	return c, nil
}

// replicaRowsUpTo counts the replica's rows with a key up to hi.
func (j *tableJob) replicaRowsUpTo(ctx context.Context, hi []string) (int64, error) {
	pred, args := j.ks.AtMost(hi)
	var n int64
	if err := schema.ScanOne(ctx, j.conn, "SELECT COUNT(*) FROM "+quoteIdent(j.cfg.Name)+" WHERE "+pred, args, &n); err != nil {
		return 0, fmt.Errorf("count replica rows of %s: %w", j.cfg.Name, err)
	}
	return n, nil
}

// aboveLimit caps the rows above the replica's highest key that a count
// reads; more (a copy far behind) and the count is not taken.
func (j *tableJob) aboveLimit() int { return j.batch() }

// countExprs are the two source expressions of a count up to repMax: the
// table's row count (kept by the engine: no row read) and the rows above
// repMax, at most aboveLimit of them.
func (j *tableJob) countExprs(repMax []string) ([2]string, []any) {
	t := quoteIdent(j.cfg.Name)
	pred, args := j.ks.After(repMax)
	return [2]string{"(SELECT COUNT(*) FROM " + t + ")",
		"(SELECT COUNT(*) FROM (SELECT 1 FROM " + t + " FORCE INDEX (PRIMARY) WHERE " + pred + " LIMIT " + strconv.Itoa(j.aboveLimit()) + ") x)"}, args
}

// set records the counts read: known unless the rows above were capped.
func (c *deleteCheck) set(total, above int64, limit int) {
	if above < int64(limit) {
		c.srcRows, c.known = total-above, true
	}
}

// countSource counts the source's rows up to the replica's highest key.
func (j *tableJob) countSource(ctx context.Context, chk *deleteCheck) error {
	exprs, args := j.countExprs(chk.repMax)
	var total, above int64
	if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		return schema.ScanOne(ctx, c, "SELECT "+exprs[0]+", "+exprs[1], args, &total, &above)
	}); err != nil {
		return fmt.Errorf("count source rows of %s: %w", j.cfg.Name, err)
	}
	chk.set(total, above, j.aboveLimit())
	return nil
}

// maxListRows caps the keys one source key list returns beyond batch_size:
// keys only, read from the primary-key index (every key read is returned),
// so up to 4 batches of them are still a shorter query than one batch of
// whole rows.
const maxListRows = 100_000

// listSize is how many keys one source key list may cover.
func (j *tableJob) listSize() int {
	return max(j.batch(), min(4*j.batch(), maxListRows))
}

// walkKeys lists the source's keys up to hi in chunks and compares each
// with the replica's keys of the same range: replica keys the source lacks
// are deleted (and recorded, 1000 per commit), source keys the replica
// lacks are copied. With want > 0 it stops once that many were deleted.
func (j *tableJob) walkKeys(ctx context.Context, hi []string, want int64) error {
	n := j.listSize()
	var cursor []string
	var gone, missing [][]string
	var found int64
	for {
		src, err := j.sourceKeys(ctx, cursor, hi, n)
		if err != nil {
			return err
		}
		end := hi
		if len(src) == n {
			end = src[n-1]
		}
		pred, args := j.ks.Range(cursor, end)
		rep, err := readKeys(ctx, j.conn, "SELECT "+identList(j.key)+" FROM "+quoteIdent(j.cfg.Name)+" WHERE "+pred, args, len(j.key))
		if err != nil {
			return fmt.Errorf("read replica keys of %s: %w", j.cfg.Name, err)
		}
		g, m := keyDiff(rep, src)
		gone, missing, found = append(gone, g...), append(missing, m...), found+int64(len(g))
		if len(gone) >= 1000 {
			if err := j.deleteKeys(ctx, gone); err != nil {
				return err
			}
			gone = nil
		}
		if len(src) < n || (want > 0 && found >= want) {
			break
		}
		cursor = end
	}
	if err := j.deleteKeys(ctx, gone); err != nil {
		return err
	}
	return j.copyKeys(ctx, missing)
}

// sourceKeys lists up to n source keys in (lo, hi] from the primary-key index.
func (j *tableJob) sourceKeys(ctx context.Context, lo, hi []string, n int) ([][]string, error) {
	pred, args := j.ks.Range(lo, hi)
	q := "SELECT " + identList(j.key) + " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY) WHERE " + pred +
		" ORDER BY " + identList(j.key) + " LIMIT " + strconv.Itoa(n)
	keys, err := j.readSourceKeys(ctx, q, args)
	if err != nil {
		return nil, fmt.Errorf("read source keys of %s: %w", j.cfg.Name, err)
	}
	return keys, nil
}

// keyDiff returns the keys only in rep (gone) and only in src (missing).
func keyDiff(rep, src [][]string) (gone, missing [][]string) {
	have := make(map[string]bool, len(src))
	for _, k := range src {
		have[state.EncodeKey(k)] = true
	}
	inRep := make(map[string]bool, len(rep))
	for _, k := range rep {
		e := state.EncodeKey(k)
		inRep[e] = true
		if !have[e] {
			gone = append(gone, k)
		}
	}
	for _, k := range src {
		if !inRep[state.EncodeKey(k)] {
			missing = append(missing, k)
		}
	}
	return gone, missing
}

// copyKeys copies the source rows of keys (1000 per read) into the replica.
func (j *tableJob) copyKeys(ctx context.Context, keys [][]string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		pred, args := j.ks.In(keys[:n])
		c := j.newChunk(n)
		q := "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name) + " WHERE " + pred
		if err := j.readChunk(ctx, sourceRead{query: q, args: args}, c); err != nil {
			return err
		}
		if err := j.commitChunk(ctx, &c.f, state.For(j.cfg.Name)); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

// deleteMissing deletes the replica rows whose keys the full copy did not
// see at the source (it read the whole table in one chunk).
func (j *tableJob) deleteMissing(ctx context.Context) error {
	countQ := "SELECT COUNT(*) FROM " + quoteIdent(j.cfg.Name)
	var repCount int64
	if err := scanOne(ctx, j.conn, countQ, &repCount); err != nil {
		return fmt.Errorf("count replica rows of %s: %w", j.cfg.Name, err)
	}
	if repCount == int64(len(j.srcKeys)) {
		return nil
	}
	keys, err := readKeys(ctx, j.conn, "SELECT "+identList(j.key)+" FROM "+quoteIdent(j.cfg.Name), nil, len(j.key))
	if err != nil {
		return fmt.Errorf("read replica keys of %s: %w", j.cfg.Name, err)
	}
	var gone [][]string
	for _, k := range keys {
		if !j.srcKeys[state.EncodeKey(k)] {
			gone = append(gone, k)
		}
	}
	return j.deleteKeys(ctx, gone)
}

// deleteKeys deletes rows from the replica and records them, one commit per 1000 keys.
func (j *tableJob) deleteKeys(ctx context.Context, keys [][]string) error {
	for len(keys) > 0 {
		n := min(len(keys), 1000)
		if err := j.deleteBatch(ctx, keys[:n]); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return nil
}

func (j *tableJob) deleteBatch(ctx context.Context, keys [][]string) error {
	name := j.cfg.Name
	tx, err := j.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin delete transaction for %s: %w", name, err)
	}
	defer tx.Rollback()
	n, err := j.deleteIn(ctx, tx, keys)
	if err != nil {
		return err
	}
	if err := state.For(name).BumpChangeSeq().Exec(ctx, tx); err != nil {
		return err
	}
	if err := j.commit(ctx, tx, "deletes"); err != nil {
		return err
	}
	j.res.RowsDeleted += n
	return nil
}

// deleteIn deletes the keys from the replica table and records them in
// the deleted-rows log inside tx; the caller bumps change_seq and commits.
func (j *tableJob) deleteIn(ctx context.Context, tx *sql.Tx, keys [][]string) (int64, error) {
	name := j.cfg.Name
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?,", len(j.key)), ",") + ")"
	var total int64
	now := time.Now()
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		var del []string
		var dargs []any
		for _, k := range batch {
			del = append(del, tuple)
			dargs = append(dargs, params(k, j.keyTypes)...)
		}
		q := "DELETE FROM " + quoteIdent(name) + " WHERE (" + identList(j.key) + ") IN (" + strings.Join(del, ",") + ")"
		res, err := tx.ExecContext(ctx, q, dargs...)
		if err != nil {
			return 0, fmt.Errorf("delete rows from replica %s: %w", name, err)
		}
		n, _ := res.RowsAffected()
		total += n
		if err := state.RecordDeletes(ctx, tx, name, batch, now); err != nil {
			return 0, err
		}
	}
	return total, nil
}

// readSourceKeys runs readKeys for the table's key on a source connection.
func (j *tableJob) readSourceKeys(ctx context.Context, q string, args []any) ([][]string, error) {
	var keys [][]string
	err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		var err error
		keys, err = readKeys(ctx, c, q, args, len(j.key))
		return err
	})
	return keys, err
}

func readKeys(ctx context.Context, q querier, query string, args []any, width int) ([][]string, error) {
	idx := make([]int, width)
	for i := range idx {
		idx[i] = i
	}
	var out [][]string
	err := eachRawRow(ctx, q, sourceRead{query: query, args: args}, width, func(vals []sql.RawBytes) error {
		out = append(out, rawStrings(vals, idx))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
