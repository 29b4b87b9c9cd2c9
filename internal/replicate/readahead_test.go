package replicate_test

import (
	"context"
	"database/sql"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// readsDuringCommits counts the replica commits (Options.Guard is asked
// inside each write transaction just before it commits) made while a
// source read was under way.
type readsDuringCommits struct{ reading, overlapped *atomic.Int64 }

func (g readsDuringCommits) Check(context.Context, interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) error {
	if g.reading.Load() > 0 {
		g.overlapped.Add(1)
	}
	return nil
}

// slowReads makes every source turn last at least 50 ms (a busy clinic
// server) and counts the turns under way.
type slowReads struct {
	d       replicate.Doer
	reading *atomic.Int64
}

func (r slowReads) Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	r.reading.Add(1)
	defer r.reading.Add(-1)
	time.Sleep(50 * time.Millisecond)
	return r.d.Do(ctx, fn)
}

// A full copy reads its next key chunk from the source while the chunk
// before it commits to the replica (one worker, one source connection: the
// overlap can only come from the copy itself), and the copy is still exact.
func TestFullCopyReadsTheNextChunkWhileOneCommits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "procedurelog"))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	fillTable(t, e.fixture, src.Tables["procedurelog"], 200, 7)
	cfg := e.config(t, 25) // 8 full chunks and an empty ninth

	var reading, overlapped atomic.Int64
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	sum := e.run(t, cfg, replicate.Options{
		Workers: 1, SourceConns: 1, Manager: &mo, Guard: readsDuringCommits{&reading, &overlapped},
		NewDoer: func(db *sql.DB) replicate.Doer { return slowReads{d: manager.New(db, mo), reading: &reading} },
	})
	r := byTable(sum)["procedurelog"]
	assert.Equal(t, int64(200), r.RowsWritten)
	assert.GreaterOrEqual(t, overlapped.Load(), int64(7), "chunks 2-9 are read while chunks 1-8 commit")
	e.assertSame(t)
}
