package load

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// statusTable is the load state table, qualified.
const statusTable = StateSchema + "." + StatusTable

var statusDDL = `CREATE TABLE ` + statusTable + ` (
	table_name      text PRIMARY KEY,   -- source (replica) table name
	target_table    text NOT NULL,      -- raw table name
	mode            text NOT NULL,      -- full | incremental (an unchanged table keeps its row)
	status          text NOT NULL,      -- ok | failed | skipped (replica copy incomplete)
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
	raw_shape       text,                        -- the raw table as the catalog showed it after the last load (columns, types, key)
	started_at      timestamptz,
	finished_at     timestamptz,
	error           text
)`

// ownColumns are the columns that mark a raw.etl_load_status as the load
// state of an older version (which kept it in raw), not a source table.
var ownColumns = []string{"table_name", "target_table", "mode", "status", "watermark", "rows_read", "rows_written", "rows_deleted",
	"raw_rows", "conversions", "last_deleted_id", "change_seq", "signature", "started_at", "finished_at", "error"}

// ddlLockKey serialises the load's DDL on the warehouse ("odload" in ASCII).
const ddlLockKey int64 = 0x6f64_6c6f_6164

// ensureStatusTable creates what the load writes besides raw's tables,
// when missing: schema raw, the pipeline's own schemas (StateSchema,
// BuildSchema) and the load state table — moved from raw, where an older
// version kept it, when the one there is ours. Nothing is created when
// everything exists (CREATE SCHEMA needs a privilege the loader's role may
// lack once set up).
func ensureStatusTable(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("prepare the load state: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", ddlLockKey); err != nil {
		return fmt.Errorf("prepare the load state: %w", err)
	}
	for _, schema := range []string{Schema, StateSchema, BuildSchema} {
		if err := ensureSchema(ctx, tx, schema); err != nil {
			return err
		}
	}
	var have bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", statusTable).Scan(&have); err != nil {
		return fmt.Errorf("look for %s: %w", statusTable, err)
	}
	if !have {
		if err := createStatusTable(ctx, tx); err != nil {
			return err
		}
	}
	if err := addLaterColumns(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("prepare the load state: %w", err)
	}
	return nil
}

func ensureSchema(ctx context.Context, tx pgx.Tx, schema string) error {
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regnamespace($1) IS NOT NULL", typemap.QuotePG(schema)).Scan(&exists); err != nil {
		return fmt.Errorf("check schema %s: %w", schema, err)
	}
	if exists {
		return nil
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA "+typemap.QuotePG(schema)); err != nil {
		return fmt.Errorf("create schema %s (the load needs raw and its own schemas %s and %s; grant CREATE on the database"+
			" or create them once as its owner: CREATE SCHEMA %s AUTHORIZATION <the analytics user>): %w", schema, StateSchema, BuildSchema, schema, err)
	}
	return nil
}

// createStatusTable moves an older version's raw.etl_load_status into
// StateSchema (a one-time migration; a raw.etl_load_status without the load
// state's columns is a source table and stays), or creates the table.
func createStatusTable(ctx context.Context, tx pgx.Tx) error {
	var ours bool
	if err := tx.QueryRow(ctx, `SELECT count(*) = $2 FROM information_schema.columns
		WHERE table_schema = $3 AND table_name = $4 AND column_name = ANY($1)`,
		ownColumns, len(ownColumns), Schema, StatusTable).Scan(&ours); err != nil {
		return fmt.Errorf("look for an older %s.%s: %w", Schema, StatusTable, err)
	}
	q := statusDDL
	if ours {
		q = "ALTER TABLE " + qualified(StatusTable) + " SET SCHEMA " + StateSchema
	}
	if _, err := tx.Exec(ctx, q); err != nil {
		return fmt.Errorf("create %s: %w", statusTable, err)
	}
	return nil
}

// laterColumns are the load state's columns an older version's table lacks.
var laterColumns = [][2]string{
	{"last_changed_key_id", "bigint NOT NULL DEFAULT 0"},
	{"raw_shape", "text"},
}

// addLaterColumns adds to the load state table the columns it lacks (one
// catalog query when none is missing).
func addLaterColumns(ctx context.Context, tx pgx.Tx) error {
	for _, c := range laterColumns {
		var have bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM information_schema.columns
			WHERE table_schema = $1 AND table_name = $2 AND column_name = $3)`, StateSchema, StatusTable, c[0]).Scan(&have); err != nil {
			return fmt.Errorf("look at %s: %w", statusTable, err)
		}
		if have {
			continue
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE "+statusTable+" ADD COLUMN "+c[0]+" "+c[1]); err != nil {
			return fmt.Errorf("add %s to %s: %w", c[0], statusTable, err)
		}
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
	Shape         *string // the raw table's shape after the last load (shape, JSON); nil before this was recorded
}

// stateColumns are the columns of etl_load_status a loadState holds, after table_name.
const stateColumns = `target_table, status, watermark, last_deleted_id, last_changed_key_id, change_seq, signature, raw_shape`

func (s *loadState) scanArgs() []any {
	return []any{&s.Target, &s.Status, &s.Watermark, &s.LastDeletedID, &s.LastChangeID, &s.ChangeSeq, &s.Signature, &s.Shape}
}

// readStates reads every table's load state in one query, by table name:
// the load decides each table's mode from it at the start of the run
// (one round trip instead of one per table: a no-change night over 408
// tables spent most of its time on them). Only the load writes this table,
// under the warehouse lock, so it cannot change during the run but by the
// run's own loads. (States, beside it, is the operator's read model of the
// same table: its other columns, and an older version's location.)
func readStates(ctx context.Context, q shapeQuerier) (map[string]*loadState, error) {
	rows, err := q.Query(ctx, `SELECT table_name, `+stateColumns+` FROM `+statusTable)
	if err != nil {
		return nil, fmt.Errorf("read load states: %w", err)
	}
	defer rows.Close()
	out := map[string]*loadState{}
	for rows.Next() {
		var name string
		s := &loadState{}
		if err := rows.Scan(append([]any{&name}, s.scanArgs()...)...); err != nil {
			return nil, fmt.Errorf("read load states: %w", err)
		}
		out[name] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read load states: %w", err)
	}
	return out, nil
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
	shape         *shape  // the raw table as the catalog shows it after this load
}

// success is the record of this load with watermark and lastDeletedID.
func (tl *tableLoad) success(watermark *string, lastDeletedID int64) success {
	// Every load applies the changed-keys log up to its snapshot (a full one
	// by reloading everything).
	return success{r: tl.r, watermark: watermark, lastDeletedID: lastDeletedID, lastChangeID: tl.snap.maxChangeID,
		changeSeq: tl.snap.changeSeq, signature: tl.p.signature, shape: tl.raw}
}

// writeSuccess records a finished load; run inside the transaction that made it visible.
func writeSuccess(ctx context.Context, tx pgx.Tx, s success) error {
	r := s.r
	conv, _ := json.Marshal(orEmpty(r.Conversions))
	_, err := tx.Exec(ctx, `INSERT INTO `+statusTable+` AS s
		(table_name, target_table, mode, status, watermark, rows_read, rows_written, rows_deleted, raw_rows,
		 conversions, last_deleted_id, change_seq, signature, started_at, finished_at, error, last_changed_key_id, raw_shape)
		VALUES ($1,$2,$3,'ok',$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,NULL,$15,$16)
		ON CONFLICT (table_name) DO UPDATE SET target_table = EXCLUDED.target_table, mode = EXCLUDED.mode,
		 status = 'ok', watermark = EXCLUDED.watermark, rows_read = EXCLUDED.rows_read,
		 rows_written = EXCLUDED.rows_written, rows_deleted = EXCLUDED.rows_deleted, raw_rows = EXCLUDED.raw_rows,
		 conversions = EXCLUDED.conversions, last_deleted_id = EXCLUDED.last_deleted_id,
		 last_changed_key_id = EXCLUDED.last_changed_key_id,
		 change_seq = EXCLUDED.change_seq, signature = EXCLUDED.signature, raw_shape = EXCLUDED.raw_shape,
		 started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at, error = NULL`,
		r.Table, r.Target, string(r.Mode), s.watermark, r.RowsRead, r.RowsWritten, r.RowsDeleted, r.RawRows,
		conv, s.lastDeletedID, s.changeSeq, s.signature, r.Started, time.Now(), s.lastChangeID, s.shape.encode())
	if err != nil {
		return fmt.Errorf("record load state of %s: %w", r.Table, err)
	}
	return nil
}

// writeFailure records a failed (or skipped: r.Status) load, keeping the
// last good watermark, delete id and change_seq so the next run starts from
// there.
func writeFailure(ctx context.Context, pool *pgxpool.Pool, r *TableResult) error {
	conv, _ := json.Marshal(orEmpty(r.Conversions))
	status := StatusFailed
	if r.Status == StatusSkipped {
		status = StatusSkipped
	}
	_, err := pool.Exec(ctx, `INSERT INTO `+statusTable+` AS s
		(table_name, target_table, mode, status, rows_read, rows_written, rows_deleted, conversions, started_at, finished_at, error)
		VALUES ($1,$2,$3,$11,$4,$5,$6,$7,$8,$9,$10)
		ON CONFLICT (table_name) DO UPDATE SET mode = EXCLUDED.mode, status = EXCLUDED.status,
		 rows_read = EXCLUDED.rows_read, rows_written = EXCLUDED.rows_written, rows_deleted = EXCLUDED.rows_deleted,
		 conversions = EXCLUDED.conversions, started_at = EXCLUDED.started_at, finished_at = EXCLUDED.finished_at,
		 error = EXCLUDED.error`,
		r.Table, r.Target, string(r.Mode), r.RowsRead, r.RowsWritten, r.RowsDeleted, conv, r.Started, time.Now(), r.Error, status)
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
