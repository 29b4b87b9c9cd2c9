// Package replicate copies the OpenDental source MySQL into the replication
// MySQL: creates and follows each table's definition, copies in short
// primary-key chunks (full, incremental on a watermark, or whole via a shadow
// table when there is no key), removes rows deleted at the source, and keeps
// its state in the replica (internal/state: _pipeline_copy_status,
// _pipeline_deleted_rows).
//
// The source is only ever read: every source query runs through the manager
// (rate limit, retries) on at most Options.SourceConns connections.
package replicate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Doer runs fn on a source connection; *manager.Manager is one.
type Doer interface {
	Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error
}

// Deps are the databases and configuration a run works on. The handles'
// types keep the source and the replica from being swapped.
type Deps struct {
	Source  connections.SourceDB      // factory-built: read-only sessions
	Replica connections.ReplicationDB // the caller holds lock.Replica on it (unless DryRun)
	Tables  *tables.Config
	Log     *slog.Logger
}

// Options tune a run. The zero value is a normal incremental run with
// pipeline.yml's defaults (see providers).
type Options struct {
	Tables      []string // only these tables (default: every table not excluded)
	FullRefresh bool     // copy every selected table in full again
	DryRun      bool     // report what would be done; write nothing
	Workers     int      // tables copied in parallel; default providers.DefaultReplicationWorkers
	SourceConns int      // concurrent source connections; default providers.DefaultSourceConnections
	Manager     *manager.Options
	// NewDoer builds the source runner per source connection; default manager.New.
	NewDoer func(db *sql.DB) Doer
	// OnChunk is called after each committed chunk, from the table's worker
	// goroutine (concurrently across tables): progress; tests use it to interrupt a run.
	OnChunk func(table string, rows int)
	// Stop, when set, is asked between chunks (and before each table):
	// true stops the run cleanly after the chunk just committed, the way
	// the run window closing does. Unlike cancelling ctx it interrupts no
	// statement: every table stops at a chunk boundary with its state
	// committed (status stopped), is reported Stopped, and resumes next run.
	Stop func() bool
	// Guard, when set, is asked inside every replica write transaction just
	// before it commits, and before DDL, whether this run still holds the
	// replica lock (*lock.ReplicaLock). Once it fails the run stops: the
	// table fails with its error, no other table begins, no state is
	// written, and Run returns the error.
	Guard Guard
	// DropOrphans drops the replica tables whose source table is gone
	// (Summary.Orphans) and forgets their state; without it they are kept
	// and reported.
	DropOrphans bool
	// SourceNow, when set, turns the source server's clock as the run read
	// it (UTC_TIMESTAMP() with the schema) into the instant the run treats
	// as its start: the cut-off of TIMESTAMP watermarks and what the
	// unchanged-table test compares UPDATE_TIME with. Tests start a run "in"
	// a given second with it instead of sleeping; nil keeps the server's.
	SourceNow func(server time.Time) time.Time
}

// withDefaults fills the zero options.
func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = providers.DefaultReplicationWorkers
	}
	if o.SourceConns <= 0 {
		o.SourceConns = providers.DefaultSourceConnections
	}
	if o.NewDoer == nil {
		mo := manager.DefaultOptions()
		if o.Manager != nil {
			mo = *o.Manager
		}
		o.NewDoer = func(db *sql.DB) Doer { return manager.New(db, mo) }
	}
	return o
}

// Guard tells whether this run still holds the replica lock (see
// Options.Guard); *lock.ReplicaLock is one.
type Guard interface {
	Check(ctx context.Context, q interface {
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	}) error
}

// ErrConfig marks a run that could not start because of bad options or
// configuration; nothing was written.
var ErrConfig = errors.New("replicate configuration")

// ErrStopped is how a table's copy ends when Options.Stop said to stop: its
// committed chunks are kept and recorded, and the next run resumes it.
var ErrStopped = errors.New("stopped after a committed chunk; resumes next run")

// Run replicates the configured tables. It returns an error only when the
// run could not start (ErrConfig, or a database that cannot be read) or
// lost the replica lock (Options.Guard: the summary says what was done);
// one table's failure is reported in its TableResult and never stops the
// others.
// The caller holds the replica lock (lock.Replica) unless opts.DryRun.
func Run(ctx context.Context, deps Deps, opts Options) (Summary, error) {
	start := time.Now()
	if deps.Source.DB == nil || deps.Replica.DB == nil || deps.Tables == nil {
		return Summary{}, fmt.Errorf("%w: source, replica and tables config are required", ErrConfig)
	}
	selected, err := deps.Tables.Select(opts.Tables) // an explicitly named table runs even when excluded
	if err != nil {
		return Summary{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	r := newRunner(deps, opts.withDefaults())
	r.start = start
	defer r.close()
	in, err := r.read(ctx)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{DryRun: opts.DryRun}
	sum.Unlisted, sum.Reserved = unlisted(in.src, deps.Tables)
	r.warnUnlisted(sum)
	jobs := r.planAll(selected, in, &sum)
	sum.Orphans = orphans(in, deps.Tables)
	if !opts.DryRun && opts.DropOrphans && len(sum.Orphans) > 0 {
		if sum.DroppedOrphans, err = r.dropOrphans(ctx, sum.Orphans); err != nil {
			return sum, err
		}
	}
	if !opts.DryRun {
		if err := state.MarkUnchanged(ctx, deps.Replica, sum.unchanged(), time.Now()); err != nil {
			return Summary{}, err
		}
		r.readDefinitions(ctx, jobs)
		r.sweep(ctx, jobs)
		r.runAll(ctx, jobs)
	}
	sum.Duration = time.Since(start)
	sum.SourceQueries = r.queries()
	for _, t := range sum.Tables {
		if t.Err != nil {
			r.log.Error("table failed", "table", t.Table, "err", t.Err)
		}
	}
	return sum, r.lostLock()
}

// runner is one run: its options, its source connections and the source's
// clock at the start.
type runner struct {
	deps   Deps
	opts   Options
	log    *slog.Logger
	pool   *manager.Pool[Doer] // one per source connection: taking one is the connection cap
	start  time.Time           // before the source's schema and clock were read: what every table is current as of
	srcNow string              // the source's UTC clock when the run read its schema (SourceNow), whole seconds
	cutoff string              // the end of srcNow's second: TIMESTAMP watermarks are read below it

	lostMu sync.Mutex
	lost   error // the first failed Guard check: the run stops
}

// holds asks Options.Guard, on q, whether the run still holds the replica
// lock; the first failure stops the run (see lostLock).
func (r *runner) holds(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}) error {
	if r.opts.Guard == nil {
		return nil
	}
	err := r.opts.Guard.Check(ctx, q)
	if err != nil {
		r.lostMu.Lock()
		if r.lost == nil {
			r.lost = err
		}
		r.lostMu.Unlock()
	}
	return err
}

// lostLock is the error of the failed Guard check, once one failed: from
// then on nothing more is written.
func (r *runner) lostLock() error {
	r.lostMu.Lock()
	defer r.lostMu.Unlock()
	return r.lost
}

func newRunner(deps Deps, opts Options) *runner {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{deps: deps, opts: opts, log: log.With("component", "replicate"),
		pool: manager.NewPool(opts.SourceConns, func() Doer { return opts.NewDoer(deps.Source.DB) })}
	return r
}

// queries is how many source queries the run's connections sent (the
// schema read included), when the Doers count them (*manager.Manager does).
func (r *runner) queries() int64 { return r.pool.Queries() }

// stopped reports whether Options.Stop asks the run to stop now.
func (r *runner) stopped() bool { return r.opts.Stop != nil && r.opts.Stop() }

func (r *runner) close() { r.pool.Close() }

// source runs fn on a source connection, waiting for a free one. The
// factory set the session up (read-only, UTC, values as stored).
func (r *runner) source(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	return r.pool.Use(ctx, func(d Doer) error { return d.Do(ctx, fn) })
}

// sourceFor is source, counting every run of fn (retries included: each
// sends its query again) in res.SourceQueries. A table's source queries
// run one after another, so the count needs no lock.
func (r *runner) sourceFor(ctx context.Context, res *TableResult, fn func(ctx context.Context, conn *sql.Conn) error) error {
	return r.source(ctx, func(ctx context.Context, conn *sql.Conn) error {
		res.SourceQueries++
		return fn(ctx, conn)
	})
}

// inputs are what the run plans from: both schemas and the replica's state.
type inputs struct {
	src, rep *schema.Database
	states   map[string]*state.Row
}

// read reads the source's schema and clock, makes sure the replica has its
// state tables (not in a dry run), and reads the replica's schema and state.
func (r *runner) read(ctx context.Context) (*inputs, error) {
	in := &inputs{}
	if err := r.source(ctx, func(ctx context.Context, c *sql.Conn) error {
		var err error
		in.src, err = schema.Read(ctx, c)
		return err
	}); err != nil {
		return nil, fmt.Errorf("read source schema: %w", err)
	}
	now := in.src.Now
	if r.opts.SourceNow != nil {
		now = r.opts.SourceNow(now).UTC().Truncate(time.Second)
	}
	r.srcNow, r.cutoff = now.Format(schema.TimeLayout), now.Add(time.Second).Format(schema.TimeLayout)
	if !r.opts.DryRun {
		if err := state.Ensure(ctx, r.deps.Replica); err != nil {
			return nil, err
		}
		// A run whose lock was lost may still be committing a chunk it
		// checked the lock for: wait for it before writing (internal/lock).
		if err := state.Fence(ctx, r.deps.Replica); err != nil {
			return nil, err
		}
	}
	var err error
	if in.rep, err = schema.Read(ctx, r.deps.Replica); err != nil {
		return nil, fmt.Errorf("read replica schema: %w", err)
	}
	if in.states, err = state.ReadAll(ctx, r.deps.Replica); err != nil {
		return nil, err
	}
	return in, nil
}

func (r *runner) warnUnlisted(sum Summary) {
	if len(sum.Reserved) > 0 {
		r.log.Warn("source tables named with the reserved prefix "+state.Prefix+" cannot be replicated; rename them at the source", "tables", sum.Reserved)
	}
	if len(sum.Unlisted) > 0 {
		r.log.Warn("source tables not in tables.yml are not copied; run `pipeline discover`", "count", len(sum.Unlisted))
	}
}

// planAll plans every selected table into sum and returns the work to do.
func (r *runner) planAll(selected []*tables.Table, in *inputs, sum *Summary) []*plan {
	var jobs []*plan
	for _, t := range selected {
		res := &TableResult{Table: t.Name, Started: r.start}
		sum.Tables = append(sum.Tables, res)
		if p := r.plan(t, in.src.Tables[t.Name], in.rep.Tables[t.Name], in.states[t.Name], res); p != nil {
			jobs = append(jobs, p)
		} else {
			res.Finished = time.Now() // unchanged or refused: planning was all
		}
	}
	return jobs
}

// unchanged lists the tables planned as unchanged.
func (s Summary) unchanged() []string {
	var out []string
	for _, res := range s.Tables {
		if res.Mode == state.ModeSkip && res.Err == nil {
			out = append(out, res.Table)
		}
	}
	return out
}

func (r *runner) runAll(ctx context.Context, jobs []*plan) {
	ch := make(chan *plan)
	var wg sync.WaitGroup
	for range min(r.opts.Workers, max(1, len(jobs))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ch {
				r.runTable(ctx, p)
			}
		}()
	}
	for _, p := range jobs {
		ch <- p
	}
	close(ch)
	wg.Wait()
}

// runTable runs one table's plan and records its outcome; it never panics the run.
func (r *runner) runTable(ctx context.Context, p *plan) {
	start := time.Now()
	if p.sweep != nil && ctx.Err() == nil && !r.stopped() {
		p.sweep.read(ctx, r)
	}
	j := newTableJob(r, p)
	defer func() {
		if v := recover(); v != nil {
			p.res.Err = fmt.Errorf("replicate %s: unexpected panic: %v", p.cfg.Name, v)
			j.fail(ctx, p.res.Err)
		}
		p.res.Duration, p.res.Finished = time.Since(start), time.Now()
	}()
	if err := ctx.Err(); err != nil {
		p.res.Err = err
		return
	}
	if r.stopped() { // not begun: nothing to record
		p.res.Stopped = true
		return
	}
	if err := r.lostLock(); err != nil { // another run may own the replica: write nothing
		p.res.Err = err
		return
	}
	conn, err := r.deps.Replica.Conn(ctx)
	if err != nil {
		p.res.Err = fmt.Errorf("open replica connection for %s: %w", p.cfg.Name, err)
		return
	}
	defer conn.Close()
	j.conn = conn
	if err := r.runJob(ctx, j, p); errors.Is(err, ErrStopped) {
		p.res.Stopped = true
		j.stop(ctx)
		return
	} else if err != nil {
		p.res.Err = err
		if r.lostLock() == nil {
			j.fail(ctx, err)
		}
		return
	}
	r.log.Info("table replicated", "table", p.cfg.Name, "mode", p.res.Mode, "rows", p.res.RowsWritten,
		"deleted", p.res.RowsDeleted, "seconds", time.Since(start).Seconds())
}

// runJob brings the replica table's definition in line, copies the rows,
// builds the indexes a first copy left out, removes deleted rows and
// records the table's success.
func (r *runner) runJob(ctx context.Context, j *tableJob, p *plan) error {
	if err := r.holds(ctx, j.conn); err != nil {
		return err
	}
	if p.create || p.rebuild || p.alter || p.reindex {
		changes, err := r.syncSchema(ctx, j, p)
		p.res.Changes = changes
		if err != nil {
			return err
		}
		for _, c := range changes {
			r.log.Info("schema change", "table", p.cfg.Name, "change", c.String())
		}
	}
	if err := j.copy(ctx, p.mode, p.restarts(r.opts.FullRefresh)); err != nil {
		return err
	}
	if p.detectsDeletes() {
		if err := j.detectDeletes(ctx); err != nil {
			return err
		}
	}
	if p.buildsIndexes() {
		if err := r.holds(ctx, j.conn); err != nil {
			return err
		}
		changes, err := r.ensureIndexes(ctx, j.conn, p)
		p.res.Changes = append(p.res.Changes, changes...)
		if err != nil {
			return err
		}
	}
	return j.finish(ctx)
}
