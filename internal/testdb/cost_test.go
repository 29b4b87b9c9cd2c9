package testdb_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// tenThousand makes a 10 000-row MyISAM table (like OpenDental's) with a
// secondary index on v.
func tenThousand(t *testing.T, fixture *sql.DB) {
	t.Helper()
	_, err := fixture.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, KEY (v)) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = fixture.Exec("INSERT INTO t SELECT seq, seq % 100 FROM seq_1_to_10000")
	require.NoError(t, err)
}

// The user's totals follow exactly what it ran: a full scan examines every
// row, a keyed LIMIT 100 a hundred, and the per-table counters see the same.
func TestUserCostMeasuresRowsExamined(t *testing.T) {
	fixture, dbCfg := testdb.MySQL(t, "cost_user")
	user := testdb.SourceUser(t, dbCfg) // turns the statistics on before the fixture writes
	tenThousand(t, fixture)
	db, err := factory.New().MySQL(user)
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	conn, err := db.Conn(ctx) // connected: the read-only SET is counted before we start
	require.NoError(t, err)
	defer conn.Close()

	tables0 := testdb.TableCosts(t, dbCfg)
	before := testdb.UserCost(t, user)
	var n int
	require.NoError(t, conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM t WHERE v + 0 = 5").Scan(&n))
	assert.Equal(t, 100, n)
	scan := testdb.UserCost(t, user).Sub(before)
	assert.Equal(t, int64(1), scan.Selects, scan.String())
	assert.Equal(t, int64(10000), scan.RowsRead, "a full scan examines every row: %s", scan)
	assert.Equal(t, int64(1), scan.RowsSent)

	before = testdb.UserCost(t, user)
	rows, err := conn.QueryContext(ctx, "SELECT id, v FROM t WHERE id > ? ORDER BY id LIMIT 100", 5000)
	require.NoError(t, err)
	got := 0
	for rows.Next() {
		got++
	}
	require.NoError(t, rows.Err())
	require.NoError(t, rows.Close())
	assert.Equal(t, 100, got)
	keyed := testdb.UserCost(t, user).Sub(before)
	assert.Equal(t, int64(100), keyed.RowsRead, "a keyed LIMIT 100 examines 100 rows: %s", keyed)
	assert.Equal(t, int64(100), keyed.RowsSent)

	tables := testdb.TableCosts(t, dbCfg)
	assert.Equal(t, int64(10100), tables["t"].RowsRead-tables0["t"].RowsRead)
	assert.Equal(t, int64(10000), tables["t"].RowsChanged, "the fixture's inserts")
}

// The meter charges each statement what it examined, through the real
// factory-built source pool (read-only sessions, prepared statements for
// queries with arguments).
func TestMeterChargesEachStatement(t *testing.T) {
	fixture, dbCfg := testdb.MySQL(t, "cost_meter")
	tenThousand(t, fixture)
	cfg, meter := testdb.Metered(t, testdb.SourceUser(t, dbCfg))
	db, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()

	var n int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t WHERE v + 0 = 5").Scan(&n))
	for i := range 20 { // many small statements: each is charged its own rows
		rows, err := db.QueryContext(ctx, "SELECT id FROM t WHERE id > ? ORDER BY id LIMIT 100", i*100)
		require.NoError(t, err)
		for rows.Next() {
		}
		require.NoError(t, rows.Close())
	}
	require.NoError(t, db.QueryRowContext(ctx, "SELECT MAX(v) FROM t").Scan(&n))
	assert.Equal(t, 99, n)

	all := meter.Statements()
	var scans, keyed, maxes int
	for _, s := range all {
		assert.False(t, s.Overlapped, s.String())
		switch s.Query {
		case "SELECT COUNT(*) FROM t WHERE v + 0 = 5":
			scans++
			assert.Equal(t, int64(10000), s.RowsRead, s.String())
			assert.Equal(t, int64(1), s.RowsSent, s.String())
		case "SELECT id FROM t WHERE id > ? ORDER BY id LIMIT 100":
			if s.Command == "Execute" {
				keyed++
				assert.Equal(t, int64(100), s.RowsRead, s.String())
				assert.Equal(t, int64(100), s.RowsSent, s.String())
			} else {
				assert.Equal(t, int64(0), s.RowsRead, s.String())
			}
		case "SELECT MAX(v) FROM t":
			maxes++
			assert.Equal(t, int64(1), s.RowsRead, s.String())
		}
	}
	assert.Equal(t, 1, scans, "%v", all)
	assert.Equal(t, 20, keyed)
	assert.Equal(t, 1, maxes)
	largest := meter.Largest()
	assert.Equal(t, "SELECT COUNT(*) FROM t WHERE v + 0 = 5", largest.Query)
	assert.Equal(t, int64(9999), meter.LargestExcess().Excess())
}

// Statements of two connections that overlap are both marked, and each is
// charged at least what it examined (an upper bound), never less.
func TestMeterMarksOverlappingStatements(t *testing.T) {
	fixture, dbCfg := testdb.MySQL(t, "cost_overlap")
	tenThousand(t, fixture)
	cfg, meter := testdb.Metered(t, testdb.SourceUser(t, dbCfg))
	db, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	defer db.Close()
	ctx := context.Background()
	a, err := db.Conn(ctx)
	require.NoError(t, err)
	defer a.Close()
	b, err := db.Conn(ctx)
	require.NoError(t, err)
	defer b.Close()

	// 40 MB: more than the socket buffers hold, so the server is still
	// sending it when b's statement runs.
	rows, err := a.QueryContext(ctx, "SELECT id, REPEAT('x', 4000) FROM t")
	require.NoError(t, err)
	require.True(t, rows.Next())
	var n int
	require.NoError(t, b.QueryRowContext(ctx, "SELECT COUNT(*) FROM t WHERE v + 0 = 7").Scan(&n))
	for rows.Next() {
	}
	require.NoError(t, rows.Close())

	got := map[string]testdb.Statement{}
	for _, s := range meter.Statements() {
		got[s.Query] = s
	}
	scan, count := got["SELECT id, REPEAT('x', 4000) FROM t"], got["SELECT COUNT(*) FROM t WHERE v + 0 = 7"]
	assert.True(t, scan.Overlapped, scan.String())
	assert.True(t, count.Overlapped, count.String())
	assert.GreaterOrEqual(t, scan.RowsRead, int64(10000), scan.String())
	assert.GreaterOrEqual(t, count.RowsRead, int64(10000), count.String())
}
