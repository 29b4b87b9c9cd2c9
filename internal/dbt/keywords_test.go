package dbt

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// TestKeywordsCoverTheServer: every keyword the real PostgreSQL does not
// call unreserved is quoted, and a name NeedsQuotes leaves bare really
// works bare there.
func TestKeywordsCoverTheServer(t *testing.T) {
	t.Parallel()
	pg, _ := testdb.Postgres(t, "dbt_keywords")
	ctx := context.Background()
	rows, err := pg.Query(ctx, "SELECT word FROM pg_get_keywords() WHERE catcode <> 'U'")
	require.NoError(t, err)
	defer rows.Close()
	n := 0
	for rows.Next() {
		var w string
		require.NoError(t, rows.Scan(&w))
		assert.True(t, NeedsQuotes(w), "keyword %q must be quoted", w)
		n++
	}
	require.NoError(t, rows.Err())
	require.Positive(t, n)
	for _, name := range []string{"patnum", "_loaded_at", "name", "type", "status"} {
		require.False(t, NeedsQuotes(name), name)
		_, err := pg.Exec(ctx, "CREATE TABLE "+name+" ("+name+" int); SELECT "+name+" FROM "+name+" WHERE "+name+" IS NOT NULL GROUP BY "+name)
		assert.NoError(t, err, name)
	}
}
