package history_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

var day0 = time.Date(2025, 6, 1, 2, 0, 0, 0, time.UTC)

// clock is an injected, settable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// runReport is a `pipeline run` started at start: every table replicated
// and loaded ok, except those in failLoad, whose load failed.
func runReport(id string, start time.Time, tables []string, failLoad ...string) *report.Report {
	r := report.New(report.CommandRun, id, start)
	for i, t := range tables {
		r.Add(report.Table{Table: t, Phase: report.PhaseReplicate, Mode: "incremental", Status: report.TableOK,
			StartedAt: start.Add(time.Duration(i) * time.Second), DurationSeconds: 1, RowsRead: 10, RowsWritten: 10, SourceQueries: 3})
	}
	loadStart := start.Add(time.Minute)
	for _, t := range tables {
		e := report.Table{Table: t, Phase: report.PhaseLoad, Mode: "incremental", Status: report.TableOK,
			StartedAt: loadStart, DurationSeconds: 0.5, RowsRead: 10, RowsWritten: 9, RowsDeleted: 1,
			Conversions: report.Conversions{"DateTP": {"zero_date": 2}}}
		for _, f := range failLoad {
			if f == t {
				e.Status, e.Error, e.RowsWritten, e.RowsDeleted, e.Conversions = report.TableFailed, "raw row count 9 differs from the replica's 10", 0, 0, nil
			}
		}
		r.Add(e)
	}
	return r.Finish(start.Add(2*time.Minute), r.TablesStatus(), map[report.Status]int{report.StatusOK: 0, report.StatusFailed: 1}[r.TablesStatus()])
}

func newStore(t *testing.T, pool *pgxpool.Pool, c *clock) *history.Store {
	t.Helper()
	return history.New(pool, history.Options{RetentionDays: 30, Now: c.Now})
}

func TestWriteAndReadBack(t *testing.T) {
	ctx := context.Background()
	pool, _ := testdb.Postgres(t, "history_rw")
	s := newStore(t, pool, &clock{now: day0})

	want := runReport("run-1", day0, []string{"patient", "claim"}, "claim")
	want.Add(report.Table{Table: "procedurelog", Phase: report.PhaseVerify, Mode: "ranges", Status: report.TableDiffers,
		Verify: &report.Verify{Complete: true, Hops: []report.HopResult{{Hop: report.HopSourceReplica, Changed: 1, SampleKeys: []string{"ProcNum=7"}}}}})
	want.Finish(want.FinishedAt, want.TablesStatus(), 1)
	want.Tables[0].SchemaChanges = []string{"patient: added column Ward varchar(20)"}
	require.NoError(t, s.Write(ctx, want))

	got, err := s.LatestRun(ctx)
	require.NoError(t, err)
	assert.Equal(t, want, got, "the jsonb report reads back equal")

	// The columns dbt and dashboards query.
	var status, cmd string
	var exit, failed, differ, ok int
	var written, conv, queries int64
	require.NoError(t, pool.QueryRow(ctx, `SELECT status, command, exit_code, tables_failed, tables_differ, tables_ok, rows_written, conversions, source_queries
		FROM pipeline.etl_run_history WHERE run_id = 'run-1'`).Scan(&status, &cmd, &exit, &failed, &differ, &ok, &written, &conv, &queries))
	assert.Equal(t, []any{"failed", "run", 1, 1, 1, 1, int64(29), int64(2), int64(6)}, []any{status, cmd, exit, failed, differ, ok, written, conv, queries})
	var convDoc, errText string
	var changes []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT conversions::text, schema_changes FROM pipeline.etl_table_history
		WHERE run_id = 'run-1' AND table_name = 'patient' AND phase = 'load'`).Scan(&convDoc, &changes))
	assert.JSONEq(t, `{"DateTP": {"zero_date": 2}}`, convDoc)
	assert.Empty(t, changes)
	require.NoError(t, pool.QueryRow(ctx, `SELECT error FROM pipeline.etl_table_history
		WHERE run_id = 'run-1' AND table_name = 'claim' AND phase = 'load'`).Scan(&errText))
	assert.Contains(t, errText, "differs from the replica")
	var n int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.etl_table_history WHERE run_id = 'run-1'`).Scan(&n))
	assert.Equal(t, 5, n)

	// Writing the same run again replaces it (a retried write never duplicates).
	require.NoError(t, s.Write(ctx, want))
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.etl_table_history`).Scan(&n))
	assert.Equal(t, 5, n)
}

func TestTablesStatus(t *testing.T) {
	ctx := context.Background()
	pool, _ := testdb.Postgres(t, "history_status")
	s := newStore(t, pool, &clock{now: day0})
	tables := []string{"patient", "claim", "appointment"}

	// Night 1: all fine. Night 2: claim's load fails, appointment's
	// replicate fails. Night 3: nothing changed anywhere (still a success).
	require.NoError(t, s.Write(ctx, runReport("n1", day0, tables)))
	n2 := runReport("n2", day0.Add(24*time.Hour), tables, "claim")
	n2.Tables[2].Status, n2.Tables[2].Error = report.TableFailed, "source: connection reset"
	require.NoError(t, s.Write(ctx, n2.Finish(n2.FinishedAt, report.StatusFailed, 1)))
	n3 := runReport("n3", day0.Add(48*time.Hour), []string{"patient"})
	for i := range n3.Tables {
		n3.Tables[i].Mode, n3.Tables[i].RowsRead, n3.Tables[i].RowsWritten, n3.Tables[i].RowsDeleted = "unchanged", 0, 0, 0
	}
	require.NoError(t, s.Write(ctx, n3))

	got, err := s.Tables(ctx, nil)
	require.NoError(t, err)
	require.Len(t, got, 3)
	byName := map[string]history.TableStatus{}
	for _, st := range got {
		byName[st.Table] = st
	}
	assert.Equal(t, []string{"appointment", "claim", "patient"}, []string{got[0].Table, got[1].Table, got[2].Table}, "sorted")

	p := byName["patient"]
	assert.Equal(t, day0.Add(48*time.Hour), p.ConfirmedCurrent, "a no-change run confirms the table current")
	assert.Equal(t, "n3", p.LastSuccess[report.PhaseLoad].RunID)
	assert.Equal(t, "unchanged", p.LastSuccess[report.PhaseLoad].Mode)
	assert.Nil(t, p.LastFailure)
	assert.False(t, p.Failing())

	c := byName["claim"]
	assert.Equal(t, day0.Add(time.Second), c.ConfirmedCurrent, "night 2's replicate is not confirmed: its load failed")
	assert.NotNil(t, c.LastFailure)
	assert.True(t, c.Failing())
	assert.Equal(t, report.PhaseLoad, c.LastFailure.Phase)
	assert.Contains(t, c.LastFailure.Error, "differs from the replica")
	assert.Equal(t, "n1", c.LastSuccess[report.PhaseLoad].RunID)
	assert.Equal(t, report.Conversions{"DateTP": {"zero_date": 2}}, c.LastSuccess[report.PhaseLoad].Conversions)

	a := byName["appointment"]
	assert.Equal(t, day0.Add(2*time.Second), a.ConfirmedCurrent, "night 2's load only confirms night 1's replicate")
	assert.Equal(t, report.PhaseReplicate, a.LastFailure.Phase)
	assert.Equal(t, "source: connection reset", a.LastFailure.Error)
	assert.Equal(t, "n2", a.Latest[report.PhaseReplicate].RunID, "the latest replicate entry, failed")
	assert.Equal(t, report.TableFailed, a.Latest[report.PhaseReplicate].Status)
	assert.Equal(t, report.TableOK, a.Latest[report.PhaseLoad].Status)

	// The view dbt's freshness and dashboards read says the same.
	type fresh struct{ confirmed, loaded, changed *time.Time }
	view := map[string]fresh{}
	rows, err := pool.Query(ctx, "SELECT table_name, last_confirmed_current_at, last_loaded_at, last_changed_at FROM pipeline.etl_table_freshness")
	require.NoError(t, err)
	for rows.Next() {
		var name string
		var f fresh
		require.NoError(t, rows.Scan(&name, &f.confirmed, &f.loaded, &f.changed))
		view[name] = f
	}
	require.NoError(t, rows.Err())
	require.Len(t, view, 3)
	for name, st := range byName {
		require.NotNil(t, view[name].confirmed, name)
		assert.True(t, st.ConfirmedCurrent.Equal(*view[name].confirmed), name)
	}
	loadEnd := func(night int) time.Time {
		return day0.Add(time.Duration(night)*24*time.Hour + time.Minute + 500*time.Millisecond)
	}
	assert.True(t, view["patient"].loaded.Equal(loadEnd(2)), "night 3's no-change load: %v", view["patient"].loaded)
	assert.True(t, view["patient"].changed.Equal(loadEnd(1)), "night 2 wrote rows, night 3 did not: %v", view["patient"].changed)
	assert.True(t, view["claim"].loaded.Equal(loadEnd(0)), "claim's last good load is night 1's: %v", view["claim"].loaded)

	now := day0.Add(50 * time.Hour)
	assert.False(t, p.Stale(now, 26*time.Hour))
	assert.True(t, a.Stale(now, 26*time.Hour))
	assert.True(t, history.TableStatus{}.Stale(now, 26*time.Hour), "never confirmed: stale")

	one, err := s.Tables(ctx, []string{"claim"})
	require.NoError(t, err)
	require.Len(t, one, 1)
	assert.Equal(t, "claim", one[0].Table)

	latest, err := s.LatestRun(ctx, report.CommandVerify)
	require.NoError(t, err)
	assert.Nil(t, latest, "no verify run yet")
	latest, err = s.LatestRun(ctx, report.CommandRun, report.CommandVerify)
	require.NoError(t, err)
	assert.Equal(t, "n3", latest.RunID)
}

func TestPruneOncePerStore(t *testing.T) {
	ctx := context.Background()
	pool, _ := testdb.Postgres(t, "history_prune")
	c := &clock{now: day0}
	old := []string{"patient"}
	// Runs of 40 and 31 days ago and of yesterday, written by an earlier
	// Store (which pruned then, with nothing old enough yet).
	early := history.New(pool, history.Options{RetentionDays: 30, Now: func() time.Time { return day0.Add(-40 * 24 * time.Hour) }})
	for id, age := range map[string]time.Duration{"d40": 40 * 24 * time.Hour, "d31": 31 * 24 * time.Hour, "d1": 24 * time.Hour} {
		require.NoError(t, early.Write(ctx, runReport(id, day0.Add(-age), old)))
	}
	assert.Equal(t, []string{"d1", "d31", "d40"}, runIDs(t, pool))

	s := newStore(t, pool, c)
	require.NoError(t, s.Write(ctx, runReport("today", day0, old)))
	assert.Equal(t, []string{"d1", "today"}, runIDs(t, pool), "runs older than 30 days pruned by the first write")
	var orphans int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pipeline.etl_table_history WHERE run_id IN ('d40', 'd31')`).Scan(&orphans))
	assert.Zero(t, orphans, "their table rows go with them")

	// The same Store (one run) does not prune again, even when time passes.
	c.mu.Lock()
	c.now = day0.Add(60 * 24 * time.Hour)
	c.mu.Unlock()
	require.NoError(t, s.Write(ctx, runReport("today-verify", day0.Add(time.Hour), old)))
	assert.Equal(t, []string{"d1", "today", "today-verify"}, runIDs(t, pool))

	// Prune called directly uses the injected clock: 60 days on, all go.
	n, err := s.Prune(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(3), n)
	assert.Empty(t, runIDs(t, pool))
}

func runIDs(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT run_id FROM pipeline.etl_run_history ORDER BY run_id")
	require.NoError(t, err)
	var ids []string
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	return ids
}

func TestEnsureIdempotentAndDocumented(t *testing.T) {
	ctx := context.Background()
	pool, _ := testdb.Postgres(t, "history_ddl")
	for i := 0; i < 3; i++ { // fresh Stores: the DDL really runs each time
		require.NoError(t, history.New(pool, history.Options{}).Ensure(ctx))
	}
	var undocumented []string
	rows, err := pool.Query(ctx, `SELECT c.relname || '.' || a.attname FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'pipeline' AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped
		AND col_description(c.oid, a.attnum) IS NULL`)
	require.NoError(t, err)
	for rows.Next() {
		var col string
		require.NoError(t, rows.Scan(&col))
		undocumented = append(undocumented, col)
	}
	require.NoError(t, rows.Err())
	assert.Empty(t, undocumented, "every column has a COMMENT")
	var idx int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = 'pipeline'`).Scan(&idx))
	assert.Equal(t, 5, idx, "two primary keys and three indexes")
	var inRaw int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'raw'`).Scan(&inRaw))
	assert.Zero(t, inRaw, "nothing of ours in raw")
}

func TestReadersBeforeAnyRun(t *testing.T) {
	ctx := context.Background()
	pool, _ := testdb.Postgres(t, "history_empty")
	s := history.New(pool, history.Options{})
	r, err := s.LatestRun(ctx)
	require.NoError(t, err)
	assert.Nil(t, r)
	st, err := s.Tables(ctx, nil)
	require.NoError(t, err)
	assert.Empty(t, st)
	var schema *string
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regnamespace('pipeline')::text").Scan(&schema))
	assert.Nil(t, schema, "readers never create the history")

	// A dry run is not written; an unfinished report is refused.
	dry := runReport("dry", day0, []string{"patient"})
	dry.DryRun = true
	require.NoError(t, s.Write(ctx, dry))
	require.NoError(t, pool.QueryRow(ctx, "SELECT to_regnamespace('pipeline')::text").Scan(&schema))
	assert.Nil(t, schema, "a dry run changes nothing")
	err = s.Write(ctx, report.New(report.CommandRun, "x", day0))
	assert.ErrorIs(t, err, history.ErrIncomplete)
	twice := runReport("twice", day0, []string{"patient"})
	twice.Add(twice.Tables[0])
	assert.ErrorIs(t, s.Write(ctx, twice), history.ErrIncomplete)
}

// TestConcurrentWriters starts eight runs' writers at once on a database
// without the history: the DDL is created once, every run is stored.
func TestConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	pool, _ := testdb.Postgres(t, "history_conc")
	const n = 8
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := history.New(pool, history.Options{Now: func() time.Time { return day0 }})
			r := runReport(fmt.Sprintf("run-%d", i), day0.Add(time.Duration(i)*time.Minute), []string{"patient", "claim", "appointment"})
			<-start
			errs[i] = s.Write(ctx, r)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		assert.NoError(t, err, "writer %d", i)
	}
	assert.Len(t, runIDs(t, pool), n)
	var rows int
	require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM pipeline.etl_table_history").Scan(&rows))
	assert.Equal(t, n*6, rows)
}

// TestPrivilegeError: a user who may not create schemas gets an error
// naming the GRANT, and works once the schema is created for it.
func TestPrivilegeError(t *testing.T) {
	ctx := context.Background()
	admin, cfg := testdb.Postgres(t, "history_priv")
	role := testdb.Name("role")
	_, err := admin.Exec(ctx, `CREATE ROLE "`+role+`" LOGIN`)
	require.NoError(t, err)
	userPool, err := pgxpool.New(ctx, fmt.Sprintf("postgres://%s@%s/%s?sslmode=disable", role, cfg.Addr(), cfg.Name))
	require.NoError(t, err)
	t.Cleanup(func() {
		userPool.Close()
		_, _ = admin.Exec(context.Background(), `DROP OWNED BY "`+role+`"`)
		if _, err := admin.Exec(context.Background(), `DROP ROLE "`+role+`"`); err != nil {
			t.Errorf("drop role %s: %v", role, err)
		}
	})

	opts := history.Options{Now: func() time.Time { return day0 }}
	err = history.New(userPool, opts).Write(ctx, runReport("r1", day0, []string{"patient"}))
	require.ErrorIs(t, err, history.ErrPrivilege)
	assert.Contains(t, err.Error(), fmt.Sprintf(`GRANT CREATE ON DATABASE "%s" TO "%s"`, cfg.Name, role))
	assert.Contains(t, err.Error(), fmt.Sprintf(`CREATE SCHEMA pipeline AUTHORIZATION "%s"`, role))

	_, err = admin.Exec(ctx, `CREATE SCHEMA pipeline AUTHORIZATION "`+role+`"`)
	require.NoError(t, err)
	require.NoError(t, history.New(userPool, opts).Write(ctx, runReport("r1", day0, []string{"patient"})))
	assert.Equal(t, []string{"r1"}, runIDs(t, admin))
}
