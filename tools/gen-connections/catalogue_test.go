package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// valid is a one-database catalogue the error cases below edit.
const valid = `databases:
  - name: analytics
    doc: the analytics PostgreSQL
    driver: postgres
    env_prefix: POSTGRES_ANALYTICS
    read_only: false
    default_port: 5432
    go: {const: DatabaseAnalytics, handle: AnalyticsDB, constructor: PostgresAnalytics, config: Analytics}
    schemas:
      - name: raw
        go: {const: SchemaRaw, handle: AnalyticsRawDB, constructor: AnalyticsRaw, config: AnalyticsRaw}
`

func TestParseCatalogueValid(t *testing.T) {
	c, err := parseCatalogue("schemas.yaml", []byte(valid))
	require.NoError(t, err)
	require.Len(t, c.Databases, 1)
	db := c.Databases[0]
	assert.Equal(t, "analytics", db.Name)
	assert.Equal(t, "postgres", db.Driver)
	assert.Equal(t, "POSTGRES_ANALYTICS", db.EnvPrefix)
	require.NotNil(t, db.ReadOnly)
	assert.False(t, *db.ReadOnly)
	assert.Equal(t, 5432, db.DefaultPort)
	assert.Equal(t, goNames{Const: "SchemaRaw", Handle: "AnalyticsRawDB", Constructor: "AnalyticsRaw", Config: "AnalyticsRaw"}, db.Schemas[0].Go)
}

func TestLoadCatalogueRepository(t *testing.T) {
	c, err := loadCatalogue("../../schemas.yaml")
	require.NoError(t, err)
	var names []string
	for _, db := range c.Databases {
		names = append(names, db.Name+"/"+db.Driver+"/"+db.EnvPrefix)
	}
	assert.Equal(t, []string{"source/mysql/OPENDENTAL_SOURCE", "replication/mysql/MYSQL_REPLICATION", "analytics/postgres/POSTGRES_ANALYTICS"}, names)
	require.NotNil(t, c.Databases[0].ReadOnly)
	assert.True(t, *c.Databases[0].ReadOnly, "the source must be read-only")
}

func TestParseCatalogueErrors(t *testing.T) {
	edit := func(old, new string) string {
		if !strings.Contains(valid, old) {
			panic("test edit does not apply: " + old)
		}
		return strings.Replace(valid, old, new, 1)
	}
	second := `  - name: analytics
    doc: again
    driver: postgres
    env_prefix: POSTGRES_ANALYTICS
    read_only: false
    default_port: 5432
    go: {const: DatabaseAnalytics, handle: AnalyticsDB, constructor: PostgresAnalytics, config: Analytics}
`
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"empty file", "", []string{"schemas.yaml:1: catalogue is empty"}},
		{"no databases", "databases: []\n", []string{"schemas.yaml:1: no databases"}},
		{"unknown field", edit("    driver: postgres\n", "    driver: postgres\n    drivr: mysql\n"),
			[]string{"schemas.yaml:5: field drivr not found"}},
		{"unknown go field", edit("config: Analytics}", "config: Analytics, typ: X}"),
			[]string{"schemas.yaml:8: field typ not found"}},
		{"wrong type", edit("default_port: 5432", "default_port: five"), []string{"schemas.yaml:7: cannot unmarshal"}},
		{"two documents", valid + "---\ndatabases: []\n", []string{"schemas.yaml:12: catalogue must be a single YAML document"}},
		{"unknown driver", edit("driver: postgres", "driver: oracle"),
			[]string{`schemas.yaml:4: database analytics: driver "oracle" is not known: use one of mysql, postgres`}},
		{"bad name", edit("name: analytics", "name: Analytics"), []string{`schemas.yaml:2: database name "Analytics" must be a lower-case identifier`}},
		{"duplicate database", valid + second, []string{`schemas.yaml:12: database name "analytics" is already used at line 2`,
			`schemas.yaml:15: env_prefix "POSTGRES_ANALYTICS" is already used at line 5`,
			`schemas.yaml:18: Go name "DatabaseAnalytics" is already used at line 8`,
			`schemas.yaml:18: Go name "AnalyticsDB" is already used at line 8`,
			`schemas.yaml:18: Go name "NewPostgresAnalyticsConnection" is already used at line 8`,
			`schemas.yaml:18: Go name "TestAnalyticsConfig" is already used at line 8`}},
		{"env prefix case", edit("env_prefix: POSTGRES_ANALYTICS", "env_prefix: postgres"), []string{`schemas.yaml:5: database analytics: env_prefix "postgres" must be upper-case`}},
		{"env prefix TEST_", edit("env_prefix: POSTGRES_ANALYTICS", "env_prefix: TEST_PG"), []string{`schemas.yaml:5: database analytics: env_prefix "TEST_PG" must not start with TEST_`}},
		{"read_only missing", edit("    read_only: false\n", ""), []string{"schemas.yaml:2: database analytics: read_only is missing"}},
		{"port", edit("default_port: 5432", "default_port: 70000"), []string{"schemas.yaml:7: database analytics: default_port 70000 must be between 1 and 65535"}},
		{"port missing", edit("    default_port: 5432\n", ""), []string{"schemas.yaml:2: database analytics: default_port 0 must be between 1 and 65535"}},
		{"doc missing", edit("    doc: the analytics PostgreSQL\n", ""), []string{"schemas.yaml:2: database analytics: doc must be one non-empty line"}},
		{"unexported handle", edit("handle: AnalyticsDB", "handle: analyticsDB"), []string{`schemas.yaml:8: go.handle "analyticsDB" must be an exported Go identifier`}},
		{"not an identifier", edit("constructor: PostgresAnalytics", "constructor: Postgres-Analytics"), []string{`schemas.yaml:8: go.constructor "Postgres-Analytics" must be an exported Go identifier`}},
		{"missing const", edit("const: DatabaseAnalytics, ", ""), []string{`schemas.yaml:8: go.const "" must be an exported Go identifier`}},
		{"reserved name", edit("const: SchemaRaw", "const: Lookup"), []string{`schemas.yaml:11: Go name "Lookup" is reserved`}},
		{"schema on mysql", edit("driver: postgres", "driver: mysql"), []string{`schemas.yaml:9: database analytics: schemas are only for postgres databases, not "mysql"`}},
		{"duplicate schema", valid + "      - name: raw\n        go: {const: SchemaRaw2, handle: Raw2DB, constructor: Raw2, config: Raw2}\n",
			[]string{`schemas.yaml:12: schema name "raw" is already used at line 10`}},
		{"schema const clash", edit("handle: AnalyticsRawDB", "handle: AnalyticsDB"), []string{`schemas.yaml:11: Go name "AnalyticsDB" is already used at line 8`}},
		{"bad schema name", edit("name: raw", "name: Raw Data"), []string{`schemas.yaml:10: schema name "Raw Data" must be a lower-case identifier`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseCatalogue("schemas.yaml", []byte(tt.yaml))
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseCatalogueSchemaSharedAcrossDatabases(t *testing.T) {
	_, err := loadCatalogue("testdata/shared-schema.yaml")
	require.NoError(t, err, "one schema name in two databases is one constant")

	data := strings.Replace(mustRead(t, "testdata/shared-schema.yaml"), "const: SchemaRaw, handle: LakeRawDB", "const: LakeSchemaRaw, handle: LakeRawDB", 1)
	_, err = parseCatalogue("shared.yaml", []byte(data))
	require.Error(t, err)
	assert.Contains(t, err.Error(), `shared.yaml:23: schema "raw": const "LakeSchemaRaw" differs from "SchemaRaw" used for it elsewhere`)
}

func TestParseCatalogueReportsEveryProblem(t *testing.T) {
	bad := strings.NewReplacer("driver: postgres", "driver: oracle", "default_port: 5432", "default_port: 0").Replace(valid)
	_, err := parseCatalogue("schemas.yaml", []byte(bad))
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	assert.Equal(t, []string{
		"invalid catalogue:",
		`schemas.yaml:4: database analytics: driver "oracle" is not known: use one of mysql, postgres`,
		"schemas.yaml:7: database analytics: default_port 0 must be between 1 and 65535",
		`schemas.yaml:9: database analytics: schemas are only for postgres databases, not "oracle": remove them`,
	}, lines)
}
