package testdb

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFreshDatabases(t *testing.T) {
	my, mcfg := MySQL(t, t.Name())
	assert.Contains(t, mcfg.Name, "test")
	var got string
	require.NoError(t, my.QueryRow("SELECT DATABASE()").Scan(&got))
	assert.Equal(t, mcfg.Name, got)

	pg, pcfg := Postgres(t, t.Name())
	assert.Contains(t, pcfg.Name, "test")
	require.NoError(t, pg.QueryRow(context.Background(), "SELECT current_database()").Scan(&got))
	assert.Equal(t, pcfg.Name, got)
	var n int
	require.NoError(t, pg.QueryRow(context.Background(), "SELECT count(*) FROM information_schema.schemata WHERE schema_name IN ('raw','staging','intermediate','marts')").Scan(&n))
	assert.Equal(t, 4, n)
}
