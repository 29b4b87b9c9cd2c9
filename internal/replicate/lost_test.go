package replicate_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// Issue 8 item 5, the replica's half: a replicate whose named lock is lost
// mid-run (KILL of this test's own lock connection) notices at its next
// commit and stops: that chunk is not committed, no other table begins, no
// state is written (not even the failure), and the next run, which takes
// the lock, resumes and completes the copy.
func TestReplicateStopsWhenItsReplicaLockIsLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	mustExecAll(t, e, "CREATE TABLE a (Id INT NOT NULL PRIMARY KEY) ENGINE=MyISAM", "INSERT INTO a SELECT seq FROM seq_1_to_50",
		"CREATE TABLE b (Id INT NOT NULL PRIMARY KEY) ENGINE=MyISAM", "INSERT INTO b SELECT seq FROM seq_1_to_5")
	cfg := e.config(t, 10)
	replica := connections.ReplicationDB{DB: e.replica}
	l, err := lock.TakeReplica(ctx, replica)
	require.NoError(t, err)
	t.Cleanup(l.Release)
	var id int64
	require.NoError(t, e.replica.QueryRow("SELECT IS_USED_LOCK(CONCAT('pipeline_replicate:', DATABASE()))").Scan(&id))
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	killed := false
	opts := replicate.Options{Workers: 1, Manager: &mo, Guard: l, OnChunk: func(string, int) {
		if !killed { // after the first committed chunk
			killed = true
			_, err := e.replica.Exec(fmt.Sprintf("KILL CONNECTION %d", id))
			require.NoError(t, err)
			// KILL only flags the session; wait until it is gone (and the lock free).
			for deadline := time.Now().Add(20 * time.Second); count(t, e.replica, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id) > 0; {
				require.True(t, time.Now().Before(deadline), "the killed session did not end")
				time.Sleep(5 * time.Millisecond)
			}
		}
	}}
	sum, err := replicate.Run(ctx, e.deps(cfg), opts)
	require.ErrorIs(t, err, lock.ErrLost)
	res := byTable(sum)
	require.ErrorIs(t, res["a"].Err, lock.ErrLost)
	require.ErrorIs(t, res["b"].Err, lock.ErrLost, "b never began")
	assert.Equal(t, int64(10), count(t, e.replica, "SELECT COUNT(*) FROM a"), "only the chunk committed before the loss")
	assert.Equal(t, int64(0), count(t, e.replica, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'b'"))
	var status string
	require.NoError(t, e.replica.QueryRow("SELECT status FROM "+state.CopyStatusTable+" WHERE table_name = 'a'").Scan(&status))
	assert.Equal(t, state.StatusRunning, status, "the loser wrote no failure over what a new holder may write")

	again, err := lock.TakeReplica(ctx, replica)
	require.NoError(t, err, "the next run takes the lock")
	opts = replicate.Options{Manager: &mo, Guard: again}
	sum, err = replicate.Run(ctx, e.deps(cfg), opts)
	require.NoError(t, err)
	assert.Zero(t, sum.Failed())
	assert.True(t, byTable(sum)["a"].Resumed)
	e.assertSame(t)
	again.Release()
}
