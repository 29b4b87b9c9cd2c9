package load

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/discover"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// Freshness end to end (issue 8 item 12): rows changed in the second a run
// starts are in raw when that run (replicate, then load) ends, rows sharing
// that stamp across chunk boundaries included. The run's start second is
// injected and the source's stamps are explicit: the test never sleeps.
func TestFreshnessSameSecondReachesRaw(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fixture, srcCfg := testdb.MySQL(t, "fresh_src")
	src, err := factory.New().MySQL(testdb.MySQLConfig(srcCfg.Name, catalog.DatabaseSource))
	require.NoError(t, err)
	t.Cleanup(func() { src.Close() })
	_, repCfg := testdb.MySQL(t, "fresh")
	replica, err := factory.New().MySQL(repCfg)
	require.NoError(t, err)
	t.Cleanup(func() { replica.Close() })
	pg, _ := testdb.Postgres(t, "fresh")
	e := &env{my: replica, replica: replica, pg: pg}

	for _, q := range []string{
		"CREATE TABLE stamped (Id BIGINT NOT NULL PRIMARY KEY, V VARCHAR(20) NOT NULL," +
			" SecDateTEdit TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=MyISAM",
		"INSERT INTO stamped SELECT seq, seq, '2024-06-01 11:59:00' FROM seq_1_to_12",
	} {
		_, err := fixture.Exec(q)
		require.NoError(t, err, q)
	}
	s, err := schema.Read(ctx, fixture)
	require.NoError(t, err)
	cfg := discover.Build(s)
	cfg.Tables["stamped"].BatchSize = 4
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	run := func(second string) TableResult {
		t.Helper()
		start, err := time.Parse(schema.TimeLayout, second)
		require.NoError(t, err)
		sum, err := replicate.Run(ctx, replicate.Deps{Source: connections.SourceDB{DB: src}, Replica: connections.ReplicationDB{DB: replica}, Tables: cfg},
			replicate.Options{Manager: &mo, SourceNow: func(time.Time) time.Time { return start }})
		require.NoError(t, err)
		require.Zero(t, sum.Failed())
		r := byName(e.run(t, cfg, Options{}), "stamped")
		require.Equal(t, StatusOK, r.Status, r.Error)
		return r
	}
	run("2024-06-01 11:59:30")

	// Six rows change in second 12:00:00, the second the next run starts in.
	_, err = fixture.Exec("UPDATE stamped SET V = CONCAT('noon', Id), SecDateTEdit = '2024-06-01 12:00:00' WHERE Id <= 6")
	require.NoError(t, err)
	r := run("2024-06-01 12:00:00")
	assert.Equal(t, ModeIncremental, r.Mode)
	var n int
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM raw.stamped WHERE "V" LIKE 'noon%' AND "SecDateTEdit" = '2024-06-01 12:00:00+00'`).Scan(&n))
	assert.Equal(t, 6, n, "every row changed in the run's second is in raw when the run ends")
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM raw.stamped`).Scan(&n))
	assert.Equal(t, 12, n)
}
