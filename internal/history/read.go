package history

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// Entry is one table's phase in one stored run.
type Entry struct {
	RunID   string
	Command report.Command
	report.Table
}

// TableStatus is what the history knows about one table.
type TableStatus struct {
	Table string
	// LastSuccess is the latest ok entry per phase; a run that found
	// nothing to change is a success.
	LastSuccess map[report.Phase]Entry
	// LastFailure is the latest failed (or skipped, or for verify differing) entry
	// in any phase; nil when none is kept. Compare its StartedAt with the
	// phase's LastSuccess to know whether it is still failing.
	LastFailure *Entry
	// Latest is the latest entry per phase that ended ok, failed or
	// differs (stopped entries are left out: they resume).
	Latest map[report.Phase]Entry
	// ConfirmedCurrent is the latest instant raw is known to have matched
	// the source: the start of the latest successful replicate followed by
	// a successful load, or of the latest successful verify. Zero: never.
	ConfirmedCurrent time.Time
}

// Stale reports whether the table was not confirmed current within after
// of now.
func (t TableStatus) Stale(now time.Time, after time.Duration) bool {
	return t.ConfirmedCurrent.IsZero() || now.Sub(t.ConfirmedCurrent) > after
}

// Failing reports whether the table's last entry in some phase failed: its
// last failure is later than that phase's last success.
func (t TableStatus) Failing() bool {
	if t.LastFailure == nil {
		return false
	}
	ok, found := t.LastSuccess[t.LastFailure.Phase]
	return !found || ok.StartedAt.Before(t.LastFailure.StartedAt)
}

// exists reports whether the history tables are there; readers never
// create them (status before any run shows "no runs yet").
func (s *Store) exists(ctx context.Context) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AND to_regclass($3) IS NOT NULL",
		RunTable, TableTable, FreshnessView).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("reading the run history: %w", err)
	}
	return ok, nil
}

// LatestRun is the report of the latest run (of one of commands, when
// given), or nil when there is none.
func (s *Store) LatestRun(ctx context.Context, commands ...report.Command) (*report.Report, error) {
	if ok, err := s.exists(ctx); !ok || err != nil {
		return nil, err
	}
	names := make([]string, len(commands))
	for i, c := range commands {
		names[i] = string(c)
	}
	var doc []byte
	err := s.pool.QueryRow(ctx, `SELECT report FROM `+RunTable+`
		WHERE cardinality($1::text[]) = 0 OR command = ANY($1)
		ORDER BY started_at DESC, run_id DESC LIMIT 1`, names).Scan(&doc)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the latest run: %w", err)
	}
	return report.Decode(doc)
}

// Tables is the status of the named tables (every table with history when
// names is empty), sorted by name. A table without history is absent.
func (s *Store) Tables(ctx context.Context, names []string) ([]TableStatus, error) {
	if ok, err := s.exists(ctx); !ok || err != nil {
		return nil, err
	}
	if names == nil {
		names = []string{}
	}
	byName := map[string]*TableStatus{}
	get := func(name string) *TableStatus {
		if byName[name] == nil {
			byName[name] = &TableStatus{Table: name, LastSuccess: map[report.Phase]Entry{}, Latest: map[report.Phase]Entry{}}
		}
		return byName[name]
	}
	if err := s.latestEntries(ctx, names, func(e Entry) {
		st := get(e.Table.Table)
		if l, ok := st.Latest[e.Phase]; !ok || l.StartedAt.Before(e.StartedAt) {
			st.Latest[e.Phase] = e
		}
		if e.Status == report.TableOK {
			st.LastSuccess[e.Phase] = e
		} else if st.LastFailure == nil || st.LastFailure.StartedAt.Before(e.StartedAt) {
			st.LastFailure = &e
		}
	}); err != nil {
		return nil, err
	}
	if err := s.confirmed(ctx, names, func(table string, at time.Time) { get(table).ConfirmedCurrent = at.UTC() }); err != nil {
		return nil, err
	}
	out := make([]TableStatus, 0, len(byName))
	for _, st := range byName {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Table < out[j].Table })
	return out, nil
}

// latestEntries calls fn with the latest ok, failed and differs entry of
// every (table, phase).
func (s *Store) latestEntries(ctx context.Context, names []string, fn func(Entry)) error {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (table_name, phase, status)
			run_id, command, table_name, phase, mode, status, started_at, finished_at, duration_seconds,
			rows_read, rows_written, rows_deleted, conversions, schema_changes, source_queries, coalesce(error, ''), verify
		FROM `+TableTable+`
		WHERE status IN ('ok', 'failed', 'skipped', 'differs') AND (cardinality($1::text[]) = 0 OR table_name = ANY($1))
		ORDER BY table_name, phase, status, started_at DESC`, names)
	if err != nil {
		return fmt.Errorf("reading the table history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var t = &e.Table
		if err := rows.Scan(&e.RunID, &e.Command, &t.Table, &t.Phase, &t.Mode, &t.Status, &t.StartedAt, &t.FinishedAt,
			&t.DurationSeconds, &t.RowsRead, &t.RowsWritten, &t.RowsDeleted, &t.Conversions, &t.SchemaChanges,
			&t.SourceQueries, &t.Error, &t.Verify); err != nil {
			return fmt.Errorf("reading the table history: %w", err)
		}
		t.StartedAt, t.FinishedAt = t.StartedAt.UTC(), t.FinishedAt.UTC()
		fn(e)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the table history: %w", err)
	}
	return nil
}

// confirmed calls fn with each table's ConfirmedCurrent, read from
// FreshnessView (where "confirmed current" is defined once).
func (s *Store) confirmed(ctx context.Context, names []string, fn func(string, time.Time)) error {
	rows, err := s.pool.Query(ctx, `SELECT table_name, last_confirmed_current_at FROM `+FreshnessView+`
		WHERE last_confirmed_current_at IS NOT NULL AND (cardinality($1::text[]) = 0 OR table_name = ANY($1))`, names)
	if err != nil {
		return fmt.Errorf("reading the table history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		var at time.Time
		if err := rows.Scan(&table, &at); err != nil {
			return fmt.Errorf("reading the table history: %w", err)
		}
		fn(table, at)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading the table history: %w", err)
	}
	return nil
}
