package main

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// openTestMySQL opens the test database name on the test MariaDB as the
// admin user, closed when the test ends.
func openTestMySQL(t *testing.T, name string) *sql.DB {
	t.Helper()
	db, err := testdb.OpenMySQL(testdb.MySQLConfig(name, catalog.DatabaseReplication))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// openTestPostgres opens the test database name on the test PostgreSQL
// (search_path raw), closed when the test ends.
func openTestPostgres(t *testing.T, name string) *pgxpool.Pool {
	t.Helper()
	cfg := testdb.PostgresConfig(name, catalog.SchemaRaw)
	pool, err := pgxpool.New(context.Background(), fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable&search_path=raw", cfg.User, cfg.Addr(), cfg.Name))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		_, err := db.Exec(s)
		require.NoError(t, err, s)
	}
}

// decodeReport parses a --json result, which must be the versioned report.
func decodeReport(t *testing.T, out string) *report.Report {
	t.Helper()
	rep, err := report.Decode([]byte(out))
	require.NoError(t, err, out)
	require.Equal(t, report.Version, rep.Version)
	return rep
}
