package replicate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// sweepTypes are column sets covering every kind of value the copy must
// keep byte for byte, each with rows holding its edge cases.
var sweepTypes = []struct {
	name, cols string
	rows       []string // value tuples for the columns (without the id and stamp)
}{
	{"num", "b BIT(10) NULL, b64 BIT(64) NULL, d DECIMAL(65,30) NULL, f FLOAT NULL, g DOUBLE NULL, u BIGINT UNSIGNED NULL, y YEAR NULL, z INT(6) ZEROFILL NULL",
		[]string{"(b'1010101010', 18446744073709551615, -12345678901234.123456789012345678901234567890, 3.4028234e38, 0.1, 18446744073709551615, 2155, 42)",
			"(b'0', 0, 0, -1.17549435e-38, 1e-300, 0, 0, 0)", "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"}},
	{"txt", "e ENUM('a','b c','') NULL, s SET('x','y','z') NULL, l1 VARCHAR(20) CHARACTER SET latin1 NULL, t TEXT NULL, j LONGTEXT NULL, c CHAR(5) NULL",
		[]string{"('b c', 'x,z', 'caf\xe9', 'tab\there\nnul\x00 back\\\\slash é€😀', '{\"a\":[1.0e2]}', 'ab ')", "('', '', '', '', '', '')",
			"(NULL, NULL, NULL, NULL, NULL, NULL)"}},
	{"bin", "bl BLOB NULL, vb VARBINARY(16) NULL, bn BINARY(4) NULL",
		[]string{"(0x00FF0A0D5C09, 0x00, 0x01)", "('', '', '')", "(NULL, NULL, NULL)"}},
	{"tim", "ts TIMESTAMP(6) NULL, dt DATETIME(3) NULL, da DATE NULL, tm TIME(2) NULL",
		[]string{"('2038-01-19 03:14:07.999999', '0000-00-00 00:00:00.000', '2019-00-00', '-838:59:59.00')",
			"(NULL, '2019-02-30 12:00:00.5', '0000-00-00', '838:59:59.99')", "(NULL, NULL, NULL, NULL)"}},
	{"mdb", "uu UUID NULL, i4 INET4 NULL, i6 INET6 NULL, gm GEOMETRY NULL, cz TEXT COMPRESSED NULL",
		[]string{"('123e4567-e89b-12d3-a456-426614174000', '192.168.0.1', '2001:db8:0:1::1a', ST_GeomFromText('POINT(1 2)', 4326), REPEAT('abc', 50))",
			"('00000000-0000-0000-0000-000000000000', '0.0.0.0', '::ffff:192.0.2.1', ST_GeomFromText('POLYGON((0 0,4 0,4 4,0 0))', 3857), '')",
			"(NULL, NULL, NULL, NULL, NULL)"}},
	{"gen", "a INT NULL, v INT AS (a * 2) VIRTUAL, st VARCHAR(20) AS (CONCAT('x', a)) STORED, h VARCHAR(10) INVISIBLE NULL",
		[]string{"(1, DEFAULT, DEFAULT, 'hidden')", "(NULL, DEFAULT, DEFAULT, NULL)"}},
}

// The sweep reads many small tables in one UNION ALL statement, each table
// in columns of its own: every type arrives exactly as a read of that table
// alone would bring it, for tables read by a watermark index (their changed
// rows) and small full_table tables (whole), MyISAM like OpenDental's.
func TestSweepCarriesEveryType(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, ty := range sweepTypes {
		_, err := e.fixture.Exec("CREATE TABLE " + ty.name + "_i (id INT NOT NULL PRIMARY KEY, " + ty.cols +
			", stamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, KEY stamp (stamp)) ENGINE=MyISAM")
		require.NoError(t, err, ty.name)
		_, err = e.fixture.Exec("CREATE TABLE " + ty.name + "_f (id INT NOT NULL PRIMARY KEY, " + ty.cols + ") ENGINE=MyISAM")
		require.NoError(t, err, ty.name)
	}
	insert := func(first int) {
		for _, ty := range sweepTypes {
			names := columnNames(ty.cols)
			for i, v := range ty.rows {
				vals := fmt.Sprintf("(%d, %s", first+i, strings.TrimPrefix(v, "("))
				_, err := e.fixture.Exec("INSERT INTO " + ty.name + "_f (id, " + strings.Join(names, ", ") + ") VALUES " + vals)
				require.NoError(t, err, "%s_f %s", ty.name, vals)
				_, err = e.fixture.Exec(fmt.Sprintf("INSERT INTO %s_i (id, stamp, %s) VALUES (%d, '2024-01-01 00:00:%02d', %s",
					ty.name, strings.Join(names, ", "), first+i, first%60, strings.TrimPrefix(v, "(")))
				require.NoError(t, err, "%s_i %s", ty.name, vals)
			}
		}
	}
	insert(1)
	cfg := e.config(t, 100)
	for _, ty := range sweepTypes {
		require.Equal(t, tables.Incremental, cfg.Tables[ty.name+"_i"].Strategy, ty.name)
		require.Equal(t, tables.FullTable, cfg.Tables[ty.name+"_f"].Strategy, ty.name)
	}
	e.run(t, cfg, replicate.Options{})
	e.assertSame(t)

	insert(100) // a second batch, read by the sweep
	srcCfg, meter := testdb.Metered(t, testdb.SourceUser(t, e.sourceConfig()))
	src, err := factory.New().MySQL(srcCfg)
	require.NoError(t, err)
	defer src.Close()
	e.runOn(t, src, cfg, replicate.Options{})
	e.assertSame(t)
	var unions, others int
	for _, s := range meter.Statements() {
		switch {
		case s.Command == "Prepare": // its Execute follows
		case strings.HasPrefix(s.Query, "(SELECT 0,"): // a sweep statement
			unions++
			t.Logf("sweep: %s… %d rows examined, %d sent", s.Query[:200], s.RowsRead, s.RowsSent)
		case strings.Contains(s.Query, "_i") || strings.Contains(s.Query, "_f"):
			others++
			t.Logf("read outside the sweep: %s", s)
		}
	}
	assert.LessOrEqual(t, unions, 3, "sweep statements read all %d tables", 2*len(sweepTypes))
	assert.Zero(t, others, "no table needed a read of its own")
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
			if depth == 0 {
				out = append(out, strings.Fields(defs[start:i])[0])
				start = i + 1
			}
		}
	}
	return out
}
