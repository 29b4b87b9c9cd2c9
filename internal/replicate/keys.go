package replicate

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
)

// after is the keyset predicate "(cols) > (vals)", written so MariaDB can
// range-scan the index on the first column: c1 >= ? AND (c1 > ? OR (c1 = ? AND …)).
func after(cols []string, vals []any) (string, []any) {
	var b strings.Builder
	var args []any
	b.WriteString("(" + quoteIdent(cols[0]) + " >= ? AND ")
	args = append(args, vals[0])
	var rec func(i int)
	rec = func(i int) {
		c := quoteIdent(cols[i])
		if i == len(cols)-1 {
			b.WriteString(c + " > ?")
			args = append(args, vals[i])
			return
		}
		b.WriteString("(" + c + " > ? OR (" + c + " = ? AND ")
		args = append(args, vals[i], vals[i])
		rec(i + 1)
		b.WriteString("))")
	}
	rec(0)
	b.WriteString(")")
	return b.String(), args
}

// between is the inclusive key range predicate [lo, hi].
func between(cols []string, lo, hi []any) (string, []any) {
	if len(cols) == 1 {
		return quoteIdent(cols[0]) + " BETWEEN ? AND ?", []any{lo[0], hi[0]}
	}
	row := "(" + identList(cols) + ")"
	ph := "(" + strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ")"
	args := append(append([]any{}, lo...), hi...)
	return row + " >= " + ph + " AND " + row + " <= " + ph, args
}

// isInt reports whether a DATA_TYPE is an integer type.
func isInt(dataType string) bool {
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		return true
	}
	return false
}

func isTemporal(dataType string) bool {
	switch strings.ToLower(dataType) {
	case "timestamp", "datetime", "date":
		return true
	}
	return false
}

// param turns a value read as text into a query argument of the column's
// kind, so comparisons on integer keys stay numeric and use the index.
func param(v string, dataType string) any {
	if isInt(dataType) {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

func params(vals []string, types []string) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = param(v, types[i])
	}
	return out
}

// eachRawRow runs rd's query on q (rd.pre and rd.idx are the caller's) and
// calls fn with every row's n raw values, valid only during the call.
func eachRawRow(ctx context.Context, q querier, rd sourceRead, n int, fn func([]sql.RawBytes) error) error {
	rows, err := q.QueryContext(ctx, rd.query, rd.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	vals, dest := rawRow(n)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		if err := fn(vals); err != nil {
			return err
		}
	}
	return rows.Err()
}

// rawRow returns n raw values and the Scan destinations pointing at them.
func rawRow(n int) ([]sql.RawBytes, []any) {
	vals := make([]sql.RawBytes, n)
	dest := make([]any, n)
	for i := range vals {
		dest[i] = &vals[i]
	}
	return vals, dest
}

func rawStrings(vals []sql.RawBytes, idx []int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = string(vals[j])
	}
	return out
}

func identList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ",")
}
