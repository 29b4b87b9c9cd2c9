package load

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// The loaded-at marker (pipeline.yml load.loaded_at_column) is a
// timestamptz column of every raw table saying when its row was inserted
// or last really changed, so a dbt incremental model can take only what is
// new. It is stamped with the table load's start (Options.Now):
//
//   - incremental: the upsert sets it on inserted rows and on rows whose
//     values differ (IS DISTINCT FROM, the marker itself left out); rows
//     staged again unchanged keep theirs;
//   - full refresh of a table whose raw copy has the same shape: the rows
//     are staged in a temporary table and inserted into the new table
//     joined by key with the live one, each keeping the live row's marker
//     when its values are identical (one extra pass over unlogged temp
//     storage instead of a second write of the new table);
//   - otherwise (first load, a table without key, a shape change, which
//     gives every row a new shape): every row is stamped, through the
//     column's default during COPY FREEZE.

// stampOf is the marker value of a table load started at t: microseconds,
// PostgreSQL's precision.
func stampOf(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// carryMarkers reports whether the full load keeps the live rows' markers:
// the marker is on, the table has a key and the live table has the same
// columns (its recorded signature is the planned one).
func (tl *tableLoad) carryMarkers() bool {
	p := tl.p
	return p.loadedAt != "" && len(p.key) > 0 && tl.exists && tl.st != nil && tl.st.Signature != nil &&
		*tl.st.Signature == p.signature && len(tl.r.Changes) == 0
}

// stampDefault stamps the rows COPY FREEZE writes without a marker (every
// row of a table that keeps no marker) through the column's default: set
// (set true) before the COPY, dropped after it; both catalogue-only changes.
func (tl *tableLoad) stampDefault(ctx context.Context, ptx pgx.Tx, set bool) error {
	if tl.p.loadedAt == "" || tl.carryMarkers() {
		return nil
	}
	action := "DROP DEFAULT"
	if set {
		action = "SET DEFAULT '" + tl.stamp.Format("2006-01-02 15:04:05.999999Z07:00") + "'::timestamptz"
	}
	_, err := ptx.Exec(ctx, "ALTER TABLE "+tl.p.building()+" ALTER COLUMN "+typemap.QuotePG(tl.p.loadedAt)+" "+action)
	if err != nil {
		return fmt.Errorf("stamp the loaded-at marker of %s: %w", tl.p.target, err)
	}
	return nil
}

// stampArgs are the arguments of upsertSQL: the stamp, when the marker is on.
func (tl *tableLoad) stampArgs() []any {
	if tl.p.loadedAt == "" {
		return nil
	}
	return []any{tl.stamp}
}

// copyCarryingMarkers stages every replica row in a temporary table and
// inserts them into the new table, each with the live row's marker when the
// live table holds the same key with identical values, else the stamp.
func (tl *tableLoad) copyCarryingMarkers(ctx context.Context, ptx pgx.Tx) (read, written int64, err error) {
	p := tl.p
	if _, err := ptx.Exec(ctx, "CREATE TEMP TABLE etl_full_stage (LIKE "+p.building()+") ON COMMIT DROP"); err != nil {
		return 0, 0, fmt.Errorf("create staging table: %w", err)
	}
	read, staged, err := tl.copyRows(ctx, ptx.Conn().PgConn(), copySpec{
		copySQL: "COPY pg_temp.etl_full_stage (" + p.columnList("") + ") FROM STDIN", query: p.selectSQL("")})
	if err != nil {
		return read, 0, err
	}
	if staged != read {
		return read, 0, fmt.Errorf("staged %d of %d rows of %s", staged, read, p.src.Name)
	}
	tag, err := ptx.Exec(ctx, p.carrySQL("pg_temp.etl_full_stage"), tl.stamp)
	if err != nil {
		return read, 0, fmt.Errorf("copy %s into raw keeping loaded-at markers: %w", p.src.Name, err)
	}
	return read, tag.RowsAffected(), nil
}

// carrySQL inserts the staged rows into the new table with their markers.
func (p *plan) carrySQL(stage string) string {
	var on, same, oldVals []string
	for i, c := range p.cols {
		q := typemap.QuotePG(c.Target)
		if containsInt(p.key, i) {
			on = append(on, "o."+q+" = s."+q)
		} else {
			same = append(same, "s."+q)
			oldVals = append(oldVals, "o."+q)
		}
	}
	marker := "o." + typemap.QuotePG(p.loadedAt)
	keep := marker + " IS NOT NULL"
	if len(same) > 0 {
		keep += " AND ROW(" + strings.Join(same, ", ") + ") IS NOT DISTINCT FROM ROW(" + strings.Join(oldVals, ", ") + ")"
	}
	return "INSERT INTO " + p.building() + " (" + p.columnList("") + ", " + typemap.QuotePG(p.loadedAt) + ")\n" +
		"SELECT " + p.columnList("s.") + ", CASE WHEN " + keep + " THEN " + marker + " ELSE $1::timestamptz END\n" +
		"FROM " + stage + " s LEFT JOIN " + qualified(p.target) + " o ON " + strings.Join(on, " AND ")
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
