package providers

import (
	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Settings is the validated configuration of one run: the detected
// environment, pipeline.yml, tables.yml and the environment variables.
type Settings struct {
	Environment Environment
	Tables      *tables.Config
	env         map[string]string
}

// DatabaseConfig returns the connection config of db (and, for analytics,
// schema; "" means the POSTGRES_ANALYTICS_SCHEMA default) as read from env's
// variables: production reads OPENDENTAL_SOURCE_HOST…, test reads
// TEST_OPENDENTAL_SOURCE_HOST…; never one from the other.
func (s *Settings) DatabaseConfig(env Environment, db catalog.DatabaseType, schema catalog.PostgresSchema) (DBConfig, error) {
	panic("TODO: implemented by the providers helper")
}
