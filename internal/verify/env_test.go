package verify_test

import (
	"context"
	"database/sql"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/discover"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// env is the three databases of a pipeline: a source (fixture handle and
// the factory-built read-only handle of a SELECT-only user), a replica
// (fixture and factory-built handles) and an analytics database.
type env struct {
	src     *sql.DB // writes the clinic's data
	repFix  *sql.DB // tampers with the replica
	source  *sql.DB // what the phases read the source through
	srcCfg  providers.DBConfig
	srcName string // the source database, for fixtures that copy from it
	replica *sql.DB
	pg      *pgxpool.Pool
}

func newEnv(t testing.TB) *env {
	t.Helper()
	src, srcDB := testdb.MySQL(t, "verify_src")
	repFix, repCfg := testdb.MySQL(t, "verify_rep")
	pg, _ := testdb.Postgres(t, "verify")
	e := &env{src: src, repFix: repFix, pg: pg, srcCfg: testdb.SourceUser(t, srcDB), srcName: "`" + srcDB.Name + "`"}
	var err error
	e.source, err = factory.New().MySQL(e.srcCfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.source.Close() })
	e.replica, err = factory.New().MySQL(repCfg)
	require.NoError(t, err)
	t.Cleanup(func() { e.replica.Close() })
	return e
}

// exec runs statements on db, each in a session that accepts legacy values.
func exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		_, err := db.Exec("SET SESSION sql_mode = '', time_zone = '+00:00'; " + s)
		require.NoError(t, err, s)
	}
}

func (e *env) pgExec(t testing.TB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		_, err := e.pg.Exec(context.Background(), s)
		require.NoError(t, err, s)
	}
}

// config discovers tables.yml from the source, batch rows per range.
func (e *env) config(t testing.TB, batch int) *tables.Config {
	t.Helper()
	s, err := schema.Read(context.Background(), e.src)
	require.NoError(t, err)
	cfg := discover.Build(s)
	for _, tb := range cfg.Tables {
		tb.BatchSize = batch
	}
	return cfg
}

func fastManager() *manager.Options {
	mo := manager.DefaultOptions()
	mo.RateLimit = 0 // tests are not a busy clinic (the cost test sets it)
	return &mo
}

// pipeline runs replicate, then load, as `pipeline run` does.
func (e *env) pipeline(t testing.TB, cfg *tables.Config) {
	t.Helper()
	ctx := context.Background()
	sum, err := replicate.Run(ctx, replicate.Deps{Source: connections.SourceDB{DB: e.source}, Replica: connections.ReplicationDB{DB: e.replica}, Tables: cfg},
		replicate.Options{Manager: fastManager()})
	require.NoError(t, err)
	for _, r := range sum.Tables {
		require.NoError(t, r.Err, "replicate %s", r.Table)
	}
	res, err := load.New(connections.ReplicationDB{DB: e.replica}, connections.AnalyticsRawDB{Pool: e.pg}, cfg, slog.New(slog.DiscardHandler)).
		Run(ctx, load.Options{})
	require.NoError(t, err)
	for _, r := range res.Tables {
		require.Equal(t, load.StatusOK, r.Status, "load %s: %s", r.Table, r.Error)
	}
}

func (e *env) deps(cfg *tables.Config) verify.Deps {
	return verify.Deps{Source: connections.SourceDB{DB: e.source}, Replica: connections.ReplicationDB{DB: e.replica},
		Raw: connections.AnalyticsRawDB{Pool: e.pg}, Tables: cfg}
}

func (e *env) verify(t testing.TB, cfg *tables.Config, opts verify.Options) *verify.Result {
	t.Helper()
	if opts.Manager == nil {
		opts.Manager = fastManager()
	}
	res, err := verify.Run(context.Background(), e.deps(cfg), opts)
	require.NoError(t, err)
	return res
}

func byTable(t testing.TB, res *verify.Result, name string) *verify.TableResult {
	t.Helper()
	for _, r := range res.Tables {
		if r.Table == name {
			return r
		}
	}
	t.Fatalf("no result for table %s", name)
	return nil
}

// keys encodes keys as the report does.
func keys(ks [][]string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = state.EncodeKey(k)
	}
	return out
}
