package main

import (
	"errors"
	"flag"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
)

// These exercise the committed gen/catalog: the enum API every other
// package relies on.

func TestCatalogParse(t *testing.T) {
	tests := []struct {
		name    string
		parse   func(string) (string, error)
		in      string
		wantErr string
	}{
		{"database ok", parseAs(catalog.ParseDatabaseType), "analytics", ""},
		{"database unknown", parseAs(catalog.ParseDatabaseType), "Analytics", `unknown database type "Analytics": allowed values are source, replication, analytics`},
		{"database empty", parseAs(catalog.ParseDatabaseType), "", `unknown database type "": allowed values are source, replication, analytics`},
		{"schema ok", parseAs(catalog.ParsePostgresSchema), "marts", ""},
		{"schema unknown", parseAs(catalog.ParsePostgresSchema), "public", `unknown postgres schema "public": allowed values are raw, staging, intermediate, marts`},
		{"driver ok", parseAs(catalog.ParseDriver), "mysql", ""},
		{"driver unknown", parseAs(catalog.ParseDriver), "sqlite", `unknown driver "sqlite": allowed values are mysql, postgres`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				assert.Equal(t, tt.in, got)
				return
			}
			require.EqualError(t, err, tt.wantErr)
			assert.True(t, errors.Is(err, catalog.ErrUnknown))
		})
	}
}

func parseAs[T ~string](parse func(string) (T, error)) func(string) (string, error) {
	return func(s string) (string, error) {
		v, err := parse(s)
		return string(v), err
	}
}

func TestCatalogValuesAndValid(t *testing.T) {
	assert.Equal(t, []catalog.DatabaseType{catalog.DatabaseSource, catalog.DatabaseReplication, catalog.DatabaseAnalytics}, catalog.DatabaseTypeValues())
	assert.Equal(t, catalog.DatabaseTypeValues(), catalog.DatabaseType("").Values())
	assert.Equal(t, []catalog.PostgresSchema{catalog.SchemaRaw, catalog.SchemaStaging, catalog.SchemaIntermediate, catalog.SchemaMarts}, catalog.PostgresSchemaValues())
	assert.Equal(t, catalog.PostgresSchemaValues(), catalog.PostgresSchema("").Values())
	assert.Equal(t, []catalog.Driver{catalog.DriverMySQL, catalog.DriverPostgres}, catalog.DriverValues())
	assert.True(t, catalog.SchemaStaging.Valid())
	assert.False(t, catalog.PostgresSchema("public").Valid())
	assert.False(t, catalog.DatabaseType("").Valid())
	assert.Equal(t, "replication", catalog.DatabaseReplication.String())

	vals := catalog.DatabaseTypeValues()
	vals[0] = "mutated"
	assert.Equal(t, catalog.DatabaseSource, catalog.DatabaseTypeValues()[0], "Values returns a fresh slice")
}

func TestCatalogLookup(t *testing.T) {
	src, ok := catalog.Lookup(catalog.DatabaseSource)
	require.True(t, ok)
	assert.Equal(t, catalog.Database{Type: catalog.DatabaseSource, Driver: catalog.DriverMySQL, EnvPrefix: "OPENDENTAL_SOURCE", ReadOnly: true, DefaultPort: 3306}, src)

	an, ok := catalog.Lookup(catalog.DatabaseAnalytics)
	require.True(t, ok)
	assert.Equal(t, catalog.DriverPostgres, an.Driver)
	assert.Equal(t, "POSTGRES_ANALYTICS", an.EnvPrefix)
	assert.Equal(t, 5432, an.DefaultPort)
	assert.True(t, an.HasSchemas)
	assert.Equal(t, catalog.PostgresSchemaValues(), an.Schemas)
	assert.True(t, an.HasSchema(catalog.SchemaRaw))
	assert.False(t, src.HasSchema(catalog.SchemaRaw))

	_, ok = catalog.Lookup("nope")
	assert.False(t, ok)

	dbs := catalog.Databases()
	require.Len(t, dbs, 3)
	dbs[2].Schemas[0] = "mutated"
	assert.Equal(t, catalog.SchemaRaw, catalog.Databases()[2].Schemas[0], "Databases returns fresh values")
}

func TestCatalogUnmarshalText(t *testing.T) {
	var cfg struct {
		DB     catalog.DatabaseType   `yaml:"db"`
		Schema catalog.PostgresSchema `yaml:"schema"`
	}
	require.NoError(t, yaml.Unmarshal([]byte("db: replication\nschema: staging\n"), &cfg))
	assert.Equal(t, catalog.DatabaseReplication, cfg.DB)
	assert.Equal(t, catalog.SchemaStaging, cfg.Schema)

	err := yaml.Unmarshal([]byte("db: warehouse\n"), &cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `unknown database type "warehouse"`)

	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	var s catalog.PostgresSchema
	fs.TextVar(&s, "schema", catalog.SchemaRaw, "")
	require.NoError(t, fs.Parse([]string{"-schema", "marts"}))
	assert.Equal(t, catalog.SchemaMarts, s)
	assert.Error(t, fs.Parse([]string{"-schema", "public"}))
}
