package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// A MariaDB type case: one table, its columns after `id INT PRIMARY KEY`,
// rows to insert (after the id), and per column how raw must show each
// row (a PostgreSQL expression over the raw column c, compared as text, and
// the expected text, or the source's HEX for bytes).
type typeCase struct {
	table   string
	cols    string   // column definitions
	options string   // table options after the definition
	insert  []string // INSERT value tuples without the id
	after   []string // statements run after the inserts (history of a versioned table)
	raw     map[string]rawWant
}

type rawWant struct {
	pgType string   // PostgreSQL type raw must have (format_type)
	expr   string   // PostgreSQL expression over "c" giving text
	want   []string // per row, in id order; "<hex>" compares with the source's HEX(col)
}

const hexOfSource = "<hex>"

var mariadbTypeCases = []typeCase{
	{table: "t_uuid", cols: "u UUID, d UUID DEFAULT UUID()",
		insert: []string{"('123e4567-e89b-12d3-a456-426614174000', '00000000-0000-0000-0000-000000000001')",
			"('00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff')", "(NULL, DEFAULT)"},
		raw: map[string]rawWant{"u": {"text", "c", []string{"123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000", "NULL"}}}},
	{table: "t_inet4", cols: "a INET4",
		insert: []string{"('0.0.0.0')", "('192.168.0.1')", "('255.255.255.255')", "(NULL)"},
		raw:    map[string]rawWant{"a": {"text", "c", []string{"0.0.0.0", "192.168.0.1", "255.255.255.255", "NULL"}}}},
	{table: "t_inet6", cols: "a INET6",
		// '2001:db8:0:1::1a' is 16 characters: read as binary it would be a different address.
		insert: []string{"('::')", "('2001:db8:0:1::1a')", "('::ffff:192.0.2.1')", "('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff')", "(NULL)"},
		raw:    map[string]rawWant{"a": {"text", "c", []string{"::", "2001:db8:0:1::1a", "::ffff:192.0.2.1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "NULL"}}}},
	{table: "t_json", cols: "j JSON",
		insert: []string{`('{"b": 1, "a": [1.0e2, "x\\u0000y"], "b": 2}')`, "('[]')", "(NULL)"},
		raw:    map[string]rawWant{"j": {"text", "c", []string{`{"b": 1, "a": [1.0e2, "x\u0000y"], "b": 2}`, "[]", "NULL"}}}},
	{table: "t_geometry", cols: "g GEOMETRY, p POINT, l LINESTRING, pg POLYGON, mp MULTIPOINT, ml MULTILINESTRING, mg MULTIPOLYGON, gc GEOMETRYCOLLECTION",
		insert: []string{"(ST_GeomFromText('POINT(1 2)', 4326), POINT(1.5, -2.25), ST_GeomFromText('LINESTRING(0 0,1 1,2 0)'), ST_GeomFromText('POLYGON((0 0,4 0,4 4,0 0))', 3857)," +
			" ST_GeomFromText('MULTIPOINT(0 0,1 1)'), ST_GeomFromText('MULTILINESTRING((0 0,1 1),(2 2,3 3))'), ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))'), ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1))'))",
			"(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"},
		raw: map[string]rawWant{
			"g": {"bytea", "upper(encode(c, 'hex'))", []string{hexOfSource, "NULL"}}, "p": {"bytea", "upper(encode(c, 'hex'))", []string{hexOfSource, "NULL"}},
			"pg": {"bytea", "upper(encode(c, 'hex'))", []string{hexOfSource, "NULL"}}, "gc": {"bytea", "upper(encode(c, 'hex'))", []string{hexOfSource, "NULL"}}}},
	{table: "t_year", cols: "y YEAR",
		insert: []string{"(0)", "(1901)", "(2155)", "(2024)", "(NULL)"},
		raw:    map[string]rawWant{"y": {"smallint", "c::text", []string{"0", "1901", "2155", "2024", "NULL"}}}},
	{table: "t_bit", cols: "b1 BIT(1), b10 BIT(10), b64 BIT(64)",
		insert: []string{"(b'0', b'0000000000', 0)", "(b'1', b'1010101011', 18446744073709551615)", "(NULL, NULL, NULL)"},
		raw: map[string]rawWant{"b10": {"bit(10)", "c::text", []string{"0000000000", "1010101011", "NULL"}},
			"b64": {"bit(64)", "c::text", []string{strings.Repeat("0", 64), strings.Repeat("1", 64), "NULL"}}}},
	{table: "t_invisible", cols: "v VARCHAR(10), s VARCHAR(10) INVISIBLE",
		insert: []string{"('seen', 'hidden')", "(NULL, 'h2')"},
		raw:    map[string]rawWant{"s": {"text", "c", []string{"hidden", "h2"}}}},
	{table: "t_generated", cols: "a INT, v INT AS (a * 2) VIRTUAL, st VARCHAR(20) AS (CONCAT('x', a)) STORED, pv INT AS (a + 1) PERSISTENT",
		insert: []string{"(1, DEFAULT, DEFAULT, DEFAULT)", "(NULL, DEFAULT, DEFAULT, DEFAULT)"},
		raw: map[string]rawWant{"v": {"integer", "c::text", []string{"2", "NULL"}}, "st": {"text", "c", []string{"x1", "NULL"}},
			"pv": {"integer", "c::text", []string{"2", "NULL"}}}},
	{table: "t_defaults", cols: "d DATETIME(6) DEFAULT (NOW(6) + INTERVAL 1 DAY), r DOUBLE DEFAULT (RAND()), n INT DEFAULT (1 + 1)",
		insert: []string{"('2020-01-02 03:04:05.123456', 0.5, 7)", "(DEFAULT, DEFAULT, DEFAULT)"},
		raw:    map[string]rawWant{"d": {"timestamp without time zone", "c::text", []string{"2020-01-02 03:04:05.123456", "<any>"}}, "n": {"integer", "c::text", []string{"7", "2"}}}},
	// System-versioned tables: the current rows are copied (their history
	// stays in the source); the replica table is a plain table.
	{table: "t_versioned", cols: "x INT", options: " WITH SYSTEM VERSIONING",
		insert: []string{"(1)", "(2)", "(NULL)"},
		after:  []string{"UPDATE t_versioned SET x = 10, stamp = stamp WHERE x = 1", "DELETE FROM t_versioned WHERE x = 2"},
		raw:    map[string]rawWant{"x": {"integer", "c::text", []string{"10", "NULL"}}}},
	{table: "t_versioned_period", cols: "x INT, rs TIMESTAMP(6) GENERATED ALWAYS AS ROW START INVISIBLE, re TIMESTAMP(6) GENERATED ALWAYS AS ROW END INVISIBLE, PERIOD FOR SYSTEM_TIME(rs, re)",
		options: " WITH SYSTEM VERSIONING",
		insert:  []string{"(1, DEFAULT, DEFAULT)", "(2, DEFAULT, DEFAULT)"},
		after:   []string{"UPDATE t_versioned_period SET x = 10, stamp = stamp WHERE x = 1"},
		raw: map[string]rawWant{"x": {"integer", "c::text", []string{"10", "2"}},
			"re": {"timestamp with time zone", "c::text", []string{"2038-01-19 03:14:07.999999+00"}}}},
	{table: "t_versioned_part", cols: "x INT WITHOUT SYSTEM VERSIONING, y INT",
		options: " WITH SYSTEM VERSIONING PARTITION BY SYSTEM_TIME (PARTITION p0 HISTORY, PARTITION pn CURRENT)",
		insert:  []string{"(1, 1)", "(2, 2)"},
		after:   []string{"UPDATE t_versioned_part SET y = 20, stamp = stamp WHERE y = 2"},
		raw:     map[string]rawWant{"y": {"integer", "c::text", []string{"1", "20"}}}},
	{table: "t_compressed", cols: "t TEXT COMPRESSED, vc VARCHAR(200) COMPRESSED, b BLOB COMPRESSED",
		insert: []string{"(REPEAT('abc', 100), 'short', REPEAT(X'00FF', 50))", "(NULL, NULL, NULL)"},
		raw: map[string]rawWant{"t": {"text", "c", []string{strings.Repeat("abc", 100), "NULL"}}, "vc": {"text", "c", []string{"short", "NULL"}},
			"b": {"bytea", "upper(encode(c, 'hex'))", []string{hexOfSource, "NULL"}}}},
}

// Every MariaDB 10.11 type and column kind goes source → replica (the same
// bytes) → raw (mapped as the README says), in a full and an incremental
// run.
func TestMariaDBTypesRoundTrip(t *testing.T) {
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

	for _, c := range mariadbTypeCases {
		_, err := src.Exec("CREATE TABLE " + c.table + " (id INT PRIMARY KEY, " + c.cols + ", stamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)" + c.options)
		require.NoError(t, err, c.table)
		insertTypeRows(t, src, c, 1)
		for _, a := range c.after {
			_, err := src.Exec(a)
			require.NoError(t, err, a)
		}
	}
	// A sequence is not a table of rows: it is not copied, and does not stop the run.
	_, err = src.Exec("CREATE SEQUENCE s_counter")
	require.NoError(t, err)
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
	for _, c := range mariadbTypeCases {
		assert.Contains(t, string(yml), "\n  "+c.table+":", "discover lists %s", c.table)
	}
	assert.NotContains(t, string(yml), "s_counter")
	cli("run")
	checkTypes(t, src, repl, pg, "full run")
	var versioned int
	require.NoError(t, repl.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'SYSTEM VERSIONED'").Scan(&versioned))
	assert.Zero(t, versioned, "replica tables keep no history of their own")

	for _, c := range mariadbTypeCases { // a second batch arrives incrementally
		insertTypeRows(t, src, c, 100)
		for _, a := range c.after {
			_, err := src.Exec(a)
			require.NoError(t, err)
		}
	}
	cli("run")
	checkTypes(t, src, repl, pg, "incremental run")
}

func insertTypeRows(t *testing.T, src *sql.DB, c typeCase, firstID int) {
	t.Helper()
	names := columnNames(c.cols)
	for i, v := range c.insert {
		// Stamped in the past: rows stamped in the second a run starts are
		// left for the next run.
		stamp := fmt.Sprintf("'2024-01-01 00:00:%02d'", firstID%60)
		_, err := src.Exec(fmt.Sprintf("INSERT INTO %s (id, stamp, %s) VALUES (%d, %s, %s", c.table, strings.Join(names, ", "), firstID+i, stamp, strings.TrimPrefix(v, "(")))
		require.NoError(t, err, "%s: %s", c.table, v)
	}
}

// columnNames are the names of "a INT, b UUID DEFAULT UUID(), …" (the
// first word of each top-level definition).
func columnNames(defs string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range defs + "," {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if f := strings.Fields(defs[start:i]); depth == 0 && f[0] != "PERIOD" {
				out = append(out, f[0])
			}
			if depth == 0 {
				start = i + 1
			}
		}
	}
	return out
}

func checkTypes(t *testing.T, src, repl *sql.DB, pg *pgxpool.Pool, when string) {
	t.Helper()
	for _, c := range mariadbTypeCases {
		for _, col := range columnNames(c.cols) {
			// The replica holds the same value, byte for byte.
			q := fmt.Sprintf("SELECT id, CAST(%[1]s AS BINARY), HEX(%[1]s) FROM %[2]s ORDER BY id", col, c.table)
			want := queryStrings(t, src, q)
			assert.Equal(t, want, queryStrings(t, repl, q), "%s: replica %s.%s", when, c.table, col)

			w, ok := c.raw[col]
			if !ok {
				continue
			}
			var pgType string
			require.NoError(t, pg.QueryRow(context.Background(), `SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = $2`,
				"raw."+c.table, col).Scan(&pgType), "%s.%s in raw", c.table, col)
			assert.Equal(t, w.pgType, pgType, "%s.%s raw type", c.table, col)
			rows, err := pg.Query(context.Background(), fmt.Sprintf(`SELECT COALESCE((%s)::text, 'NULL') FROM (SELECT %q AS c, id FROM raw.%s) x ORDER BY id`,
				w.expr, col, c.table))
			require.NoError(t, err)
			var got []string
			for rows.Next() {
				var s string
				require.NoError(t, rows.Scan(&s))
				got = append(got, s)
			}
			require.NoError(t, rows.Err())
			require.Len(t, got, len(want)/3, "%s: raw %s rows", when, c.table)
			for i, g := range got {
				exp := w.want[i%len(w.want)]
				switch exp {
				case hexOfSource:
					exp = want[i*3+2]
				case "<any>":
					continue
				}
				assert.Equal(t, exp, g, "%s: raw %s.%s row %d", when, c.table, col, i)
			}
		}
	}
}

// queryStrings runs q and returns every value of every row as text ("NULL"
// for NULL).
func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	require.NoError(t, err, q)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(dest...))
		for _, v := range vals {
			if v == nil {
				out = append(out, "NULL")
			} else {
				out = append(out, string(v))
			}
		}
	}
	require.NoError(t, rows.Err())
	return out
}
