// Package verify proves the warehouse matches the clinic, table by table, in
// two hops: the source with the replica (same engine: the rows' exact bytes
// hashed in SQL on both servers, internal/rowhash) and the replica with raw
// (across engines: replica rows read and converted exactly as the load does,
// internal/typemap, and compared by PostgreSQL in raw's own column types).
//
// Both hops walk the table in primary-key ranges of batch_size rows. The
// source answers each range with one short query that returns, instead of
// rows, the row count and a 64-bit content hash of each sixteenth of the
// range (parts); a part whose count or hash differs from the replica's is
// split again, down to at most leafRows rows, whose keys and row hashes are
// listed on both sides to name the rows that differ (missing, extra,
// changed). Every source query is bounded by the range's keys, runs through
// the manager (rate limit, retries) on at most Options.SourceConns read-only
// connections, and examines at most one range's rows.
//
// A table without a usable primary key is compared whole (count and hash,
// and a multiset comparison in PostgreSQL): verify says whether it differs
// and by how many rows, but cannot name them.
//
// verify is a phase like replicate and load and imports neither: what to
// repair it records in the replica contract (internal/state), see repair.go.
package verify

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
	"github.com/opendental-pipeline/pipeline/internal/policy"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Doer runs fn on a source connection and counts its attempts;
// *manager.Manager is one.
type Doer interface {
	Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error
	Queries() int64
}

// Deps are the databases and configuration a verification reads.
type Deps struct {
	Source  connections.SourceDB      // read-only sessions (factory-built)
	Replica connections.ReplicationDB // written only by Repair
	Raw     connections.AnalyticsRawDB
	Tables  *tables.Config
	Log     *slog.Logger
}

// Options shape one verification. The zero value verifies every table in
// full, both hops.
type Options struct {
	Tables      []string         // only these tables (default: every table of tables.yml not excluded)
	Budget      time.Duration    // stop starting new ranges after this long; 0: no limit
	Now         func() time.Time // the clock the budget is measured on (default time.Now)
	Workers     int              // tables verified at once (default 2)
	SourceConns int              // source connections at most (default 1)
	Manager     *manager.Options // rate limit and retries of the source managers
	// HashKey keys tables.yml's column_policies hash, as for the load; nil
	// when no column is hashed.
	HashKey *policy.Key
	// NewDoer builds the source runner per source connection; default manager.New.
	NewDoer func(db *sql.DB) Doer
	// Progress, when set, remembers where a table's pass stopped so the next
	// verification resumes there (see progress.go); nil starts every table
	// from its first key and keeps nothing.
	Progress *Progress
}

// ErrConfig marks a verification that could not start because of bad
// options or configuration; nothing was read.
var ErrConfig = errors.New("verify configuration")

// Run verifies the selected tables. It returns an error only when the
// verification could not start; a table's failure is in its TableResult.
func Run(ctx context.Context, deps Deps, opts Options) (*Result, error) {
	r, err := newRunner(deps, opts)
	if err != nil {
		return nil, err
	}
	defer r.close()
	start := r.now()
	selected, err := selectTables(deps.Tables, opts.Tables)
	if err != nil {
		return nil, err
	}
	src, err := r.sourceSchema(ctx)
	if err != nil {
		return nil, err
	}
	rep, err := schema.Read(ctx, deps.Replica)
	if err != nil {
		return nil, fmt.Errorf("read replica schema: %w", err)
	}
	if r.states, err = state.ReadAll(ctx, deps.Replica); err != nil {
		return nil, err
	}
	order, err := r.order(ctx, selected)
	if err != nil {
		return nil, err
	}
	if r.sums, err = r.smallSums(ctx, order, src); err != nil {
		return nil, err
	}
	res := &Result{Started: start}
	res.Tables, res.Skipped = r.runAll(ctx, order, src, rep)
	res.Finished = r.now()
	res.SourceQueries = r.queries()
	return res, nil
}

// runner is one verification's shared state: the source slots, the
// deadline, the clock.
type runner struct {
	deps     Deps
	opts     Options
	log      *slog.Logger
	pool     *manager.Pool[Doer] // one per source connection
	deadline time.Time           // zero: none
	progress map[string]*tableProgress
	states   map[string]*state.Row // the replica's state per table
	sums     map[string]agg        // small tables' batched source sums (batch.go)
}

func newRunner(deps Deps, opts Options) (*runner, error) {
	if deps.Source.DB == nil || deps.Replica.DB == nil || deps.Raw.Pool == nil || deps.Tables == nil {
		return nil, fmt.Errorf("%w: source, replica, raw and tables config are required", ErrConfig)
	}
	if opts.Budget < 0 {
		return nil, fmt.Errorf("%w: the budget must not be negative", ErrConfig)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = 2
	}
	opts.SourceConns = max(opts.SourceConns, 1)
	if opts.NewDoer == nil {
		mo := manager.DefaultOptions()
		if opts.Manager != nil {
			mo = *opts.Manager
		}
		opts.NewDoer = func(db *sql.DB) Doer { return manager.New(db, mo) }
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{deps: deps, opts: opts, log: log.With("component", "verify"),
		pool: manager.NewPool(opts.SourceConns, func() Doer { return opts.NewDoer(deps.Source.DB) })}
	if opts.Budget > 0 {
		r.deadline = opts.Now().Add(opts.Budget)
	}
	return r, nil
}

func (r *runner) now() time.Time { return r.opts.Now() }

// outOfTime reports whether the budget is spent: no new range starts.
func (r *runner) outOfTime() bool { return !r.deadline.IsZero() && !r.now().Before(r.deadline) }

// close returns the source connections.
func (r *runner) close() { r.pool.Close() }

// queries is every source query of the run.
func (r *runner) queries() int64 { return r.pool.Queries() }

// source runs fn on a free source connection (one query per call, rate
// limited) and adds its attempts to *spent when spent is not nil.
func (r *runner) source(ctx context.Context, spent *int64, fn func(ctx context.Context, conn *sql.Conn) error) error {
	return r.pool.Use(ctx, func(d Doer) error {
		before := d.Queries()
		err := d.Do(ctx, fn)
		if spent != nil {
			*spent += d.Queries() - before
		}
		return err
	})
}

// runAll verifies the tables in order on the workers; results keep the
// order. Tables the budget leaves for the next run are skipped.
func (r *runner) runAll(ctx context.Context, order []*tables.Table, src, rep *schema.Database) (done []*TableResult, skipped []string) {
	out := make([]*TableResult, len(order))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(r.opts.Workers, max(1, len(order))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if ctx.Err() == nil && !r.outOfTime() { // the budget may have run out while waiting
					name := order[i].Name
					out[i] = r.verifyTable(ctx, order[i], src.Tables[name], rep.Tables[name], r.states[name])
				}
			}
		}()
	}
	for i := range order {
		if ctx.Err() != nil || r.outOfTime() {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	for i, t := range out {
		if t != nil {
			done = append(done, t)
		} else {
			skipped = append(skipped, order[i].Name)
		}
	}
	return done, skipped
}

// selectTables returns the tables to verify in run order: every table not
// excluded, or the named ones (excluded too, when named; names exact as
// for replicate).
func selectTables(cfg *tables.Config, names []string) ([]*tables.Table, error) {
	for name, t := range cfg.Tables {
		if t.Name == "" {
			t.Name = name
		}
	}
	out, err := cfg.Select(names)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return out, nil
}
