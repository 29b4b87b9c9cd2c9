package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// tableLoad is one table's load: what it was asked, what it learned (the
// plan, the raw table's load state, the replica snapshot) and its result.
type tableLoad struct {
	l    *Loader
	t    *tables.Table
	opts Options
	run0 runStart // the replica's copies and raw's shapes as the run started
	r    *TableResult

	rc     *sql.Conn  // the replica connection, which holds the snapshot
	p      *plan      // set by prepare
	st     *loadState // the raw table's load state; nil before its first load
	exists bool       // the raw table exists
	raw    *shape     // its shape as the run started; nil when it does not exist
	snap   *snapshot  // set by load
	stamp  time.Time  // the loaded-at marker of rows this load inserts or changes
	counts []typemap.Counts
}

// loadTable loads one table and never panics the run: every error lands in
// the result (and, unless planning, in etl_load_status).
func (l *Loader) loadTable(ctx context.Context, t *tables.Table, run0 runStart, opts Options) TableResult {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	tl := &tableLoad{l: l, t: t, opts: opts, run0: run0, stamp: stampOf(now()),
		r: &TableResult{Table: t.Name, Target: rawName(t.Name, opts.SnakeCase), Started: time.Now(), Status: StatusOK}}
	if why := tl.incomplete(); why != "" {
		return tl.skip(ctx, why)
	}
	err := tl.run(ctx)
	r := tl.r
	r.Duration = time.Since(r.Started)
	log := l.log.With("table", t.Name, "mode", string(r.Mode))
	if err != nil && errors.Is(err, context.Canceled) {
		r.Status = StatusStopped
		log.Info("load interrupted; the table is loaded next run", "error", err)
		return *r
	}
	if err != nil {
		r.Status = StatusFailed
		r.Error = err.Error()
		log.Error("load failed", "error", err)
		if !opts.DryRun && run0.fence.failed() == nil {
			if werr := writeFailure(context.WithoutCancel(ctx), l.raw, r); werr != nil {
				log.Error("record failure", "error", werr)
			}
		}
		return *r
	}
	if r.Status == StatusOK && r.Mode != ModeUnchanged {
		log.Info("loaded", "rows_read", r.RowsRead, "rows_written", r.RowsWritten, "rows_deleted", r.RowsDeleted,
			"raw_rows", r.RawRows, "conversions", r.ConversionTotal(), "duration", r.Duration.Round(time.Millisecond))
	}
	return *r
}

// incomplete says why the table's replica copy may not be published, or
// "" when it may (see state.Copy.Complete). A replica without state tables
// was not written by replicate: nothing is known, and its tables are loaded.
func (tl *tableLoad) incomplete() string {
	if tl.run0.copies == nil {
		return ""
	}
	c, ok := tl.run0.copies[tl.t.Name]
	if !ok {
		return "replica copy incomplete (replicate has not copied the table yet); run `pipeline replicate`"
	}
	_, why := c.Complete()
	return why
}

// skip records that the table was not loaded because its replica copy is
// incomplete: raw and the load state's watermark, deletes and change_seq
// stay at the last good load; the status says why (a dry run only plans).
func (tl *tableLoad) skip(ctx context.Context, why string) TableResult {
	r := tl.r
	r.Status, r.Reason, r.Error = StatusSkipped, why, "skipped: "+why
	if tl.opts.DryRun {
		r.Status, r.Error = StatusPlanned, ""
		r.Reason = "would be skipped: " + why
		return *r
	}
	tl.l.log.Warn("load skipped", "table", tl.t.Name, "why", why)
	if err := writeFailure(context.WithoutCancel(ctx), tl.l.raw, r); err != nil {
		tl.l.log.Error("record skip", "table", tl.t.Name, "error", err)
	}
	r.Duration = time.Since(r.Started)
	return *r
}

// run prepares the table's load and, unless there is nothing to load,
// loads it.
func (tl *tableLoad) run(ctx context.Context) error {
	if tl.unchangedAtStart() {
		return nil
	}
	rc, err := tl.l.replica.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to replica: %w", err)
	}
	defer rc.Close()
	tl.rc = rc
	done, err := tl.prepare(ctx)
	if err != nil || done {
		return err
	}
	for _, c := range tl.r.Changes {
		tl.l.log.Warn("schema change", "table", tl.t.Name, "change", c)
	}
	return tl.load(ctx)
}

// prepare describes the replica table, plans its raw table, reads its load
// state and decides the mode. done is true when there is nothing more to do:
// a dry run (whose plan it fills in) or an unchanged table.
func (tl *tableLoad) prepare(ctx context.Context) (done bool, err error) {
	src, err := describe(ctx, tl.rc, tl.t.Name)
	if tl.opts.DryRun && errors.Is(err, errNotInReplica) {
		// `pipeline run --dry-run` plans the load before replication has
		// created the table: it will be loaded in full once it exists.
		tl.r.Status, tl.r.Mode, tl.r.Reason = StatusPlanned, ModeFull, "not in the replica yet: loaded in full after replication creates it"
		return true, nil
	}
	if err != nil {
		return true, err
	}
	if tl.p, err = buildPlan(tl.t, src, tl.opts); err != nil {
		return true, err
	}
	tl.r.Target = tl.p.target
	tl.st = tl.run0.states[tl.t.Name]
	tl.raw = tl.run0.shapes[tl.p.target]
	tl.exists = tl.raw != nil
	tl.r.Mode, tl.r.Reason, tl.r.Changes = decide(tl.p, tl.st, tl.raw, tl.run0.copies, tl.opts.FullRefresh)
	if tl.opts.DryRun {
		return true, tl.dryRun(ctx)
	}
	return tl.r.Mode == ModeUnchanged, nil
}

// unchangedAtStart decides, from what the run read at its start (the
// replica's schema, copies and raw's shapes and load states, one query each
// for every table), whether the table needs no load, and if so records that.
// A no-change night then costs no query per table. Anything else is decided
// again by prepare from a fresh look at the table: this path only ever says
// "as of the run's start nothing changed", what a load begun a moment
// earlier would have found.
func (tl *tableLoad) unchangedAtStart() bool {
	src := tl.run0.replica[tl.t.Name]
	if src == nil || tl.opts.DryRun {
		return false
	}
	p, err := buildPlan(tl.t, src, tl.opts)
	if err != nil {
		return false
	}
	st, raw := tl.run0.states[tl.t.Name], tl.run0.shapes[p.target]
	mode, reason, changes := decide(p, st, raw, tl.run0.copies, tl.opts.FullRefresh)
	if mode != ModeUnchanged {
		return false
	}
	tl.p, tl.st, tl.raw, tl.exists = p, st, raw, raw != nil
	tl.r.Target, tl.r.Mode, tl.r.Reason, tl.r.Changes = p.target, mode, reason, changes
	return true
}

// dryRun fills in what --dry-run shows: the column decisions and the
// statements the load would run.
func (tl *tableLoad) dryRun(ctx context.Context) error {
	tl.r.Status = StatusPlanned
	tl.r.Columns = tl.p.columnPlans()
	var swap []string
	if tl.r.Mode == ModeFull {
		views := 0
		if tl.exists {
			var err error
			if views, err = viewCount(ctx, tl.l.raw, tl.p); err != nil {
				return err
			}
		}
		var err error
		if swap, err = tl.swapSQL(views); err != nil {
			return err // the load would fail the same way
		}
	}
	tl.r.DDL = tl.p.ddl(tl.r.Mode, swap)
	return nil
}

// load reads the replica table in one snapshot (the counts, the watermark,
// the deletes and the rows) and loads it in the decided mode.
func (tl *tableLoad) load(ctx context.Context) error {
	// Plain SQL rather than sql.Tx: the rows are streamed through the
	// driver connection itself (see streamRows), which a sql.Tx cannot lend.
	for _, q := range []string{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"} {
		if _, err := tl.rc.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("start replica snapshot: %w", err)
		}
	}
	defer tl.rc.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read only: nothing to undo
	var err error
	if tl.snap, err = readSnapshot(ctx, tl.rc, tl.p); err != nil {
		return err
	}
	tl.counts = make([]typemap.Counts, len(tl.p.cols))
	if err := tl.keyedOnly(ctx); err != nil {
		return err
	}
	switch tl.r.Mode {
	case ModeFull:
		return tl.full(ctx)
	case ModeKeys:
		return tl.keyed(ctx)
	}
	return tl.incremental(ctx)
}

// progress reports rows streamed so far (final: all of them) to
// Options.Progress, with the total when it is known.
func (tl *tableLoad) progress(rows int64, final bool) {
	if tl.opts.Progress == nil {
		return
	}
	total := int64(-1)
	switch {
	case final:
		total = rows
	case tl.r.Mode == ModeFull:
		total = tl.snap.count
	}
	tl.opts.Progress(tl.t.Name, rows, total)
}

// decide picks the table's mode and says why.
// raw is the raw table's shape now (nil: it does not exist): a table
// changed by hand (handChanges) is rebuilt, reported like a schema change.
func decide(p *plan, st *loadState, raw *shape, copies map[string]state.Copy, fullRefresh bool) (Mode, string, []string) {
	var changes, hand []string
	if raw != nil && st != nil && st.Signature != nil {
		hand = handChanges(st, raw)
		if *st.Signature != p.signature {
			changes = schemaChanges(*st.Signature, p.signature)
		}
	}
	switch {
	case fullRefresh:
		return ModeFull, "--full-refresh", append(hand, changes...)
	case raw == nil:
		return ModeFull, "raw table does not exist yet", nil
	case st == nil || st.Signature == nil:
		return ModeFull, "no load state for the existing raw table", nil
	case len(hand) > 0:
		return ModeFull, "raw table changed by hand: rebuild", append(hand, changes...)
	case len(changes) > 0:
		return ModeFull, "schema changed: rebuild", changes
	}
	c, tracked := copies[p.src.Name]
	if st.Status == StatusOK && tracked && st.ChangeSeq != nil && *st.ChangeSeq == c.ChangeSeq {
		return ModeUnchanged, "replica change_seq " + strconv.FormatInt(c.ChangeSeq, 10) + " already loaded", nil
	}
	switch {
	case len(p.key) == 0:
		return ModeFull, "no primary key", nil
	case p.table.Strategy == tables.FullTable:
		return ModeFull, "extraction_strategy full_table", nil
	case p.watermark == nil:
		return ModeFull, "no watermark column", nil
	case st.Watermark == nil:
		return ModeFull, "no watermark loaded yet", nil
	}
	return ModeIncremental, "rows with " + p.watermark.Name + " >= " + *st.Watermark, nil
}

// ddl is what --dry-run shows for the mode; swap is swapSQL's statements
// for a full load.
func (p *plan) ddl(m Mode, swap []string) []string {
	switch m {
	case ModeFull:
		out := []string{"BEGIN", p.createSQL(p.building()), "COPY " + p.building() + " (" + p.columnList("") + ") FROM STDIN WITH (FREEZE)"}
		if len(p.key) > 0 {
			out = append(out, p.addKeySQL(p.building()))
		}
		return append(append(out, swap...), "COMMIT")
	case ModeIncremental, ModeKeys:
		return []string{"CREATE TEMP TABLE etl_stage (LIKE " + qualified(p.target) + ") ON COMMIT DROP",
			"COPY pg_temp.etl_stage FROM STDIN", p.upsertSQL("pg_temp.etl_stage")}
	}
	return nil
}

// queryer is the replica connection (the snapshot's).
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// maxWatermarkSQL reads the highest watermark the load records. A TIMESTAMP
// stamped in the future (after the server's clock) is left out: as the
// watermark it would make every later load skip the rows changed until then.
// Such a row is re-read by each load instead (the upsert leaves it alone).
func (p *plan) maxWatermarkSQL() string {
	col := typemap.QuoteMySQL(p.watermark.Name)
	q := "SELECT MAX(" + col + ") FROM " + typemap.QuoteMySQL(p.src.Name)
	if p.watermark.Conv == typemap.ConvTimestamp {
		q += " WHERE " + col + " < UTC_TIMESTAMP() + INTERVAL 1 SECOND"
	}
	return q
}

// snapshot is what the load reads from the replica before the rows, in the
// same repeatable-read snapshot as the rows.
type snapshot struct {
	count       int64
	changeSeq   *int64
	watermark   *string // highest watermark value
	maxDelID    int64
	maxChangeID int64 // highest changed-keys id
}

func readSnapshot(ctx context.Context, tx queryer, p *plan) (*snapshot, error) {
	s := &snapshot{}
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+typemap.QuoteMySQL(p.src.Name)).Scan(&s.count); err != nil {
		return nil, fmt.Errorf("count replica rows of %s: %w", p.src.Name, err)
	}
	seq, ok, err := state.ChangeSeq(ctx, tx, p.src.Name)
	if err != nil {
		return nil, err
	}
	if ok {
		s.changeSeq = &seq
	}
	if p.watermark != nil {
		var wm sql.NullString
		if err := tx.QueryRowContext(ctx, p.maxWatermarkSQL()).Scan(&wm); err != nil {
			return nil, fmt.Errorf("read watermark of %s: %w", p.src.Name, err)
		}
		if wm.Valid {
			s.watermark = &wm.String
		}
	}
	if len(p.key) > 0 {
		if s.maxDelID, err = state.MaxDeletionID(ctx, tx, p.src.Name); err != nil {
			return nil, err
		}
		if s.maxChangeID, err = state.MaxChangedKeyID(ctx, tx, p.src.Name); err != nil {
			return nil, err
		}
	}
	return s, nil
}
