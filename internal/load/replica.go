package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// errNotInReplica: tables.yml names a table replication has not created yet.
var errNotInReplica = errors.New("is not in the replica")

func isNoSuchTable(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1146
}

// replicaTables lists the replica's base tables, bookkeeping excluded.
func replicaTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME NOT LIKE 'etl\_%'
		ORDER BY TABLE_NAME`)
	if err != nil {
		return nil, fmt.Errorf("list replica tables: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("list replica tables: %w", err)
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// readChangeSeqs reads every table's change_seq in one query; nil when the
// replica has no etl_copy_status (then every table is loaded).
func readChangeSeqs(ctx context.Context, db *sql.DB) (map[string]int64, error) {
	seqs, err := replicate.ChangeSeqs(ctx, db)
	if isNoSuchTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read replica: %w", err)
	}
	return seqs, nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// describe reads the columns and primary key of a replica table.
func describe(ctx context.Context, q schema.Querier, table string) (*schema.Table, error) {
	t, err := schema.ReadTable(ctx, q, table)
	if errors.Is(err, schema.ErrNoTable) {
		return nil, fmt.Errorf("table %s %w; run `pipeline replicate` first or remove it from tables.yml", table, errNotInReplica)
	}
	if err != nil {
		return nil, fmt.Errorf("describe replica table %s: %w", table, err)
	}
	return t, nil
}

// deletions streams the table's recorded deletes after afterID, up to maxID
// (read in the same snapshot), in id order, as rows of key values (strings)
// for pgx.CopyFrom: memory stays at one entry however many rows were purged.
type deletions struct {
	rows   *sql.Rows
	table  string
	keyLen int
	key    []any
	err    error
}

func readDeletions(ctx context.Context, q queryer, table string, afterID, maxID int64, keyLen int) (*deletions, error) {
	rows, err := q.QueryContext(ctx, "SELECT id, pk_values FROM "+DeletedRowsTable+
		" WHERE table_name = ? AND id > ? AND id <= ? ORDER BY id", table, afterID, maxID)
	if err != nil {
		return nil, fmt.Errorf("read %s of %s: %w", DeletedRowsTable, table, err)
	}
	return &deletions{rows: rows, table: table, keyLen: keyLen}, nil
}

func (d *deletions) Next() bool {
	if d.err != nil || !d.rows.Next() {
		return false
	}
	var id int64
	var raw []byte
	if err := d.rows.Scan(&id, &raw); err != nil {
		d.err = fmt.Errorf("read %s of %s: %w", DeletedRowsTable, d.table, err)
		return false
	}
	d.key, d.err = parseKey(raw, d.keyLen)
	if d.err != nil {
		d.err = fmt.Errorf("read %s id %d of %s: %w", DeletedRowsTable, id, d.table, d.err)
		return false
	}
	return true
}

func (d *deletions) Values() ([]any, error) { return d.key, nil }

func (d *deletions) Err() error {
	if d.err != nil {
		return d.err
	}
	return d.rows.Err()
}

func (d *deletions) Close() error { return d.rows.Close() }

// parseKey reads pk_values: a JSON array of the key values, as strings
// (numbers and booleans are accepted and printed as MySQL would).
func parseKey(raw []byte, keyLen int) ([]any, error) {
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

// maxDeletionID is the highest etl_deleted_rows id for table (0 when none,
// or when the replica has no such table).
func maxDeletionID(ctx context.Context, q queryer, table string) (int64, error) {
	var id int64
	err := q.QueryRowContext(ctx, "SELECT COALESCE(MAX(id), 0) FROM "+DeletedRowsTable+" WHERE table_name = ?", table).Scan(&id)
	if isNoSuchTable(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read %s of %s: %w", DeletedRowsTable, table, err)
	}
	return id, nil
}

// tableChangeSeq reads one table's change_seq in the current snapshot;
// ok is false when the replica does not track it.
func tableChangeSeq(ctx context.Context, q queryer, table string) (seq int64, ok bool, err error) {
	err = q.QueryRowContext(ctx, "SELECT change_seq FROM "+CopyStatusTable+" WHERE table_name = ?", table).Scan(&seq)
	if isNoSuchTable(err) || errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read change_seq of %s: %w", table, err)
	}
	return seq, true, nil
}

// sqlLiteral quotes a value for MySQL; used for the watermark so the row
// query stays on the text protocol (a prepared statement would switch the
// driver to the binary protocol, which formats values itself).
func sqlLiteral(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`)
	return "'" + r.Replace(v) + "'"
}
