// Package state is the replica contract between the phases: the bookkeeping
// tables replicate writes in the replica and load (verify, status) reads —
// their DDL and the migration from their old names, typed reads (every
// table's state in one query, change sequences, the deleted-rows log, the
// changed-keys log) and typed writes. replicate (and verify's repair) write,
// load reads; no phase imports another.
//
// The pipeline's own tables in the replica share a namespace with the
// source's tables, so every one of them (the two state tables and the
// shadow tables of a whole-table copy) starts with Prefix, which a source
// table may not use.
package state

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// Prefix starts the name of every table the pipeline keeps in the replica.
const Prefix = "_pipeline_"

// The state tables in the replica.
const (
	CopyStatusTable  = Prefix + "copy_status"  // one row per table: mode, status, watermark, change_seq …
	DeletedRowsTable = Prefix + "deleted_rows" // keys deleted at the source, for the load phase
)

// Their names before they took the reserved prefix; Ensure renames them.
const (
	LegacyCopyStatusTable  = "etl_copy_status"
	LegacyDeletedRowsTable = "etl_deleted_rows"
)

// Copy modes recorded in the copy status.
const (
	ModeFull        = "full"        // primary-key keyset copy of the whole table
	ModeIncremental = "incremental" // rows at or after the watermark
	ModeShadow      = "shadow"      // no primary key: whole copy into a shadow table, swapped in
	ModeDiff        = "diff"        // existing copy: only the key ranges whose checksum differs are copied
	ModeSkip        = "unchanged"   // nothing changed at the source
)

// Statuses recorded in the copy status.
const (
	StatusRunning = "running"
	StatusOK      = "ok"
	StatusFailed  = "failed"
	// StatusStopped: the run was told to stop (the run window closed) after
	// a committed chunk; the copy resumes next run. An unfinished full copy
	// (mode full, status not ok) holds part of the table.
	StatusStopped = "stopped"
)

// ErrReserved marks a source table whose name starts with Prefix.
var ErrReserved = errors.New("reserved for the pipeline's own tables in the replica")

// Reserved reports whether name is in the pipeline's namespace.
func Reserved(name string) bool { return strings.HasPrefix(strings.ToLower(name), Prefix) }

// CheckName refuses a source table named in the pipeline's namespace, with
// what to do about it.
func CheckName(table string) error {
	if !Reserved(table) {
		return nil
	}
	return fmt.Errorf("source table %s: names starting with %s are %w; rename the table at the source to replicate it"+
		" (and set exclude: true for it in tables.yml meanwhile)", table, Prefix, ErrReserved)
}

// TempName is the name of a work table of kind (e.g. "shadow", "old") for
// table: in the reserved namespace, so it never meets a source table, and
// short (a hash of the table name), so it never exceeds MySQL's 64
// characters or collides with another table's.
func TempName(kind, table string) string {
	h := sha256.Sum256([]byte(table))
	return Prefix + kind + "_" + hex.EncodeToString(h[:6])
}

var ddl = []string{
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

// Execer is a *sql.DB, *sql.Conn or *sql.Tx.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Querier is a *sql.DB, *sql.Conn or *sql.Tx.
type Querier = schema.Querier

// DB is what Ensure and Migrate need: statements and queries.
type DB interface {
	Execer
	schema.Querier
}

// Ensure creates the state tables in the replica when missing, after
// renaming those of an older version (Migrate). The replicate phase calls
// it before its first write.
func Ensure(ctx context.Context, db DB) error {
	if err := Migrate(ctx, db); err != nil {
		return err
	}
	for _, q := range append(ddl, changedKeysDDL) {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("create replication state tables: %w", err)
		}
	}
	return nil
}

// Migrate renames the state tables of an older version (etl_copy_status,
// etl_deleted_rows) to their reserved names where the old one exists and the
// new one does not; running it again changes nothing. After it, tables of
// the source called etl_… are ordinary tables.
func Migrate(ctx context.Context, db DB) error {
	for _, p := range [][2]string{{LegacyCopyStatusTable, CopyStatusTable}, {LegacyDeletedRowsTable, DeletedRowsTable}} {
		if err := rename(ctx, db, p[0], p[1]); err != nil {
			return err
		}
	}
	return nil
}

func rename(ctx context.Context, db DB, from, to string) error {
	have, err := exist(ctx, db, from, to)
	if err != nil {
		return err
	}
	if !have[from] || have[to] {
		return nil
	}
	_, err = db.ExecContext(ctx, "RENAME TABLE `"+from+"` TO `"+to+"`")
	if err == nil {
		return nil
	}
	// Another run may have renamed it meanwhile.
	if have, cerr := exist(ctx, db, from, to); cerr == nil && !have[from] && have[to] {
		return nil
	}
	return fmt.Errorf("rename replica table %s to %s: %w", from, to, err)
}

// exist reports which of names are base tables of the current database.
func exist(ctx context.Context, q schema.Querier, names ...string) (map[string]bool, error) {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	rows, err := q.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"+
		" AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME IN ("+strings.TrimSuffix(strings.Repeat("?,", len(names)), ",")+")", args...)
	if err != nil {
		return nil, fmt.Errorf("look for replication state tables: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("look for replication state tables: %w", err)
		}
		out[n] = true
	}
	return out, rows.Err()
}

// EncodeKey is how a key travels through the state tables (last_key,
// pk_values): a JSON array of the values as the source printed them.
func EncodeKey(vals []string) string {
	b, _ := json.Marshal(vals)
	return string(b)
}

// ParseKey reads a key EncodeKey wrote (numbers and booleans are accepted
// too and printed as MySQL would), checking it has keyLen values.
func ParseKey(raw []byte, keyLen int) ([]any, error) {
	var vals []any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&vals); err != nil || len(vals) != keyLen {
		return nil, fmt.Errorf("pk_values %q is not a JSON array of %d key values", raw, keyLen)
	}
	out := make([]any, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case string:
			out[i] = x
		case json.Number:
			out[i] = x.String()
		case bool:
			out[i] = strconv.FormatBool(x)
		default:
			return nil, fmt.Errorf("key value %v in pk_values %q is not a string or number", v, raw)
		}
	}
	return out, nil
}

// isNoSuchTable reports MySQL error 1146: the state tables do not exist
// (yet): a replica no replicate run has written.
func isNoSuchTable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1146
}
