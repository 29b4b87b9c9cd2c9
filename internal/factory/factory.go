// Package factory opens database pools from providers.DBConfig: MySQL through
// go-sql-driver, PostgreSQL through pgxpool. Constructors do no network I/O;
// MySQLHook/PostgresHook ping on start and close on stop.
//
// Pool mapping (providers.PoolConfig → driver; defaults 5 / 10 / 30 s / 1800 s):
//
//	PoolConfig      MySQL (*sql.DB)                  PostgreSQL (*pgxpool.Pool)
//	PoolSize        MaxIdleConns = 5                 (no idle-count knob; see idle time)
//	+MaxOverflow    MaxOpenConns = 5+10 = 15         MaxConns = 5+10 = 15, MinConns = 0
//	PoolRecycle     ConnMaxLifetime = 1800 s         MaxConnLifetime = 1800 s
//	(derived)       ConnMaxIdleTime = min(recycle, 5 min)   MaxConnIdleTime = same
//	ConnectTimeout  Config.Timeout (dial + handshake) ConnConfig.ConnectTimeout
//	ReadTimeout     Config.ReadTimeout (per read)    none: bound queries with ctx
//	WriteTimeout    Config.WriteTimeout (per write)  none: bound queries with ctx
//	PoolTimeout     no driver knob in either: a context deadline on acquiring a
//	                connection — AcquireMySQL / AcquirePostgres, i.e.
//	                context.WithTimeout(ctx, cfg.Pool.PoolTimeout) around db.Conn/pool.Acquire.
//
// MinConns = 0 means the pool never connects eagerly. The idle time limit
// hands idle connections back to the clinic's server after five minutes.
//
// MySQL sessions are set up here, once per new connection, per role (the
// data path sets no session variable of its own):
//
//   - utf8mb4 (SET NAMES utf8mb4 COLLATE utf8mb4_general_ci).
//   - ParseTime is off: DATE/DATETIME/TIMESTAMP come back as raw bytes
//     ("0000-00-00 00:00:00" stays exactly that). The data path reads every
//     value as text / sql.RawBytes and writes the same text back; nothing is
//     converted to time.Time (which would turn a zero date into 0001-01-01).
//   - sql_mode = SessionSQLMode: strict (a value that does not fit is an
//     error, never a silent truncation), ALLOW_INVALID_DATES and no
//     NO_ZERO_DATE/NO_ZERO_IN_DATE, so the replica stores '0000-00-00' and
//     '2020-00-15' exactly as the source holds them.
//   - time_zone = SessionTimeZone ('+00:00'): TIMESTAMP values are read and
//     written in UTC on both sides, so they copy exactly (a local zone with
//     DST would make one autumn hour ambiguous and lose it). TIMESTAMP text is
//     therefore UTC; DATETIME is zone-less and unaffected.
//   - Source role (cfg.Database source): character_set_results = binary.
//     Values come back as the server stores them, never converted to UTF-8:
//     a latin1 column's 'é' arrives as the byte E9 and replicate writes that
//     byte into the replica's latin1 column through LOAD DATA … CHARACTER SET
//     binary, so the copy is byte for byte. (Converted to UTF-8 it would land
//     as two latin1 characters.) Metadata (information_schema, SHOW CREATE
//     TABLE) is UTF-8 text either way. Anyone reading source text for
//     display must convert it by the column's character set.
//   - Replication role (cfg.Database replication), shared by the replicate
//     writer and the load reader: sql_mode = ReplicaSQLMode, which adds
//     NO_AUTO_VALUE_ON_ZERO (a 0 in an AUTO_INCREMENT column is kept as 0, as
//     the source holds it), and foreign_key_checks = 0 (rows arrive in key
//     chunks, not in dependency order). Results stay utf8mb4: the load reads
//     text as UTF-8, latin1 columns converted by the server. Neither setting
//     changes what a SELECT returns, so the reader needs no session of its own.
//   - Source (cfg.ReadOnly): SET SESSION TRANSACTION READ ONLY on every new
//     connection. On MariaDB 10.11 (@@tx_read_only=1) this rejects INSERT,
//     UPDATE, DELETE, REPLACE, LOAD DATA, CREATE/ALTER/DROP/TRUNCATE/RENAME
//     TABLE, CREATE TEMPORARY TABLE, CREATE DATABASE, CREATE VIEW, CREATE USER
//     and SELECT … FOR UPDATE with error 1792. It does NOT block LOCK TABLES …
//     READ, FLUSH TABLES [WITH READ LOCK], ANALYZE TABLE, SET GLOBAL, GET_LOCK,
//     nor a session switching itself back with SET SESSION TRANSACTION READ
//     WRITE: the source account must be granted SELECT only (no RELOAD, LOCK
//     TABLES, SUPER). The session setting is the guard against our own bugs;
//     the grant is the guarantee.
//   - LOAD DATA LOCAL INFILE 'Reader::<name>' works on the replica through
//     mysql.RegisterReaderHandler (the server must have local_infile=ON);
//     AllowAllFiles stays off everywhere: no file on disk can be sent.
//
// PostgreSQL sessions: search_path is cfg.Schema alone (RuntimeParams, so it
// is set in the startup packet of every connection), application_name is
// cfg.Pool.ApplicationName, and cfg.ReadOnly sets
// default_transaction_read_only=on.
//
// TLS: cfg.TLS (the *_SSL_* variables) maps onto go-sql-driver's Config.TLS
// and pgx's sslmode/sslrootcert/sslcert/sslkey; see tls.go for the table. A
// connection that fails for a TLS reason says so, naming the database, host
// and the variable to change (explainTLS).
//
// Passwords: the MySQL password lives only in mysql.Config.Passwd and the
// PostgreSQL one only in ConnConfig.Password (the connection string parsed
// never contains it), so no driver error can quote it. Never log FormatDSN().
package factory

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Session settings of MySQL connections; see the package comment.
const (
	SessionSQLMode   = "STRICT_ALL_TABLES,ALLOW_INVALID_DATES,NO_ENGINE_SUBSTITUTION"
	ReplicaSQLMode   = "NO_AUTO_VALUE_ON_ZERO," + SessionSQLMode // in the order the server prints it
	SessionTimeZone  = "+00:00"
	SessionCharset   = "utf8mb4"
	SessionCollation = "utf8mb4_general_ci"
)

// maxIdleTime bounds how long an idle connection is kept (capped by PoolRecycle).
const maxIdleTime = 5 * time.Minute

// Factory opens pools. It is stateless; one is shared by the whole app.
type Factory struct{}

// New returns a Factory.
func New() *Factory { return &Factory{} }

// MySQL opens a *sql.DB for a MySQL/MariaDB config without connecting.
func (f *Factory) MySQL(cfg providers.DBConfig) (*sql.DB, error) {
	if err := checkDriver(cfg, catalog.DriverMySQL); err != nil {
		return nil, err
	}
	mc := mysqlConfig(cfg)
	if err := setMySQLTLS(mc, cfg); err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("configure mysql connector for %s: %w", cfg, err)
	}
	var c driver.Connector = conn
	if cfg.ReadOnly {
		c = readOnlyConnector{conn}
	}
	db := sql.OpenDB(c)
	p := cfg.Pool
	db.SetMaxIdleConns(p.PoolSize)
	db.SetMaxOpenConns(p.PoolSize + p.MaxOverflow)
	db.SetConnMaxLifetime(p.PoolRecycle)
	db.SetConnMaxIdleTime(idleTime(p.PoolRecycle))
	return db, nil
}

// mysqlConfig is the go-sql-driver config of cfg. It holds the password:
// never log it or its FormatDSN().
func mysqlConfig(cfg providers.DBConfig) *mysql.Config {
	mc := mysql.NewConfig()
	mc.Net = "tcp"
	mc.Addr = cfg.Addr()
	mc.User = cfg.User
	mc.Passwd = cfg.Password
	mc.DBName = cfg.Name
	mc.Collation = SessionCollation
	mc.Timeout = cfg.Pool.ConnectTimeout
	mc.ReadTimeout = cfg.Pool.ReadTimeout
	mc.WriteTimeout = cfg.Pool.WriteTimeout
	mc.ParseTime = false // zero dates stay visible as raw text
	mc.AllowAllFiles = false
	mc.MultiStatements = false
	mc.InterpolateParams = false
	mc.Logger = driverLogger{}
	mc.Params = sessionParams(cfg)
	if name := appName(cfg); !strings.ContainsAny(name, ",:") {
		mc.ConnectionAttributes = "program_name:" + name
	}
	return mc
}

// sessionParams are the session variables set on every new connection of
// cfg's role (the driver sends them as SET statements after connecting).
func sessionParams(cfg providers.DBConfig) map[string]string {
	p := map[string]string{
		"sql_mode":  "'" + SessionSQLMode + "'",
		"time_zone": "'" + SessionTimeZone + "'",
	}
	switch cfg.Database {
	case catalog.DatabaseSource:
		p["character_set_results"] = "binary"
	case catalog.DatabaseReplication:
		p["sql_mode"] = "'" + ReplicaSQLMode + "'"
		p["foreign_key_checks"] = "0"
	}
	return p
}

// readOnlyConnector makes every new source connection read-only at the
// server before database/sql ever hands it out.
type readOnlyConnector struct{ driver.Connector }

func (c readOnlyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	ex, ok := conn.(driver.ExecerContext)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("make session read-only: driver connection %T cannot execute statements", conn)
	}
	// Works on MariaDB ≥ 10.0 and MySQL ≥ 5.6.5 alike (tx_read_only vs
	// transaction_read_only differ by version; this statement does not).
	if _, err := ex.ExecContext(ctx, "SET SESSION TRANSACTION READ ONLY", nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("make session read-only: %w", err)
	}
	return conn, nil
}

// Postgres opens a pgxpool for a PostgreSQL config without connecting.
func (f *Factory) Postgres(cfg providers.DBConfig) (*pgxpool.Pool, error) {
	if err := checkDriver(cfg, catalog.DriverPostgres); err != nil {
		return nil, err
	}
	pc, err := postgresConfig(cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("open postgres pool for %s: %w", cfg, err)
	}
	return pool, nil
}

// postgresConfig parses a password-free connection string and only then
// sets the password, so no parse error can contain it.
func postgresConfig(cfg providers.DBConfig) (*pgxpool.Config, error) {
	u := url.URL{Scheme: "postgres", User: url.User(cfg.User), Host: cfg.Addr(), Path: "/" + cfg.Name,
		RawQuery: postgresTLSParams(cfg).Encode()}
	pc, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		return nil, fmt.Errorf("parse postgres config for %s: %w", cfg, err)
	}
	pc.ConnConfig.Password = cfg.Password
	pc.ConnConfig.ConnectTimeout = cfg.Pool.ConnectTimeout
	rp := pc.ConnConfig.RuntimeParams
	rp["application_name"] = appName(cfg)
	if cfg.Schema != "" {
		rp["search_path"] = pgx.Identifier{string(cfg.Schema)}.Sanitize()
	}
	if cfg.ReadOnly {
		rp["default_transaction_read_only"] = "on"
	}
	p := cfg.Pool
	pc.MaxConns = int32(p.PoolSize + p.MaxOverflow)
	pc.MinConns = 0
	pc.MaxConnLifetime = p.PoolRecycle
	pc.MaxConnIdleTime = idleTime(p.PoolRecycle)
	return pc, nil
}

func checkDriver(cfg providers.DBConfig, want catalog.Driver) error {
	if cfg.Driver != want {
		return fmt.Errorf("open %s: driver is %q, want %q", cfg, cfg.Driver, want)
	}
	if cfg.Pool.PoolSize+cfg.Pool.MaxOverflow < 1 {
		return fmt.Errorf("open %s: pool size %d + max overflow %d allows no connection; set pool_size ≥ 1",
			cfg, cfg.Pool.PoolSize, cfg.Pool.MaxOverflow)
	}
	return nil
}

func idleTime(recycle time.Duration) time.Duration {
	if recycle > 0 && recycle < maxIdleTime {
		return recycle
	}
	return maxIdleTime
}

func appName(cfg providers.DBConfig) string {
	if cfg.Pool.ApplicationName != "" {
		return cfg.Pool.ApplicationName
	}
	return providers.DefaultApplicationName // a DBConfig built by hand, not by Settings
}

// driverLogger sends go-sql-driver's own messages (e.g. "closing bad idle
// connection") to the current default slog logger instead of stderr.
type driverLogger struct{}

func (driverLogger) Print(v ...any) {
	slog.Default().Warn(strings.TrimSpace(fmt.Sprint(v...)), "component", "mysql-driver")
}

// MySQLHook pings db on start (failing with the database's label and host,
// never its password) and closes it on stop.
func MySQLHook(db *sql.DB, cfg providers.DBConfig) fx.Hook {
	return fx.Hook{
		OnStart: func(ctx context.Context) error { return PingMySQL(ctx, db, cfg) },
		OnStop:  func(context.Context) error { return db.Close() },
	}
}

// PostgresHook pings pool on start and closes it on stop.
func PostgresHook(pool *pgxpool.Pool, cfg providers.DBConfig) fx.Hook {
	return fx.Hook{
		OnStart: func(ctx context.Context) error { return PingPostgres(ctx, pool, cfg) },
		OnStop:  func(context.Context) error { pool.Close(); return nil },
	}
}

// PingMySQL checks that db answers within cfg.Pool.ConnectTimeout; the
// error reads "ping <label> at <host:port>: …".
func PingMySQL(ctx context.Context, db *sql.DB, cfg providers.DBConfig) error {
	ctx, cancel := withTimeout(ctx, cfg.Pool.ConnectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return pingError(cfg, err)
	}
	return nil
}

// PingPostgres checks that pool answers within cfg.Pool.ConnectTimeout.
func PingPostgres(ctx context.Context, pool *pgxpool.Pool, cfg providers.DBConfig) error {
	ctx, cancel := withTimeout(ctx, cfg.Pool.ConnectTimeout)
	defer cancel()
	if err := pool.Ping(ctx); err != nil {
		return pingError(cfg, err)
	}
	return nil
}

// pingError names the database and host of a failed connection and, for a
// TLS failure, what failed and how to fix it (explainTLS).
func pingError(cfg providers.DBConfig, err error) error {
	return &PingError{Config: cfg, Err: explainTLS(cfg, err)}
}

// PingError is a database that did not answer a ping or probe: which one
// (so the CLI can name it and its variables) and the driver's error. Its
// text reads "ping <label> at <host:port>: …", never with the password.
type PingError struct {
	Config providers.DBConfig
	Err    error
}

func (e *PingError) Error() string {
	return fmt.Sprintf("ping %s at %s: %v", e.Config.Label(), e.Config.Addr(), e.Err)
}

func (e *PingError) Unwrap() error { return e.Err }

// ProbeMySQL returns the server version and the round-trip time of a
// trivial query on an already open connection (connect time excluded).
func ProbeMySQL(ctx context.Context, db *sql.DB, cfg providers.DBConfig) (version string, rtt time.Duration, err error) {
	ctx, cancel := withTimeout(ctx, cfg.Pool.ConnectTimeout)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return "", 0, pingError(cfg, err)
	}
	defer conn.Close()
	if err := conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return "", 0, pingError(cfg, err)
	}
	start := time.Now()
	if err := conn.PingContext(ctx); err != nil {
		return "", 0, pingError(cfg, err)
	}
	return version, time.Since(start), nil
}

// ProbePostgres returns the server version and round-trip time like ProbeMySQL.
func ProbePostgres(ctx context.Context, pool *pgxpool.Pool, cfg providers.DBConfig) (version string, rtt time.Duration, err error) {
	ctx, cancel := withTimeout(ctx, cfg.Pool.ConnectTimeout)
	defer cancel()
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return "", 0, pingError(cfg, err)
	}
	defer conn.Release()
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&version); err != nil {
		return "", 0, pingError(cfg, err)
	}
	start := time.Now()
	if err := conn.Ping(ctx); err != nil {
		return "", 0, pingError(cfg, err)
	}
	return version, time.Since(start), nil
}

// AcquireMySQL takes one connection from db, waiting at most poolTimeout
// (cfg.Pool.PoolTimeout; 0 waits as long as ctx allows). The deadline bounds
// only the wait: the returned connection lives until it is closed.
func AcquireMySQL(ctx context.Context, db *sql.DB, poolTimeout time.Duration) (*sql.Conn, error) {
	actx, cancel := withTimeout(ctx, poolTimeout)
	defer cancel()
	conn, err := db.Conn(actx)
	if err != nil {
		return nil, acquireError(ctx, poolTimeout, err)
	}
	return conn, nil
}

// AcquirePostgres takes one connection from pool like AcquireMySQL.
func AcquirePostgres(ctx context.Context, pool *pgxpool.Pool, poolTimeout time.Duration) (*pgxpool.Conn, error) {
	actx, cancel := withTimeout(ctx, poolTimeout)
	defer cancel()
	conn, err := pool.Acquire(actx)
	if err != nil {
		return nil, acquireError(ctx, poolTimeout, err)
	}
	return conn, nil
}

func acquireError(parent context.Context, poolTimeout time.Duration, err error) error {
	if parent.Err() == nil && poolTimeout > 0 && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("acquire connection: no connection free within pool timeout %s (raise pool_size/max_overflow or pool_timeout): %w", poolTimeout, err)
	}
	return fmt.Errorf("acquire connection: %w", err)
}

func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return context.WithCancel(ctx)
}
