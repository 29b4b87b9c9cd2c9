package keyset_test

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// Every predicate selects exactly the keys a lexicographic comparison in Go
// selects, on a real table with a three-column key (and on a one-column one).
func TestPredicatesMatchLexicographicOrder(t *testing.T) {
	db, _ := testdb.MySQL(t, "keyset")
	ctx := context.Background()
	_, err := db.Exec("CREATE TABLE t (a INT NOT NULL, b VARCHAR(5) NOT NULL, c BIGINT UNSIGNED NOT NULL, PRIMARY KEY (a, b, c))")
	require.NoError(t, err)
	var all [][]string
	for a := range 3 {
		for _, b := range []string{"x", "y", "z"} {
			for _, c := range []string{"1", "18446744073709551615"} {
				all = append(all, []string{strconv.Itoa(a), b, c})
				_, err := db.Exec("INSERT INTO t VALUES (?, ?, ?)", a, b, c)
				require.NoError(t, err)
			}
		}
	}
	tbl, err := schema.ReadTable(ctx, db, "t")
	require.NoError(t, err)
	k := keyset.Of(tbl)
	require.Equal(t, []string{"a", "b", "c"}, k.Cols)

	for _, lo := range [][]string{nil, all[0], all[7], all[17]} {
		for _, hi := range [][]string{nil, all[0], all[8], all[17]} {
			pred, args := k.Range(lo, hi)
			var want [][]string
			for _, key := range all {
				if (lo == nil || cmp(key, lo) > 0) && (hi == nil || cmp(key, hi) <= 0) {
					want = append(want, key)
				}
			}
			assert.Equal(t, want, keys(t, db, "SELECT a, b, c FROM t WHERE "+pred+" ORDER BY a, b, c", args), "range (%v, %v]", lo, hi)
		}
	}
	for _, op := range []string{"<", "<=", ">", ">=", "="} {
		pred, args := k.Row(op, all[9])
		var want [][]string
		for _, key := range all {
			c := cmp(key, all[9])
			if map[string]bool{"<": c < 0, "<=": c <= 0, ">": c > 0, ">=": c >= 0, "=": c == 0}[op] {
				want = append(want, key)
			}
		}
		assert.Equal(t, want, keys(t, db, "SELECT a, b, c FROM t WHERE "+pred+" ORDER BY a, b, c", args), "row %s", op)
	}
	pred, args := k.In([][]string{all[3], all[11], {"9", "q", "1"}})
	assert.Equal(t, [][]string{all[3], all[11]}, keys(t, db, "SELECT a, b, c FROM t WHERE "+pred+" ORDER BY a, b, c", args))

	one := keyset.Key{Cols: []string{"a"}, Types: []string{"int"}}
	pred, args = one.Range([]string{"0"}, []string{"1"})
	assert.Equal(t, "`a` > ? AND `a` <= ?", pred)
	assert.Equal(t, []any{int64(0), int64(1)}, args, "integer keys travel as numbers")
	pred, _ = one.In([][]string{{"1"}, {"2"}})
	assert.Equal(t, "`a` IN (?,?)", pred)
}

// cmp orders keys of (int, text, unsigned) lexicographically.
func cmp(x, y []string) int {
	for i := range x {
		var c int
		if i == 1 {
			c = slices.Compare([]byte(x[i]), []byte(y[i]))
		} else {
			a, _ := strconv.ParseUint(x[i], 10, 64)
			b, _ := strconv.ParseUint(y[i], 10, 64)
			c = map[bool]int{true: -1, false: 1}[a < b]
			if a == b {
				c = 0
			}
		}
		if c != 0 {
			return c
		}
	}
	return 0
}

func keys(t *testing.T, db *sql.DB, q string, args []any) [][]string {
	t.Helper()
	rows, err := db.Query(q, args...)
	require.NoError(t, err, q)
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		var a, b, c string
		require.NoError(t, rows.Scan(&a, &b, &c))
		out = append(out, []string{a, b, c})
	}
	require.NoError(t, rows.Err())
	return out
}

// Literal ranges select what argument ranges select, for binary keys with
// bytes that are not UTF-8 and text keys with quotes and backslashes.
func TestLiteralMatchesArguments(t *testing.T) {
	db, _ := testdb.MySQL(t, "keyset_lit")
	_, err := db.Exec("CREATE TABLE u (b VARBINARY(4) NOT NULL, s VARCHAR(10) NOT NULL, PRIMARY KEY (b, s))")
	require.NoError(t, err)
	bins := []string{"\x00", "\x7f", "\xff\x00", "\xff\xfe"}
	texts := []string{"a", "o'k", `b\s`, "zé"}
	var all [][]string
	for _, b := range bins {
		for _, s := range texts {
			_, err := db.Exec("INSERT INTO u VALUES (?, ?)", []byte(b), s)
			require.NoError(t, err)
		}
	}
	rows, err := db.Query("SELECT b, s FROM u ORDER BY b, s")
	require.NoError(t, err)
	for rows.Next() {
		var b, s []byte
		require.NoError(t, rows.Scan(&b, &s))
		all = append(all, []string{string(b), string(s)})
	}
	require.NoError(t, rows.Err())
	require.Len(t, all, 16)
	tbl, err := schema.ReadTable(context.Background(), db, "u")
	require.NoError(t, err)
	k := keyset.Of(tbl)
	read := func(q string, args ...any) [][]string {
		rows, err := db.Query(q, args...)
		require.NoError(t, err, q)
		defer rows.Close()
		var out [][]string
		for rows.Next() {
			var b, s []byte
			require.NoError(t, rows.Scan(&b, &s))
			out = append(out, []string{string(b), string(s)})
		}
		require.NoError(t, rows.Err())
		return out
	}
	for _, lo := range [][]string{nil, all[1], all[9]} {
		for _, hi := range [][]string{nil, all[6], all[14]} {
			from, to := 0, len(all) // all is in the server's key order
			for i, key := range all {
				if lo != nil && key[0] == lo[0] && key[1] == lo[1] {
					from = i + 1
				}
				if hi != nil && key[0] == hi[0] && key[1] == hi[1] {
					to = i + 1
				}
			}
			var want [][]string
			if from < to {
				want = all[from:to]
			}
			pred, args := k.Range(lo, hi)
			assert.Equal(t, want, read("SELECT b, s FROM u WHERE "+pred+" ORDER BY b, s", args...), "arguments (%q, %q]", lo, hi)
			assert.Equal(t, want, read("SELECT b, s FROM u WHERE "+k.Literal(lo, hi)+" ORDER BY b, s"), "literal (%q, %q]", lo, hi)
		}
	}
	some := [][]string{all[0], all[5], all[15], {"\xff", "none"}}
	pred, args := k.In(some)
	assert.Equal(t, some[:3], read("SELECT b, s FROM u WHERE "+pred+" ORDER BY b, s", args...))
	assert.Equal(t, some[:3], read("SELECT b, s FROM u WHERE "+k.InLiteral(some)+" ORDER BY b, s"))
}
