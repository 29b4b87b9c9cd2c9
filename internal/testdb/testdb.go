// Package testdb gives integration tests their own freshly created database
// on the real MariaDB and PostgreSQL, named with a "test" marker and dropped
// when the test ends. A server that cannot be reached fails the test with a
// message saying how to start it; nothing is skipped.
//
// Server addresses come from TESTDB_MYSQL_HOST/PORT/USER/PASSWORD and
// TESTDB_PG_HOST/PORT/USER/PASSWORD, defaulting to the local services that
// scripts/services.sh brings up (root on 127.0.0.1, no password).
//
// It also measures what code costs the source server, without changing any
// server setting but userstat=1: SourceUser creates a SELECT-only user for a
// test database, UserCost and TableCosts read the server's counters for it
// (queries, rows examined, rows sent), and Metered puts a proxy in front of
// the server that charges every single statement its rows examined (see
// cost.go and meter.go for how, and what each figure means).
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

const howToStart = "start the local services with `make services` (scripts/services.sh)"

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v := os.Getenv(key); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

// Name returns a fresh database name: pipeline_test_<prefix>_<random>.
func Name(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix = strings.ToLower(strings.NewReplacer("/", "_", "-", "_", " ", "_").Replace(prefix))
	if len(prefix) > 20 {
		prefix = prefix[:20]
	}
	return "pipeline_test_" + prefix + "_" + hex.EncodeToString(b)
}

// MySQLConfig is the DBConfig of a database on the test MariaDB server.
func MySQLConfig(name string, db catalog.DatabaseType) providers.DBConfig {
	return providers.DBConfig{
		Environment: providers.Test,
		Database:    db,
		Driver:      catalog.DriverMySQL,
		ReadOnly:    db == catalog.DatabaseSource,
		Host:        env("TESTDB_MYSQL_HOST", "127.0.0.1"),
		Port:        envInt("TESTDB_MYSQL_PORT", 3306),
		Name:        name,
		User:        env("TESTDB_MYSQL_USER", "root"),
		Password:    os.Getenv("TESTDB_MYSQL_PASSWORD"),
		Pool: providers.PoolConfig{
			ConnectTimeout: 10 * time.Second, PoolSize: providers.DefaultPoolSize,
			MaxOverflow: providers.DefaultMaxOverflow, PoolTimeout: providers.DefaultPoolTimeout,
			PoolRecycle: providers.DefaultPoolRecycle, ApplicationName: "pipeline_test",
		},
	}
}

// PostgresConfig is the DBConfig of a database on the test PostgreSQL server.
func PostgresConfig(name string, schema catalog.PostgresSchema) providers.DBConfig {
	return providers.DBConfig{
		Environment: providers.Test,
		Database:    catalog.DatabaseAnalytics,
		Schema:      schema,
		Driver:      catalog.DriverPostgres,
		Host:        env("TESTDB_PG_HOST", "127.0.0.1"),
		Port:        envInt("TESTDB_PG_PORT", 5432),
		Name:        name,
		User:        env("TESTDB_PG_USER", "postgres"),
		Password:    os.Getenv("TESTDB_PG_PASSWORD"),
		Pool: providers.PoolConfig{
			ConnectTimeout: 10 * time.Second, PoolSize: providers.DefaultPoolSize,
			MaxOverflow: providers.DefaultMaxOverflow, PoolTimeout: providers.DefaultPoolTimeout,
			PoolRecycle: providers.DefaultPoolRecycle, ApplicationName: "pipeline_test",
		},
	}
}

// OpenMySQL opens a plain admin-free *sql.DB on cfg (utf8mb4, zero dates kept as
// raw values, LOAD DATA LOCAL allowed). Tests that exercise the factory should
// use the factory instead; this is for fixtures.
func OpenMySQL(cfg providers.DBConfig) (*sql.DB, error) {
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = cfg.Addr()
	mc.User = cfg.User
	mc.Passwd = cfg.Password
	mc.DBName = cfg.Name
	mc.Collation = "utf8mb4_general_ci"
	mc.AllowNativePasswords = true
	mc.AllowAllFiles = true
	mc.MultiStatements = true
	mc.Timeout = 10 * time.Second
	mc.Params = map[string]string{"sql_mode": "''"}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(conn), nil
}

// MySQL creates a fresh database on the test MariaDB, returns a fixture handle
// on it and its config, and drops it when the test ends.
func MySQL(t testing.TB, prefix string) (*sql.DB, providers.DBConfig) {
	t.Helper()
	name := Name(prefix)
	admin, err := OpenMySQL(MySQLConfig("", catalog.DatabaseReplication))
	if err != nil {
		t.Fatalf("testdb: open MariaDB: %v; %s", err, howToStart)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		t.Fatalf("testdb: MariaDB at %s is not reachable: %v; %s", MySQLConfig("", "").Addr(), err, howToStart)
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"); err != nil {
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	cfg := MySQLConfig(name, catalog.DatabaseReplication)
	db, err := OpenMySQL(cfg)
	if err != nil {
		t.Fatalf("testdb: open %s: %v", name, err)
	}
	t.Cleanup(func() {
		db.Close()
		a, err := OpenMySQL(MySQLConfig("", catalog.DatabaseReplication))
		if err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
			return
		}
		defer a.Close()
		if _, err := a.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
	})
	return db, cfg
}

// Postgres creates a fresh database on the test PostgreSQL with the schemas
// raw, staging, intermediate and marts, returns a pool on it (search_path
// raw) and its config, and drops it when the test ends.
func Postgres(t testing.TB, prefix string) (*pgxpool.Pool, providers.DBConfig) {
	t.Helper()
	name := Name(prefix)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adminCfg := PostgresConfig("postgres", catalog.SchemaRaw)
	admin, err := pgx.Connect(ctx, pgURL(adminCfg))
	if err != nil {
		t.Fatalf("testdb: PostgreSQL at %s is not reachable: %v; %s", adminCfg.Addr(), err, howToStart)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, `CREATE DATABASE "`+name+`" ENCODING 'UTF8' TEMPLATE template0`); err != nil {
		t.Fatalf("testdb: create database %s: %v", name, err)
	}
	cfg := PostgresConfig(name, catalog.SchemaRaw)
	pool, err := pgxpool.New(ctx, pgURL(cfg)+"&search_path=raw")
	if err != nil {
		t.Fatalf("testdb: open %s: %v", name, err)
	}
	for _, s := range catalog.PostgresSchemaValues() {
		if _, err := pool.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS "`+string(s)+`"`); err != nil {
			t.Fatalf("testdb: create schema %s: %v", s, err)
		}
	}
	t.Cleanup(func() {
		pool.Close()
		c, err := pgx.Connect(context.Background(), pgURL(adminCfg))
		if err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
	})
	return pool, cfg
}

func pgURL(c providers.DBConfig) string {
	u := fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", c.User, c.Addr(), c.Name)
	if c.Password != "" {
		u = fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", c.User, c.Password, c.Addr(), c.Name)
	}
	return u
}
