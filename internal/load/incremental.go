package load

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// incremental upserts the rows at or after the watermark (minus lookback)
// and the rows of logged keys, and applies the recorded deletes, all in
// one transaction.
func (tl *tableLoad) incremental(ctx context.Context) error {
	p, st, r := tl.p, tl.st, tl.r
	ptx, err := tl.beginStaged(ctx, "incremental")
	if err != nil {
		return err
	}
	defer ptx.Rollback(context.WithoutCancel(ctx))
	read, staged, err := tl.copyRows(ctx, ptx.Conn().PgConn(), copySpec{
		copySQL: "COPY pg_temp.etl_stage (" + p.columnList("") + ") FROM STDIN", query: p.selectSQL(" WHERE " + p.watermarkCond(*st.Watermark))})
	r.RowsRead = read
	r.Conversions = conversionMap(p, tl.counts)
	if err != nil {
		return err
	}
	if staged != read {
		return fmt.Errorf("staged %d of %d changed rows of %s", staged, read, p.src.Name)
	}
	// The logged keys' rows are re-copied whatever their watermark (keys.go).
	return tl.finishStaged(ctx, ptx, "incremental")
}

// beginStaged begins a load's transaction (how: "incremental", "keyed")
// with an empty etl_stage shaped like the raw table.
func (tl *tableLoad) beginStaged(ctx context.Context, how string) (pgx.Tx, error) {
	ptx, err := tl.l.raw.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin %s load: %w", how, err)
	}
	if _, err := ptx.Exec(ctx, "CREATE TEMP TABLE etl_stage (LIKE "+qualified(tl.p.target)+") ON COMMIT DROP"); err != nil {
		_ = ptx.Rollback(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("create staging table: %w", err)
	}
	return ptx, nil
}

// finishStaged ends a staged load in ptx: stages the logged keys' rows,
// applies the recorded deletes, upserts etl_stage, records the success and
// commits.
func (tl *tableLoad) finishStaged(ctx context.Context, ptx pgx.Tx, how string) error {
	p, st, snap, r := tl.p, tl.st, tl.snap, tl.r
	if err := tl.applyLogged(ctx, ptx); err != nil {
		return err
	}
	lastDel := st.LastDeletedID
	if p.table.DeletesEnabled() && snap.maxDelID > lastDel {
		n, err := tl.applyDeletes(ctx, ptx, lastDel)
		if err != nil {
			return err
		}
		r.RowsDeleted += n
		lastDel = snap.maxDelID
	}
	if err := tl.upsertStaged(ctx, ptx); err != nil {
		return err
	}
	wm := snap.watermark
	if wm == nil {
		wm = st.Watermark
	}
	if err := writeSuccess(ctx, ptx, tl.success(wm, lastDel)); err != nil {
		return err
	}
	if err := tl.commit(ctx, ptx, how); err != nil {
		return err
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
func (tl *tableLoad) applyDeletes(ctx context.Context, ptx pgx.Tx, afterID int64) (int64, error) {
	p := tl.p
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
	dels, err := state.ReadDeletions(ctx, tl.rc, state.DeletionRange{Table: p.src.Name, After: afterID, Through: tl.snap.maxDelID, KeyLen: len(p.key)})
	if err != nil {
		return 0, err
	}
	defer dels.Close()
	if _, err := ptx.CopyFrom(ctx, pgx.Identifier{"pg_temp", "etl_delete"}, names, dels); err != nil {
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
