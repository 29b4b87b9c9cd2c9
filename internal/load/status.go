package load

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// State is a table's row of the load state, for readers such as `pipeline
// status`: what raw holds of the replica.
type State struct {
	Table     string
	Target    string
	Mode      string
	Status    string  // ok | failed: how the last load ended
	Watermark *string // highest watermark loaded
	// ChangeSeq is the replica's change_seq raw holds (kept through a
	// failed load); nil before the first successful load.
	ChangeSeq   *int64
	Conversions map[string]map[string]int64 // the last load's, column → kind → count
	StartedAt   *time.Time                  // of the last load, failed or not (an unchanged table keeps its row)
	FinishedAt  *time.Time
	Error       *string
}

// States reads every table's load state in one query; empty before the
// first load (the state table does not exist yet).
func States(ctx context.Context, pool *pgxpool.Pool) (map[string]State, error) {
	name := typemap.QuotePG(Schema) + `.` + StatusTable
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", name).Scan(&exists); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	out := map[string]State{}
	if !exists {
		return out, nil
	}
	rows, err := pool.Query(ctx, `SELECT table_name, target_table, mode, status, watermark, change_seq, conversions,
		started_at, finished_at, error FROM `+name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var s State
		if err := rows.Scan(&s.Table, &s.Target, &s.Mode, &s.Status, &s.Watermark, &s.ChangeSeq, &s.Conversions,
			&s.StartedAt, &s.FinishedAt, &s.Error); err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		out[s.Table] = s
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}
