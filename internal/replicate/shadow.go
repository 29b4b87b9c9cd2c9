package replicate

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/opendental-pipeline/pipeline/internal/rowcopy"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// shadowCopy copies a table without a primary key whole into a shadow table
// and swaps it in with one atomic RENAME TABLE. Such tables cannot be paged
// by key, so the source is read in one query: they are expected to be small.
// The shadow and the swapped-out table are named in the pipeline's reserved
// namespace (state.TempName), so they never meet a source table.
func (j *tableJob) shadowCopy(ctx context.Context) error {
	name := j.cfg.Name
	shadow, old := state.TempName("shadow", name), state.TempName("old", name)
	if err := j.begin(state.ModeShadow, false).Exec(ctx, j.conn); err != nil {
		return err
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + quoteIdent(shadow) + ", " + quoteIdent(old),
		"CREATE TABLE " + quoteIdent(shadow) + " LIKE " + quoteIdent(name),
	} {
		if _, err := j.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("prepare shadow table of %s: %w", name, err)
		}
	}
	var total int64
	err := j.source(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var err error
		total, err = j.fillShadow(ctx, conn, shadow)
		return err
	})
	if err != nil {
		return fmt.Errorf("copy %s into its shadow table: %w", name, err)
	}
	if err := j.r.holds(ctx, j.conn); err != nil {
		return err
	}
	if _, err := j.conn.ExecContext(ctx, "RENAME TABLE "+quoteIdent(name)+" TO "+quoteIdent(old)+", "+quoteIdent(shadow)+" TO "+quoteIdent(name)); err != nil {
		return fmt.Errorf("swap shadow table of %s: %w", name, err)
	}
	if _, err := j.conn.ExecContext(ctx, "DROP TABLE "+quoteIdent(old)); err != nil {
		return fmt.Errorf("drop previous copy of %s: %w", name, err)
	}
	if err := state.For(name).Rows(total).BumpChangeSeq().Exec(ctx, j.conn); err != nil {
		return err
	}
	j.res.Mode = state.ModeShadow
	j.res.RowsRead += total
	j.res.RowsWritten += total
	return nil
}

// fillShadow reads the whole source table on conn into the (emptied)
// shadow table, batch_size rows per LOAD DATA, and returns the row count.
// A retry of the source turn starts over from an empty shadow.
func (j *tableJob) fillShadow(ctx context.Context, conn *sql.Conn, shadow string) (int64, error) {
	if _, err := j.conn.ExecContext(ctx, "TRUNCATE TABLE "+quoteIdent(shadow)); err != nil {
		return 0, err
	}
	var f rowcopy.File
	var total int64
	flush := func() error {
		if _, err := rowcopy.Load(ctx, j.conn, shadow, j.src.Columns, &f); err != nil {
			return err
		}
		total += int64(f.Rows())
		f.Reset()
		return nil
	}
	whole := sourceRead{query: "SELECT " + j.sel + " FROM " + quoteIdent(j.cfg.Name)}
	err := eachRawRow(ctx, conn, whole, len(j.cols), func(vals []sql.RawBytes) error {
		f.Add(vals)
		if f.Rows() >= j.batch() {
			return flush()
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return total, nil
}
