package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
)

// keySpans walks the whole primary key in spans that hold at most n rows
// each, calling fn with each span's predicate (on the key alone, so an
// index range) and its arguments, in key order. A statement reading one
// span with FORCE INDEX (PRIMARY) examines at most n rows, whatever else
// its WHERE asks.
//
// A one-column integer key is cut into runs of n consecutive values from
// its lowest to its highest value (one index lookup each end): n values
// hold at most n rows, and an auto-increment key is dense, so a span holds
// about n. A sparse integer key (fewer than a quarter of its values used)
// and any other key are cut at every n-th key, read from the primary-key
// index first (one index-only statement per span).
func (j *tableJob) keySpans(ctx context.Context, n int, fn func(pred string, args []any) error) error {
	if len(j.key) == 1 && isInt(j.keyTypes[0]) {
		lo, hi, ok, err := j.intKeyBounds(ctx)
		if err != nil || !ok {
			return err
		}
		if hi-lo < 4*max(j.src.Rows, int64(n)) {
			return intSpans(lo, hi, int64(n), quoteIdent(j.key[0]), fn)
		}
	}
	return j.cutSpans(ctx, n, fn)
}

// intKeyBounds reads the lowest and highest key (ok false: no row, or a key
// beyond int64).
func (j *tableJob) intKeyBounds(ctx context.Context) (lo, hi int64, ok bool, err error) {
	k := quoteIdent(j.key[0])
	var a, b sql.NullString
	err = j.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		return scanOne(ctx, c, "SELECT MIN("+k+"), MAX("+k+") FROM "+quoteIdent(j.cfg.Name), &a, &b)
	})
	if err != nil {
		return 0, 0, false, fmt.Errorf("read key bounds of %s: %w", j.cfg.Name, err)
	}
	if !a.Valid {
		return 0, 0, false, nil
	}
	lo, errA := strconv.ParseInt(a.String, 10, 64)
	hi, errB := strconv.ParseInt(b.String, 10, 64)
	if errA != nil || errB != nil {
		return 0, 0, false, nil
	}
	return lo, hi, true, nil
}

// intSpans calls fn for [lo, lo+n), [lo+n, lo+2n) … up to hi.
func intSpans(lo, hi, n int64, col string, fn func(string, []any) error) error {
	for from := lo; ; from += n {
		to := from + n - 1
		if to < from || to > hi { // past hi, or past int64
			to = hi
		}
		if err := fn(col+" BETWEEN ? AND ?", []any{from, to}); err != nil {
			return err
		}
		if to == hi {
			return nil
		}
	}
}

// cutSpans cuts the key at every n-th key: each span is (previous cut, next
// cut], the last one open-ended.
func (j *tableJob) cutSpans(ctx context.Context, n int, fn func(string, []any) error) error {
	var cut []string
	for {
		next, err := j.nthKeyAfter(ctx, cut, n)
		if err != nil {
			return err
		}
		pred, args := j.ks.Range(cut, next)
		if err := fn(pred, args); err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		cut = next
	}
}

// nthKeyAfter reads the n-th key after cut (nil: from the first) from the
// primary-key index; nil when fewer than n keys follow.
func (j *tableJob) nthKeyAfter(ctx context.Context, cut []string, n int) ([]string, error) {
	q := "SELECT " + identList(j.key) + " FROM " + quoteIdent(j.cfg.Name) + " FORCE INDEX (PRIMARY)"
	var args []any
	if cut != nil {
		var pred string
		pred, args = j.ks.After(cut)
		q += " WHERE " + pred
	}
	q += " ORDER BY " + identList(j.key) + " LIMIT 1 OFFSET " + strconv.Itoa(n-1)
	keys, err := j.readSourceKeys(ctx, q, args)
	if err != nil {
		return nil, fmt.Errorf("read key span of %s: %w", j.cfg.Name, err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return keys[0], nil
}
