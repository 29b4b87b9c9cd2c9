package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Update is a set of writes to one table's copy status row, applied in one
// statement that creates the row when missing. Run it on the transaction
// that writes the data it describes (Exec), so the replica and its state
// commit together:
//
//	state.For("patient").LastKey(k).AddRows(n).BumpChangeSeq().Exec(ctx, tx)
type Update struct {
	table string
	cols  []string // columns given a value
	args  []any
	sets  []string // the ON DUPLICATE KEY UPDATE assignments
}

// For starts an Update of table's row.
func For(table string) *Update {
	return &Update{table: table, cols: []string{"table_name"}, args: []any{table}}
}

// set gives col the value v (nil is NULL).
func (u *Update) set(col string, v any) *Update {
	u.cols = append(u.cols, col)
	u.args = append(u.args, v)
	u.sets = append(u.sets, col+"=VALUES("+col+")")
	return u
}

// Mode records the copy mode (ModeFull …).
func (u *Update) Mode(m string) *Update { return u.set("mode", m) }

// Status records the status (StatusRunning …).
func (u *Update) Status(s string) *Update { return u.set("status", s) }

// Watermark records the last copied watermark value.
func (u *Update) Watermark(v string) *Update { return u.set("watermark", v) }

// WatermarkFromStart makes the watermark the start watermark recorded when
// the (now finished) full copy began.
func (u *Update) WatermarkFromStart() *Update {
	u.cols = append(u.cols, "watermark")
	u.args = append(u.args, nil)
	u.sets = append(u.sets, "watermark=start_watermark")
	return u
}

// StartWatermark records the source's MAX(watermark) at the start of a full
// copy (NULL: none, or not read).
func (u *Update) StartWatermark(v sql.NullString) *Update { return u.set("start_watermark", v) }

// LastKey records the key (EncodeKey) of the last committed chunk.
func (u *Update) LastKey(key string) *Update { return u.set("last_key", key) }

// ClearLastKey forgets the resume point.
func (u *Update) ClearLastKey() *Update { return u.set("last_key", nil) }

// Rows sets the rows copied by the current run.
func (u *Update) Rows(n int64) *Update { return u.set("rows_copied", n) }

// AddRows adds n to the rows copied by the current run.
func (u *Update) AddRows(n int64) *Update {
	u.cols = append(u.cols, "rows_copied")
	u.args = append(u.args, n)
	u.sets = append(u.sets, "rows_copied=rows_copied+VALUES(rows_copied)")
	return u
}

// Source records what the source said when the copy began: its table's
// UPDATE_TIME ("" when the engine does not know) and its clock.
func (u *Update) Source(updateTime, startedAt string) *Update {
	var ut any
	if updateTime != "" {
		ut = updateTime
	}
	return u.set("source_update_time", ut).set("source_started_at", startedAt)
}

// RunStart records when this run began work on the table.
func (u *Update) RunStart(at time.Time) *Update { return u.set("last_run_start", at.UTC()) }

// RunEnd records when this run finished with the table.
func (u *Update) RunEnd(at time.Time) *Update { return u.set("last_run_end", at.UTC()) }

// Error records why the run failed (cut to 4000 bytes).
func (u *Update) Error(msg string) *Update {
	if len(msg) > 4000 {
		msg = msg[:4000]
	}
	return u.set("error", msg)
}

// ClearError forgets the last failure.
func (u *Update) ClearError() *Update { return u.set("error", nil) }

// BumpChangeSeq adds one to change_seq: the replica table changed in this
// commit, so the load phase has work.
func (u *Update) BumpChangeSeq() *Update {
	u.cols = append(u.cols, "change_seq")
	u.args = append(u.args, 1)
	u.sets = append(u.sets, "change_seq=change_seq+1")
	return u
}

// Exec writes the row on ex (the data's transaction, or the connection).
func (u *Update) Exec(ctx context.Context, ex Execer) error {
	sets := u.sets
	if len(sets) == 0 {
		sets = []string{"table_name=table_name"}
	}
	q := "INSERT INTO `" + CopyStatusTable + "` (" + strings.Join(u.cols, ",") + ") VALUES (" +
		strings.TrimSuffix(strings.Repeat("?,", len(u.cols)), ",") + ") ON DUPLICATE KEY UPDATE " + strings.Join(sets, ",")
	if _, err := ex.ExecContext(ctx, q, u.args...); err != nil {
		return fmt.Errorf("update %s for %s: %w", CopyStatusTable, u.table, err)
	}
	return nil
}

// RecordDeletes appends keys (each EncodeKey'd) to the deleted-rows log of
// table, on the transaction that deletes those rows from the replica; the
// caller bumps change_seq in the same transaction.
func RecordDeletes(ctx context.Context, ex Execer, table string, keys [][]string, at time.Time) error {
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		rows := make([]string, len(batch))
		args := make([]any, 0, 3*len(batch))
		for i, k := range batch {
			rows[i] = "(?,?,?)"
			args = append(args, table, EncodeKey(k), at.UTC())
		}
		if _, err := ex.ExecContext(ctx, "INSERT INTO `"+DeletedRowsTable+"` (table_name, pk_values, detected_at) VALUES "+
			strings.Join(rows, ","), args...); err != nil {
			return fmt.Errorf("record deleted rows of %s: %w", table, err)
		}
	}
	return nil
}

// MarkUnchanged records for tables found unchanged at the source that this
// run checked them (status ok, run end at), 500 per statement.
func MarkUnchanged(ctx context.Context, ex Execer, tables []string, at time.Time) error {
	for len(tables) > 0 {
		n := min(len(tables), 500)
		args := []any{at.UTC()}
		for _, t := range tables[:n] {
			args = append(args, t)
		}
		q := "UPDATE `" + CopyStatusTable + "` SET last_run_end=?, status='" + StatusOK + "', error=NULL WHERE table_name IN (" +
			strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
		if _, err := ex.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("update %s: %w", CopyStatusTable, err)
		}
		tables = tables[n:]
	}
	return nil
}

// Fence waits until every transaction that writes the copy status has
// ended, and returns. A replicate run that has just taken the replica lock
// calls it: a run that lost the lock (its session was killed) may have a
// chunk transaction that checked the lock before it was lost and has not
// committed yet; every such transaction has written its table's state row,
// so a locking read of all of them waits for it. After the fence that run's
// next check fails and it stops (internal/lock).
func Fence(ctx context.Context, db interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("fence %s: %w", CopyStatusTable, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, "SELECT table_name FROM `"+CopyStatusTable+"` FOR UPDATE")
	if err != nil {
		return fmt.Errorf("fence %s: %w", CopyStatusTable, err)
	}
	for rows.Next() {
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("fence %s: %w", CopyStatusTable, err)
	}
	return tx.Commit()
}

// Forget deletes every state row of table (its copy status, deleted-rows
// and changed-keys logs) on ex, the transaction of a run that dropped the
// replica table because its source table is gone.
func Forget(ctx context.Context, ex Execer, table string) error {
	for _, t := range []string{CopyStatusTable, DeletedRowsTable, ChangedKeysTable} {
		if _, err := ex.ExecContext(ctx, "DELETE FROM `"+t+"` WHERE table_name = ?", table); err != nil {
			return fmt.Errorf("forget %s in %s: %w", table, t, err)
		}
	}
	return nil
}
