// Package factory opens database pools from providers.DBConfig: MySQL through
// go-sql-driver, PostgreSQL through pgxpool. Constructors do no network I/O.
package factory

import (
	"database/sql"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Factory opens pools. It is stateless; one is shared by the whole app.
type Factory struct{}

// New returns a Factory.
func New() *Factory { return &Factory{} }

// MySQL opens a *sql.DB for a MySQL/MariaDB config without connecting.
func (f *Factory) MySQL(cfg providers.DBConfig) (*sql.DB, error) {
	panic("TODO: implemented by the factory helper")
}

// Postgres opens a pgxpool for a PostgreSQL config without connecting.
func (f *Factory) Postgres(cfg providers.DBConfig) (*pgxpool.Pool, error) {
	panic("TODO: implemented by the factory helper")
}

// MySQLHook pings db on start (failing with the database's label and host,
// never its password) and closes it on stop.
func MySQLHook(db *sql.DB, cfg providers.DBConfig) fx.Hook {
	panic("TODO: implemented by the factory helper")
}

// PostgresHook pings pool on start and closes it on stop.
func PostgresHook(pool *pgxpool.Pool, cfg providers.DBConfig) fx.Hook {
	panic("TODO: implemented by the factory helper")
}
