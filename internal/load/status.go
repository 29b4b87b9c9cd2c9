package load

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// State is a table's row of the load state, for readers such as `pipeline
// status`: what raw holds of the replica.
type State struct {
	Table     string
	Target    string
	Mode      string
	Status    string  // ok | failed | skipped: how the last load ended
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
// first load (the state table does not exist yet). Until the first load of
// this version moves it, an older version's raw.etl_load_status is read.
func States(ctx context.Context, pool *pgxpool.Pool) (map[string]State, error) {
	var name string
	if err := pool.QueryRow(ctx, `SELECT CASE WHEN to_regclass($1) IS NOT NULL THEN $1
		WHEN (SELECT count(*) FROM information_schema.columns WHERE table_schema = $3 AND table_name = $4 AND column_name = ANY($5)) = $6 THEN $2
		ELSE '' END`, statusTable, qualified(StatusTable), Schema, StatusTable, ownColumns, len(ownColumns)).Scan(&name); err != nil {
		return nil, fmt.Errorf("read %s: %w", statusTable, err)
	}
	out := map[string]State{}
	if name == "" {
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
