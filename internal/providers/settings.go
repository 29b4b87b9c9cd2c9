package providers

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Inputs of Load, each its own type so that wire and fx cannot mix them up.
type (
	// ConfigDirFlag is --config-dir ("" when not given).
	ConfigDirFlag string
	// ConfigDir is the resolved config directory.
	ConfigDir string
	// EnvOverride is --env ("" when not given).
	EnvOverride string
	// EnvVars are the environment variables (name → value).
	EnvVars map[string]string
)

// ConfigDirVar names the config directory when --config-dir is not given.
const ConfigDirVar = "PIPELINE_CONFIG_DIR"

// DefaultConfigDir is used when neither --config-dir nor PIPELINE_CONFIG_DIR is set.
const DefaultConfigDir = "./config"

// ResolveConfigDir picks --config-dir, else PIPELINE_CONFIG_DIR, else ./config.
func ResolveConfigDir(flag ConfigDirFlag, vars EnvVars) ConfigDir {
	if strings.TrimSpace(string(flag)) != "" {
		return ConfigDir(flag)
	}
	if d := strings.TrimSpace(vars[ConfigDirVar]); d != "" {
		return ConfigDir(d)
	}
	return DefaultConfigDir
}

// Settings is the configuration of one run: the detected environment,
// pipeline.yml, tables.yml and the environment variables. It is safe for
// concurrent use; database configs are built once per (environment,
// database, schema) and cached.
type Settings struct {
	Environment Environment
	Pipeline    *PipelineConfig
	Tables      *tables.Config // empty, never nil, when there is no tables.yml
	TablesExist bool           // false until discover has written tables.yml
	// PipelineExists is false when there is no pipeline.yml: Pipeline
	// holds the defaults.
	PipelineExists bool
	ConfigDir      string // "" for in-memory settings

	env   map[string]string
	mu    sync.Mutex
	cache map[cacheKey]DBConfig
}

type cacheKey struct {
	env    Environment
	db     catalog.DatabaseType
	schema catalog.PostgresSchema
}

// NewSettings reads p and detects the environment (override is --env).
// It does no validation of the database variables: Validate does, for the
// databases a command needs.
func NewSettings(p ConfigProvider, override EnvOverride) (*Settings, error) {
	vars := p.Env()
	env, err := DetectEnvironment(string(override), vars)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return newSettings(env, p, vars)
}

// NewTestSettings builds test-environment Settings from in-memory
// configuration (the design's create_test_settings): nil pipeline means the
// defaults, nil tables means no tables.yml; env holds TEST_… variables.
func NewTestSettings(pipeline *PipelineConfig, tables *tables.Config, env map[string]string) *Settings {
	p := &MemoryProvider{PipelineConfig: pipeline, TablesConfig: tables, Vars: env}
	s, _ := newSettings(Test, p, env) // a MemoryProvider never fails
	return s
}

// newSettings reads p's pipeline.yml and tables.yml into Settings for env,
// with a copy of vars (p's environment, read once by the caller).
func newSettings(env Environment, p ConfigProvider, vars map[string]string) (*Settings, error) {
	pipe, pipeExists, err := p.Pipeline()
	if err != nil {
		return nil, err
	}
	tbl, tablesExist, err := p.Tables()
	if err != nil {
		return nil, err
	}
	copied := make(map[string]string, len(vars))
	for k, v := range vars {
		copied[k] = v
	}
	return &Settings{
		Environment: env, Pipeline: pipe, PipelineExists: pipeExists, Tables: tbl, TablesExist: tablesExist,
		ConfigDir: p.Dir(), env: copied, cache: map[cacheKey]DBConfig{},
	}, nil
}

// TablesPath is where tables.yml is read from and where discover writes it:
// <config dir>/tables.yml, or "" for in-memory settings.
func (s *Settings) TablesPath() string {
	if s.ConfigDir == "" {
		return ""
	}
	return filepath.Join(s.ConfigDir, TablesFile)
}

// Env returns the value of an environment variable as the settings saw it.
func (s *Settings) Env(name string) (string, bool) {
	v, ok := s.env[name]
	return v, ok
}

// ErrEnvironmentMismatch is returned when a config of one environment is
// asked of settings loaded for the other: the variables of one environment
// are never used for the other.
var ErrEnvironmentMismatch = errors.New("environment mismatch")

// DatabaseConfig returns the connection config of db (and, for a database
// with schemas, schema; "" means the POSTGRES_ANALYTICS_SCHEMA default,
// itself defaulting to raw) as read from env's variables: production reads
// OPENDENTAL_SOURCE_HOST…, test reads TEST_OPENDENTAL_SOURCE_HOST…; never
// one from the other. env must be the settings' own environment. A config
// error lists every problem of db and wraps ErrInvalidConfig.
func (s *Settings) DatabaseConfig(env Environment, db catalog.DatabaseType, schema catalog.PostgresSchema) (DBConfig, error) {
	if env != s.Environment {
		return DBConfig{}, fmt.Errorf("%w: %s configuration of %s asked of settings loaded for the %s environment", ErrEnvironmentMismatch, env, db, s.Environment)
	}
	key := cacheKey{env, db, schema}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[key]; ok {
		return c, nil
	}
	c, problems := s.build(db, schema)
	if len(problems) > 0 {
		return DBConfig{}, &ConfigError{Environment: s.Environment, Problems: problems}
	}
	s.cache[key] = c
	return c, nil
}

func (s *Settings) build(dbType catalog.DatabaseType, schema catalog.PostgresSchema) (DBConfig, []string) {
	db, ok := catalog.Lookup(dbType)
	if !ok {
		_, err := catalog.ParseDatabaseType(string(dbType))
		return DBConfig{}, []string{err.Error()}
	}
	if schema != "" && !db.HasSchemas {
		return DBConfig{}, []string{fmt.Sprintf("database %s has no schemas, but schema %q was asked for", dbType, schema)}
	}
	if schema != "" && !schema.Valid() {
		_, err := catalog.ParsePostgresSchema(string(schema))
		return DBConfig{}, []string{err.Error()}
	}
	v, problems := readDBVars(s.Environment, db, s.env)
	if len(problems) > 0 {
		return DBConfig{}, problems
	}
	if db.HasSchemas && schema == "" {
		schema = catalog.PostgresSchema(v.Schema)
	}
	return DBConfig{
		Environment: s.Environment,
		Database:    db.Type,
		Schema:      schema,
		Driver:      db.Driver,
		ReadOnly:    db.ReadOnly,
		Host:        v.Host,
		Port:        v.Port,
		Name:        v.DB,
		User:        v.User,
		Password:    v.Password,
		TLS:         v.tls,
		Pool:        s.Pipeline.Pool(db.Type),
	}, nil
}

// Validate checks the variables of dbs (every catalogue database when none
// is given) in the settings' environment, and the hash key when tables.yml
// hashes a column and analytics is among dbs, and returns one *ConfigError
// listing every problem, or nil.
func (s *Settings) Validate(dbs ...catalog.DatabaseType) error {
	if len(dbs) == 0 {
		for _, d := range catalog.Databases() {
			dbs = append(dbs, d.Type)
		}
	}
	var problems []string
	for _, d := range dbs {
		db, ok := catalog.Lookup(d)
		if !ok {
			_, err := catalog.ParseDatabaseType(string(d))
			problems = append(problems, err.Error())
			continue
		}
		_, p := readDBVars(s.Environment, db, s.env)
		problems = append(problems, p...)
	}
	if p := s.hashKeyProblem(); p != "" && needsHashKey(dbs) {
		problems = append(problems, p)
	}
	if len(problems) > 0 {
		return &ConfigError{Environment: s.Environment, Problems: problems}
	}
	return nil
}

// ConfigError lists every problem of a configuration. It wraps
// ErrInvalidConfig.
type ConfigError struct {
	Environment Environment
	Problems    []string
}

func (e *ConfigError) Error() string {
	n := "1 problem"
	if len(e.Problems) != 1 {
		n = fmt.Sprintf("%d problems", len(e.Problems))
	}
	return fmt.Sprintf("invalid configuration for the %s environment (%s; environment chosen by --env, ETL_ENVIRONMENT, ENVIRONMENT or APP_ENV):\n  - %s",
		e.Environment, n, strings.Join(e.Problems, "\n  - "))
}

func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }
