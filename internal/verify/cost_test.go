package verify_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// What verify costs the clinic, statement by statement (the metering
// proxy charges each its rows examined): no source statement examines more
// than one range of batch_size rows, a whole pass examines each row about
// once, every source statement goes through the verification's managers (so
// their rate limit applies) on at most source_connections connections, and
// the differences are found with a few short listings.
func TestVerifySourceCost(t *testing.T) {
	e := newEnv(t)
	exec(t, e.src,
		"CREATE TABLE big (BigNum INT NOT NULL PRIMARY KEY, Payload VARCHAR(60) NOT NULL, Amount DECIMAL(10,2)) ENGINE=MyISAM",
		"INSERT INTO big SELECT seq, REPEAT('x', seq % 50), seq / 7 FROM seq_1_to_20000",
		"CREATE TABLE small (SmallNum INT NOT NULL PRIMARY KEY, V INT) ENGINE=MyISAM",
		"INSERT INTO small SELECT seq, seq FROM seq_1_to_2500",
	)
	cfg := e.config(t, 1000)
	e.pipeline(t, cfg)
	exec(t, e.repFix, "UPDATE big SET Payload = 'drift' WHERE BigNum IN (777, 15555)", "DELETE FROM small WHERE SmallNum = 2500")

	metered, meter := testdb.Metered(t, e.srcCfg)
	src, err := factory.New().MySQL(metered)
	require.NoError(t, err)
	defer src.Close()
	var doers []*manager.Manager
	deps := e.deps(cfg)
	deps.Source = connections.SourceDB{DB: src}
	res, err := verify.Run(context.Background(), deps, verify.Options{Workers: 3, SourceConns: 1,
		NewDoer: func(db *sql.DB) verify.Doer {
			m := manager.New(db, *fastManager())
			doers = append(doers, m)
			return m
		}})
	require.NoError(t, err)
	assert.Equal(t, []string{`["777"]`, `["15555"]`}, keys(byTable(t, res, "big").SourceReplica.ChangedKeys))
	assert.Equal(t, []string{`["2500"]`}, keys(byTable(t, res, "small").SourceReplica.MissingKeys))

	stmts := meter.Statements()
	conns := map[uint32]bool{}
	var total, reads int64
	for _, s := range stmts {
		conns[s.Conn] = true
		total += s.RowsRead
		if (s.Command == "Query" || s.Command == "Execute") && (strings.Contains(s.Query, "FROM `big`") || strings.Contains(s.Query, "FROM `small`")) {
			reads++
		}
		assert.LessOrEqual(t, s.RowsRead, int64(1000), "at most one range of rows: %s", s)
	}
	assert.Len(t, conns, 1, "source_connections caps the connections")
	var attempts int64
	for _, d := range doers {
		attempts += d.Queries()
	}
	assert.Equal(t, res.SourceQueries, attempts)
	assert.Equal(t, attempts-1, reads, "every read of a table ran through a manager (one more read the schema)")
	assert.LessOrEqual(t, total, int64(22500+2*1000), "a pass examines each row about once, plus the listings")
	assert.GreaterOrEqual(t, total, int64(22500-1), "and does examine them: %d", total)
	t.Logf("%d source queries, %d rows examined for 22500 rows", attempts, total)

	// Three workers on two source connections: never a third.
	_, err = verify.Run(context.Background(), deps, verify.Options{Workers: 3, SourceConns: 2, Manager: fastManager()})
	require.NoError(t, err)
	conns = map[uint32]bool{}
	for _, s := range meter.Statements()[len(stmts):] {
		conns[s.Conn] = true
	}
	assert.Len(t, conns, 2, "source_connections: 2")
}
