package verify_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// Every MySQL type of the typemap, with the values the load converts on
// purpose (zero and partial dates to NULL, NUL bytes stripped, invalid
// UTF-8 replaced, FLOAT widened, TIME beyond a day, bit strings, geometry,
// MariaDB's INET4, INET6 and UUID).
const everyTypeDDL = "CREATE TABLE edge (id BIGINT UNSIGNED NOT NULL PRIMARY KEY," +
	" ti TINYINT, tb TINYINT(1), tu TINYINT UNSIGNED, si SMALLINT, su SMALLINT UNSIGNED, mi MEDIUMINT, mu MEDIUMINT UNSIGNED," +
	" ii INT, iu INT UNSIGNED, bi BIGINT, bu BIGINT UNSIGNED, de DECIMAL(10,2), d65 DECIMAL(65,30), fl FLOAT, db DOUBLE," +
	" b1 BIT(1), b64 BIT(64), yr YEAR, d DATE, dt DATETIME, dt6 DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(6)," +
	" ch CHAR(3), vc VARCHAR(50), tx TEXT, lt VARCHAR(20) CHARACTER SET latin1, u3 VARCHAR(20) CHARACTER SET utf8mb3," +
	" js JSON, en ENUM('a','b c'), st SET('x','y','z'), bl BLOB, vb VARBINARY(10), bn BINARY(3), geo GEOMETRY NULL, pt POINT NULL," +
	" i4 INET4 NULL, i6 INET6 NULL, uu UUID NULL) ENGINE=MyISAM"

var everyTypeRows = []string{
	"(1, 1, 1, 200, -300, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808, 18446744073709551615," +
		" 12345678.90, '12345678901234567890123456789012345.123456789012345678901234567890', 1.2345679, 1.2345678901234567," +
		" b'1', b'1000000000000000000000000000000000000000000000000000000000000001', 2155, '2024-02-29', '2024-12-31 23:59:59'," +
		" '2020-01-01 00:00:00.000001', '2038-01-19 03:14:07.999999', '838:59:59.999999', 'abc', 'José 😀 tab\there', 'Nguyễn\\nZoë'," +
		" 'café', 'ok', '{\"b\": 1, \"a\": [1.0e2], \"b\": 2}', 'b c', 'x,z', UNHEX('00FF5C0A'), UNHEX('0001'), 'ab'," +
		" ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), ST_GeomFromText('POINT(1 2)'), '1.2.3.4', '2001:db8:0:1::1a', '123e4567-e89b-12d3-a456-426614174000')",
	"(2, -128, 4, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, -0.01, '-0.000000000000000000000000000001'," +
		" -3.4e38, -1e-300, b'0', b'0', 0, '0000-00-00', '2019-00-00 10:00:00', '2019-05-00 00:00:00.5', '1970-01-01 00:00:01'," +
		" '-838:59:59', '', 'a\\0b', '', '', UNHEX('41EDA08042'), '[]', 'a', '', '', '', UNHEX('000000'), NULL, NULL, '0.0.0.0', '::1', NULL)",
	"(3" + strings.Repeat(", NULL", 39) + ")",
}

// tamper is, per PostgreSQL type, a change to a value that is as small as
// the type can show: one unit in the last place, one microsecond, one bit,
// one trailing byte.
func tamper(pgType, col string) string {
	switch {
	case pgType == "smallint", pgType == "integer", pgType == "bigint", strings.HasPrefix(pgType, "numeric(20"):
		return "CASE WHEN " + col + " > 0 THEN " + col + " - 1 ELSE " + col + " + 1 END"
	case strings.HasPrefix(pgType, "numeric"):
		return col + " + 0.01 * (1 / 10 ^ (scale(" + col + ") - 2))"
	case pgType == "real":
		return "(" + col + "::float8 * (1 + 2e-7))::real"
	case pgType == "double precision":
		return col + " * (1 + 4e-16)"
	case strings.HasPrefix(pgType, "bit"):
		return "~" + col
	case pgType == "date":
		return col + " - 1"
	case strings.HasPrefix(pgType, "timestamp"), pgType == "interval":
		return col + " - interval '1 microsecond'"
	case pgType == "text":
		return col + " || ' '"
	case pgType == "bytea":
		return col + " || '\\x00'::bytea"
	}
	panic("no tamper for " + pgType)
}

// Every type survives the comparison as the load converted it (identical
// after a run), and a change of one unit in any column of any type is
// found on the row it was made to.
func TestVerifyEveryType(t *testing.T) {
	e := newEnv(t)
	exec(t, e.src, everyTypeDDL, "INSERT INTO edge VALUES "+strings.Join(everyTypeRows, ", "))
	for k := 1; k <= 25; k++ { // copies, so each column can be tampered on a row of its own
		exec(t, e.src, fmt.Sprintf("INSERT INTO edge SELECT id + %d, ti, tb, tu, si, su, mi, mu, ii, iu, bi, bu, de, d65, fl, db, b1, b64, yr, d, dt, dt6,"+
			" ts, tm, ch, vc, tx, lt, u3, js, en, st, bl, vb, bn, geo, pt, i4, i6, uu FROM edge WHERE id <= 3", 10*k))
	}
	cfg := e.config(t, 7) // several ranges, and parts of one row
	e.pipeline(t, cfg)
	res := e.verify(t, cfg, verify.Options{})
	edge := byTable(t, res, "edge")
	require.NoError(t, edge.Err)
	require.True(t, edge.SourceReplica.Identical(), "%+v", edge.SourceReplica)
	require.True(t, edge.ReplicaRaw.Identical(), "converted values are not differences: %+v", edge.ReplicaRaw)
	assert.EqualValues(t, 78, edge.ReplicaRaw.Compared)

	ctx := context.Background()
	rows, err := e.pg.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = 'raw.edge'::regclass AND attnum > 1 AND NOT attisdropped ORDER BY attnum`)
	require.NoError(t, err)
	type col struct{ name, typ string }
	var cols []col
	for rows.Next() {
		var c col
		require.NoError(t, rows.Scan(&c.name, &c.typ))
		cols = append(cols, c)
	}
	require.NoError(t, rows.Err())
	require.Len(t, cols, 39)
	used := map[string]bool{}
	var want []string
	for _, c := range cols {
		q := fmt.Sprintf(`SELECT id::text FROM raw.edge WHERE %q IS NOT NULL AND NOT (id::text = ANY($1)) ORDER BY id LIMIT 1`, c.name)
		ids := []string{}
		for id := range used {
			ids = append(ids, id)
		}
		var id string
		require.NoError(t, e.pg.QueryRow(ctx, q, ids).Scan(&id), "a row with %s set", c.name)
		used[id] = true
		e.pgExec(t, fmt.Sprintf(`UPDATE raw.edge SET %q = %s WHERE id = %s`, c.name, tamper(c.typ, fmt.Sprintf("%q", c.name)), id))
		want = append(want, `["`+id+`"]`)
	}
	sort.Strings(want)

	res = e.verify(t, cfg, verify.Options{})
	edge = byTable(t, res, "edge")
	require.NoError(t, edge.Err)
	assert.True(t, edge.SourceReplica.Identical())
	got := keys(edge.ReplicaRaw.ChangedKeys)
	sort.Strings(got)
	assert.Equal(t, want, got, "one changed row per tampered column")
	assert.Zero(t, edge.ReplicaRaw.Missing+edge.ReplicaRaw.Extra)
}
