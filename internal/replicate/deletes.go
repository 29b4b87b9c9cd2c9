package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/state"
)

// detectDeletes removes from the replica the rows deleted at the source and
// records each in the deleted-rows log (internal/state), in the same commit. It costs one COUNT
// per side when nothing was deleted (for an integer key, of the rows up to
// the replica's highest key: an index range on the source); otherwise it walks
// the replica's keys in spans (see checkSpans).
func (j *tableJob) detectDeletes(ctx context.Context) error {
	name := j.cfg.Name
	countQ := "SELECT COUNT(*) FROM " + quoteIdent(name)
	if j.srcKeys != nil {
		return j.deleteMissing(ctx, countQ)
	}
	var srcCount, repCount int64
	if len(j.key) == 1 && isInt(j.keyTypes[0]) {
		// Compare up to the replica's highest key: rows the copy has not taken
		// yet (added since, or stamped past this run's bound) have higher keys
		// and must not hide a delete by making the counts equal again.
		var maxKey sql.NullInt64
		if err := scanOne(ctx, j.conn, "SELECT COUNT(*), MAX("+quoteIdent(j.key[0])+") FROM "+quoteIdent(name), &repCount, &maxKey); err != nil {
			return fmt.Errorf("count replica rows of %s: %w", name, err)
		}
		if !maxKey.Valid {
			return nil // an empty replica table has nothing to delete
		}
		q := countQ + " WHERE " + quoteIdent(j.key[0]) + " <= ?"
		if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
			return scanOneArgs(ctx, c, q, []any{maxKey.Int64}, &srcCount)
		}); err != nil {
			return fmt.Errorf("count source rows of %s: %w", name, err)
		}
	} else {
		if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error { return scanOne(ctx, c, countQ, &srcCount) }); err != nil {
			return fmt.Errorf("count source rows of %s: %w", name, err)
		}
		if err := scanOne(ctx, j.conn, countQ, &repCount); err != nil {
			return fmt.Errorf("count replica rows of %s: %w", name, err)
		}
	}
	if srcCount == repCount {
		return nil
	}
	return j.checkSpans(ctx)
}

// maxCheckRows caps the keys one source checksum covers: COUNT and
// BIT_XOR(CRC32(key)) read only the primary-key index, so a span of several
// batches is still a short query.
const maxCheckRows = 400_000

// maxListRows caps the keys one source key list returns beyond batch_size:
// keys only, read from the primary-key index, so up to 4 batches of them are
// still a shorter query than one batch of whole rows.
const maxListRows = 100_000

// listSize is how many keys one source key list may cover.
func (j *tableJob) listSize() int {
	return max(j.batch(), min(4*j.batch(), maxListRows))
}

// checkSpans walks the replica's keys in spans and deletes those the source
// no longer has. Every source query (rate-limited) is bounded by two replica
// keys, so rows the copy has not taken yet never hide a delete. A span whose
// COUNT and BIT_XOR(CRC32(key)) match the source's is skipped, and the next
// span doubles (up to maxCheckRows); a span that differs is bisected down to
// listSize keys, whose source key list is fetched and compared. Right after
// a span with deletes (deletes spread over the table) the next span's keys
// are fetched directly, without a checksum that would only differ too. Gone
// keys are deleted and recorded 1000 per commit.
func (j *tableJob) checkSpans(ctx context.Context) error {
	name := j.cfg.Name
	keysQ := "SELECT " + identList(j.key) + " FROM " + quoteIdent(name)
	order := " ORDER BY " + identList(j.key)
	list := j.listSize()
	maxSpan := max(list, maxCheckRows/list*list)
	span := list
	var cursor []string
	var gone [][]string
	for {
		q := keysQ
		var args []any
		if cursor != nil {
			pred, a := after(j.key, params(cursor, j.keyTypes))
			q += " WHERE " + pred
			args = a
		}
		repKeys, err := readKeys(ctx, j.conn, q+order+fmt.Sprintf(" LIMIT %d", span), args, len(j.key))
		if err != nil {
			return fmt.Errorf("read replica keys of %s: %w", name, err)
		}
		if len(repKeys) == 0 {
			break
		}
		// A span with deletes: the next one likely has some too, so fetch its
		// keys directly (span == list skips the checksum). Otherwise widen.
		n := len(gone)
		if err := j.checkSpan(ctx, repKeys, span > list, &gone); err != nil {
			return err
		}
		full := len(repKeys) == span
		if len(gone) > n {
			span = list
		} else {
			span = min(2*span, maxSpan)
		}
		if len(gone) >= 1000 {
			if err := j.deleteKeys(ctx, gone); err != nil {
				return err
			}
			gone = nil
		}
		if !full {
			break
		}
		cursor = repKeys[len(repKeys)-1]
	}
	return j.deleteKeys(ctx, gone)
}

// checkSpan compares the replica's sorted keys with the source's over the
// range they span and appends to gone those the source lacks.
// With checksum false and at most listSize keys it fetches the source's keys
// without comparing checksums first.
func (j *tableJob) checkSpan(ctx context.Context, repKeys [][]string, checksum bool, gone *[][]string) error {
	name := j.cfg.Name
	lo, hi := params(repKeys[0], j.keyTypes), params(repKeys[len(repKeys)-1], j.keyTypes)
	pred, rargs := between(j.key, lo, hi)
	if checksum || len(repKeys) > j.listSize() {
		sumQ := "SELECT COUNT(*), COALESCE(BIT_XOR(CRC32(CONCAT_WS(0x1f," + identList(j.key) + "))),0) FROM " + quoteIdent(name) + " WHERE " + pred
		var sc, rc int64
		var sx, rx uint64
		if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
			return scanOneArgs(ctx, c, sumQ, rargs, &sc, &sx)
		}); err != nil {
			return fmt.Errorf("checksum source keys of %s: %w", name, err)
		}
		if err := scanOneArgs(ctx, j.conn, sumQ, rargs, &rc, &rx); err != nil {
			return fmt.Errorf("checksum replica keys of %s: %w", name, err)
		}
		if sc == rc && sx == rx {
			return nil
		}
		if len(repKeys) > j.listSize() {
			// Bisect; each half checks its own checksum first.
			mid := len(repKeys) / 2
			if err := j.checkSpan(ctx, repKeys[:mid], true, gone); err != nil {
				return err
			}
			return j.checkSpan(ctx, repKeys[mid:], true, gone)
		}
	}
	var srcKeys [][]string
	if err := j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		var err error
		srcKeys, err = readKeys(ctx, c, "SELECT "+identList(j.key)+" FROM "+quoteIdent(name)+" WHERE "+pred, rargs, len(j.key))
		return err
	}); err != nil {
		return fmt.Errorf("read source keys of %s: %w", name, err)
	}
	have := make(map[string]bool, len(srcKeys))
	for _, k := range srcKeys {
		have[state.EncodeKey(k)] = true
	}
	for _, k := range repKeys {
		if !have[state.EncodeKey(k)] {
			*gone = append(*gone, k)
		}
	}
	return nil
}

// deleteMissing deletes the replica rows whose keys the full copy did not
// see at the source (it read the whole table in one chunk).
func (j *tableJob) deleteMissing(ctx context.Context, countQ string) error {
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
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit deletes of %s: %w", name, err)
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

func readKeys(ctx context.Context, q querier, query string, args []any, width int) ([][]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	vals, dest := rawRow(width)
	idx := make([]int, width)
	for i := range idx {
		idx[i] = i
	}
	var out [][]string
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		out = append(out, rawStrings(vals, idx))
	}
	return out, rows.Err()
}
