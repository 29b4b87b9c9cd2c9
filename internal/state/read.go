package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// Row is one table's copy status.
type Row struct {
	Table            string
	Mode             string
	Status           string
	Watermark        sql.NullString // last copied watermark value, as the source printed it
	StartWatermark   sql.NullString // the source's MAX(watermark) when the running full copy began
	LastKey          sql.NullString // EncodeKey of the last committed chunk's last key
	RowsCopied       int64
	SourceUpdateTime sql.NullString // the source's UPDATE_TIME when the copy began
	SourceStartedAt  sql.NullString // the source's clock when the copy began
	ChangeSeq        int64          // bumped in the same commit as every replica write or delete
	LastRunStart     sql.NullString
	LastRunEnd       sql.NullString
	Error            sql.NullString
}

// ReadAll reads every table's copy status in one query, keyed by table
// name; empty when the replica has no state yet.
func ReadAll(ctx context.Context, q schema.Querier) (map[string]*Row, error) {
	rows, err := q.QueryContext(ctx, "SELECT table_name, mode, status, watermark, start_watermark, last_key, rows_copied,"+
		" source_update_time, source_started_at, change_seq, last_run_start, last_run_end, error FROM `"+CopyStatusTable+"`")
	if isNoSuchTable(err) {
		return map[string]*Row{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", CopyStatusTable, err)
	}
	defer rows.Close()
	out := map[string]*Row{}
	for rows.Next() {
		var s Row
		if err := rows.Scan(&s.Table, &s.Mode, &s.Status, &s.Watermark, &s.StartWatermark, &s.LastKey, &s.RowsCopied,
			&s.SourceUpdateTime, &s.SourceStartedAt, &s.ChangeSeq, &s.LastRunStart, &s.LastRunEnd, &s.Error); err != nil {
			return nil, fmt.Errorf("read %s: %w", CopyStatusTable, err)
		}
		out[s.Table] = &s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", CopyStatusTable, err)
	}
	return out, nil
}

// ChangeSeq reads one table's change_seq (in the caller's snapshot); ok is
// false when the replica does not track the table.
func ChangeSeq(ctx context.Context, q schema.Querier, table string) (seq int64, ok bool, err error) {
	err = schema.ScanOne(ctx, q, "SELECT change_seq FROM `"+CopyStatusTable+"` WHERE table_name = ?", []any{table}, &seq)
	if isNoSuchTable(err) || errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read change_seq of %s: %w", table, err)
	}
	return seq, true, nil
}

// MaxDeletionID is the highest deleted-rows id recorded for table (0 when
// none, or when the replica has no state yet).
func MaxDeletionID(ctx context.Context, q schema.Querier, table string) (int64, error) {
	var id int64
	err := schema.ScanOne(ctx, q, "SELECT COALESCE(MAX(id), 0) FROM `"+DeletedRowsTable+"` WHERE table_name = ?", []any{table}, &id)
	if isNoSuchTable(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s of %s: %w", DeletedRowsTable, table, err)
	}
	return id, nil
}

// DeletionRange selects a table's recorded deletes: ids in (After, Through].
type DeletionRange struct {
	Table   string
	After   int64 // the last id already applied
	Through int64 // the highest id to apply, read in the same snapshot (MaxDeletionID)
	KeyLen  int   // number of primary-key columns
}

// KeyStream streams the keys of one of the key logs (deleted rows, changed
// keys) in id order, each as its key values (strings). It is a
// pgx.CopyFromSource, so the keys go straight into a COPY and memory stays
// at one entry however many rows were logged.
type KeyStream struct {
	rows   *sql.Rows
	log    string
	table  string
	keyLen int
	key    []any
	err    error
}

// Deletions is the stream of the deleted-rows log.
type Deletions = KeyStream

// ReadDeletions starts streaming the deletes of r; Close ends it.
func ReadDeletions(ctx context.Context, q schema.Querier, r DeletionRange) (*Deletions, error) {
	return readLog(ctx, q, DeletedRowsTable, r)
}

// readLog streams the keys of r from a key log (deleted rows, changed keys).
func readLog(ctx context.Context, q schema.Querier, log string, r DeletionRange) (*KeyStream, error) {
	rows, err := q.QueryContext(ctx, "SELECT id, pk_values FROM `"+log+"`"+
		" WHERE table_name = ? AND id > ? AND id <= ? ORDER BY id", r.Table, r.After, r.Through)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", log, r.Table, err)
	}
	return &KeyStream{rows: rows, log: log, table: r.Table, keyLen: r.KeyLen}, nil
}

// Next moves to the next key; false at the end or on an error (see Err).
func (d *KeyStream) Next() bool {
	if d.err != nil || !d.rows.Next() {
		return false
	}
	var id int64
	var raw []byte
	if err := d.rows.Scan(&id, &raw); err != nil {
		d.err = fmt.Errorf("read %s of %s: %w", d.log, d.table, err)
		return false
	}
	d.key, d.err = ParseKey(raw, d.keyLen)
	if d.err != nil {
		d.err = fmt.Errorf("read %s id %d of %s: %w", d.log, id, d.table, d.err)
		return false
	}
	return true
}

// Values is the current key's values.
func (d *KeyStream) Values() ([]any, error) { return d.key, nil }

// Err is the error that ended the stream, if any.
func (d *KeyStream) Err() error {
	if d.err != nil {
		return d.err
	}
	return d.rows.Err()
}

// Close ends the stream.
func (d *KeyStream) Close() error { return d.rows.Close() }
