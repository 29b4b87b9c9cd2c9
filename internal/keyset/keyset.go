// Package keyset writes the MySQL predicates of primary-key ranges: "after
// this key", "up to this key", "in this list of keys", for one-column and
// composite keys alike, in the forms MariaDB turns into index range scans.
// Key values travel as the text (or bytes) the server printed them in and go
// back as query arguments of their column's kind, so integer keys compare as
// numbers and use the index.
package keyset

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// Key is a table's primary key.
type Key struct {
	Cols  []string // column names in key order
	Types []string // their DATA_TYPEs
}

// Of returns t's primary key (Cols empty when t has none).
func Of(t *schema.Table) Key {
	var k Key
	for _, name := range t.PrimaryKey {
		c := t.Column(name)
		if c == nil {
			continue
		}
		k.Cols = append(k.Cols, c.Name)
		k.Types = append(k.Types, c.DataType)
	}
	return k
}

// Literal is Range with the values written into the SQL instead of as
// arguments, for queries that must stay on MySQL's text protocol (a query
// with arguments is a prepared statement, whose results the driver formats
// itself): integers as numbers, binary strings as X'…', text quoted.
func (k Key) Literal(lo, hi []string) string {
	b := &builder{k: k, literal: true}
	return b.rng(lo, hi)
}

// Len is the number of key columns.
func (k Key) Len() int { return len(k.Cols) }

// List is the quoted column list, e.g. for ORDER BY.
func (k Key) List() string {
	q := make([]string, len(k.Cols))
	for i, c := range k.Cols {
		q[i] = Quote(c)
	}
	return strings.Join(q, ",")
}

// Args turns key values into query arguments of their columns' kinds.
func (k Key) Args(vals []string) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = arg(v, k.Types[i])
	}
	return out
}

// After is "(key) > (vals)", written so MariaDB range-scans the index on
// the first column: c1 >= ? AND (c1 > ? OR (c1 = ? AND …)).
func (k Key) After(vals []string) (string, []any) {
	b := &builder{k: k}
	return b.compare(vals, ">=", ">"), b.args
}

// AtMost is "(key) <= (vals)", written like After: c1 <= ? AND (c1 < ? OR (c1 = ? AND … <= ?)).
func (k Key) AtMost(vals []string) (string, []any) {
	b := &builder{k: k}
	return b.compare(vals, "<=", "<="), b.args
}

// Range is the predicate of the keys in (lo, hi]: lo nil means from the
// first key, hi nil to the last. It returns "TRUE" when both are nil.
func (k Key) Range(lo, hi []string) (string, []any) {
	b := &builder{k: k}
	return b.rng(lo, hi), b.args
}

// builder writes predicates with placeholders (collecting the arguments)
// or with literals.
type builder struct {
	k       Key
	literal bool
	args    []any
}

// val is the SQL for value v of key column i.
func (b *builder) val(i int, v string) string {
	if b.literal {
		return literal(v, b.k.Types[i])
	}
	b.args = append(b.args, arg(v, b.k.Types[i]))
	return "?"
}

func (b *builder) rng(lo, hi []string) string {
	var conds []string
	if lo != nil {
		conds = append(conds, b.compare(lo, ">=", ">"))
	}
	if hi != nil {
		conds = append(conds, b.compare(hi, "<=", "<="))
	}
	if len(conds) == 0 {
		return "TRUE"
	}
	return strings.Join(conds, " AND ")
}

// compare writes the lexicographic comparison whose first column is bound
// by outer and whose last column by last (the columns in between compare
// strictly: outer without its '=').
func (b *builder) compare(vals []string, outer, last string) string {
	cols := b.k.Cols
	if len(cols) == 1 {
		return Quote(cols[0]) + " " + last + " " + b.val(0, vals[0])
	}
	strict := strings.TrimSuffix(outer, "=")
	var s strings.Builder
	s.WriteString("(" + Quote(cols[0]) + " " + outer + " " + b.val(0, vals[0]) + " AND ")
	for i := range cols {
		c := Quote(cols[i])
		if i == len(cols)-1 {
			s.WriteString(c + " " + last + " " + b.val(i, vals[i]))
			break
		}
		s.WriteString("(" + c + " " + strict + " " + b.val(i, vals[i]) + " OR (" + c + " = " + b.val(i, vals[i]) + " AND ")
	}
	s.WriteString(strings.Repeat("))", len(cols)-1) + ")")
	return s.String()
}

// Row is "(c1,c2) <= (?,?)"-style row comparison of the key with vals, op
// one of <, <=, >, >=, =; a plain column comparison for a one-column key.
// MariaDB does not range-scan on it: use it on rows already bounded by Range.
func (k Key) Row(op string, vals []string) (string, []any) {
	if len(k.Cols) == 1 {
		return Quote(k.Cols[0]) + " " + op + " ?", k.Args(vals)
	}
	return "(" + k.List() + ") " + op + " (" + placeholders(len(k.Cols)) + ")", k.Args(vals)
}

// In is "(key) IN ((?,?),…)" for keys (at least one).
func (k Key) In(keys [][]string) (string, []any) {
	args := make([]any, 0, len(keys)*len(k.Cols))
	tuples := make([]string, len(keys))
	for i, key := range keys {
		args = append(args, k.Args(key)...)
		tuples[i] = placeholders(len(k.Cols))
		if len(k.Cols) > 1 {
			tuples[i] = "(" + tuples[i] + ")"
		}
	}
	if len(k.Cols) == 1 {
		return Quote(k.Cols[0]) + " IN (" + strings.Join(tuples, ",") + ")", args
	}
	return "(" + k.List() + ") IN (" + strings.Join(tuples, ",") + ")", args
}

// InLiteral is In with the values written into the SQL (see Literal).
func (k Key) InLiteral(keys [][]string) string {
	tuples := make([]string, len(keys))
	for i, key := range keys {
		vals := make([]string, len(key))
		for j, v := range key {
			vals[j] = literal(v, k.Types[j])
		}
		tuples[i] = strings.Join(vals, ",")
		if len(k.Cols) > 1 {
			tuples[i] = "(" + tuples[i] + ")"
		}
	}
	if len(k.Cols) == 1 {
		return Quote(k.Cols[0]) + " IN (" + strings.Join(tuples, ",") + ")"
	}
	return "(" + k.List() + ") IN (" + strings.Join(tuples, ",") + ")"
}

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// IsInt reports whether a DATA_TYPE is an integer type.
func IsInt(dataType string) bool {
	switch strings.ToLower(dataType) {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint":
		return true
	}
	return false
}

// arg turns a value printed by the server into a query argument: integers
// as numbers (so comparisons stay numeric and use the index), anything else
// as it was printed.
func arg(v, dataType string) any {
	if IsInt(dataType) {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		if n, err := strconv.ParseUint(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

// literal writes v as a MySQL literal of a column of dataType.
func literal(v, dataType string) string {
	switch t := strings.ToLower(dataType); {
	case IsInt(t) && isInteger(v):
		return v
	case t == "binary" || t == "varbinary" || strings.HasSuffix(t, "blob"):
		return "X'" + hex.EncodeToString([]byte(v)) + "'"
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`).Replace(v) + "'"
}

func isInteger(v string) bool {
	v = strings.TrimPrefix(v, "-")
	if v == "" {
		return false
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// Quote quotes a MySQL identifier.
func Quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
