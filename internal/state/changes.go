package state

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// ChangedKeysTable is the changed-keys log: keys of replica rows a keyed
// writer wrote or deleted, for the load phase to re-apply exactly those
// rows (the keys' current replica rows upserted into raw, keys the replica
// no longer has deleted from it), whatever the table's load mode. An
// incremental load finds changed rows by their watermark and would never
// see a row re-copied with an old stamp; a full_table table would be
// reloaded whole. Any writer may log into it (verify's repair does; a
// replicate that knows which keys a commit changed may too), for any table.
//
// Every logging commit bumps the table's change_seq once and tags its keys
// with the resulting value, so a reader can tell whether every change since
// a change_seq it loaded was logged (KeyedSince): then loading the logged
// keys is the whole of the work.
const ChangedKeysTable = Prefix + "changed_keys"

// Reasons a key is logged.
const (
	ReasonRepair    = "verify_repair" // re-copied from the source by verify --repair
	ReasonRawRepair = "verify_raw"    // the replica row is right; raw's copy differed
	ReasonDiff      = "replicate"     // written or deleted by replicate's key-range comparison (full_table tables)
)

var changedKeysDDL = "CREATE TABLE IF NOT EXISTS `" + ChangedKeysTable + "` (" +
	"id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY," +
	"table_name VARCHAR(64) NOT NULL," +
	"pk_values LONGTEXT NOT NULL COMMENT 'JSON array of the key values as strings, in primary-key order (as in " + DeletedRowsTable + ")'," +
	"change_seq BIGINT NOT NULL COMMENT 'the table''s change_seq after the commit that logged the key'," +
	"reason VARCHAR(32) NOT NULL," +
	"detected_at DATETIME(6) NOT NULL," +
	"KEY table_id (table_name, id)," +
	"KEY table_seq (table_name, change_seq)" +
	") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"

// Tx is what LogChanges writes on: the transaction that writes the rows.
type Tx interface {
	Execer
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Changes are the keys one commit wrote or deleted in a table.
type Changes struct {
	Table  string
	Keys   [][]string // each a key's values as the replica prints them
	Reason string     // a Reason…
	At     time.Time
}

// LogChanges appends c's keys to the table's changed-keys log and bumps its
// change_seq, on tx: the transaction that wrote or deleted those rows, so
// the rows and the log commit together. It replaces BumpChangeSeq for that
// commit and returns the new change_seq.
func LogChanges(ctx context.Context, tx Tx, c Changes) (int64, error) {
	table, keys, reason, at := c.Table, c.Keys, c.Reason, c.At
	if err := For(table).BumpChangeSeq().Exec(ctx, tx); err != nil {
		return 0, err
	}
	var seq int64
	if err := tx.QueryRowContext(ctx, "SELECT change_seq FROM `"+CopyStatusTable+"` WHERE table_name = ?", table).Scan(&seq); err != nil {
		return 0, fmt.Errorf("read change_seq of %s: %w", table, err)
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 1000)]
		keys = keys[len(batch):]
		rows := make([]string, len(batch))
		args := make([]any, 0, 5*len(batch))
		for i, k := range batch {
			rows[i] = "(?,?,?,?,?)"
			args = append(args, table, EncodeKey(k), seq, reason, at.UTC())
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO `"+ChangedKeysTable+"` (table_name, pk_values, change_seq, reason, detected_at) VALUES "+
			strings.Join(rows, ","), args...); err != nil {
			return 0, fmt.Errorf("log changed keys of %s: %w", table, err)
		}
	}
	return seq, nil
}

// MaxChangedKeyID is the highest changed-keys id logged for table (0 when
// none, or when the replica has no log yet).
func MaxChangedKeyID(ctx context.Context, q Querier, table string) (int64, error) {
	var id int64
	err := schema.ScanOne(ctx, q, "SELECT COALESCE(MAX(id), 0) FROM `"+ChangedKeysTable+"` WHERE table_name = ?", []any{table}, &id)
	if isNoSuchTable(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s of %s: %w", ChangedKeysTable, table, err)
	}
	return id, nil
}

// KeyedSince reports whether every change of table after change_seq
// loadedSeq, up to seq, logged its keys: then the logged keys (ids after the
// last one applied) are all that changed. False when nothing was logged.
func KeyedSince(ctx context.Context, q Querier, table string, loadedSeq, seq int64) (bool, error) {
	if seq <= loadedSeq {
		return false, nil
	}
	var n int64
	err := schema.ScanOne(ctx, q, "SELECT COUNT(DISTINCT change_seq) FROM `"+ChangedKeysTable+"` WHERE table_name = ? AND change_seq > ? AND change_seq <= ?",
		[]any{table, loadedSeq, seq}, &n)
	if isNoSuchTable(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s of %s: %w", ChangedKeysTable, table, err)
	}
	return n == seq-loadedSeq, nil
}

// ChangeRange selects a table's logged changed keys: ids in (After, Through].
type ChangeRange struct {
	Table   string
	After   int64 // the last id already applied
	Through int64 // the highest id to apply, read in the same snapshot (MaxChangedKeyID)
	KeyLen  int   // number of primary-key columns
}

// ReadChangedKeys streams the logged keys of r in id order, like
// ReadDeletions (a key logged twice comes twice).
func ReadChangedKeys(ctx context.Context, q Querier, r ChangeRange) (*KeyStream, error) {
	return readLog(ctx, q, ChangedKeysTable, DeletionRange(r))
}
