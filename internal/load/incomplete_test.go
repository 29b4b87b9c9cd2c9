package load

import (
	"context"
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/discover"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// chain is a source, a replica written by replicate and a warehouse.
type chain struct {
	*env
	fixture *sql.DB // the clinic's writes
	src     *sql.DB // replicate's read-only source
	cfg     *tables.Config
}

func newChain(t *testing.T, ddl ...string) *chain {
	t.Helper()
	fixture, srcCfg := testdb.MySQL(t, "chain_src")
	src, err := factory.New().MySQL(testdb.MySQLConfig(srcCfg.Name, catalog.DatabaseSource))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	c := &chain{env: newEnv(t), fixture: fixture, src: src}
	c.source(t, ddl...)
	s, err := schema.Read(context.Background(), fixture)
	require.NoError(t, err)
	c.cfg = discover.Build(s)
	for _, tb := range c.cfg.Tables {
		tb.BatchSize = 10
	}
	return c
}

func (c *chain) source(t *testing.T, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		_, err := c.fixture.Exec(q)
		require.NoError(t, err, q)
	}
}

// replicate runs replication of tables; with stopAfter > 0 it is
// interrupted (as by SIGINT) after that many committed chunks.
func (c *chain) replicate(t *testing.T, stopAfter int, tables ...string) replicate.Summary {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	chunks := 0
	opts := replicate.Options{Tables: tables, Manager: &mo, Workers: 1, OnChunk: func(string, int) {
		if chunks++; stopAfter > 0 && chunks >= stopAfter {
			cancel()
		}
	}}
	sum, err := replicate.Run(ctx, replicate.Deps{Source: connections.SourceDB{DB: c.src}, Replica: connections.ReplicationDB{DB: c.replica}, Tables: c.cfg}, opts)
	require.NoError(t, err)
	return sum
}

func (c *chain) rawCount(t *testing.T, table string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, c.pg.QueryRow(context.Background(), `SELECT count(*) FROM raw.`+table).Scan(&n))
	return n
}

// Issue 8 item 3: a table whose replica copy is not complete (a first full
// copy that failed, or the full copy after a schema change) is skipped by
// the load — raw keeps its last good copy, or gets no table at all — and
// the skip is a failed table of the run, in the result and the load state.
// A failed incremental copy is consistent (each chunk commits with its
// state) and is loaded.
func TestLoadSkipsIncompleteReplicaCopy(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newChain(t,
		"CREATE TABLE a (Id INT NOT NULL PRIMARY KEY, V VARCHAR(20) NOT NULL,"+
			" SecDateTEdit TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=MyISAM",
		"INSERT INTO a SELECT seq, seq, '2024-01-01 00:00:00' FROM seq_1_to_60",
		"CREATE TABLE b (Id INT NOT NULL PRIMARY KEY) ENGINE=MyISAM", "INSERT INTO b SELECT seq FROM seq_1_to_5")
	require.Zero(t, c.replicate(t, 0, "b").Failed())
	sum := c.replicate(t, 2, "a") // the first full copy of a is interrupted after 2 of 6 chunks
	require.Error(t, sum.Tables[0].Err)

	res := c.run(t, c.cfg, Options{})
	a := byName(res, "a")
	assert.Equal(t, StatusSkipped, a.Status)
	assert.Contains(t, a.Error, "skipped: replica copy incomplete (full copy not completed; last replicate failed: interrupted")
	assert.Equal(t, StatusOK, byName(res, "b").Status)
	assert.Equal(t, 1, res.Failed, "a skipped table fails the run")
	var exists bool
	require.NoError(t, c.pg.QueryRow(ctx, "SELECT to_regclass('raw.a') IS NOT NULL").Scan(&exists))
	assert.False(t, exists, "no half copy is published")
	assert.Equal(t, "skipped", c.loadStatus(t, "a"))

	require.Zero(t, c.replicate(t, 0, "a").Failed())
	a = byName(c.run(t, c.cfg, Options{}), "a")
	require.Equal(t, StatusOK, a.Status, a.Error)
	assert.Equal(t, int64(60), c.rawCount(t, "a"))

	// A failed incremental copy is consistent: loaded.
	c.source(t, "UPDATE a SET V = CONCAT('v2-', Id), SecDateTEdit = '2024-02-01 00:00:00' WHERE Id <= 30")
	sum = c.replicate(t, 2, "a") // interrupted after 2 committed chunks of the 60 rows read (no index on SecDateTEdit: key spans)
	require.Error(t, sum.Tables[0].Err)
	a = byName(c.run(t, c.cfg, Options{}), "a")
	require.Equal(t, StatusOK, a.Status, a.Error)
	assert.Equal(t, ModeIncremental, a.Mode)
	var changed, committed int64
	require.NoError(t, c.pg.QueryRow(ctx, `SELECT count(*) FROM raw.a WHERE "V" LIKE 'v2-%'`).Scan(&changed))
	require.NoError(t, c.replica.QueryRow("SELECT COUNT(*) FROM a WHERE V LIKE 'v2-%'").Scan(&committed))
	assert.Equal(t, int64(20), committed, "the committed chunks (Ids 1-20)")
	assert.Equal(t, committed, changed, "raw holds the committed chunks")

	// A schema change re-copies the table in full; until that copy ends,
	// raw keeps the last good copy.
	c.source(t, "ALTER TABLE a ADD COLUMN W INT NOT NULL DEFAULT 7")
	sum = c.replicate(t, 1, "a")
	require.Error(t, sum.Tables[0].Err)
	a = byName(c.run(t, c.cfg, Options{}), "a")
	assert.Equal(t, StatusSkipped, a.Status)
	assert.Equal(t, int64(60), c.rawCount(t, "a"), "the last good copy")
	require.Zero(t, c.replicate(t, 0, "a").Failed())
	a = byName(c.run(t, c.cfg, Options{}), "a")
	require.Equal(t, StatusOK, a.Status, a.Error)
	var w int64
	require.NoError(t, c.pg.QueryRow(ctx, `SELECT count(*) FROM raw.a WHERE "W" = 7`).Scan(&w))
	assert.Equal(t, int64(60), w)
	assert.Equal(t, "ok", c.loadStatus(t, "a"))
}

func (c *chain) loadStatus(t *testing.T, table string) string {
	t.Helper()
	var s string
	require.NoError(t, c.pg.QueryRow(context.Background(), "SELECT status FROM "+statusTable+" WHERE table_name = $1", table).Scan(&s))
	return s
}
