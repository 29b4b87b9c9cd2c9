package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

const secret = "s3cr3t-XYZ"

// The graph fx.ValidateApp checks is the one production runs: appGraph,
// given the settings the wire injector built for each environment.
func TestGraphIsComplete(t *testing.T) {
	t.Parallel()
	for _, env := range providers.EnvironmentValues() {
		t.Run(string(env), func(t *testing.T) {
			s, err := providers.Load(providers.ConfigDirFlag(t.TempDir()), providers.EnvOverride(env), providers.EnvVars{})
			require.NoError(t, err)
			require.Equal(t, env, s.Environment)
			err = fx.ValidateApp(appGraph(s, slog.New(slog.DiscardHandler)),
				fx.Invoke(func(connections.Handles, Deps) {}))
			assert.NoError(t, err)
		})
	}
	// And a missing piece is caught: without the factory nothing opens.
	err := fx.ValidateApp(fx.NopLogger,
		fx.Supply(slog.New(slog.DiscardHandler)),
		providers.Module(providers.NewTestSettings(nil, nil, nil)), connections.TestModule,
		fx.Invoke(func(connections.Handles) {}))
	assert.ErrorContains(t, err, "factory.Factory")
}

// fx receives the very Settings value the command loaded (no second
// build), and the managers' options are projected from it.
func TestAppUsesTheLoadedSettings(t *testing.T) {
	t.Parallel()
	pipe, err := providers.ParsePipeline("pipeline.yml", []byte("replication:\n  rate_limit_ms: 250\n  max_retries: 5\nconnections:\n  source:\n    pool_timeout: 7\n"))
	require.NoError(t, err)
	settings := providers.NewTestSettings(pipe, nil, nil)
	var d Deps
	app := fx.New(appGraph(settings, slog.New(slog.DiscardHandler)), fx.Populate(&d))
	require.NoError(t, app.Err())
	assert.Same(t, settings, d.Settings)
	assert.Equal(t, 250*time.Millisecond, d.Manager.RateLimit)
	assert.Equal(t, 5, d.Manager.MaxRetries)
	assert.Equal(t, 7*time.Second, d.Manager.PoolTimeout)
}

// testVars points the test environment at fresh databases on the real
// servers: source and replication on MariaDB, analytics on PostgreSQL.
func testVars(t *testing.T) (map[string]string, string, string) {
	t.Helper()
	_, src := testdb.MySQL(t, "app_src")
	_, repl := testdb.MySQL(t, "app_repl")
	_, pg := testdb.Postgres(t, "app_pg")
	vars := map[string]string{}
	put := func(prefix string, c providers.DBConfig) {
		vars["TEST_"+prefix+"_HOST"] = c.Host
		vars["TEST_"+prefix+"_PORT"] = fmt.Sprint(c.Port)
		vars["TEST_"+prefix+"_DB"] = c.Name
		vars["TEST_"+prefix+"_USER"] = c.User
		vars["TEST_"+prefix+"_PASSWORD"] = c.Password
	}
	put("OPENDENTAL_SOURCE", src)
	put("MYSQL_REPLICATION", repl)
	put("POSTGRES_ANALYTICS", pg)
	return vars, src.Name, pg.Name
}

func mysqlSessions(t *testing.T, db string) int {
	t.Helper()
	admin, err := testdb.OpenMySQL(testdb.MySQLConfig("", catalog.DatabaseReplication))
	require.NoError(t, err)
	defer admin.Close()
	var n int
	require.NoError(t, admin.QueryRow("SELECT COUNT(*) FROM information_schema.processlist WHERE db = ?", db).Scan(&n))
	return n
}

func pgSessions(t *testing.T, db string) int {
	t.Helper()
	cfg := testdb.PostgresConfig("postgres", "")
	pool, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://%s@%s/postgres?sslmode=disable", cfg.User, cfg.Addr()))
	require.NoError(t, err)
	defer pool.Close()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(),
		"SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = $2", db, "pipeline_lifecycle").Scan(&n))
	return n
}

func TestLifecycleClosesEveryPool(t *testing.T) {
	t.Parallel()
	vars, srcName, pgName := testVars(t)
	pipe, err := providers.ParsePipeline("pipeline.yml", []byte("connections:\n  analytics:\n    application_name: pipeline_lifecycle\n"))
	require.NoError(t, err)
	settings := providers.NewTestSettings(pipe, nil, vars)

	var h connections.Handles
	var logs bytes.Buffer
	// The production graph with test settings; no file or process variable
	// is read.
	app := fx.New(appGraph(settings, newLogger(context.Background(), &logs, slog.LevelDebug)), fx.Populate(&h))
	require.NoError(t, app.Err())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, app.Start(ctx))

	var got string
	require.NoError(t, h.SourceDB.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&got))
	assert.Equal(t, srcName, got, "the source handle is the fresh test database")
	require.NoError(t, h.AnalyticsRawDB.QueryRow(ctx, "SELECT current_database() || '/' || current_schema()").Scan(&got))
	assert.Equal(t, pgName+"/raw", got)
	require.NoError(t, h.AnalyticsMartsDB.QueryRow(ctx, "SELECT current_schema()").Scan(&got))
	assert.Equal(t, "marts", got)

	replName := vars["TEST_MYSQL_REPLICATION_DB"]
	assert.Positive(t, mysqlSessions(t, srcName), "started app holds a source connection")
	assert.Positive(t, mysqlSessions(t, replName), "started app holds a replication connection")
	assert.GreaterOrEqual(t, pgSessions(t, pgName), 5, "one ping per analytics pool")

	require.NoError(t, app.Stop(ctx))
	stopped := time.Now()
	// The server ends a session a moment after the client hangs up, so wait
	// (bounded) for the count to reach zero rather than reading it once.
	assert.Eventually(t, func() bool { return mysqlSessions(t, srcName) == 0 }, 10*time.Second, 50*time.Millisecond,
		"no source connection left after Stop")
	assert.Eventually(t, func() bool { return mysqlSessions(t, replName) == 0 }, 10*time.Second, 50*time.Millisecond,
		"no replication connection left after Stop")
	assert.Eventually(t, func() bool { return pgSessions(t, pgName) == 0 }, 10*time.Second, 50*time.Millisecond,
		"no analytics connection left after Stop")
	t.Logf("sessions gone %s after Stop", time.Since(stopped).Round(time.Millisecond))
	assert.Equal(t, 0, h.SourceDB.Stats().OpenConnections)
	assert.Contains(t, logs.String(), "component=fx", "fx's events go through the one logger")
	assert.Contains(t, logs.String(), "OnStop hook executed")
	assert.NotContains(t, logs.String(), secret)
}

func TestLogLevel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]slog.Level{"": slog.LevelInfo, "debug": slog.LevelDebug, "WARN": slog.LevelWarn, "error": slog.LevelError} {
		got, err := logLevel(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := logLevel("loud")
	assert.ErrorIs(t, err, providers.ErrInvalidConfig)
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitConfig, dispatch(context.Background(), []string{"--log-level", "loud", "check"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), `--log-level "loud"`)
}

// lazyDeps asks only for the source.
type lazyDeps struct {
	Deps
	Source *connections.SourceDB
}

func TestWithAppBuildsOnlyWhatIsAsked(t *testing.T) {
	t.Parallel()
	vars, srcName, _ := testVars(t)
	for k := range vars {
		if strings.HasPrefix(k, "TEST_POSTGRES_ANALYTICS_") || strings.HasPrefix(k, "TEST_MYSQL_REPLICATION_") {
			delete(vars, k)
		}
	}
	c, _, stderr := testCall("discover", vars)
	var source *sql.DB
	err := withApp(context.Background(), c, []catalog.DatabaseType{catalog.DatabaseSource},
		func(ctx context.Context, d lazyDeps) error {
			source = d.Source.DB
			var name string
			require.NoError(t, d.Source.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&name))
			assert.Equal(t, srcName, name)
			return nil
		})
	require.NoError(t, err, "analytics and replication are not configured and not needed")
	require.NotNil(t, source)
	assert.Error(t, source.Ping(), "the pool is closed after withApp returns")

	// Asking for the replica without declaring it: still a config error (exit 2).
	type replDeps struct {
		Deps
		Replication *connections.ReplicationDB
	}
	err = withApp(context.Background(), c, nil,
		func(context.Context, replDeps) error { t.Fatal("fn must not run"); return nil })
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Equal(t, exitConfig, c.exit(context.Background(), err))
	assert.Contains(t, stderr.String(), "TEST_MYSQL_REPLICATION_HOST is not set")
}

// testCall is a call of the command name whose settings are the test
// environment's with vars, in memory: no file or process variable is read.
func testCall(name string, vars map[string]string) (c *call, stdout, stderr *bytes.Buffer) {
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	c = &call{name: name, g: &globalFlags{}, stdout: stdout, stderr: stderr,
		load: func(*globalFlags) (*providers.Settings, error) { return providers.NewTestSettings(nil, nil, vars), nil }}
	return c, stdout, stderr
}

func TestWithAppConfigErrorTouchesNothing(t *testing.T) {
	t.Parallel()
	c, _, stderr := testCall("replicate", map[string]string{"TEST_OPENDENTAL_SOURCE_HOST": "127.0.0.1", "TEST_OPENDENTAL_SOURCE_DB": "prod"})
	called := false
	err := withApp(context.Background(), c, []catalog.DatabaseType{catalog.DatabaseSource, catalog.DatabaseReplication},
		func(context.Context, Deps) error { called = true; return nil })
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.False(t, called)
	for _, want := range []string{`TEST_OPENDENTAL_SOURCE_DB="prod" has no "test"`, "TEST_OPENDENTAL_SOURCE_USER is not set", "TEST_MYSQL_REPLICATION_HOST is not set"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Equal(t, exitConfig, c.exit(context.Background(), err))
	assert.Contains(t, stderr.String(), "pipeline replicate: invalid configuration")
}
