package factory

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

const secret = "s3cr3t-XYZ"

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openMySQL opens cfg through the factory and closes it when the test ends.
func openMySQL(t *testing.T, cfg providers.DBConfig) *sql.DB {
	t.Helper()
	db, err := New().MySQL(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func mysqlErrNo(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

func TestPoolMapping(t *testing.T) {
	my := testdb.MySQLConfig("x", catalog.DatabaseReplication)
	my.Pool.ReadTimeout, my.Pool.WriteTimeout = 7*time.Second, 8*time.Second
	mc := mysqlConfig(my)
	assert.Equal(t, 10*time.Second, mc.Timeout)
	assert.Equal(t, 7*time.Second, mc.ReadTimeout)
	assert.Equal(t, 8*time.Second, mc.WriteTimeout)
	assert.False(t, mc.ParseTime, "zero dates must stay raw text")
	assert.False(t, mc.AllowAllFiles)
	assert.Equal(t, "utf8mb4_general_ci", mc.Collation)

	db := openMySQL(t, my)
	assert.Equal(t, 15, db.Stats().MaxOpenConnections, "MaxOpenConns = pool size + overflow")

	pg := testdb.PostgresConfig("x", catalog.SchemaStaging)
	pool, err := New().Postgres(pg)
	require.NoError(t, err)
	defer pool.Close()
	pc := pool.Config()
	assert.Equal(t, int32(15), pc.MaxConns)
	assert.Equal(t, int32(0), pc.MinConns)
	assert.Equal(t, 1800*time.Second, pc.MaxConnLifetime)
	assert.Equal(t, 5*time.Minute, pc.MaxConnIdleTime)
	assert.Equal(t, 10*time.Second, pc.ConnConfig.ConnectTimeout)
	assert.Equal(t, `"staging"`, pc.ConnConfig.RuntimeParams["search_path"])
	assert.Equal(t, "pipeline_test", pc.ConnConfig.RuntimeParams["application_name"])
	assert.Equal(t, int32(0), pool.Stat().TotalConns(), "no eager connection")
}

func TestBadConfigIsRejected(t *testing.T) {
	wrongDriver := testdb.MySQLConfig("x", catalog.DatabaseReplication)
	_, err := New().Postgres(wrongDriver)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `want "postgres"`)

	noPool := testdb.MySQLConfig("x", catalog.DatabaseReplication)
	noPool.Pool.PoolSize, noPool.Pool.MaxOverflow = 0, 0
	_, err = New().MySQL(noPool)
	require.Error(t, err, "MaxOpenConns 0 would mean unlimited")
	assert.Contains(t, err.Error(), "pool_size")
}

// The constructors point at a listener that counts connection attempts:
// nothing may dial it, neither the constructor nor a pool's background
// warm-up (pgxpool connects eagerly when MinConns > 0).
func TestConstructorsDoNoNetworkIO(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var dials atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dials.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	my := testdb.MySQLConfig("x", catalog.DatabaseSource)
	my.Port = port
	db, err := New().MySQL(my)
	require.NoError(t, err)
	defer db.Close()

	pg := testdb.PostgresConfig("x", catalog.SchemaRaw)
	pg.Port = port
	pool, err := New().Postgres(pg)
	require.NoError(t, err)
	defer pool.Close()

	time.Sleep(200 * time.Millisecond) // room for a background dial to show
	assert.Zero(t, dials.Load(), "a constructor or its pool connected")
	assert.Equal(t, 0, db.Stats().OpenConnections)
	assert.Zero(t, pool.Stat().TotalConns())
}

func TestPasswordNeverInErrorsOrLogs(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)

	refusedMy := testdb.MySQLConfig("x", catalog.DatabaseSource)
	refusedMy.Port, refusedMy.Password = 1, secret
	badPassMy := testdb.MySQLConfig("", catalog.DatabaseReplication)
	badPassMy.User, badPassMy.Password = "pipeline_no_such_user", secret
	refusedPG := testdb.PostgresConfig("x", catalog.SchemaRaw)
	refusedPG.Port, refusedPG.Password = 1, secret
	noDBPG := testdb.PostgresConfig("pipeline_test_no_such_db", catalog.SchemaRaw)
	noDBPG.Password = secret
	for _, c := range []providers.DBConfig{refusedMy, badPassMy, refusedPG, noDBPG} {
		c.Pool.ConnectTimeout = 3 * time.Second
		t.Run(c.Label()+"_"+c.Addr()+"_"+c.User, func(t *testing.T) {
			ctx := ctxT(t)
			var errs []error
			if c.Driver == catalog.DriverMySQL {
				db := openMySQL(t, c)
				errs = append(errs, MySQLHook(db, c).OnStart(ctx), PingMySQL(ctx, db, c))
				_, _, err := ProbeMySQL(ctx, db, c)
				errs = append(errs, err)
				_, err = db.ExecContext(ctx, "SELECT 1")
				errs = append(errs, err)
			} else {
				pool, err := New().Postgres(c)
				require.NoError(t, err)
				defer pool.Close()
				errs = append(errs, PostgresHook(pool, c).OnStart(ctx), PingPostgres(ctx, pool, c))
				_, _, err = ProbePostgres(ctx, pool, c)
				errs = append(errs, err)
				_, err = pool.Exec(ctx, "SELECT 1")
				errs = append(errs, err)
			}
			for i, err := range errs {
				require.Error(t, err, "call %d", i)
				assert.NotContains(t, err.Error(), secret, "call %d", i)
				assert.NotContains(t, fmtAll(err), secret, "call %d", i)
			}
			assert.Contains(t, errs[0].Error(), "ping "+c.Label()+" at "+c.Addr()+": ")
		})
	}
	assert.NotContains(t, logs.String(), secret)
}

// fmtAll renders err with every verb a careless caller might use.
func fmtAll(err error) string {
	var b strings.Builder
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		b.WriteString(strings.ReplaceAll(f, "%", "") + ":")
		b.WriteString(fmt.Sprintf(f, err))
	}
	return b.String()
}

func TestSourceSessionsAreReadOnly(t *testing.T) {
	fixture, cfg := testdb.MySQL(t, "factory_ro")
	ctx := ctxT(t)
	_, err := fixture.ExecContext(ctx, "CREATE TABLE patient (PatNum BIGINT PRIMARY KEY, LName VARCHAR(100)) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = fixture.ExecContext(ctx, "INSERT INTO patient VALUES (1, 'Smith'), (2, 'Jones')")
	require.NoError(t, err)

	cfg.Database, cfg.ReadOnly = catalog.DatabaseSource, true
	src := openMySQL(t, cfg)

	writes := []string{
		"INSERT INTO patient VALUES (3, 'New')",
		"UPDATE patient SET LName = 'X' WHERE PatNum = 1",
		"DELETE FROM patient WHERE PatNum = 2",
		"REPLACE INTO patient VALUES (1, 'Y')",
		"CREATE TABLE intruder (id INT)",
		"CREATE TEMPORARY TABLE scratch (id INT)",
		"ALTER TABLE patient ADD COLUMN x INT",
		"TRUNCATE TABLE patient",
		"DROP TABLE patient",
		"SELECT * FROM patient FOR UPDATE",
	}
	// Hold several connections at once so each is a distinct pooled session.
	const n = 4
	ids := map[int64]bool{}
	for i := range n {
		conn, err := src.Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		var id, ro int64
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT CONNECTION_ID(), @@tx_read_only").Scan(&id, &ro))
		assert.Equal(t, int64(1), ro, "connection %d", i)
		ids[id] = true
		for _, q := range writes {
			_, err := conn.ExecContext(ctx, q)
			require.Error(t, err, "connection %d: %s", i, q)
			assert.Equal(t, uint16(1792), mysqlErrNo(err), "connection %d: %s: %v", i, q, err)
		}
		var count int
		require.NoError(t, conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM patient").Scan(&count))
		assert.Equal(t, 2, count, "reads still work")
	}
	assert.Len(t, ids, n, "every check ran on its own connection")

	var rows, tables int
	var names string
	require.NoError(t, fixture.QueryRowContext(ctx, "SELECT COUNT(*), GROUP_CONCAT(LName ORDER BY PatNum) FROM patient").Scan(&rows, &names))
	assert.Equal(t, 2, rows)
	assert.Equal(t, "Smith,Jones", names)
	require.NoError(t, fixture.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&tables))
	assert.Equal(t, 1, tables, "no table created")
}

// Each role's sessions are set up by the factory alone, on every new
// connection: the source returns values as stored (a latin1 byte stays one
// byte), the replica writer keeps a 0 in an AUTO_INCREMENT column and
// checks no foreign keys, and every role reads TIMESTAMPs in UTC.
func TestMySQLSessionsPerRole(t *testing.T) {
	fixture, cfg := testdb.MySQL(t, "factory_roles")
	ctx := ctxT(t)
	_, err := fixture.ExecContext(ctx, "CREATE TABLE t (Id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, L VARCHAR(5) CHARACTER SET latin1 NOT NULL) ENGINE=InnoDB")
	require.NoError(t, err)
	_, err = fixture.ExecContext(ctx, "INSERT INTO t (L) VALUES (_latin1 X'E9')")
	require.NoError(t, err)

	type session struct {
		mode, tz, results string
		fk                int
	}
	cases := []struct {
		role    catalog.DatabaseType
		want    session
		latin1E string // hex of the bytes of 'é' read from the latin1 column
	}{
		{catalog.DatabaseSource, session{SessionSQLMode, SessionTimeZone, "binary", 1}, "E9"},
		{catalog.DatabaseReplication, session{ReplicaSQLMode, SessionTimeZone, "utf8mb4", 0}, "C3A9"},
	}
	for _, c := range cases {
		t.Run(string(c.role), func(t *testing.T) {
			rc := cfg
			rc.Database, rc.ReadOnly = c.role, c.role == catalog.DatabaseSource
			db := openMySQL(t, rc)
			db.SetMaxIdleConns(0) // every query below on a fresh connection
			var got session
			require.NoError(t, db.QueryRowContext(ctx, "SELECT @@sql_mode, @@time_zone, @@character_set_results, @@foreign_key_checks").
				Scan(&got.mode, &got.tz, &got.results, &got.fk))
			assert.Equal(t, c.want, got)
			var l []byte
			require.NoError(t, db.QueryRowContext(ctx, "SELECT L FROM t").Scan(&l))
			assert.Equal(t, c.latin1E, fmt.Sprintf("%X", l))
		})
	}

	// The replica writer keeps a zero key as the source holds it.
	db := openMySQL(t, cfg)
	_, err = db.ExecContext(ctx, "INSERT INTO t (Id, L) VALUES (0, 'z')")
	require.NoError(t, err)
	var zero int
	require.NoError(t, db.QueryRowContext(ctx, "SELECT COUNT(*) FROM t WHERE Id = 0").Scan(&zero))
	assert.Equal(t, 1, zero, "NO_AUTO_VALUE_ON_ZERO: 0 stays 0")
}

func TestPostgresReadOnlyAndSessionParams(t *testing.T) {
	_, cfg := testdb.Postgres(t, "factory_pg")
	ctx := ctxT(t)
	writer, err := New().Postgres(cfg)
	require.NoError(t, err)
	defer writer.Close()
	var searchPath, app string
	require.NoError(t, writer.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('application_name')").Scan(&searchPath, &app))
	assert.Equal(t, `raw`, strings.Trim(searchPath, `"`))
	assert.Equal(t, "pipeline_test", app)
	_, err = writer.Exec(ctx, "CREATE TABLE t (id int)") // lands in raw through search_path
	require.NoError(t, err)
	var schema string
	require.NoError(t, writer.QueryRow(ctx, "SELECT table_schema FROM information_schema.tables WHERE table_name = 't'").Scan(&schema))
	assert.Equal(t, "raw", schema)

	cfg.ReadOnly = true
	reader, err := New().Postgres(cfg)
	require.NoError(t, err)
	defer reader.Close()
	_, err = reader.Exec(ctx, "INSERT INTO t VALUES (1)")
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "25006", pgErr.Code, "read_only_sql_transaction")
}

func TestMySQLSessionKeepsEveryValue(t *testing.T) {
	_, cfg := testdb.MySQL(t, "factory_values")
	ctx := ctxT(t)
	w := openMySQL(t, cfg)
	_, err := w.ExecContext(ctx, `CREATE TABLE src (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL, s VARCHAR(5)) ENGINE=MyISAM`)
	require.NoError(t, err)
	_, err = w.ExecContext(ctx, `CREATE TABLE dst LIKE src`)
	require.NoError(t, err)
	want := [][]string{
		{"1", "0000-00-00", "0000-00-00 00:00:00", "0000-00-00 00:00:00", "😀é"},
		{"2", "2020-00-15", "2020-02-30 10:00:00", "2021-03-28 01:30:00", "abc"},
		{"3", "2020-02-31", "1000-01-01 00:00:00", "2021-10-31 01:30:00", ""},
	}
	for _, r := range want {
		_, err := w.ExecContext(ctx, "INSERT INTO src VALUES (?, ?, ?, ?, ?)", r[0], r[1], r[2], r[3], r[4])
		require.NoError(t, err, "write %v", r)
	}

	var mode, tz, cs string
	require.NoError(t, w.QueryRowContext(ctx, "SELECT @@sql_mode, @@time_zone, @@character_set_connection").Scan(&mode, &tz, &cs))
	assert.Equal(t, ReplicaSQLMode, mode, "w is a replication-role session")
	assert.Equal(t, SessionTimeZone, tz)
	assert.Equal(t, "utf8mb4", cs)

	// Read through a read-only source session as raw bytes, over the text
	// protocol (no arguments) and the binary one (a placeholder), and copy
	// the first read back into dst.
	rcfg := cfg
	rcfg.Database, rcfg.ReadOnly = catalog.DatabaseSource, true
	r := openMySQL(t, rcfg)
	reads := []struct {
		protocol string
		query    string
		args     []any
	}{
		{"text", "SELECT id, d, dt, ts, s FROM src ORDER BY id", nil},
		{"binary", "SELECT id, d, dt, ts, s FROM src WHERE id > ? ORDER BY id", []any{0}},
	}
	for n, rd := range reads {
		rows, err := r.QueryContext(ctx, rd.query, rd.args...)
		require.NoError(t, err, rd.protocol)
		var got [][]string
		for rows.Next() {
			vals := make([]any, 5)
			ptrs := make([]any, 5)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			row := make([]string, 5)
			for i, v := range vals {
				if i == 0 {
					row[i] = fmt.Sprint(v)
					continue
				}
				b, ok := v.([]byte)
				require.True(t, ok, "%s: column %d is %T, want raw []byte (never time.Time)", rd.protocol, i, v)
				row[i] = string(b)
			}
			got = append(got, row)
			if n == 0 {
				_, err := w.ExecContext(ctx, "INSERT INTO dst VALUES (?, ?, ?, ?, ?)", vals...)
				require.NoError(t, err)
			}
		}
		require.NoError(t, rows.Err())
		assert.Equal(t, want, got, rd.protocol)
	}

	var diff int
	require.NoError(t, w.QueryRowContext(ctx, `SELECT COUNT(*) FROM src LEFT JOIN dst
		ON src.id = dst.id AND BINARY src.d = BINARY dst.d AND BINARY src.dt = BINARY dst.dt
		AND src.ts <=> dst.ts AND UNIX_TIMESTAMP(src.ts) <=> UNIX_TIMESTAMP(dst.ts) AND BINARY src.s = BINARY dst.s
		WHERE dst.id IS NULL`).Scan(&diff))
	assert.Equal(t, 0, diff, "replica copy differs from source")

	// Strict: a value that does not fit is an error, never a silent truncation.
	_, err = w.ExecContext(ctx, "INSERT INTO dst (id, s) VALUES (9, 'toolong')")
	assert.Equal(t, uint16(1406), mysqlErrNo(err), "%v", err)
}

func TestMySQLReadTimeout(t *testing.T) {
	_, cfg := testdb.MySQL(t, "factory_rt")
	cfg.Pool.ReadTimeout = 500 * time.Millisecond
	db := openMySQL(t, cfg)
	start := time.Now()
	_, err := db.ExecContext(ctxT(t), "SELECT SLEEP(3)")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 3*time.Second, "read timeout did not cut the query")
}

func TestLoadDataLocalReaderOnReplicaOnly(t *testing.T) {
	_, cfg := testdb.MySQL(t, "factory_infile")
	ctx := ctxT(t)
	w := openMySQL(t, cfg)
	_, err := w.ExecContext(ctx, "CREATE TABLE t (id INT, s VARCHAR(10))")
	require.NoError(t, err)
	name := "factory_test_" + cfg.Name
	mysql.RegisterReaderHandler(name, func() io.Reader { return strings.NewReader("1\ta\n2\t0000\n") })
	defer mysql.DeregisterReaderHandler(name)
	res, err := w.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE t")
	require.NoError(t, err)
	n, _ := res.RowsAffected()
	assert.Equal(t, int64(2), n)

	cfg.Database, cfg.ReadOnly = catalog.DatabaseSource, true
	r := openMySQL(t, cfg)
	_, err = r.ExecContext(ctx, "LOAD DATA LOCAL INFILE 'Reader::"+name+"' INTO TABLE t")
	assert.Equal(t, uint16(1792), mysqlErrNo(err), "%v", err)
	// No file on disk may be sent: AllowAllFiles is off.
	_, err = w.ExecContext(ctx, "LOAD DATA LOCAL INFILE '/etc/hostname' INTO TABLE t")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not registered")
}

func TestHooksAndProbe(t *testing.T) {
	ctx := ctxT(t)
	_, mcfg := testdb.MySQL(t, "factory_hook")
	db := openMySQL(t, mcfg)
	hook := MySQLHook(db, mcfg)
	require.NoError(t, hook.OnStart(ctx))
	v, rtt, err := ProbeMySQL(ctx, db, mcfg)
	require.NoError(t, err)
	assert.Contains(t, v, "MariaDB")
	assert.Positive(t, rtt)
	require.NoError(t, hook.OnStop(ctx))
	assert.Error(t, db.PingContext(ctx), "OnStop closes the pool")

	_, pcfg := testdb.Postgres(t, "factory_hook")
	pool, err := New().Postgres(pcfg)
	require.NoError(t, err)
	phook := PostgresHook(pool, pcfg)
	require.NoError(t, phook.OnStart(ctx))
	v, rtt, err = ProbePostgres(ctx, pool, pcfg)
	require.NoError(t, err)
	assert.Regexp(t, `^\d+\.\d+`, v)
	assert.Positive(t, rtt)
	require.NoError(t, phook.OnStop(ctx))
	assert.Error(t, pool.Ping(ctx), "OnStop closes the pool")
}

func TestAcquireHonoursPoolTimeout(t *testing.T) {
	ctx := ctxT(t)
	_, mcfg := testdb.MySQL(t, "factory_acq")
	mcfg.Pool.PoolSize, mcfg.Pool.MaxOverflow = 1, 0
	db := openMySQL(t, mcfg)
	held, err := AcquireMySQL(ctx, db, time.Second)
	require.NoError(t, err)
	_, err = AcquireMySQL(ctx, db, 200*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "pool timeout 200ms")
	require.NoError(t, held.Close())
	again, err := AcquireMySQL(ctx, db, time.Second)
	require.NoError(t, err, "freed connection is reusable")
	again.Close()

	_, pcfg := testdb.Postgres(t, "factory_acq")
	pcfg.Pool.PoolSize, pcfg.Pool.MaxOverflow = 1, 0
	pool, err := New().Postgres(pcfg)
	require.NoError(t, err)
	defer pool.Close()
	pheld, err := AcquirePostgres(ctx, pool, time.Second)
	require.NoError(t, err)
	_, err = AcquirePostgres(ctx, pool, 200*time.Millisecond)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "pool timeout 200ms")
	pheld.Release()
}
