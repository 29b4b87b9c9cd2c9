package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// ProgressTable keeps, per table, how far its verification pass has come,
// in the pipeline's own PostgreSQL schema (never raw).
const ProgressTable = history.Schema + ".etl_verify_progress"

var progressDDL = `CREATE TABLE IF NOT EXISTS ` + ProgressTable + ` (
	table_name      text PRIMARY KEY,
	pass_id         bigint NOT NULL,      -- the table's passes, counted from 1
	pass_started_at timestamptz NOT NULL, -- when the current (or last) pass began
	last_key        text,                 -- JSON key the unfinished pass resumes after; NULL: from the start
	complete        boolean NOT NULL,     -- the pass reached the end of the table
	completed_at    timestamptz,          -- when the last complete pass ended
	found           jsonb NOT NULL,       -- differences found so far in the pass, per hop
	updated_at      timestamptz NOT NULL
)`

// progressLockKey serialises the DDL ("odvrfy" in ASCII).
const progressLockKey int64 = 0x6f64_7672_6679

// Progress remembers in PostgreSQL where each table's verification pass
// stopped, so a verification with a budget resumes there next time: a
// clinic can spread a full verification over several nights. The schema
// pipeline must exist (history.Store.Ensure creates it).
type Progress struct {
	pool *pgxpool.Pool
}

// NewProgress returns a Progress on the analytics database; it does no I/O.
func NewProgress(pool *pgxpool.Pool) *Progress { return &Progress{pool: pool} }

// Ensure creates the progress table when missing.
func (p *Progress) Ensure(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", progressLockKey); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, progressDDL)
		return err
	})
	if err != nil {
		return fmt.Errorf("create %s: %w", ProgressTable, err)
	}
	return nil
}

// tableProgress is one table's row.
type tableProgress struct {
	passID      int64
	passStarted time.Time
	lastKey     []string // nil: from the first key
	complete    bool
	completedAt time.Time
	found       found
}

// found is what a pass has found so far, per hop.
type found struct {
	SourceReplica counts `json:"source_replica"`
	ReplicaRaw    counts `json:"replica_raw"`
}

type counts struct {
	Compared int64 `json:"compared"`
	Missing  int64 `json:"missing"`
	Extra    int64 `json:"extra"`
	Changed  int64 `json:"changed"`
}

func countsOf(d *Diff) counts {
	return counts{Compared: d.Compared, Missing: d.Missing, Extra: d.Extra, Changed: d.Changed}
}

// addTo adds the counts of an earlier part of the pass to d.
func (c counts) addTo(d *Diff) {
	d.Compared += c.Compared
	d.Missing += c.Missing
	d.Extra += c.Extra
	d.Changed += c.Changed
}

// read returns every table's progress.
func (p *Progress) read(ctx context.Context) (map[string]*tableProgress, error) {
	rows, err := p.pool.Query(ctx, "SELECT table_name, pass_id, pass_started_at, last_key, complete, completed_at, found FROM "+ProgressTable)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ProgressTable, err)
	}
	defer rows.Close()
	out := map[string]*tableProgress{}
	for rows.Next() {
		var name string
		var tp tableProgress
		var lastKey *string
		var completedAt *time.Time
		if err := rows.Scan(&name, &tp.passID, &tp.passStarted, &lastKey, &tp.complete, &completedAt, &tp.found); err != nil {
			return nil, fmt.Errorf("read %s: %w", ProgressTable, err)
		}
		if lastKey != nil && json.Unmarshal([]byte(*lastKey), &tp.lastKey) != nil {
			tp.lastKey = nil // unreadable: start the table over
		}
		tp.passStarted = tp.passStarted.UTC()
		if completedAt != nil {
			tp.completedAt = completedAt.UTC()
		}
		out[name] = &tp
	}
	return out, rows.Err()
}

// write records tp for table.
func (p *Progress) write(ctx context.Context, table string, tp *tableProgress, now time.Time) error {
	var lastKey, completedAt any
	if tp.lastKey != nil {
		b, _ := json.Marshal(tp.lastKey)
		lastKey = string(b)
	}
	if !tp.completedAt.IsZero() {
		completedAt = tp.completedAt
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO `+ProgressTable+` AS p (table_name, pass_id, pass_started_at, last_key, complete, completed_at, found, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (table_name) DO UPDATE SET pass_id = EXCLUDED.pass_id, pass_started_at = EXCLUDED.pass_started_at,
		 last_key = EXCLUDED.last_key, complete = EXCLUDED.complete, completed_at = EXCLUDED.completed_at,
		 found = EXCLUDED.found, updated_at = EXCLUDED.updated_at`,
		table, tp.passID, tp.passStarted, lastKey, tp.complete, completedAt, tp.found, now)
	if err != nil {
		return fmt.Errorf("record verify progress of %s: %w", table, err)
	}
	return nil
}

// order is the order the selected tables are verified in. With a budget:
// tables whose pass is unfinished first (they resume), then tables never
// verified, then the others by the end of their last pass, oldest first;
// each group in run order. Without one: run order, every table from the
// start.
func (r *runner) order(ctx context.Context, selected []*tables.Table) ([]*tables.Table, error) {
	if r.opts.Progress == nil {
		return selected, nil
	}
	all, err := r.opts.Progress.read(ctx)
	if err != nil {
		return nil, err
	}
	r.progress = all
	if r.deadline.IsZero() {
		return selected, nil
	}
	out := append([]*tables.Table(nil), selected...)
	group := func(t *tables.Table) int {
		switch tp := all[t.Name]; {
		case tp != nil && !tp.complete:
			return 0
		case tp == nil:
			return 1
		}
		return 2
	}
	sort.SliceStable(out, func(i, j int) bool {
		gi, gj := group(out[i]), group(out[j])
		if gi != gj || gi != 2 {
			return gi < gj
		}
		return all[out[i].Name].completedAt.Before(all[out[j].Name].completedAt)
	})
	return out, nil
}

// resume starts tv's pass: with a budget it continues an unfinished one
// (its earlier runs' findings are counted into this run's result), else it
// begins a new one. It returns the key to start after (nil: the first).
func (r *runner) resume(ctx context.Context, tv *tableVerify) ([]string, error) {
	if r.opts.Progress == nil {
		return nil, nil
	}
	prev := r.progress[tv.cfg.Name]
	tv.pass = &tableProgress{passID: 1, passStarted: tv.res.Started}
	if prev == nil {
		return nil, nil
	}
	tv.pass.passID, tv.pass.completedAt = prev.passID+1, prev.completedAt
	if prev.complete || r.deadline.IsZero() || tv.key.Len() == 0 || prev.lastKey == nil {
		return nil, nil
	}
	tv.pass = prev
	tv.res.Resumed, tv.res.PassStarted = true, prev.passStarted
	prev.found.SourceReplica.addTo(&tv.res.SourceReplica)
	prev.found.ReplicaRaw.addTo(&tv.res.ReplicaRaw)
	return prev.lastKey, nil
}

// saveProgress records that tv's pass has compared every key up to lo, or
// the whole table, with what the pass found so far.
func (r *runner) saveProgress(ctx context.Context, tv *tableVerify, lo []string, complete bool) error {
	if tv.pass == nil {
		return nil
	}
	tp := tv.pass
	tp.lastKey, tp.complete = lo, complete
	tp.found = found{SourceReplica: countsOf(&tv.res.SourceReplica), ReplicaRaw: countsOf(&tv.res.ReplicaRaw)}
	if complete {
		tp.completedAt = r.now()
	}
	return r.opts.Progress.write(ctx, tv.cfg.Name, tp, r.now())
}
