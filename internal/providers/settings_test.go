package providers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

func TestDetectEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		override string
		env      map[string]string
		want     providers.Environment
		wantErr  string
	}{
		{name: "default is production", env: nil, want: providers.Production},
		{name: "APP_ENV", env: map[string]string{"APP_ENV": "test"}, want: providers.Test},
		{name: "ENVIRONMENT beats APP_ENV", env: map[string]string{"ENVIRONMENT": "production", "APP_ENV": "test"}, want: providers.Production},
		{name: "ETL_ENVIRONMENT beats ENVIRONMENT", env: map[string]string{"ETL_ENVIRONMENT": "test", "ENVIRONMENT": "production", "APP_ENV": "production"}, want: providers.Test},
		{name: "empty variable is skipped", env: map[string]string{"ETL_ENVIRONMENT": " ", "APP_ENV": "test"}, want: providers.Test},
		{name: "case and space ignored", env: map[string]string{"ETL_ENVIRONMENT": " Test "}, want: providers.Test},
		{name: "--env beats every variable", override: "production", env: map[string]string{"ETL_ENVIRONMENT": "test"}, want: providers.Production},
		{name: "--env test", override: "test", want: providers.Test},
		{name: "unknown variable value is an error", env: map[string]string{"ENVIRONMENT": "staging"}, wantErr: `reading ENVIRONMENT: unknown environment "staging": allowed values are production, test`},
		{name: "unknown beats a lower valid one", env: map[string]string{"ETL_ENVIRONMENT": "dev", "APP_ENV": "test"}, wantErr: `reading ETL_ENVIRONMENT: unknown environment "dev"`},
		{name: "unknown --env", override: "prod", wantErr: `reading --env: unknown environment "prod"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := providers.DetectEnvironment(tt.override, tt.env)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, providers.ErrUnknownEnvironment)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

// fullVars is a complete variable set for every database with prefix
// ("" or "TEST_"), with database names that carry a test marker.
func fullVars(prefix string) map[string]string {
	return map[string]string{
		prefix + "OPENDENTAL_SOURCE_HOST": "src.example", prefix + "OPENDENTAL_SOURCE_PORT": "3307",
		prefix + "OPENDENTAL_SOURCE_DB": "test_opendental", prefix + "OPENDENTAL_SOURCE_USER": "reader",
		prefix + "OPENDENTAL_SOURCE_PASSWORD": "s3cr3t-XYZ",
		prefix + "MYSQL_REPLICATION_HOST":     "repl.example", prefix + "MYSQL_REPLICATION_DB": "test_repl",
		prefix + "MYSQL_REPLICATION_USER":  "repl",
		prefix + "POSTGRES_ANALYTICS_HOST": "pg.example", prefix + "POSTGRES_ANALYTICS_DB": "test_analytics",
		prefix + "POSTGRES_ANALYTICS_USER": "analyst", prefix + "POSTGRES_ANALYTICS_SCHEMA": "staging",
	}
}

func settingsFor(t *testing.T, env providers.Environment, vars map[string]string) *providers.Settings {
	t.Helper()
	s, err := providers.NewSettings(&providers.MemoryProvider{Vars: vars}, providers.EnvOverride(env))
	require.NoError(t, err)
	return s
}

func TestDatabaseConfigReadsOnlyItsEnvironment(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  providers.Environment
		vars map[string]string
	}{
		{name: "production reads un-prefixed", env: providers.Production, vars: fullVars("")},
		{name: "test reads TEST_", env: providers.Test, vars: fullVars("TEST_")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := settingsFor(t, tt.env, tt.vars)
			src, err := s.DatabaseConfig(tt.env, catalog.DatabaseSource, "")
			require.NoError(t, err)
			assert.Equal(t, "src.example", src.Host)
			assert.Equal(t, 3307, src.Port)
			assert.Equal(t, "test_opendental", src.Name)
			assert.Equal(t, "reader", src.User)
			assert.Equal(t, "s3cr3t-XYZ", src.Password)
			assert.True(t, src.ReadOnly, "the catalogue marks the source read-only")
			assert.Equal(t, catalog.DriverMySQL, src.Driver)
			assert.Equal(t, tt.env, src.Environment)

			repl, err := s.DatabaseConfig(tt.env, catalog.DatabaseReplication, "")
			require.NoError(t, err)
			assert.Equal(t, 3306, repl.Port, "unset port takes the catalogue's default")
			assert.Empty(t, repl.Password)
			assert.False(t, repl.ReadOnly)

			an, err := s.DatabaseConfig(tt.env, catalog.DatabaseAnalytics, "")
			require.NoError(t, err)
			assert.Equal(t, catalog.SchemaStaging, an.Schema, "POSTGRES_ANALYTICS_SCHEMA is the plain handle's schema")
			assert.Equal(t, 5432, an.Port)
			marts, err := s.DatabaseConfig(tt.env, catalog.DatabaseAnalytics, catalog.SchemaMarts)
			require.NoError(t, err)
			assert.Equal(t, catalog.SchemaMarts, marts.Schema)
			assert.Equal(t, "analytics/marts", marts.Label())
		})
	}
}

func TestNoFallbackBetweenEnvironments(t *testing.T) {
	t.Parallel()
	// Production variables present, test asked: every TEST_ variable is missing.
	s := settingsFor(t, providers.Test, fullVars(""))
	_, err := s.DatabaseConfig(providers.Test, catalog.DatabaseSource, "")
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	for _, v := range []string{"TEST_OPENDENTAL_SOURCE_HOST", "TEST_OPENDENTAL_SOURCE_DB", "TEST_OPENDENTAL_SOURCE_USER"} {
		assert.Contains(t, err.Error(), v+" is not set")
	}

	// And the other way round.
	s = settingsFor(t, providers.Production, fullVars("TEST_"))
	_, err = s.DatabaseConfig(providers.Production, catalog.DatabaseReplication, "")
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "MYSQL_REPLICATION_HOST is not set")
	assert.NotContains(t, err.Error(), "TEST_")

	// Asking production config of test settings is refused outright.
	s = settingsFor(t, providers.Test, fullVars("TEST_"))
	_, err = s.DatabaseConfig(providers.Production, catalog.DatabaseSource, "")
	assert.ErrorIs(t, err, providers.ErrEnvironmentMismatch)
}

func TestEnvconfigFallbackToBareNameIsNotUsed(t *testing.T) {
	t.Parallel()
	// envconfig.Process would read USER when TEST_…_USER is unset; we must not.
	vars := fullVars("TEST_")
	delete(vars, "TEST_MYSQL_REPLICATION_USER")
	vars["USER"] = "root"
	vars["HOST"] = "elsewhere"
	s := settingsFor(t, providers.Test, vars)
	_, err := s.DatabaseConfig(providers.Test, catalog.DatabaseReplication, "")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "TEST_MYSQL_REPLICATION_USER is not set")
}

func TestTestEnvironmentRefusesNonTestDatabase(t *testing.T) {
	t.Parallel()
	vars := fullVars("TEST_")
	vars["TEST_OPENDENTAL_SOURCE_DB"] = "opendental"
	s := settingsFor(t, providers.Test, vars)
	_, err := s.DatabaseConfig(providers.Test, catalog.DatabaseSource, "")
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Contains(t, err.Error(), `TEST_OPENDENTAL_SOURCE_DB="opendental" has no "test" in its name`)

	// Production has no such rule.
	prod := fullVars("")
	prod["OPENDENTAL_SOURCE_DB"] = "opendental"
	c, err := settingsFor(t, providers.Production, prod).DatabaseConfig(providers.Production, catalog.DatabaseSource, "")
	require.NoError(t, err)
	assert.Equal(t, "opendental", c.Name)
}

func TestValidateListsEveryProblem(t *testing.T) {
	t.Parallel()
	vars := map[string]string{
		"TEST_OPENDENTAL_SOURCE_HOST": "h", "TEST_OPENDENTAL_SOURCE_PORT": "33o6",
		"TEST_OPENDENTAL_SOURCE_DB": "live", "TEST_OPENDENTAL_SOURCE_USER": "",
		"TEST_OPENDENTAL_SOURCE_PASSWORD": "s3cr3t-XYZ",
		"TEST_POSTGRES_ANALYTICS_SCHEMA":  "gold",
	}
	s := settingsFor(t, providers.Test, vars)
	err := s.Validate()
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	var ce *providers.ConfigError
	require.ErrorAs(t, err, &ce)
	want := []string{
		`TEST_OPENDENTAL_SOURCE_PORT="33o6" is not a port number`,
		`TEST_OPENDENTAL_SOURCE_DB="live" has no "test" in its name`,
		"TEST_OPENDENTAL_SOURCE_USER is empty",
		"TEST_MYSQL_REPLICATION_HOST is not set",
		"TEST_MYSQL_REPLICATION_DB is not set",
		"TEST_MYSQL_REPLICATION_USER is not set",
		"TEST_POSTGRES_ANALYTICS_HOST is not set",
		"TEST_POSTGRES_ANALYTICS_DB is not set",
		"TEST_POSTGRES_ANALYTICS_USER is not set",
		`TEST_POSTGRES_ANALYTICS_SCHEMA: unknown postgres schema "gold"`,
	}
	assert.Len(t, ce.Problems, len(want), "one problem per item:\n%s", err)
	for _, w := range want {
		assert.Contains(t, err.Error(), w)
	}
	assert.Contains(t, err.Error(), "set it to the replication database's server host name")
	assert.NotContains(t, err.Error(), "s3cr3t-XYZ")

	// Validating only what a command needs ignores the rest.
	vars = fullVars("TEST_")
	for _, k := range providers.DatabaseVariables(providers.Test, mustLookup(t, catalog.DatabaseAnalytics)) {
		delete(vars, k)
	}
	s = settingsFor(t, providers.Test, vars)
	assert.NoError(t, s.Validate(catalog.DatabaseSource, catalog.DatabaseReplication))
	assert.Error(t, s.Validate())
}

func mustLookup(t *testing.T, d catalog.DatabaseType) catalog.Database {
	db, ok := catalog.Lookup(d)
	require.True(t, ok)
	return db
}

func TestDatabaseVariablesFollowTheCatalogue(t *testing.T) {
	t.Parallel()
	for _, db := range catalog.Databases() {
		vars := providers.DatabaseVariables(providers.Test, db)
		require.NotEmpty(t, vars)
		for _, v := range vars {
			assert.True(t, strings.HasPrefix(v, "TEST_"+db.EnvPrefix+"_"), v)
		}
		assert.Equal(t, db.HasSchemas, strings.HasSuffix(vars[len(vars)-1], "_SCHEMA"))
	}
	assert.Equal(t, []string{"OPENDENTAL_SOURCE_HOST", "OPENDENTAL_SOURCE_PORT", "OPENDENTAL_SOURCE_DB", "OPENDENTAL_SOURCE_USER", "OPENDENTAL_SOURCE_PASSWORD",
		"OPENDENTAL_SOURCE_SSL_MODE", "OPENDENTAL_SOURCE_SSL_CA", "OPENDENTAL_SOURCE_SSL_CERT", "OPENDENTAL_SOURCE_SSL_KEY"},
		providers.DatabaseVariables(providers.Production, mustLookup(t, catalog.DatabaseSource)))
}

func TestPoolOverridesAndCache(t *testing.T) {
	t.Parallel()
	pipe, err := providers.ParsePipeline("pipeline.yml", []byte(`
connections:
  source:
    connect_timeout: 5
    read_timeout: "90s"
    pool_size: 2
    max_overflow: 0
    application_name: pipeline_src
`))
	require.NoError(t, err)
	s := providers.NewTestSettings(pipe, nil, fullVars("TEST_"))
	src, err := s.DatabaseConfig(providers.Test, catalog.DatabaseSource, "")
	require.NoError(t, err)
	assert.Equal(t, providers.PoolConfig{
		ConnectTimeout: 5 * time.Second, ReadTimeout: 90 * time.Second, WriteTimeout: providers.DefaultWriteTimeout,
		PoolSize: 2, MaxOverflow: 0, PoolTimeout: providers.DefaultPoolTimeout, PoolRecycle: providers.DefaultPoolRecycle,
		ApplicationName: "pipeline_src",
	}, src.Pool)
	repl, err := s.DatabaseConfig(providers.Test, catalog.DatabaseReplication, "")
	require.NoError(t, err)
	assert.Equal(t, 5, repl.Pool.PoolSize)
	assert.Equal(t, 10, repl.Pool.MaxOverflow)
	assert.Equal(t, 30*time.Second, repl.Pool.PoolTimeout)
	assert.Equal(t, 1800*time.Second, repl.Pool.PoolRecycle)
	assert.False(t, s.TablesExist)
	assert.NotNil(t, s.Tables)

	// Cached per (database, schema): the same value again.
	again, err := s.DatabaseConfig(providers.Test, catalog.DatabaseSource, "")
	require.NoError(t, err)
	assert.Equal(t, src, again)
}

func TestPasswordNeverInStrings(t *testing.T) {
	t.Parallel()
	s := settingsFor(t, providers.Production, fullVars(""))
	c, err := s.DatabaseConfig(providers.Production, catalog.DatabaseSource, "")
	require.NoError(t, err)
	require.Equal(t, "s3cr3t-XYZ", c.Password, "the sentinel is in play")
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("opening", "cfg", c)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("opening", "cfg", c)
	asJSON, err := json.Marshal(c)
	require.NoError(t, err)
	for _, out := range []string{c.String(), c.GoString(), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), logs.String(), string(asJSON)} {
		assert.NotContains(t, out, "s3cr3t-XYZ")
	}
	assert.Contains(t, logs.String(), c.String(), "a logged config still says which database it is")
}

func TestLoadFromConfigDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	write("pipeline.yml", "replication:\n  workers: 4\n")

	vars := providers.EnvVars{"PIPELINE_CONFIG_DIR": dir, "APP_ENV": "test"}
	s, err := providers.Load("", "", vars)
	require.NoError(t, err)
	assert.Equal(t, providers.Test, s.Environment)
	assert.Equal(t, dir, s.ConfigDir)
	assert.Equal(t, 4, s.Pipeline.Replication.Workers)
	assert.Equal(t, 100, s.Pipeline.Replication.RateLimitMS, "unset keys keep defaults")
	assert.False(t, s.TablesExist, "a missing tables.yml is allowed: discover writes it")
	assert.Equal(t, filepath.Join(dir, "tables.yml"), s.TablesPath())
	assert.Empty(t, providers.NewTestSettings(nil, nil, nil).TablesPath())

	write("tables.yml", "tables:\n  patient:\n    primary_key: [PatNum]\n    extraction_strategy: full_table\n    batch_size: 1000\n    importance: critical\n    estimated_rows: 10\n    estimated_size_mb: 1\n")
	s, err = providers.Load(providers.ConfigDirFlag(dir), "production", providers.EnvVars{"APP_ENV": "test"})
	require.NoError(t, err)
	assert.Equal(t, providers.Production, s.Environment, "--env beats APP_ENV")
	require.True(t, s.TablesExist)
	require.Contains(t, s.Tables.Tables, "patient")
	assert.Equal(t, "patient", s.Tables.Tables["patient"].Name)
	assert.Equal(t, []string{"PatNum"}, s.Tables.Tables["patient"].PrimaryKey)

	assert.True(t, s.PipelineExists)

	// No pipeline.yml, or no config directory at all: the defaults, so a new
	// user needs only the environment variables (discover creates the
	// directory when it writes tables.yml).
	for _, d := range []string{t.TempDir(), filepath.Join(dir, "nope")} {
		s, err = providers.Load(providers.ConfigDirFlag(d), "", nil)
		require.NoError(t, err, d)
		assert.False(t, s.PipelineExists, d)
		assert.Equal(t, providers.DefaultPipelineConfig(), s.Pipeline, d)
		assert.False(t, s.TablesExist, d)
		assert.Equal(t, filepath.Join(d, "tables.yml"), s.TablesPath(), d)
	}
	_, err = providers.Load(providers.ConfigDirFlag(filepath.Join(dir, "pipeline.yml")), "", nil)
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "is a file: pass --config-dir or set PIPELINE_CONFIG_DIR")

	_, err = providers.Load(providers.ConfigDirFlag(dir), "", providers.EnvVars{"ETL_ENVIRONMENT": "qa"})
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Contains(t, err.Error(), `unknown environment "qa"`)
}

func TestResolveConfigDir(t *testing.T) {
	t.Parallel()
	assert.Equal(t, providers.ConfigDir("/a"), providers.ResolveConfigDir("/a", providers.EnvVars{"PIPELINE_CONFIG_DIR": "/b"}))
	assert.Equal(t, providers.ConfigDir("/b"), providers.ResolveConfigDir("", providers.EnvVars{"PIPELINE_CONFIG_DIR": "/b"}))
	assert.Equal(t, providers.ConfigDir("./config"), providers.ResolveConfigDir("", nil))
}
