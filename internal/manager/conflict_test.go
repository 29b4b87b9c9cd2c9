package manager_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// Two managers lock two rows in opposite order: InnoDB picks one as the
// deadlock victim (1213); its manager retries and both transfers complete.
func TestMySQLRealDeadlockIsRetried(t *testing.T) {
	fixture, cfg := testdb.MySQL(t, "mgr_deadlock")
	ctx := ctxT(t)
	_, err := fixture.Exec("CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB")
	require.NoError(t, err)
	_, err = fixture.Exec("INSERT INTO acct VALUES (1, 0), (2, 0)")
	require.NoError(t, err)
	db := openMySQL(t, cfg)

	var both sync.WaitGroup // both hold their first lock before taking the second
	both.Add(2)
	var once [2]sync.Once
	recs := [2]*recorder{{}, {}}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, order := range [2][2]int{{1, 2}, {2, 1}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := manager.New(db, fast(recs[i]))
			defer m.Close()
			errs[i] = m.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
				tx, err := conn.BeginTx(ctx, nil)
				if err != nil {
					return err
				}
				defer tx.Rollback()
				if _, err := tx.ExecContext(ctx, "UPDATE acct SET v = v + 1 WHERE id = ?", order[0]); err != nil {
					return err
				}
				once[i].Do(func() { both.Done(); both.Wait() })
				if _, err := tx.ExecContext(ctx, "UPDATE acct SET v = v + 1 WHERE id = ?", order[1]); err != nil {
					return err
				}
				return tx.Commit()
			})
		}()
	}
	wg.Wait()
	require.NoError(t, errs[0])
	require.NoError(t, errs[1])
	var deadlocks int
	for _, r := range recs {
		for _, a := range r.failed() {
			var me *mysql.MySQLError
			require.ErrorAs(t, a.Err, &me)
			assert.Equal(t, uint16(1213), me.Number)
			assert.True(t, a.Retry)
			deadlocks++
		}
	}
	assert.Equal(t, 1, deadlocks, "one victim, retried once")
	assert.Equal(t, 2, myCount(t, fixture, "SELECT v FROM acct WHERE id = 1"))
	assert.Equal(t, 2, myCount(t, fixture, "SELECT v FROM acct WHERE id = 2"))
}

// A concurrent update under REPEATABLE READ fails with 40001; the retry
// starts a new snapshot and succeeds.
func TestPostgresSerializationFailureIsRetried(t *testing.T) {
	fixture, cfg := testdb.Postgres(t, "mgr_pg_serial")
	ctx := ctxT(t)
	_, err := fixture.Exec(ctx, "CREATE TABLE counter (id int PRIMARY KEY, v int NOT NULL); INSERT INTO counter VALUES (1, 0)")
	require.NoError(t, err)
	rec := &recorder{}
	m := manager.NewPostgres(openPostgres(t, cfg), fast(rec))
	defer m.Close()
	tries := 0
	err = m.Do(ctx, func(ctx context.Context, conn *pgxpool.Conn) error {
		tries++
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx)
		var v int
		if err := tx.QueryRow(ctx, "SELECT v FROM counter WHERE id = 1").Scan(&v); err != nil {
			return err
		}
		if tries == 1 { // someone else changes the row after our snapshot
			if _, err := fixture.Exec(ctx, "UPDATE counter SET v = v + 100 WHERE id = 1"); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "UPDATE counter SET v = $1 WHERE id = 1", v+1); err != nil {
			return err
		}
		return tx.Commit(ctx)
	})
	require.NoError(t, err)
	failed := rec.failed()
	require.Len(t, failed, 1)
	var pe *pgconn.PgError
	require.ErrorAs(t, failed[0].Err, &pe)
	assert.Equal(t, "40001", pe.Code)
	assert.False(t, failed[0].ConnectionLost)
	var v int
	require.NoError(t, fixture.QueryRow(ctx, "SELECT v FROM counter WHERE id = 1").Scan(&v))
	assert.Equal(t, 101, v, "the retry saw the concurrent update")
}
