package rowhash_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/rowhash"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// The expression is the documented hash (checked against an independent
// computation in Go), and it tells apart what must differ: NULL from 'N'
// and from ”, one byte, a FLOAT's seventh digit, a latin1 byte from its
// UTF-8 look-alike.
func TestExprHashesExactBytes(t *testing.T) {
	db, _ := testdb.MySQL(t, "rowhash")
	ctx := context.Background()
	// No key: every row has the same id, so only the column under test differs.
	_, err := db.Exec("CREATE TABLE t (n INT NOT NULL, id INT NOT NULL, s VARCHAR(10) NULL, f FLOAT NULL, l VARCHAR(5) CHARACTER SET latin1 NULL, b VARBINARY(4) NULL)")
	require.NoError(t, err)
	_, err = db.Exec(`INSERT INTO t VALUES (1, 1, 'ab', NULL, NULL, NULL), (2, 1, NULL, NULL, NULL, NULL), (3, 1, 'N', NULL, NULL, NULL),
		(4, 1, '', NULL, NULL, NULL), (5, 1, 'ac', NULL, NULL, NULL), (6, 1, NULL, 1.2345670, NULL, NULL), (7, 1, NULL, 1.2345673, NULL, NULL),
		(8, 1, NULL, NULL, _latin1 X'E9', NULL), (9, 1, NULL, NULL, NULL, X'C3A9'), (10, 1, NULL, NULL, NULL, X'00'), (11, 1, NULL, NULL, NULL, X'')`)
	require.NoError(t, err)
	var shown6, shown7 string
	require.NoError(t, db.QueryRow("SELECT (SELECT f FROM t WHERE n = 6), (SELECT f FROM t WHERE n = 7)").Scan(&shown6, &shown7))
	require.Equal(t, shown6, shown7, "MySQL prints both FLOATs alike; the hash must still tell them apart")
	tbl, err := schema.ReadTable(ctx, db, "t")
	require.NoError(t, err)
	tbl.Columns = tbl.Columns[1:] // hash all but the row number
	rows, err := db.Query("SELECT n, " + rowhash.Expr(tbl.Columns) + " FROM t ORDER BY n")
	require.NoError(t, err)
	defer rows.Close()
	got := map[int]uint64{}
	for rows.Next() {
		var id int
		var h uint64
		require.NoError(t, rows.Scan(&id, &h))
		got[id] = h
	}
	require.NoError(t, rows.Err())

	assert.Equal(t, goHash("31", "6162", "N", "N", "N"), got[1], "MD5 of the columns' hex joined by commas, first 64 bits")
	seen := map[uint64]int{}
	for id, h := range got {
		if other, dup := seen[h]; dup {
			t.Errorf("rows %d and %d hash alike", id, other)
		}
		seen[h] = id
	}
	assert.Len(t, got, 11)
}

func goHash(hexCols ...string) uint64 {
	s := ""
	for i, c := range hexCols {
		if i > 0 {
			s += ","
		}
		s += c
	}
	sum := md5.Sum([]byte(s))
	v, _ := strconv.ParseUint(hex.EncodeToString(sum[:])[:16], 16, 64)
	return v
}
