package load

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// loadTable loads one table and never panics the run: every error lands in
// the result (and, unless planning, in etl_load_status).
func (l *Loader) loadTable(ctx context.Context, t *tables.Table, seqs map[string]int64, opts Options) TableResult {
	r := TableResult{Table: t.Name, Target: rawName(t.Name, opts.SnakeCase), Started: time.Now(), Status: StatusOK}
	err := l.doTable(ctx, t, seqs, opts, &r)
	r.Duration = time.Since(r.Started)
	log := l.log.With("table", t.Name, "mode", string(r.Mode))
	if err != nil {
		r.Status = StatusFailed
		r.Error = err.Error()
		log.Error("load failed", "error", err)
		if !opts.DryRun && !errors.Is(err, context.Canceled) {
			if werr := writeFailure(context.WithoutCancel(ctx), l.raw, &r); werr != nil {
				log.Error("record failure", "error", werr)
			}
		}
		return r
	}
	if r.Status == StatusOK && r.Mode != ModeUnchanged {
		log.Info("loaded", "rows_read", r.RowsRead, "rows_written", r.RowsWritten, "rows_deleted", r.RowsDeleted,
			"raw_rows", r.RawRows, "conversions", r.ConversionTotal(), "duration", r.Duration.Round(time.Millisecond))
	}
	return r
}

func (l *Loader) doTable(ctx context.Context, t *tables.Table, seqs map[string]int64, opts Options, r *TableResult) error {
	rc, err := l.replica.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to replica: %w", err)
	}
	defer rc.Close()
	src, err := describe(ctx, rc, t.Name)
	if opts.DryRun && errors.Is(err, errNotInReplica) {
		// `pipeline run --dry-run` plans the load before replication has
		// created the table: it will be loaded in full once it exists.
		r.Status, r.Mode, r.Reason = StatusPlanned, ModeFull, "not in the replica yet: loaded in full after replication creates it"
		return nil
	}
	if err != nil {
		return err
	}
	p, err := buildPlan(t, src, opts.SnakeCase)
	if err != nil {
		return err
	}
	r.Target = p.target
	st, err := readState(ctx, l.raw, t.Name)
	if err != nil {
		if !opts.DryRun {
			return err
		}
		st = nil // dry run before the first load: no state table yet
	}
	var exists bool
	if err := l.raw.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", qualified(p.target)).Scan(&exists); err != nil {
		return fmt.Errorf("check raw table %s: %w", p.target, err)
	}
	r.Mode, r.Reason, r.Changes = decide(p, st, exists, seqs, opts.FullRefresh)
	if opts.DryRun {
		r.Status = StatusPlanned
		r.Columns = p.columnPlans()
		var swap []string
		if r.Mode == ModeFull {
			views := 0
			if exists {
				if views, err = viewCount(ctx, l.raw, p); err != nil {
					return err
				}
			}
			if swap, err = p.swapSQL(st, views, r.Changes); err != nil {
				return err // the load would fail the same way
			}
		}
		r.DDL = p.ddl(r.Mode, swap)
		return nil
	}
	if r.Mode == ModeUnchanged {
		return nil
	}
	for _, c := range r.Changes {
		l.log.Warn("schema change", "table", t.Name, "change", c)
	}

	// One snapshot for the counts, the watermark, the deletes and the rows.
	// Plain SQL rather than sql.Tx: the rows are streamed through the
	// driver connection itself (see streamRows), which a sql.Tx cannot lend.
	for _, q := range []string{"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"} {
		if _, err := rc.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("start replica snapshot: %w", err)
		}
	}
	defer rc.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // read only: nothing to undo
	snap, err := readSnapshot(ctx, rc, p)
	if err != nil {
		return err
	}
	counts := make([]typemap.Counts, len(p.cols))
	progress := func(rows int64, final bool) {
		if opts.Progress != nil {
			total := int64(-1)
			switch {
			case final:
				total = rows
			case r.Mode == ModeFull:
				total = snap.count
			}
			opts.Progress(t.Name, rows, total)
		}
	}
	if r.Mode == ModeFull {
		return l.full(ctx, rc, p, st, snap, counts, progress, r)
	}
	return l.incremental(ctx, rc, p, st, snap, counts, progress, r)
}

// decide picks the table's mode and says why.
func decide(p *plan, st *loadState, exists bool, seqs map[string]int64, fullRefresh bool) (Mode, string, []string) {
	var changes []string
	if exists && st != nil && st.Signature != nil && *st.Signature != p.signature {
		changes = schemaChanges(*st.Signature, p.signature)
	}
	switch {
	case fullRefresh:
		return ModeFull, "--full-refresh", changes
	case !exists:
		return ModeFull, "raw table does not exist yet", nil
	case st == nil || st.Signature == nil:
		return ModeFull, "no load state for the existing raw table", nil
	case len(changes) > 0:
		return ModeFull, "schema changed: rebuild", changes
	}
	seq, tracked := seqs[p.src.Name]
	if st.Status == StatusOK && tracked && st.ChangeSeq != nil && *st.ChangeSeq == seq {
		return ModeUnchanged, "replica change_seq " + strconv.FormatInt(seq, 10) + " already loaded", nil
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
		out := []string{"BEGIN", p.createSQL(p.tmpName()), "COPY " + qualified(p.tmpName()) + " (" + p.columnList("") + ") FROM STDIN WITH (FREEZE)"}
		if len(p.key) > 0 {
			out = append(out, p.addKeySQL(p.tmpName(), p.pkeyName(p.tmpName())))
		}
		return append(append(out, swap...), "COMMIT")
	case ModeIncremental:
		return []string{"CREATE TEMP TABLE etl_stage (LIKE " + qualified(p.target) + ") ON COMMIT DROP",
			"COPY etl_stage FROM STDIN", p.upsertSQL("etl_stage")}
	}
	return nil
}

// queryer is the replica connection (the snapshot's).
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// snapshot is what the load reads from the replica before the rows, in the
// same repeatable-read snapshot as the rows.
type snapshot struct {
	count     int64
	changeSeq *int64
	watermark *string // highest watermark value
	maxDelID  int64
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
		if err := tx.QueryRowContext(ctx, "SELECT MAX("+typemap.QuoteMySQL(p.watermark.Name)+") FROM "+typemap.QuoteMySQL(p.src.Name)).Scan(&wm); err != nil {
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
	}
	return s, nil
}

// full builds the table beside the live one and swaps it in.
func (l *Loader) full(ctx context.Context, rc *sql.Conn, p *plan, st *loadState, snap *snapshot, counts []typemap.Counts, progress func(int64, bool), r *TableResult) error {
	// One transaction from CREATE to swap: a failure leaves nothing behind,
	// and COPY FREEZE (allowed into a table created in the same transaction)
	// writes rows already frozen, sparing the first readers and vacuum from
	// rewriting every page to set hint bits.
	ptx, err := l.raw.Begin(ctx) // holds one pool connection until Commit/Rollback
	if err != nil {
		return fmt.Errorf("begin full load: %w", err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	tmp := p.tmpName()
	if _, err := ptx.Exec(ctx, "DROP TABLE IF EXISTS "+qualified(tmp)); err != nil {
		return fmt.Errorf("drop leftover %s: %w", tmp, err)
	}
	if _, err := ptx.Exec(ctx, p.createSQL(tmp)); err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	read, written, err := copyRows(ctx, ptx.Conn().PgConn(), "COPY "+qualified(tmp)+" ("+p.columnList("")+") FROM STDIN WITH (FREEZE)",
		rc, p.selectSQL(""), p, counts, progress)
	r.RowsRead, r.RowsWritten = read, written
	r.Conversions = conversionMap(p, counts)
	if err != nil {
		return err
	}
	if written != snap.count {
		return fmt.Errorf("row count mismatch: replica %s has %d rows, %d copied into raw; table left unchanged", p.src.Name, snap.count, written)
	}
	if len(p.key) > 0 {
		if _, err := ptx.Exec(ctx, p.addKeySQL(tmp, p.pkeyName(tmp))); err != nil {
			return fmt.Errorf("add primary key to %s: %w", tmp, err)
		}
	}
	raw, err := swap(ctx, ptx, p, st, written, r)
	if err != nil {
		return err
	}
	r.RawRows = raw
	if raw != snap.count {
		return fmt.Errorf("row count mismatch: replica %s has %d rows, raw %s would have %d; table left unchanged", p.src.Name, snap.count, p.target, raw)
	}
	if err := writeSuccess(ctx, ptx, r, snap.watermark, snap.maxDelID, snap.changeSeq, p.signature); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("commit full load of %s: %w", p.target, err)
	}
	return nil
}

// swap replaces the live table by the new one inside ptx. Views built on
// the live table (dbt staging) would block a DROP, so when there are any and
// the old columns are all kept (new ones may be added) the rows are moved
// instead, keeping the views. They are moved with DELETE, not TRUNCATE:
// TRUNCATE is not MVCC-safe, and a repeatable-read reader whose snapshot
// predates the commit (pg_dump, a dbt run in one transaction) would find
// the table empty; after DELETE it still sees the old rows.
//
// It returns the live table's row count afterwards: the COPY's count when the
// new table is renamed in (nothing else writes to it), the INSERT's when rows
// are moved, so the check against the replica needs no extra scan.
func swap(ctx context.Context, ptx pgx.Tx, p *plan, st *loadState, copied int64, r *TableResult) (int64, error) {
	views, err := viewCount(ctx, ptx, p)
	if err != nil {
		return 0, err
	}
	stmts, err := p.swapSQL(st, views, r.Changes)
	if err != nil {
		return 0, err
	}
	var moved int64
	for _, q := range stmts {
		tag, err := ptx.Exec(ctx, q)
		if err != nil {
			return 0, fmt.Errorf("swap %s: %w", p.target, err)
		}
		if strings.HasPrefix(q, "INSERT") {
			moved = tag.RowsAffected()
		}
	}
	if views > 0 {
		return moved, nil
	}
	return copied, nil
}

// viewCount is the number of views that depend on the live raw table.
func viewCount(ctx context.Context, q pgxQuerier, p *plan) (int, error) {
	var n int
	if err := q.QueryRow(ctx, `SELECT count(DISTINCT rw.ev_class) FROM pg_depend d
		JOIN pg_rewrite rw ON rw.oid = d.objid AND d.classid = 'pg_rewrite'::regclass
		WHERE d.refobjid = to_regclass($1) AND rw.ev_class <> d.refobjid`, qualified(p.target)).Scan(&n); err != nil {
		return 0, fmt.Errorf("find views on %s: %w", p.target, err)
	}
	return n, nil
}

// swapSQL is the statements swap runs: with views on the live table, the
// rows moved under them (new columns added first); else the new table
// renamed in. changes describe the shape change for the error when views
// block it.
func (p *plan) swapSQL(st *loadState, views int, changes []string) ([]string, error) {
	tmp := p.tmpName()
	if views > 0 {
		added, ok := addedColumns(st, p)
		if !ok {
			return nil, fmt.Errorf("raw %s changed shape (%s) and %d view(s) depend on it; drop them (dbt rebuilds them) and load again", p.target, strings.Join(changes, "; "), views)
		}
		var stmts []string
		for _, c := range added {
			stmts = append(stmts, "ALTER TABLE "+qualified(p.target)+" ADD COLUMN "+typemap.QuotePG(c.Target)+" "+c.Mapping.Target)
		}
		return append(stmts,
			"DELETE FROM "+qualified(p.target),
			"INSERT INTO "+qualified(p.target)+" ("+p.columnList("")+") SELECT "+p.columnList("")+" FROM "+qualified(tmp),
			"DROP TABLE "+qualified(tmp)), nil
	}
	stmts := []string{
		"DROP TABLE IF EXISTS " + qualified(p.target),
		"ALTER TABLE " + qualified(tmp) + " RENAME TO " + typemap.QuotePG(p.target),
	}
	if len(p.key) > 0 {
		stmts = append(stmts, "ALTER TABLE "+qualified(p.target)+" RENAME CONSTRAINT "+typemap.QuotePG(p.pkeyName(tmp))+" TO "+typemap.QuotePG(p.pkeyName(p.target)))
	}
	return stmts, nil
}

// addedColumns returns the planned columns the live table lacks, with ok
// false unless every live column is kept with its type and the key is the
// same: only then can the live table take the new rows in place.
func addedColumns(st *loadState, p *plan) (added []column, ok bool) {
	if st == nil || st.Signature == nil {
		return nil, false
	}
	var old, nu signature
	if json.Unmarshal([]byte(*st.Signature), &old) != nil || json.Unmarshal([]byte(p.signature), &nu) != nil || !slices.Equal(old.Key, nu.Key) {
		return nil, false
	}
	planned := map[string]string{}
	for _, c := range nu.Columns {
		planned[c[0]] = c[1]
	}
	live := map[string]bool{}
	for _, c := range old.Columns {
		if planned[c[0]] != c[1] {
			return nil, false
		}
		live[c[0]] = true
	}
	for _, c := range p.cols {
		if !live[c.Target] {
			added = append(added, c)
		}
	}
	return added, true
}

// incremental upserts the rows at or after the watermark (minus lookback)
// and applies the recorded deletes, all in one transaction.
func (l *Loader) incremental(ctx context.Context, rc *sql.Conn, p *plan, st *loadState, snap *snapshot, counts []typemap.Counts, progress func(int64, bool), r *TableResult) error {
	ptx, err := l.raw.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin incremental load: %w", err)
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	if _, err := ptx.Exec(ctx, "CREATE TEMP TABLE etl_stage (LIKE "+qualified(p.target)+") ON COMMIT DROP"); err != nil {
		return fmt.Errorf("create staging table: %w", err)
	}
	read, staged, err := copyRows(ctx, ptx.Conn().PgConn(), "COPY pg_temp.etl_stage ("+p.columnList("")+") FROM STDIN",
		rc, p.selectSQL(" WHERE "+p.watermarkCond(*st.Watermark)), p, counts, progress)
	r.RowsRead = read
	r.Conversions = conversionMap(p, counts)
	if err != nil {
		return err
	}
	if staged != read {
		return fmt.Errorf("staged %d of %d changed rows of %s", staged, read, p.src.Name)
	}
	lastDel := st.LastDeletedID
	if p.table.DeletesEnabled() && snap.maxDelID > lastDel {
		n, err := applyDeletes(ctx, rc, ptx, p, lastDel, snap.maxDelID)
		if err != nil {
			return err
		}
		r.RowsDeleted = n
		lastDel = snap.maxDelID
	}
	tag, err := ptx.Exec(ctx, p.upsertSQL("pg_temp.etl_stage"))
	if err != nil {
		return fmt.Errorf("upsert changed rows into %s: %w", p.target, err)
	}
	r.RowsWritten = tag.RowsAffected()
	if err := ptx.QueryRow(ctx, "SELECT count(*) FROM "+qualified(p.target)).Scan(&r.RawRows); err != nil {
		return fmt.Errorf("count raw %s: %w", p.target, err)
	}
	if r.RawRows != snap.count {
		return fmt.Errorf("row count mismatch after incremental load: replica %s has %d rows, raw %s would have %d "+
			"(rows outside the watermark or unrecorded deletes); nothing applied — run `pipeline load --full-refresh --tables %s`",
			p.src.Name, snap.count, p.target, r.RawRows, p.src.Name)
	}
	wm := snap.watermark
	if wm == nil {
		wm = st.Watermark
	}
	if err := writeSuccess(ctx, ptx, r, wm, lastDel, snap.changeSeq, p.signature); err != nil {
		return err
	}
	if err := ptx.Commit(ctx); err != nil {
		return fmt.Errorf("commit incremental load of %s: %w", p.target, err)
	}
	return nil
}

// watermarkCond selects rows at or after the loaded watermark, reaching back
// lookback_seconds for temporal watermarks. ">=" re-reads the boundary: rows
// committed later with the same watermark value are not missed, and the
// upsert leaves unchanged rows untouched.
func (p *plan) watermarkCond(loaded string) string {
	col := typemap.QuoteMySQL(p.watermark.Name)
	switch p.watermark.Conv {
	case typemap.ConvDate, typemap.ConvDatetime, typemap.ConvTimestamp:
		if p.table.LookbackSeconds > 0 {
			return fmt.Sprintf("%s >= %s - INTERVAL %d SECOND", col, sqlLiteral(loaded), p.table.LookbackSeconds)
		}
	}
	return col + " >= " + sqlLiteral(loaded)
}

// applyDeletes removes the keys recorded in the replica's deleted-rows log (afterID,
// maxID] from raw, except keys present among the staged changed rows (a
// key deleted and then inserted again).
func applyDeletes(ctx context.Context, tx queryer, ptx pgx.Tx, p *plan, afterID, maxID int64) (int64, error) {
	defs := make([]string, len(p.key))
	names := make([]string, len(p.key))
	var match, stageMatch []string
	for i, k := range p.key {
		c := p.cols[k]
		names[i] = "k" + strconv.Itoa(i)
		defs[i] = names[i] + " text"
		match = append(match, fmt.Sprintf("t.%s = d.%s::%s", typemap.QuotePG(c.Target), names[i], c.Mapping.Target))
		stageMatch = append(stageMatch, fmt.Sprintf("s.%s = t.%s", typemap.QuotePG(c.Target), typemap.QuotePG(c.Target)))
	}
	if _, err := ptx.Exec(ctx, "CREATE TEMP TABLE etl_delete ("+strings.Join(defs, ", ")+") ON COMMIT DROP"); err != nil {
		return 0, fmt.Errorf("create delete staging: %w", err)
	}
	dels, err := state.ReadDeletions(ctx, tx, state.DeletionRange{Table: p.src.Name, After: afterID, Through: maxID, KeyLen: len(p.key)})
	if err != nil {
		return 0, err
	}
	defer dels.Close()
	if _, err := ptx.CopyFrom(ctx, pgx.Identifier{"etl_delete"}, names, dels); err != nil {
		return 0, fmt.Errorf("stage deletes of %s: %w", p.src.Name, err)
	}
	if err := dels.Close(); err != nil {
		return 0, fmt.Errorf("read %s of %s: %w", state.DeletedRowsTable, p.src.Name, err)
	}
	tag, err := ptx.Exec(ctx, "DELETE FROM "+qualified(p.target)+" t USING pg_temp.etl_delete d WHERE "+strings.Join(match, " AND ")+
		" AND NOT EXISTS (SELECT 1 FROM pg_temp.etl_stage s WHERE "+strings.Join(stageMatch, " AND ")+")")
	if err != nil {
		return 0, fmt.Errorf("apply deletes to %s: %w", p.target, err)
	}
	return tag.RowsAffected(), nil
}

func conversionMap(p *plan, counts []typemap.Counts) map[string]map[string]int64 {
	var out map[string]map[string]int64
	for i := range counts {
		if counts[i].Total() == 0 {
			continue
		}
		if out == nil {
			out = map[string]map[string]int64{}
		}
		out[p.cols[i].Name] = counts[i].Map()
	}
	return out
}

var errCopyStopped = errors.New("copy stopped")

// copyRows streams the rows of query into COPY text format through a pipe:
// one goroutine reads the replica while PostgreSQL ingests, and memory stays
// at one row plus the buffers whatever the table size. When COPY fails the
// replica query is cancelled, so the rest of a large result is not read
// just to be thrown away.
func copyRows(ctx context.Context, pc *pgconn.PgConn, copySQL string, rc *sql.Conn, query string, p *plan, counts []typemap.Counts, progress func(int64, bool)) (read, written int64, err error) {
	qctx, cancelRead := context.WithCancel(ctx)
	defer cancelRead()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := streamRows(qctx, rc, query, pw, p, counts, &read, progress)
		pw.CloseWithError(err) // nil: COPY sees EOF
		done <- err
	}()
	tag, cerr := pc.CopyFrom(ctx, pr, copySQL)
	if cerr != nil {
		cancelRead()
	}
	pr.CloseWithError(errCopyStopped) // unblocks the writer if COPY ended early
	werr := <-done
	switch {
	// Whichever side failed first is the cause; the other's error is its echo
	// (errCopyStopped, or the read cancelled because COPY failed).
	case werr != nil && !errors.Is(werr, errCopyStopped) && (cerr == nil || qctx.Err() == nil):
		return read, 0, fmt.Errorf("read replica %s: %w", p.src.Name, werr)
	case cerr != nil:
		return read, 0, fmt.Errorf("copy %s into raw: %w", p.src.Name, cerr)
	}
	progress(read, true)
	return read, tag.RowsAffected(), nil
}

// streamRows runs query on the replica connection's driver directly: the
// rows come as the driver decodes them (bytes, or int64/uint64/float64 for
// numbers) and go straight into the COPY line, skipping database/sql's
// per-value conversion, which costs a quarter of the loader's CPU.
func streamRows(ctx context.Context, rc *sql.Conn, query string, w io.Writer, p *plan, counts []typemap.Counts, read *int64, progress func(int64, bool)) error {
	return rc.Raw(func(dc any) error {
		q, ok := dc.(driver.QueryerContext)
		if !ok {
			return fmt.Errorf("the replica driver %T cannot run queries directly", dc)
		}
		rows, err := q.QueryContext(ctx, query, nil) // no arguments: MySQL's text protocol
		if err != nil {
			return err
		}
		defer rows.Close()
		if n := len(rows.Columns()); n != len(p.cols) {
			return fmt.Errorf("query returned %d columns, expected %d", n, len(p.cols))
		}
		bw := bufio.NewWriterSize(w, 256<<10)
		dest := make([]driver.Value, len(p.cols))
		line := make([]byte, 0, 4096)
		for {
			if err := rows.Next(dest); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return err
			}
			line = line[:0]
			for i, v := range dest {
				if i > 0 {
					line = append(line, '\t')
				}
				if line, err = appendValue(line, v, &p.cols[i], &counts[i]); err != nil {
					return err
				}
			}
			line = append(line, '\n')
			if _, err := bw.Write(line); err != nil {
				return err
			}
			*read++
			if *read%16384 == 0 {
				progress(*read, false)
			}
		}
		return bw.Flush()
	})
}

// appendValue writes one driver value as a COPY text field.
func appendValue(dst []byte, v driver.Value, c *column, counts *typemap.Counts) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, `\N`...), nil
	case []byte:
		return typemap.AppendCopy(dst, x, c.Conv, c.Mapping.Bits, counts), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float64: // shortest text that reads back as the same float64
		return strconv.AppendFloat(dst, x, 'g', -1, 64), nil
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'g', -1, 32), nil
	case string:
		return typemap.AppendCopy(dst, []byte(x), c.Conv, c.Mapping.Bits, counts), nil
	}
	return dst, fmt.Errorf("column %q: unexpected %T from the replica driver (the replica connection must keep parseTime off)", c.Name, v)
}
