// Package load copies the replica (MySQL) into PostgreSQL schema raw: full
// refreshes built beside the live table and swapped in one transaction,
// incremental upserts of changed rows with the deletes replication recorded,
// and the per-table state in pipeline.etl_load_status.
package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/policy"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Schema is where raw tables live: the source's tables, and nothing else.
const Schema = string(catalog.SchemaRaw)

// The pipeline's own PostgreSQL objects never share a namespace with the
// source's tables: the load state lives in StateSchema (where
// internal/history keeps the run history too), and a table is built in
// BuildSchema, then moved into raw in the transaction that swaps it in.
const (
	StateSchema = "pipeline"
	BuildSchema = "pipeline_build"
)

// StatusTable is the load state table in StateSchema. (The replica's
// bookkeeping tables, which the load reads, are internal/state's.)
const StatusTable = "etl_load_status"

// Mode is how one table is loaded.
type Mode string

const (
	ModeFull        Mode = "full"         // built beside the live table, swapped in
	ModeIncremental Mode = "incremental"  // changed rows upserted, recorded deletes applied
	ModeUnchanged   Mode = "unchanged"    // replica change_seq already loaded: nothing to do
	ModeKeys        Mode = "changed_keys" // every change since the last load logged its keys: only those rows loaded
)

// Status of one table's load.
const (
	StatusOK      = "ok"
	StatusFailed  = "failed"
	StatusStopped = "stopped" // interrupted (SIGINT/SIGTERM) before its commit: raw unchanged, loaded next run
	StatusSkipped = "skipped" // the replica copy is not complete: raw keeps its last good copy (a failed table for the run)
	StatusPlanned = "planned" // --dry-run
)

// Options select and shape one load.
type Options struct {
	Tables      []string // only these (source names); empty = every table in tables.yml
	FullRefresh bool     // rebuild every selected table
	DryRun      bool     // plan only: modes, DDL, type decisions; nothing changes
	SnakeCase   bool     // raw names in snake_case instead of the source's names
	Workers     int      // tables loaded at once (default providers.DefaultLoadWorkers); each uses one replica and one raw connection
	// HashKey keys tables.yml's column_policies hash; nil when no column
	// is hashed (a hashed column without it is a configuration error).
	HashKey *policy.Key
	// LoadedAtColumn, when set, is the name of the timestamptz marker
	// column every raw table gets (pipeline.yml load.loaded_at_column).
	LoadedAtColumn string
	// Now is the clock the loaded-at marker is stamped from (default time.Now).
	Now func() time.Time
	// Progress, when set, is called from the streaming goroutine as rows
	// stream: total is the replica's row count for a full refresh, -1 when
	// unknown, and equals rows on the table's last call.
	Progress func(table string, rows, total int64)
	// Guard, when set, is asked inside every table's write transaction
	// just before it commits whether this run still holds the warehouse
	// lock (*lock.WarehouseLock). Once it fails the run stops: that table
	// fails with its error, no other table begins, nothing more is written
	// (not even the failure), and Run returns the error.
	Guard Guard
	// DropOrphans drops the raw tables no longer loaded (Result.Orphans)
	// and forgets their load state; without it they are kept and reported.
	DropOrphans bool
}

// ColumnPlan is the type decision for one column.
type ColumnPlan struct {
	Column   string `json:"column"`
	Target   string `json:"target_column"`
	Source   string `json:"mysql_type"`
	Type     string `json:"postgres_type"`
	Override bool   `json:"override,omitempty"`
	Reason   string `json:"reason"`
}

// TableResult is what happened to one table.
type TableResult struct {
	Table       string                      `json:"table"`
	Target      string                      `json:"target"`
	Mode        Mode                        `json:"mode"`
	Reason      string                      `json:"reason"`
	Status      string                      `json:"status"`
	RowsRead    int64                       `json:"rows_read"`
	RowsWritten int64                       `json:"rows_written"`
	RowsDeleted int64                       `json:"rows_deleted"`
	RawRows     int64                       `json:"raw_rows"`
	Conversions map[string]map[string]int64 `json:"conversions,omitempty"` // column → kind → count
	Changes     []string                    `json:"schema_changes,omitempty"`
	DDL         []string                    `json:"ddl,omitempty"`
	Columns     []ColumnPlan                `json:"columns,omitempty"`
	Started     time.Time                   `json:"started"`
	Duration    time.Duration               `json:"duration_ns"`
	Error       string                      `json:"error,omitempty"`
}

// RowsPerSecond is rows read from the replica per second of the table's
// load (an incremental load writes only the rows that really changed).
func (r TableResult) RowsPerSecond() float64 {
	if r.Duration <= 0 {
		return 0
	}
	return float64(r.RowsRead) / r.Duration.Seconds()
}

// ConversionTotal is the number of values converted in the table.
func (r TableResult) ConversionTotal() int64 {
	var n int64
	for _, kinds := range r.Conversions {
		for _, v := range kinds {
			n += v
		}
	}
	return n
}

// Result is one load over many tables.
type Result struct {
	Tables []TableResult `json:"tables"`
	Failed int           `json:"failed"` // tables failed or skipped, orphans that could not be dropped
	// Orphans are raw tables the pipeline loaded that are no longer loaded
	// (see Orphan): kept unless Options.DropOrphans, then also in
	// DroppedOrphans (or, when that failed, OrphanErrors).
	Orphans        []Orphan      `json:"orphans,omitempty"`
	DroppedOrphans []string      `json:"dropped_orphans,omitempty"`
	OrphanErrors   []string      `json:"orphan_errors,omitempty"`
	Duration       time.Duration `json:"duration_ns"`
}

// OK reports whether every table succeeded.
func (r *Result) OK() bool { return r.Failed == 0 }

// LoadedAtType is the PostgreSQL type of the loaded-at marker column.
const LoadedAtType = "timestamptz"

// ErrConfig marks configuration problems (bad table names, collisions):
// nothing was loaded.
var ErrConfig = errors.New("load configuration")

// Loader loads the replica into raw.
type Loader struct {
	replica *sql.DB
	raw     *pgxpool.Pool
	cfg     *tables.Config
	log     *slog.Logger
}

// New returns a Loader. cfg may be nil: then every base table of the replica
// (except the pipeline's own, see internal/state) is loaded with default options.
func New(replica connections.ReplicationDB, raw connections.AnalyticsRawDB, cfg *tables.Config, log *slog.Logger) *Loader {
	if log == nil {
		log = slog.Default()
	}
	return &Loader{replica: replica.DB, raw: raw.Pool, cfg: cfg, log: log.With("component", "load")}
}

// Run loads the selected tables one after another. One table's failure is
// recorded in its result and pipeline.etl_load_status and never stops the
// others; the error is only for problems that stop everything (ErrConfig,
// an unreachable database, a lost warehouse lock: see Options.Guard).
func (l *Loader) Run(ctx context.Context, opts Options) (*Result, error) {
	start := time.Now()
	list, err := l.selectTables(ctx, opts.Tables)
	if err != nil {
		return nil, err
	}
	if !opts.DryRun {
		if err := ensureStatusTable(ctx, l.raw); err != nil {
			return nil, err
		}
		// A replica written by an older version keeps its state under the
		// old names until the next replicate run; rename them now (the one
		// write the load makes to the replica).
		if err := state.Migrate(ctx, l.replica); err != nil {
			return nil, err
		}
	}
	run0 := runStart{fence: &fence{guard: opts.Guard}}
	if run0.copies, err = state.ReadCopies(ctx, l.replica); err != nil {
		return nil, fmt.Errorf("read replica: %w", err)
	}
	if run0.shapes, err = readShapes(ctx, l.raw, nil); err != nil {
		return nil, err
	}
	if run0.states, err = readStates(ctx, l.raw); err != nil {
		if !opts.DryRun {
			return nil, err
		}
		run0.states = nil // dry run before the first load: no state table yet
	}
	if !opts.DryRun {
		db, err := schema.Read(ctx, l.replica)
		if err != nil {
			return nil, fmt.Errorf("read replica: %w", err)
		}
		run0.replica = db.Tables
	}
	res := l.loadAll(ctx, list, run0, opts)
	if res.Orphans, err = l.orphans(ctx); err != nil {
		return res, err
	}
	if opts.DropOrphans && !opts.DryRun && run0.fence.failed() == nil && ctx.Err() == nil {
		l.dropOrphans(ctx, run0, res)
	}
	res.Duration = time.Since(start)
	if err := run0.fence.failed(); err != nil {
		return res, fmt.Errorf("load stopped after %d of %d tables: %w", len(res.Tables), len(list), err)
	}
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("load interrupted after %d of %d tables: %w", len(res.Tables), len(list), err)
	}
	return res, nil
}

// loadAll loads the tables with opts.Workers workers, which take them in
// run order; the result keeps that order and lists only the tables begun
// before ctx was cancelled.
func (l *Loader) loadAll(ctx context.Context, list []*tables.Table, run0 runStart, opts Options) *Result {
	results := make([]TableResult, len(list))
	done := make([]bool, len(list))
	next := make(chan int)
	var wg sync.WaitGroup
	workers := opts.Workers
	if workers <= 0 {
		workers = providers.DefaultLoadWorkers
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if run0.fence.failed() != nil {
					continue // the lock was lost: this table does not begin
				}
				results[i] = l.loadTable(ctx, list[i], run0, opts)
				done[i] = true
			}
		}()
	}
	for i := range list {
		if ctx.Err() != nil || run0.fence.failed() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	res := &Result{}
	for i, tr := range results {
		if done[i] {
			if tr.Status == StatusFailed || tr.Status == StatusSkipped {
				res.Failed++
			}
			res.Tables = append(res.Tables, tr)
		}
	}
	return res
}

// selectTables returns the tables.yml entries to load, in run order.
func (l *Loader) selectTables(ctx context.Context, only []string) ([]*tables.Table, error) {
	var all []*tables.Table
	if l.cfg != nil && len(l.cfg.Tables) > 0 {
		for name, t := range l.cfg.Tables {
			if t.Name == "" {
				t.Name = name
			}
		}
		all = l.cfg.Ordered()
	} else {
		names, err := replicaTables(ctx, l.replica)
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			all = append(all, &tables.Table{Name: n})
		}
	}
	if len(only) == 0 {
		return all, nil
	}
	var out []*tables.Table
	var unknown []string
	for _, name := range only {
		i := slices.IndexFunc(all, func(t *tables.Table) bool { return t.Name == name })
		if i < 0 {
			unknown = append(unknown, name)
			continue
		}
		out = append(out, all[i])
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: --tables names %q not in tables.yml (or excluded); check the spelling (names are case-sensitive) or run `pipeline discover`", ErrConfig, unknown)
	}
	return out, nil
}
