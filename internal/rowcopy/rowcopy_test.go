package rowcopy_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// Rows read through SelectList and written by Load arrive byte for byte:
// the characters LOAD DATA gives meaning to, NULL, a latin1 byte, a zero
// date, YEAR 0, a FLOAT's last digits; a row written again replaces it.
func TestLoadCopiesExactBytes(t *testing.T) {
	fixture, cfg := testdb.MySQL(t, "rowcopy")
	ctx := context.Background()
	for _, q := range []string{
		"CREATE TABLE src (id INT PRIMARY KEY, s VARCHAR(20) NULL, l VARCHAR(5) CHARACTER SET latin1 NULL, d DATE NULL," +
			" y YEAR NULL, f FLOAT NULL, b VARBINARY(4) NULL)",
		"CREATE TABLE dst LIKE src",
		"SET SESSION sql_mode = ''",
	} {
		_, err := fixture.Exec(q)
		require.NoError(t, err)
	}
	_, err := fixture.Exec("SET SESSION sql_mode = ''; INSERT INTO src VALUES (1, 'a\\tb\\nc\\\\d\\0e\\r', _latin1 X'E9', '0000-00-00', 0, 1.2345673, X'00FF0A09')," +
		" (2, NULL, NULL, NULL, NULL, NULL, NULL), (3, '', '', '2024-02-29', 2155, -3.4e38, X'')")
	require.NoError(t, err)
	srcCfg := cfg
	srcCfg.Database, srcCfg.ReadOnly = "source", true
	source, err := factory.New().MySQL(srcCfg) // binary results, as replication reads
	require.NoError(t, err)
	defer source.Close()
	replica, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	defer replica.Close()
	tbl, err := schema.ReadTable(ctx, fixture, "src")
	require.NoError(t, err)

	var f rowcopy.File
	rows, err := source.QueryContext(ctx, "SELECT "+rowcopy.SelectList(tbl.Columns)+" FROM src")
	require.NoError(t, err)
	vals := make([]sql.RawBytes, len(tbl.Columns))
	dest := make([]any, len(vals))
	for i := range vals {
		dest[i] = &vals[i]
	}
	for rows.Next() {
		require.NoError(t, rows.Scan(dest...))
		f.Add(vals)
	}
	require.NoError(t, rows.Err())
	require.Equal(t, 3, f.Rows())
	conn, err := replica.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	for range 2 { // twice: REPLACE
		_, err = rowcopy.Load(ctx, conn, "dst", tbl.Columns, &f)
		require.NoError(t, err)
	}
	sum := func(table string) string {
		var s string
		require.NoError(t, fixture.QueryRow("SELECT GROUP_CONCAT(CONCAT_WS(',', id, HEX(s), HEX(l), HEX(CAST(d AS BINARY)), HEX(CAST(y AS BINARY)),"+
			" HEX(CAST(CAST(f AS DOUBLE) AS BINARY)), HEX(b), ISNULL(s)) ORDER BY id SEPARATOR ';') FROM "+table).Scan(&s))
		return s
	}
	assert.Equal(t, sum("src"), sum("dst"))
	var n int
	require.NoError(t, fixture.QueryRow("SELECT COUNT(*) FROM dst").Scan(&n))
	assert.Equal(t, 3, n)
}
