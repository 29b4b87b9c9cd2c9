package manager_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// recorder collects the attempts a manager reports.
type recorder struct {
	mu       sync.Mutex
	attempts []manager.Attempt
	then     func(manager.Attempt) // optional extra action per attempt
}

func (r *recorder) observe(a manager.Attempt) {
	r.mu.Lock()
	r.attempts = append(r.attempts, a)
	r.mu.Unlock()
	if r.then != nil {
		r.then(a)
	}
}

func (r *recorder) all() []manager.Attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]manager.Attempt(nil), r.attempts...)
}

func (r *recorder) failed() []manager.Attempt {
	var out []manager.Attempt
	for _, a := range r.all() {
		if a.Err != nil {
			out = append(out, a)
		}
	}
	return out
}

// fast are test options: real retries, tiny waits.
func fast(r *recorder) manager.Options {
	o := manager.DefaultOptions()
	o.BaseBackoff, o.MaxBackoff, o.RateLimit = 5*time.Millisecond, 50*time.Millisecond, 0
	o.PoolTimeout = 10 * time.Second
	o.Observe = r.observe
	return o
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openMySQL(t *testing.T, cfg providers.DBConfig) *sql.DB {
	t.Helper()
	db, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// execute runs one statement through m.Do.
func execute(ctx context.Context, m *manager.Manager, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := m.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var err error
		res, err = conn.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// eventually polls cond every 20 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func myCount(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.QueryRow(q, args...).Scan(&n))
	return n
}

func killMySQL(t *testing.T, admin *sql.DB, id int64) {
	t.Helper()
	_, err := admin.Exec(fmt.Sprintf("KILL CONNECTION %d", id))
	require.NoError(t, err)
	eventually(t, fmt.Sprintf("connection %d to go", id), func() bool {
		return myCount(t, admin, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id) == 0
	})
}

func TestMySQLBatchSurvivesKilledConnection(t *testing.T) {
	t.Parallel()
	fixture, cfg := testdb.MySQL(t, "mgr_kill")
	ctx := ctxT(t)
	_, err := fixture.Exec("CREATE TABLE batch (step INT PRIMARY KEY, conn_id BIGINT NOT NULL)")
	require.NoError(t, err)
	rec := &recorder{}
	m := manager.New(openMySQL(t, cfg), fast(rec))
	defer m.Close()

	const steps, killBefore = 6, 3
	var first int64
	for step := range steps {
		if step == killBefore {
			killMySQL(t, fixture, first)
		}
		_, err := execute(ctx, m, "REPLACE INTO batch VALUES (?, CONNECTION_ID())", step)
		require.NoError(t, err, "step %d", step)
		if step == 0 {
			require.NoError(t, fixture.QueryRow("SELECT conn_id FROM batch WHERE step = 0").Scan(&first))
		}
	}

	rows, err := fixture.Query("SELECT step, conn_id FROM batch ORDER BY step")
	require.NoError(t, err)
	ids := map[int]int64{}
	for rows.Next() {
		var s int
		var id int64
		require.NoError(t, rows.Scan(&s, &id))
		ids[s] = id
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, steps, "every statement of the batch ran")
	for s := range steps {
		if s < killBefore {
			assert.Equal(t, first, ids[s], "step %d before the kill", s)
		} else {
			assert.NotEqual(t, first, ids[s], "step %d after the kill ran on a new connection", s)
			assert.Equal(t, ids[killBefore], ids[s], "step %d reuses the new connection", s)
		}
	}
	failed := rec.failed()
	require.Len(t, failed, 1, "exactly the first statement after the kill failed")
	assert.True(t, failed[0].ConnectionLost, "%v", failed[0].Err)
	assert.True(t, failed[0].Retry)
	assert.Len(t, rec.all(), steps+1)
	t.Logf("error seen after the kill: %v", failed[0].Err)
}

func TestMySQLStatementKilledMidQueryIsRetried(t *testing.T) {
	t.Parallel()
	fixture, cfg := testdb.MySQL(t, "mgr_kill_mid")
	ctx := ctxT(t)
	rec := &recorder{}
	m := manager.New(openMySQL(t, cfg), fast(rec))
	defer m.Close()

	var ids []int64
	err := m.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var id int64
		if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
		if len(ids) > 1 {
			return nil
		}
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			eventually(t, "the sleep to start", func() bool {
				return myCount(t, fixture, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'SELECT SLEEP%'", id) == 1
			})
			killMySQL(t, fixture, id)
		}()
		_, err := conn.ExecContext(ctx, "SELECT SLEEP(20)")
		<-killed
		return err
	})
	require.NoError(t, err)
	require.Len(t, ids, 2)
	assert.NotEqual(t, ids[0], ids[1], "retry ran on a fresh connection")
	failed := rec.failed()
	require.Len(t, failed, 1)
	assert.True(t, failed[0].ConnectionLost, "%v", failed[0].Err)
	t.Logf("error seen mid-query: %v", failed[0].Err)
}

func TestMySQLNonRetryableErrorRunsOnce(t *testing.T) {
	t.Parallel()
	_, cfg := testdb.MySQL(t, "mgr_syntax")
	rec := &recorder{}
	m := manager.New(openMySQL(t, cfg), fast(rec))
	defer m.Close()
	_, err := execute(ctxT(t), m, "SELEC 1")
	var me *mysql.MySQLError
	require.ErrorAs(t, err, &me)
	assert.Equal(t, uint16(1064), me.Number)
	require.Len(t, rec.all(), 1, "a syntax error is not retried")
	assert.False(t, rec.all()[0].Retry)
	assert.False(t, rec.all()[0].ConnectionLost)
	assert.Equal(t, int64(1), m.Queries())
	_, err = execute(ctxT(t), m, "SELECT 1")
	require.NoError(t, err)
	assert.Equal(t, int64(2), m.Queries())
}

// A real lock wait timeout (1205) is retried on the same connection and the
// retry succeeds once the lock is gone.
func TestMySQLLockWaitTimeoutIsRetried(t *testing.T) {
	t.Parallel()
	fixture, cfg := testdb.MySQL(t, "mgr_lock")
	ctx := ctxT(t)
	_, err := fixture.Exec("CREATE TABLE counter (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
	require.NoError(t, err)
	_, err = fixture.Exec("INSERT INTO counter VALUES (1, 0)")
	require.NoError(t, err)
	holder, err := fixture.BeginTx(ctx, nil)
	require.NoError(t, err)
	_, err = holder.Exec("UPDATE counter SET v = 1 WHERE id = 1")
	require.NoError(t, err)

	rec := &recorder{then: func(a manager.Attempt) {
		if a.Number == 1 {
			assert.NoError(t, holder.Commit())
		}
	}}
	m := manager.New(openMySQL(t, cfg), fast(rec))
	defer m.Close()
	var ids []int64
	err = m.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var id int64
		if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return err
		}
		ids = append(ids, id)
		if _, err := conn.ExecContext(ctx, "SET SESSION innodb_lock_wait_timeout = 1"); err != nil {
			return err
		}
		_, err := conn.ExecContext(ctx, "UPDATE counter SET v = v + 10 WHERE id = 1")
		return err
	})
	require.NoError(t, err)
	attempts := rec.all()
	require.Len(t, attempts, 2)
	var me *mysql.MySQLError
	require.ErrorAs(t, attempts[0].Err, &me)
	assert.Equal(t, uint16(1205), me.Number)
	assert.False(t, attempts[0].ConnectionLost)
	assert.Equal(t, ids[0], ids[1], "a lock timeout keeps the connection")
	assert.Equal(t, int64(2), m.Queries(), "the try and its retry")
	assert.Equal(t, 11, myCount(t, fixture, "SELECT v FROM counter WHERE id = 1"))
}

func TestMySQLGivesUpAfterMaxRetries(t *testing.T) {
	t.Parallel()
	cfg := testdb.MySQLConfig("x", "replication")
	cfg.Port = 1 // nothing listens: connection refused every time
	rec := &recorder{}
	opts := fast(rec)
	opts.MaxRetries = 2
	m := manager.New(openMySQL(t, cfg), opts)
	defer m.Close()
	_, err := execute(ctxT(t), m, "SELECT 1")
	require.Error(t, err)
	assert.ErrorIs(t, err, syscall.ECONNREFUSED)
	assert.Contains(t, err.Error(), "gave up after 3 attempts")
	attempts := rec.all()
	require.Len(t, attempts, 3, "first try + MaxRetries")
	assert.Equal(t, int64(3), m.Queries(), "every attempt counts, failed ones included")
	for i, a := range attempts {
		assert.True(t, a.ConnectionLost, "attempt %d", i+1)
		assert.Equal(t, i < 2, a.Retry, "attempt %d", i+1)
	}
}

func TestRateLimitSpacesQueries(t *testing.T) {
	t.Parallel()
	_, cfg := testdb.MySQL(t, "mgr_rate")
	rec := &recorder{}
	opts := fast(rec)
	opts.RateLimit = 100 * time.Millisecond
	m := manager.New(openMySQL(t, cfg), opts)
	defer m.Close()
	ctx := ctxT(t)
	const n = 5
	start := time.Now()
	for range n {
		_, err := execute(ctx, m, "SELECT 1")
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, time.Since(start), (n-1)*opts.RateLimit)
	assert.Len(t, rec.all(), n)
	assert.Equal(t, int64(n), m.Queries())
}

func TestCancellationStopsWaiting(t *testing.T) {
	t.Parallel()
	_, cfg := testdb.MySQL(t, "mgr_cancel")
	db := openMySQL(t, cfg)

	t.Run("during backoff", func(t *testing.T) {
		rec := &recorder{}
		opts := fast(rec)
		opts.BaseBackoff, opts.MaxBackoff = 30*time.Second, 30*time.Second
		m := manager.New(db, opts)
		defer m.Close()
		ctx, cancel := context.WithCancel(ctxT(t))
		rec.then = func(manager.Attempt) { cancel() } // after the first attempt, before its backoff
		// A real deadlock is not reproducible on demand; the error value is
		// what the driver returns for one.
		err := m.Do(ctx, func(context.Context, *sql.Conn) error {
			return &mysql.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}
		})
		// Had the 15–30 s backoff run out instead, the error would come from
		// the next rate-limit wait and hold no MySQL error.
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorContains(t, err, "stop retrying after 1 attempts")
		var me *mysql.MySQLError
		assert.ErrorAs(t, err, &me, "the last error is kept")
		assert.Len(t, rec.all(), 1)
	})

	t.Run("during rate limit", func(t *testing.T) {
		rec := &recorder{}
		opts := fast(rec)
		opts.RateLimit = 30 * time.Second
		m := manager.New(db, opts)
		defer m.Close()
		_, err := execute(ctxT(t), m, "SELECT 1")
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(ctxT(t), 100*time.Millisecond)
		defer cancel()
		_, err = execute(ctx, m, "SELECT 1")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorContains(t, err, "wait for the rate limit", "cut short by the deadline, not run late")
		assert.Len(t, rec.all(), 1, "the second query never ran")
	})
}

func TestCloseReturnsTheConnection(t *testing.T) {
	t.Parallel()
	_, cfg := testdb.MySQL(t, "mgr_close")
	db := openMySQL(t, cfg)
	m := manager.New(db, fast(&recorder{}))
	_, err := execute(ctxT(t), m, "SELECT 1")
	require.NoError(t, err)
	assert.Equal(t, 1, db.Stats().InUse, "the connection is held between statements")
	require.NoError(t, m.Close())
	assert.Equal(t, 0, db.Stats().InUse)
}
