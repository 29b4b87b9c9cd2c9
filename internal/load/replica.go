package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// errNotInReplica: tables.yml names a table replication has not created yet.
var errNotInReplica = errors.New("is not in the replica")

// replicaTables lists the replica's base tables, the pipeline's own
// (state.Prefix) excluded.
func replicaTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`)
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
		if !state.Reserved(n) {
			out = append(out, n)
		}
	}
	return out, rows.Err()
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

// sqlLiteral quotes a value for MySQL; used for the watermark so the row
// query stays on the text protocol (a prepared statement would switch the
// driver to the binary protocol, which formats values itself).
func sqlLiteral(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`)
	return "'" + r.Replace(v) + "'"
}
