package manager_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// Two managers lock two rows in opposite order: InnoDB picks one as the
// deadlock victim (1213); its manager retries and both transfers complete.
func TestMySQLRealDeadlockIsRetried(t *testing.T) {
	t.Parallel()
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
