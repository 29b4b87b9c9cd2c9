// Package history keeps the run history in PostgreSQL, in our own schema
// pipeline (never raw): one row per run of replicate, load, run or verify in
// pipeline.etl_run_history and one per table per phase in
// pipeline.etl_table_history. The pipeline writes it after every run,
// prunes what is older than the retention, and `status` reads it. The
// columns are an interface dbt and dashboards query (README, "Run history").
package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// DefaultRetentionDays is how long history is kept unless configured.
const DefaultRetentionDays = 90

// pruneLockKey lets one process prune at a time ("odprun" in ASCII); the
// others skip pruning rather than wait.
const pruneLockKey int64 = 0x6f64_7072_756e

// Options configure a Store. The zero value keeps 90 days on the real clock.
type Options struct {
	RetentionDays int              // rows of runs started longer ago are pruned; <= 0 means the default
	Now           func() time.Time // the clock pruning measures from (tests inject one)
	Log           *slog.Logger     // where a failed prune is reported (it never fails a write)
}

// Store reads and writes the history. One Store is one run: it prunes at
// most once, after its first write.
type Store struct {
	pool    *pgxpool.Pool
	opts    Options
	ensured atomic.Bool
	pruned  atomic.Bool
}

// New returns a Store on the analytics database; it does no I/O.
func New(pool *pgxpool.Pool, opts Options) *Store {
	if opts.RetentionDays <= 0 {
		opts.RetentionDays = DefaultRetentionDays
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	opts.Log = opts.Log.With("component", "history")
	return &Store{pool: pool, opts: opts}
}

// ErrIncomplete is returned for a report that cannot be stored (no run id,
// not finished, one table twice in a phase).
var ErrIncomplete = errors.New("report cannot be stored in the history")

// Write stores r (the run row and one row per table entry) in one
// transaction, replacing an earlier write of the same run id, then prunes
// once per Store. A dry run changes nothing, history included: it is not
// written.
func (s *Store) Write(ctx context.Context, r *report.Report) error {
	if r.DryRun {
		return nil
	}
	if err := check(r); err != nil {
		return err
	}
	if err := s.Ensure(ctx); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM "+RunTable+" WHERE run_id = $1", r.RunID); err != nil {
			return err
		}
		if err := insertRun(ctx, tx, r); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{Schema, "etl_table_history"}, tableColumns, pgx.CopyFromRows(tableRows(r)))
		return err
	})
	if err != nil {
		return fmt.Errorf("writing run %s to the history: %w", r.RunID, err)
	}
	if s.pruned.CompareAndSwap(false, true) {
		if n, err := s.Prune(ctx); err != nil {
			s.opts.Log.Warn("pruning the run history failed; the next run tries again", "error", err)
		} else if n > 0 {
			s.opts.Log.Info("pruned the run history", "runs", n, "retention_days", s.opts.RetentionDays)
		}
	}
	return nil
}

func check(r *report.Report) error {
	if r.RunID == "" || r.StartedAt.IsZero() || r.FinishedAt.IsZero() || r.Status == "" {
		return fmt.Errorf("%w: run id, start, end and status are required (call Finish)", ErrIncomplete)
	}
	seen := map[[2]string]bool{}
	for _, t := range r.Tables {
		k := [2]string{t.Table, string(t.Phase)}
		if seen[k] {
			return fmt.Errorf("%w: table %s appears twice in phase %s", ErrIncomplete, t.Table, t.Phase)
		}
		seen[k] = true
	}
	return nil
}

func insertRun(ctx context.Context, tx pgx.Tx, r *report.Report) error {
	doc, err := json.Marshal(r)
	if err != nil {
		return err
	}
	t := r.Totals
	_, err = tx.Exec(ctx, `INSERT INTO `+RunTable+` (run_id, command, started_at, finished_at, duration_seconds,
		status, exit_code, tables_total, tables_ok, tables_failed, tables_differ, tables_stopped,
		rows_read, rows_written, rows_deleted, conversions, schema_changes, source_queries, error, report_version, report)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)`,
		r.RunID, string(r.Command), r.StartedAt, r.FinishedAt, r.DurationSeconds,
		string(r.Status), r.ExitCode, t.Tables, t.TablesOK, t.TablesFailed, t.TablesDiffer, t.TablesStopped,
		t.RowsRead, t.RowsWritten, t.RowsDeleted, t.Conversions, t.SchemaChanges, t.SourceQueries, nullable(r.Error), r.Version, doc)
	return err
}

var tableColumns = []string{"run_id", "table_name", "phase", "command", "mode", "status", "started_at", "finished_at",
	"duration_seconds", "rows_read", "rows_written", "rows_deleted", "conversions", "conversions_total",
	"schema_changes", "source_queries", "error", "verify"}

func tableRows(r *report.Report) [][]any {
	rows := make([][]any, 0, len(r.Tables))
	for _, t := range r.Tables {
		conv := t.Conversions
		if conv == nil {
			conv = report.Conversions{}
		}
		changes := t.SchemaChanges
		if changes == nil {
			changes = []string{}
		}
		rows = append(rows, []any{r.RunID, t.Table, string(t.Phase), string(r.Command), t.Mode, string(t.Status),
			t.StartedAt, t.FinishedAt, t.DurationSeconds, t.RowsRead, t.RowsWritten, t.RowsDeleted,
			conv, conv.Total(), changes, t.SourceQueries, nullable(t.Error), t.Verify})
	}
	return rows
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Prune deletes the runs (and, by cascade, their table rows) that started
// more than RetentionDays before now. When another process is pruning it
// returns at once with 0.
func (s *Store) Prune(ctx context.Context) (int64, error) {
	cutoff := s.opts.Now().Add(-time.Duration(s.opts.RetentionDays) * 24 * time.Hour)
	if err := s.Ensure(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mine bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", pruneLockKey).Scan(&mine); err != nil || !mine {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM "+RunTable+" WHERE started_at < $1", cutoff)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("pruning the run history before %s: %w", cutoff.UTC().Format(time.RFC3339), err)
	}
	return n, nil
}
