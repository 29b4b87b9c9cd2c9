package verify

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
)

// partsPerRange is how many parts a range's checksum query splits it into.
const partsPerRange = 16

// leafRows is the most rows a differing part may hold to be listed (keys and
// row hashes) rather than split again.
const leafRows = 1000

// part is a run of consecutive source rows: their count, the BIT_XOR of
// their row hashes, and the last key (the part's inclusive upper bound; its
// lower bound is the previous part's last key).
type part struct {
	last  []string
	count int64
	hash  uint64
}

// byKey makes a source read walk the primary key: without it MariaDB may
// read a MyISAM table whole and sort it to find a range's first rows
// (measured: all 20 000 rows examined for a LIMIT 1000 from the start).
const byKey = " FORCE INDEX (PRIMARY)"

// agg is a replica part: count and hash of the rows within a part's bounds.
type agg struct {
	count int64
	hash  uint64
}

// partSize is the rows per part of a range of n rows.
func partSize(n int) int { return max(1, (n+partsPerRange-1)/partsPerRange) }

// sourceParts asks the source for the first limit rows after lo (up to hi
// when not nil), in parts of size rows: one query that examines those rows
// only and returns at most limit/size+1 short rows.
func (tv *tableVerify) sourceParts(ctx context.Context, lo, hi []string, limit, size int) ([]part, error) {
	k := tv.key
	aliases := make([]string, k.Len())
	sel := make([]string, k.Len())
	lasts := make([]string, k.Len())
	s := strconv.Itoa(size)
	for i, c := range k.Cols {
		aliases[i] = "k" + strconv.Itoa(i)
		sel[i] = keyset.Quote(c) + " AS " + aliases[i]
		lasts[i] = "MAX(IF(rn % " + s + " = 0 OR rn = total, " + aliases[i] + ", NULL))"
	}
	pred, args := k.Range(lo, hi)
	al := strings.Join(aliases, ",")
	rows := "SELECT " + strings.Join(sel, ",") + ", " + tv.srcHash + " AS h FROM " + keyset.Quote(tv.cfg.Name) + byKey +
		" WHERE " + pred + " ORDER BY " + k.List() + " LIMIT " + strconv.Itoa(limit)
	numbered := "SELECT " + al + ", h, ROW_NUMBER() OVER (ORDER BY " + al + ") AS rn, COUNT(*) OVER () AS total FROM (" + rows + ") a"
	q := "SELECT COUNT(*), BIT_XOR(h), " + strings.Join(lasts, ",") + " FROM (" + numbered + ") b GROUP BY (rn - 1) DIV " + s + " ORDER BY (rn - 1) DIV " + s
	var parts []part
	err := tv.r.source(ctx, &tv.res.SourceQueries, func(ctx context.Context, c *sql.Conn) error {
		parts = parts[:0]
		return eachRow(ctx, c, stmt{q, args}, 2+k.Len(), func(vals [][]byte) error {
			p := part{last: strs(vals[2:])}
			var err error
			if p.count, err = strconv.ParseInt(string(vals[0]), 10, 64); err != nil {
				return err
			}
			if p.hash, err = strconv.ParseUint(string(vals[1]), 10, 64); err != nil {
				return err
			}
			parts = append(parts, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("checksum source range of %s: %w", tv.cfg.Name, err)
	}
	return parts, nil
}

// replicaParts sums the replica's rows within the parts' bounds: part i
// holds the keys in (bounds[i-1], bounds[i]] (lo before the first). With
// tail, the rows after the last bound are part len(bounds).
func (tv *tableVerify) replicaParts(ctx context.Context, lo []string, bounds [][]string, tail bool) (map[int]agg, error) {
	k := tv.key
	var hi []string
	if !tail && len(bounds) > 0 {
		hi = bounds[len(bounds)-1]
	}
	var cases []string
	var args []any
	for i, b := range bounds {
		p, a := k.Row("<=", b)
		cases = append(cases, "WHEN "+p+" THEN "+strconv.Itoa(i))
		args = append(args, a...)
	}
	pexpr := strconv.Itoa(len(bounds))
	if len(cases) > 0 {
		pexpr = "CASE " + strings.Join(cases, " ") + " ELSE " + pexpr + " END"
	}
	pred, a := k.Range(lo, hi)
	args = append(args, a...)
	q := "SELECT p, COUNT(*), BIT_XOR(h) FROM (SELECT " + pexpr + " AS p, " + tv.repHash + " AS h FROM " + keyset.Quote(tv.cfg.Name) +
		" WHERE " + pred + ") x GROUP BY p"
	out := map[int]agg{}
	err := eachRow(ctx, tv.conn, stmt{q, args}, 3, func(vals [][]byte) error {
		p, err := strconv.Atoi(string(vals[0]))
		if err != nil {
			return err
		}
		var g agg
		if g.count, err = strconv.ParseInt(string(vals[1]), 10, 64); err != nil {
			return err
		}
		if g.hash, err = strconv.ParseUint(string(vals[2]), 10, 64); err != nil {
			return err
		}
		out[p] = g
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("checksum replica range of %s: %w", tv.cfg.Name, err)
	}
	return out, nil
}

// querier is what eachRow reads from: a source *sql.Conn or the replica.
type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// stmt is a query with its arguments.
type stmt struct {
	query string
	args  []any
}

// eachRow runs st and calls fn with every row's n values as bytes (nil
// for NULL; valid only during the call).
func eachRow(ctx context.Context, q querier, st stmt, n int, fn func([][]byte) error) error {
	rows, err := q.QueryContext(ctx, st.query, st.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals := make([]sql.RawBytes, n)
	dest := make([]any, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	b := make([][]byte, n)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		for i, v := range vals {
			b[i] = v
		}
		if err := fn(b); err != nil {
			return err
		}
	}
	return rows.Err()
}

// strs copies byte values into strings.
func strs(vals [][]byte) []string {
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = string(v)
	}
	return out
}
