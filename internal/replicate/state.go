package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Names of the replication state tables in the replica (the data-path contract).
const (
	CopyStatusTable  = "etl_copy_status"
	DeletedRowsTable = "etl_deleted_rows"
)

// Copy modes recorded in etl_copy_status.mode.
const (
	ModeFull        = "full"        // primary-key keyset copy of the whole table
	ModeIncremental = "incremental" // rows at or after the watermark
	ModeShadow      = "shadow"      // no primary key: whole copy into a shadow table, swapped in
	ModeDiff        = "diff"        // existing copy: only the key ranges whose checksum differs are copied
	ModeSkip        = "unchanged"   // nothing changed at the source
)

// Statuses recorded in etl_copy_status.status.
const (
	StatusRunning = "running"
	StatusOK      = "ok"
	StatusFailed  = "failed"
)

var stateDDL = []string{
	"CREATE TABLE IF NOT EXISTS `" + CopyStatusTable + "` (" +
		"table_name VARCHAR(64) NOT NULL PRIMARY KEY," +
		"mode VARCHAR(16) NOT NULL DEFAULT ''," +
		"status VARCHAR(16) NOT NULL DEFAULT ''," +
		"watermark VARCHAR(64) NULL COMMENT 'last copied watermark value, as the source returned it'," +
		"start_watermark VARCHAR(64) NULL COMMENT 'source MAX(watermark) when the running full copy began'," +
		"last_key LONGTEXT NULL COMMENT 'JSON array: key of the last committed chunk'," +
		"rows_copied BIGINT NOT NULL DEFAULT 0," +
		"source_update_time DATETIME NULL COMMENT 'source information_schema UPDATE_TIME when the run began'," +
		"source_started_at DATETIME NULL COMMENT 'source NOW() when the copy began: later changes carry later timestamps'," +
		"change_seq BIGINT NOT NULL DEFAULT 0 COMMENT 'bumped in the same commit as every replica write or delete'," +
		"last_run_start DATETIME(6) NULL," +
		"last_run_end DATETIME(6) NULL," +
		"error TEXT NULL" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
	"CREATE TABLE IF NOT EXISTS `" + DeletedRowsTable + "` (" +
		"id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY," +
		"table_name VARCHAR(64) NOT NULL," +
		"pk_values LONGTEXT NOT NULL COMMENT 'JSON array of the key values as strings, in primary-key order'," +
		"detected_at DATETIME(6) NOT NULL," +
		"KEY table_id (table_name, id)" +
		") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
}

// EnsureState creates the state tables in the replica when missing.
func EnsureState(ctx context.Context, replica *sql.DB) error {
	for _, q := range stateDDL {
		if _, err := replica.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create replication state tables: %w", err)
		}
	}
	return nil
}

// State is one row of etl_copy_status.
type State struct {
	Table            string
	Mode             string
	Status           string
	Watermark        sql.NullString
	StartWatermark   sql.NullString
	LastKey          sql.NullString
	RowsCopied       int64
	SourceUpdateTime sql.NullString
	SourceStartedAt  sql.NullString
	ChangeSeq        int64
	LastRunStart     sql.NullString
	LastRunEnd       sql.NullString
	Error            sql.NullString
}

// LoadStates reads every table's state in one query, keyed by table name.
func LoadStates(ctx context.Context, replica *sql.DB) (map[string]*State, error) {
	rows, err := replica.QueryContext(ctx, "SELECT table_name, mode, status, watermark, start_watermark, last_key, rows_copied,"+
		" source_update_time, source_started_at, change_seq, last_run_start, last_run_end, error FROM `"+CopyStatusTable+"`")
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", CopyStatusTable, err)
	}
	defer rows.Close()
	out := map[string]*State{}
	for rows.Next() {
		var s State
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

// ChangeSeqs returns every table's change_seq in one query; the loader skips
// tables whose change_seq it has already loaded.
func ChangeSeqs(ctx context.Context, replica *sql.DB) (map[string]int64, error) {
	rows, err := replica.QueryContext(ctx, "SELECT table_name, change_seq FROM `"+CopyStatusTable+"`")
	if err != nil {
		return nil, fmt.Errorf("read change_seq from %s: %w", CopyStatusTable, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var name string
		var seq int64
		if err := rows.Scan(&name, &seq); err != nil {
			return nil, fmt.Errorf("read change_seq from %s: %w", CopyStatusTable, err)
		}
		out[name] = seq
	}
	return out, rows.Err()
}

// execer is a transaction or a connection.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// stateUpdate writes the given columns of a table's state row, creating it
// when missing; bump adds one to change_seq in the same statement.
func stateUpdate(ctx context.Context, ex execer, table string, bump bool, set map[string]any) error {
	return stateWrite(ctx, ex, table, bump, 0, set)
}

// stateWrite is stateUpdate that also adds rows to rows_copied.
func stateWrite(ctx context.Context, ex execer, table string, bump bool, rows int64, set map[string]any) error {
	cols := []string{"table_name"}
	args := []any{table}
	var upd []string
	for _, c := range sortedKeys(set) {
		cols = append(cols, c)
		args = append(args, set[c])
		upd = append(upd, c+"=VALUES("+c+")")
	}
	if bump {
		cols = append(cols, "change_seq")
		args = append(args, 1)
		upd = append(upd, "change_seq=change_seq+1")
	}
	if rows != 0 {
		cols = append(cols, "rows_copied")
		args = append(args, rows)
		upd = append(upd, "rows_copied=rows_copied+VALUES(rows_copied)")
	}
	if len(upd) == 0 {
		upd = append(upd, "table_name=table_name")
	}
	q := "INSERT INTO `" + CopyStatusTable + "` (" + strings.Join(cols, ",") + ") VALUES (" +
		strings.TrimSuffix(strings.Repeat("?,", len(cols)), ",") + ") ON DUPLICATE KEY UPDATE " + strings.Join(upd, ",")
	if _, err := ex.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("update %s for %s: %w", CopyStatusTable, table, err)
	}
	return nil
}

// touchRunEnd stamps last_run_end (and status ok) for tables found unchanged, in one statement.
func touchRunEnd(ctx context.Context, replica *sql.DB, names []string, at time.Time) error {
	for len(names) > 0 {
		n := min(len(names), 500)
		args := []any{at}
		for _, t := range names[:n] {
			args = append(args, t)
		}
		q := "UPDATE `" + CopyStatusTable + "` SET last_run_end=?, status='" + StatusOK + "', error=NULL WHERE table_name IN (" +
			strings.TrimSuffix(strings.Repeat("?,", n), ",") + ")"
		if _, err := replica.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("update %s: %w", CopyStatusTable, err)
		}
		names = names[n:]
	}
	return nil
}
