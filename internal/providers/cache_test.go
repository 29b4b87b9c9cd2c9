package providers

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
)

// A built config is invisible from outside (the variables are copied at
// construction), so the cache is checked from inside: one entry per
// (database, schema) asked for, none for a failed build.
func TestDatabaseConfigIsCachedPerDatabaseAndSchema(t *testing.T) {
	t.Parallel()
	s := NewTestSettings(nil, nil, map[string]string{
		"TEST_OPENDENTAL_SOURCE_HOST": "h", "TEST_OPENDENTAL_SOURCE_DB": "test_src", "TEST_OPENDENTAL_SOURCE_USER": "u",
		"TEST_POSTGRES_ANALYTICS_HOST": "h", "TEST_POSTGRES_ANALYTICS_DB": "test_an", "TEST_POSTGRES_ANALYTICS_USER": "u",
	})
	asks := []struct {
		db     catalog.DatabaseType
		schema catalog.PostgresSchema
	}{
		{catalog.DatabaseSource, ""},
		{catalog.DatabaseAnalytics, ""},
		{catalog.DatabaseAnalytics, catalog.SchemaRaw},
		{catalog.DatabaseAnalytics, catalog.SchemaMarts},
	}
	for i, a := range asks {
		first, err := s.DatabaseConfig(Test, a.db, a.schema)
		require.NoError(t, err)
		again, err := s.DatabaseConfig(Test, a.db, a.schema)
		require.NoError(t, err)
		assert.Equal(t, first, again)
		assert.Len(t, s.cache, i+1, "after asking for %s/%s twice", a.db, a.schema)
		assert.Equal(t, first, s.cache[cacheKey{Test, a.db, a.schema}])
	}
	_, err := s.DatabaseConfig(Test, catalog.DatabaseReplication, "")
	require.ErrorIs(t, err, ErrInvalidConfig, "replication is not configured")
	assert.Len(t, s.cache, len(asks), "a failed build is not cached")
}
