package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

var statusDDL = `CREATE TABLE IF NOT EXISTS ` + typemap.QuotePG(Schema) + `.` + StatusTable + ` (
	table_name      text PRIMARY KEY,   -- source (replica) table name
	target_table    text NOT NULL,      -- raw table name
	mode            text NOT NULL,      -- full | incremental (an unchanged table keeps its row)
	status          text NOT NULL,      -- ok | failed
	watermark       text,               -- MySQL text of the highest watermark loaded
	rows_read       bigint NOT NULL DEFAULT 0,
	rows_written    bigint NOT NULL DEFAULT 0,
	rows_deleted    bigint NOT NULL DEFAULT 0,
	raw_rows        bigint,
	conversions     jsonb NOT NULL DEFAULT '{}', -- column -> kind -> count, last load
	last_deleted_id bigint NOT NULL DEFAULT 0,   -- highest replica _pipeline_deleted_rows id applied
	last_changed_key_id bigint NOT NULL DEFAULT 0, -- highest replica _pipeline_changed_keys id applied
	change_seq      bigint,                      -- replica _pipeline_copy_status.change_seq loaded
	signature       text,                        -- column names and types of the raw table
	started_at      timestamptz,
	finished_at     timestamptz,
	error           text
)`

// ensureStatusTable creates schema raw (only when missing: CREATE SCHEMA
// needs a privilege the loader's role may lack) and the state table.
func ensureStatusTable(ctx context.Context, pool *pgxpool.Pool) error {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regnamespace($1) IS NOT NULL", typemap.QuotePG(Schema)).Scan(&exists); err != nil {
		return fmt.Errorf("check schema %s: %w", Schema, err)
	}
	if !exists {
		if _, err := pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+typemap.QuotePG(Schema)); err != nil {
			return fmt.Errorf("create schema %s (or create it once as the database owner): %w", Schema, err)
		}
	}
	if _, err := pool.Exec(ctx, statusDDL); err != nil {
		return fmt.Errorf("create %s.%s: %w", Schema, StatusTable, err)
	}
	// A status table made by an older version lacks the column.
	if _, err := pool.Exec(ctx, "ALTER TABLE "+typemap.QuotePG(Schema)+"."+StatusTable+
		" ADD COLUMN IF NOT EXISTS last_changed_key_id bigint NOT NULL DEFAULT 0"); err != nil {
		return fmt.Errorf("add last_changed_key_id to %s.%s: %w", Schema, StatusTable, err)
	}
	return nil
}

// loadState is a table's row of etl_load_status.
type loadState struct {
	Target        string
	Status        string
	Watermark     *string
	LastDeletedID int64
	LastChangeID  int64 // highest changed-keys id applied
	ChangeSeq     *int64
	Signature     *string
}

func readState(ctx context.Context, q pgxQuerier, table string) (*loadState, error) {
	var s loadState
	err := q.QueryRow(ctx, `SELECT target_table, status, watermark, last_deleted_id, last_changed_key_id, change_seq, signature FROM `+
		typemap.QuotePG(Schema)+`.`+StatusTable+` WHERE table_name = $1`, table).
		Scan(&s.Target, &s.Status, &s.Watermark, &s.LastDeletedID, &s.LastChangeID, &s.ChangeSeq, &s.Signature)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read load state of %s: %w", table, err)
	}
	return &s, nil
}

type pgxQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// success is what a finished load records.
type success struct {
	r             *TableResult
	watermark     *string // highest watermark loaded
	lastDeletedID int64   // highest deleted-rows id applied
	lastChangeID  int64   // highest changed-keys id applied
	changeSeq     *int64  // the replica change_seq loaded
	signature     string  // the raw table's columns and key
}

// success is the record of this load with watermark and lastDeletedID.
func (tl *tableLoad) success(watermark *string, lastDeletedID int64) success {
	// Every load applies the changed-keys log up to its snapshot (a full one
	// by reloading everything).
	return success{r: tl.r, watermark: watermark, lastDeletedID: lastDeletedID, lastChangeID: tl.snap.maxChangeID,
		changeSeq: tl.snap.changeSeq, signature: tl.p.signature}
}

// writeSuccess records a finished load; run inside the transaction that made it visible.
func writeSuccess(ctx context.Context, tx pgx.Tx, s success) error {
	r := s.r
	conv, _ := json.Marshal(orEmpty(r.Conversions))
	_, err := tx.Exec(ctx, `INSERT INTO `+typemap.QuotePG(Schema)+`.`+StatusTable+` AS s
		(table_name, target_table, mode, status, watermark, rows_read, rows_written, rows_deleted, raw_rows,
		 conversions, last_deleted_id, change_seq, signature, started_at, finished_at, error, last_changed_key_id)
		VALUES ($1,$2,$3,'ok',$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,NULL,$15)
		ON CONFLICT (table_name) DO UPDATE SET target_table = EXCLUDED.target_table, mode = EXCLUDED.mode,
		 status = 'ok', watermark = EXCLUDED.watermark, rows_read = EXCLUDED.rows_read,
		 rows_written = EXCLUDED.rows_written, rows_deleted = EXCLUDED.rows_deleted, raw_rows = EXCLUDED.raw_rows,
		 conversions = EXCLUDED.conversions, last_deleted_id = EXCLUDED.last_deleted_id,
		 last_changed_key_id = EXCLUDED.last_changed_key_id,
		 change_seq = EXCLUDED.change_seq, signature = EXCLUDED.signature,
		 started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, error = NULL`,
		r.Table, r.Target, string(r.Mode), s.watermark, r.RowsRead, r.RowsWritten, r.RowsDeleted, r.RawRows,
		conv, s.lastDeletedID, s.changeSeq, s.signature, r.Started, time.Now(), s.lastChangeID)
	if err != nil {
		return fmt.Errorf("record load state of %s: %w", r.Table, err)
	}
	return nil
}

// writeFailure records a failed load, keeping the last good watermark,
// delete id and change_seq so the next run starts from there.
func writeFailure(ctx context.Context, pool *pgxpool.Pool, r *TableResult) error {
	conv, _ := json.Marshal(orEmpty(r.Conversions))
	_, err := pool.Exec(ctx, `INSERT INTO `+typemap.QuotePG(Schema)+`.`+StatusTable+` AS s
		(table_name, target_table, mode, status, rows_read, rows_written, rows_deleted, conversions, started_at, finished_at, error)
		VALUES ($1,$2,$3,'failed',$4,$5,$6,$7,$8,$9,$10)
		ON CONFLICT (table_name) DO UPDATE SET mode = EXCLUDED.mode, status = 'failed',
		 rows_read = EXCLUDED.rows_read, rows_written = EXCLUDED.rows_written, rows_deleted = EXCLUDED.rows_deleted,
		 conversions = EXCLUDED.conversions, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
		 error = EXCLUDED.error`,
		r.Table, r.Target, string(r.Mode), r.RowsRead, r.RowsWritten, r.RowsDeleted, conv, r.Started, time.Now(), r.Error)
	if err != nil {
		return fmt.Errorf("record load failure of %s: %w", r.Table, err)
	}
	return nil
}

func orEmpty(m map[string]map[string]int64) map[string]map[string]int64 {
	if m == nil {
		return map[string]map[string]int64{}
	}
	return m
}
