package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// Names MySQL accepts that need quoting somewhere: in YAML, in MySQL
// (backticks, doubled), in PostgreSQL (double quotes, doubled), in LOAD DATA
// column lists, in the deleted-rows log's JSON and on the command line.
var (
	long64     = strings.Repeat("L", 60) + "_end" // 64 characters: MySQL's limit, one byte over PostgreSQL's
	oddTables  = []string{"a b", "a-b", "it's", `say "hi"`, "back`tick", "dollar$", "dot.ted", "café", "日本", "select", "123", long64, "comma,name", " lead", "new\nline\ttab\\"}
	oddColumns = []string{"a b", "a-b", "it's", `say "hi"`, "back`tick", "dollar$", "dot.ted", "é", "日本", "select", "123", "L" + long64[1:], "comma,col", " lead", "new\nline\ttab\\"}
)

const (
	oddKey   = "key-1 `k`"    // the primary key column
	oddStamp = `edit "stamp"` // the watermark: TIMESTAMP … ON UPDATE
)

// oddRows is what a table holds: key → column → value (the value names its
// table, column and row, so a value in the wrong place shows).
type oddRows map[int64]map[string]string

func oddValue(table, col string, key int64) string { return fmt.Sprintf("%s|%s|%d", table, col, key) }

func createOddTables(t *testing.T, src *sql.DB) {
	t.Helper()
	q := typemap.QuoteMySQL
	for _, tbl := range oddTables {
		defs := []string{q(oddKey) + " BIGINT NOT NULL PRIMARY KEY"}
		for _, c := range oddColumns {
			defs = append(defs, q(c)+" VARCHAR(200) CHARACTER SET utf8mb4")
		}
		defs = append(defs, q(oddStamp)+" TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP")
		_, err := src.Exec("CREATE TABLE " + q(tbl) + " (" + strings.Join(defs, ", ") + ")")
		require.NoError(t, err, tbl)
		for k := int64(1); k <= 5; k++ {
			insertOdd(t, src, tbl, k, "2024-01-01 00:00:00")
		}
	}
	// A composite key of odd names: the deleted-rows log keeps its keys as JSON.
	_, err := src.Exec("CREATE TABLE `two``keys` (`k 1` INT NOT NULL, `k'2\"` VARCHAR(20) NOT NULL, `v.é` VARCHAR(20), PRIMARY KEY (`k 1`, `k'2\"`))")
	require.NoError(t, err)
	_, err = src.Exec("INSERT INTO `two``keys` VALUES (1, 'a,b', 'x'), (1, 'c\"d', 'y'), (2, 'e''f', 'z'), (3, 'g', 'w')")
	require.NoError(t, err)
}

func insertOdd(t *testing.T, src *sql.DB, tbl string, k int64, stamp string) {
	t.Helper()
	q := typemap.QuoteMySQL
	cols := []string{q(oddKey)}
	vals := []any{k}
	for _, c := range oddColumns {
		cols = append(cols, q(c))
		vals = append(vals, oddValue(tbl, c, k))
	}
	cols = append(cols, q(oddStamp))
	vals = append(vals, stamp)
	_, err := src.Exec("INSERT INTO "+q(tbl)+" ("+strings.Join(cols, ", ")+") VALUES (?"+strings.Repeat(", ?", len(cols)-1)+")", vals...)
	require.NoError(t, err, tbl)
}

// readMySQLOdd reads a table by its exact names.
func readMySQLOdd(t *testing.T, db *sql.DB, tbl string) oddRows {
	t.Helper()
	q := typemap.QuoteMySQL
	cols := make([]string, len(oddColumns))
	for i, c := range oddColumns {
		cols[i] = q(c)
	}
	rows, err := db.Query("SELECT " + q(oddKey) + ", " + strings.Join(cols, ", ") + " FROM " + q(tbl))
	require.NoError(t, err, tbl)
	defer rows.Close()
	return scanOdd(t, rows.Next, rows.Scan)
}

func readRawOdd(t *testing.T, pg *pgxpool.Pool, tbl string) oddRows {
	t.Helper()
	q := func(s string) string { return typemap.QuotePG(load.RawName(s, false)) }
	cols := make([]string, len(oddColumns))
	for i, c := range oddColumns {
		cols[i] = q(c)
	}
	rows, err := pg.Query(context.Background(), "SELECT "+q(oddKey)+", "+strings.Join(cols, ", ")+" FROM raw."+q(tbl))
	require.NoError(t, err, tbl)
	defer rows.Close()
	return scanOdd(t, rows.Next, rows.Scan)
}

func scanOdd(t *testing.T, next func() bool, scan func(...any) error) oddRows {
	t.Helper()
	out := oddRows{}
	for next() {
		var k int64
		vals := make([]sql.NullString, len(oddColumns))
		dest := []any{&k}
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		require.NoError(t, scan(dest...))
		row := map[string]string{}
		for i, c := range oddColumns {
			row[c] = vals[i].String
		}
		out[k] = row
	}
	return out
}

// Every name MySQL accepts goes through discover → tables.yml → replica →
// raw, full and incremental, with deletes; every value arrives under its
// exact names (raw: RawName, the name itself when it fits 63 bytes).
func TestOddNamesRoundTrip(t *testing.T) {
	vars, _, pgName := testVars(t)
	dir := useProcessEnv(t, vars)
	src, err := testdb.OpenMySQL(testdb.MySQLConfig(vars["TEST_OPENDENTAL_SOURCE_DB"], catalog.DatabaseSource))
	require.NoError(t, err)
	defer src.Close()
	repl, err := testdb.OpenMySQL(testdb.MySQLConfig(vars["TEST_MYSQL_REPLICATION_DB"], catalog.DatabaseReplication))
	require.NoError(t, err)
	defer repl.Close()
	pgCfg := testdb.PostgresConfig(pgName, catalog.SchemaRaw)
	pg, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", pgCfg.User, pgCfg.Addr(), pgCfg.Name))
	require.NoError(t, err)
	defer pg.Close()
	createOddTables(t, src)

	cli := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), append([]string{"--env", "test", "--config-dir", dir}, args...), &stdout, &stderr)
		require.Equal(t, exitOK, code, "%v\nstdout:\n%s\nstderr:\n%s", args, stdout.String(), stderr.String())
		return stdout.String()
	}
	cli("discover")
	yml, err := os.ReadFile(filepath.Join(dir, "tables.yml"))
	require.NoError(t, err)
	cli("discover") // re-reading its own file keeps it as it is
	again, err := os.ReadFile(filepath.Join(dir, "tables.yml"))
	require.NoError(t, err)
	assert.Equal(t, string(yml), string(again))

	check := func(when string) {
		t.Helper()
		for _, tbl := range oddTables {
			want := readMySQLOdd(t, src, tbl)
			require.Len(t, want, 5, "%s: source rows", tbl)
			assert.Equal(t, want, readMySQLOdd(t, repl, tbl), "%s: replica %s", when, tbl)
			assert.Equal(t, want, readRawOdd(t, pg, tbl), "%s: raw %s", when, tbl)
		}
		var got []string
		rows, err := pg.Query(context.Background(), `SELECT "k 1"::text || '/' || "k'2""" || '/' || "v.é" FROM raw."two`+"`"+`keys" ORDER BY 1`)
		require.NoError(t, err)
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			got = append(got, s)
		}
		require.NoError(t, rows.Err())
		var want []string
		srows, err := src.Query("SELECT CONCAT(`k 1`, '/', `k'2\"`, '/', `v.é`) FROM `two``keys` ORDER BY 1")
		require.NoError(t, err)
		for srows.Next() {
			var s string
			require.NoError(t, srows.Scan(&s))
			want = append(want, s)
		}
		sort.Strings(want)
		sort.Strings(got)
		assert.Equal(t, want, got, "%s: raw two`keys", when)
	}
	cli("run")
	check("full run")

	// A day of changes: an update that moves the watermark, an insert, a
	// delete in every table; a composite-key delete.
	q := typemap.QuoteMySQL
	for _, tbl := range oddTables {
		_, err := src.Exec("UPDATE "+q(tbl)+" SET "+q("it's")+" = ?, "+q(oddStamp)+" = '2024-02-01 00:00:00' WHERE "+q(oddKey)+" = 2", "changed "+tbl)
		require.NoError(t, err)
		_, err = src.Exec("DELETE FROM " + q(tbl) + " WHERE " + q(oddKey) + " = 3")
		require.NoError(t, err)
		insertOdd(t, src, tbl, 6, "2024-02-01 00:00:00")
	}
	_, err = src.Exec("DELETE FROM `two``keys` WHERE `k'2\"` IN ('a,b', 'c\"d')")
	require.NoError(t, err)
	cli("run")
	check("incremental run")

	assert.Equal(t, strings.Repeat("L", 54)+"_8cbe078a", load.RawName(long64, false), "the documented raw name of a 64-byte name")

	// --table names one table exactly (commas and spaces are part of it);
	// --tables is a comma-separated list; both may be repeated.
	for _, tbl := range []string{"comma,name", " lead", "a-b", "日本"} {
		_, err = src.Exec("UPDATE " + q(tbl) + " SET " + q("a b") + " = 'picked', " + q(oddStamp) + " = '2024-03-01 00:00:00' WHERE " + q(oddKey) + " = 1")
		require.NoError(t, err)
	}
	out := cli("run", "--table", "comma,name", "--table", " lead", "--tables", "a-b, dollar$", "--tables", "select")
	for _, tbl := range []string{"comma,name", " lead", "a-b", "dollar$", "select"} {
		assert.Regexp(t, `(?m)^`+regexp.QuoteMeta(tbl)+`\s`, out, "ran %q", tbl)
	}
	assert.NotContains(t, out, "日本", "only the tables named were run")
	var picked string
	require.NoError(t, pg.QueryRow(context.Background(), `SELECT "a b" FROM raw."comma,name" WHERE "key-1 `+"`k`"+`" = 1`).Scan(&picked))
	assert.Equal(t, "picked", picked)
	require.NoError(t, pg.QueryRow(context.Background(), `SELECT "a b" FROM raw."日本" WHERE "key-1 `+"`k`"+`" = 1`).Scan(&picked))
	assert.Equal(t, oddValue("日本", "a b", 1), picked, "a table not named is not run")
}

func TestTableList(t *testing.T) {
	f := phaseFlags{tables: nameList{"a, b", "c,,a"}, table: nameList{"x,y", " lead", "b"}}
	assert.Equal(t, []string{"a", "b", "c", "x,y", " lead"}, f.tableList())
	assert.Empty(t, phaseFlags{}.tableList())
}
