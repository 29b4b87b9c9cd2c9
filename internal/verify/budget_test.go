package verify_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// fakeClock is the injected clock; every source query moves it on a minute,
// so a budget is spent by queries, not by wall time.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

type clockDoer struct {
	*manager.Manager
	clock *fakeClock
}

func (d clockDoer) Do(ctx context.Context, fn func(context.Context, *sql.Conn) error) error {
	defer d.clock.advance(time.Minute)
	return d.Manager.Do(ctx, fn)
}

func (e *env) budgeted(t *testing.T, clock *fakeClock, budget time.Duration) verify.Options {
	t.Helper()
	progress := verify.NewProgress(e.pg)
	require.NoError(t, history.New(e.pg, history.Options{}).Ensure(context.Background()))
	require.NoError(t, progress.Ensure(context.Background()))
	return verify.Options{Budget: budget, Now: clock.Now, Workers: 1, Progress: progress,
		NewDoer: func(db *sql.DB) verify.Doer { return clockDoer{manager.New(db, *fastManager()), clock} }}
}

// A budget stops a verification between ranges and the next one resumes
// where it stopped, without comparing a range twice, until every table's
// pass is complete; the pass's findings add up over its runs, and its
// result vouches for the instant the pass began. Without a budget every
// table is compared from its first key.
func TestVerifyBudgetResumes(t *testing.T) {
	e := newEnv(t)
	e.clinic(t)
	cfg := e.config(t, 1000) // item: 25 ranges
	e.pipeline(t, cfg)
	clock := &fakeClock{now: time.Date(2025, 3, 10, 2, 0, 0, 0, time.UTC)}
	opts := e.budgeted(t, clock, 10*time.Minute)

	first := e.verify(t, cfg, opts)
	require.Len(t, first.Tables, 1, "the budget ends inside the first table")
	item := first.Tables[0]
	require.Equal(t, "item", item.Table)
	require.NoError(t, item.Err)
	assert.False(t, item.Complete)
	assert.Equal(t, report.TableStopped, item.Status())
	assert.Equal(t, []string{"note"}, first.Skipped)
	assert.Equal(t, []string{"8000"}, item.LastKey, "the schema read, the small tables' batched sum and 8 ranges fit in 10 one-minute queries")
	passStart := item.Started

	// One difference where the pass has been, one where it has not.
	exec(t, e.repFix, "DELETE FROM item WHERE ItemNum IN (5, 20000)")
	var runs []*verify.Result
	for range 4 {
		clock.advance(24 * time.Hour)
		runs = append(runs, e.verify(t, cfg, opts))
	}
	// The second night finds row 20000 missing: listing it costs a query.
	for i, want := range []string{"16000", "23000"} {
		item = byTable(t, runs[i], "item")
		assert.True(t, item.Resumed)
		assert.False(t, item.Complete)
		assert.Equal(t, []string{want}, item.LastKey)
		assert.Equal(t, passStart, item.PassStarted)
		assert.Equal(t, []string{"note"}, runs[i].Skipped)
	}
	assert.Equal(t, []string{`["20000"]`}, keys(byTable(t, runs[1], "item").SourceReplica.MissingKeys), "only the range not yet compared")

	// The fourth night ends the pass, and the budget left reaches note.
	require.Len(t, runs[2].Tables, 2)
	item = runs[2].Tables[0]
	assert.True(t, item.Complete, "the fourth night ends the pass")
	assert.EqualValues(t, 1, item.SourceReplica.Missing, "the pass's findings add up over its nights")
	assert.EqualValues(t, 25000, item.SourceReplica.Compared, "the pass compared every source row once")
	assert.Equal(t, report.TableDiffers, item.Status())
	note := runs[2].Tables[1]
	assert.Equal(t, "note", note.Table)
	assert.True(t, note.Complete)
	assert.Equal(t, report.TableOK, note.Status())
	assert.Equal(t, note.Started, note.Report().StartedAt, "a one-run pass vouches for its own start")
	assert.Zero(t, note.SourceQueries, "settled by the batched sum")

	// The next night starts over with the table whose pass ended longest ago.
	assert.Equal(t, "item", runs[3].Tables[0].Table)
	assert.False(t, runs[3].Tables[0].Resumed, "a new pass")

	// Without a budget, every table from its first key.
	full := e.verify(t, cfg, verify.Options{Progress: opts.Progress, Now: clock.Now})
	item = byTable(t, full, "item")
	assert.True(t, item.Complete)
	assert.False(t, item.Resumed)
	assert.Equal(t, []string{`["5"]`, `["20000"]`}, keys(item.SourceReplica.MissingKeys))

	// Put the rows back: a pass spread over several nights that finds
	// nothing vouches for the instant it began.
	exec(t, e.repFix, "INSERT INTO item SELECT * FROM "+e.srcName+".item WHERE ItemNum IN (5, 20000)")
	var passStarted time.Time
	for i := 0; ; i++ {
		require.Less(t, i, 5)
		clock.advance(24 * time.Hour)
		res := e.verify(t, cfg, opts)
		item = byTable(t, res, "item")
		if !item.Resumed {
			passStarted = item.Started
		}
		if item.Complete {
			break
		}
	}
	assert.True(t, item.Resumed, "the pass took more than one night")
	assert.Equal(t, report.TableOK, item.Status())
	assert.Equal(t, passStarted, item.Report().StartedAt)
	assert.True(t, item.Report().StartedAt.Before(item.Started))
}

// cancelDoer cancels the verification after its n-th source query, as a
// SIGTERM mid-run would.
type cancelDoer struct {
	*manager.Manager
	n      *int
	cancel context.CancelFunc
}

func (d cancelDoer) Do(ctx context.Context, fn func(context.Context, *sql.Conn) error) error {
	err := d.Manager.Do(ctx, fn)
	if *d.n--; *d.n == 0 {
		d.cancel()
	}
	return err
}

// A verification stopped mid-table (a signal) keeps what it compared: the
// next one resumes after the last range it recorded and compares every row
// of the pass exactly once.
func TestVerifyInterruptedResumes(t *testing.T) {
	e := newEnv(t)
	e.clinic(t)
	cfg := e.config(t, 1000)
	e.pipeline(t, cfg)
	clock := &fakeClock{now: time.Date(2025, 3, 10, 2, 0, 0, 0, time.UTC)}
	opts := e.budgeted(t, clock, 24*time.Hour) // a budget: passes resume
	ctx, cancel := context.WithCancel(context.Background())
	n := 7
	stopped := opts
	stopped.Manager = fastManager()
	stopped.NewDoer = func(db *sql.DB) verify.Doer { return cancelDoer{manager.New(db, *fastManager()), &n, cancel} }
	res, err := verify.Run(ctx, e.deps(cfg), stopped)
	require.NoError(t, err)
	item := byTable(t, res, "item")
	require.ErrorIs(t, item.Err, context.Canceled)

	res = e.verify(t, cfg, opts)
	item = byTable(t, res, "item")
	require.NoError(t, item.Err)
	assert.True(t, item.Resumed, "after the ranges the stopped run recorded")
	assert.True(t, item.Complete)
	assert.EqualValues(t, 25000, item.SourceReplica.Compared, "every row once")
	assert.EqualValues(t, 25000, item.ReplicaRaw.Compared)
	assert.False(t, item.Differs())
}
