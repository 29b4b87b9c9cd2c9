package load

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// shape is a raw table as PostgreSQL's catalog shows it: its columns in
// order with their types (format_type), and its primary key.
type shape struct {
	Columns [][2]string `json:"columns"` // name, type as format_type prints it
	Key     []string    `json:"key"`
}

func (s *shape) encode() *string {
	if s == nil {
		return nil
	}
	b, _ := json.Marshal(s)
	out := string(b)
	return &out
}

// shapeSQL reads the shape of raw's tables (one named table with $1 set;
// every table with $1 NULL) in one catalog query.
const shapeSQL = `SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
	COALESCE(array_position(i.indkey::int2[], a.attnum) + 1 - array_lower(i.indkey::int2[], 1), 0) -- int2vector counts from 0
	FROM pg_class c
	JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
	LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
	WHERE c.relnamespace = to_regnamespace($2) AND c.relkind IN ('r', 'p') AND ($1::text IS NULL OR c.relname = $1)
	ORDER BY c.relname, a.attnum`

type shapeQuerier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readShapes reads the shape of every raw table (only: of that one), by
// raw name: what the load compares a table with before loading it.
func readShapes(ctx context.Context, q shapeQuerier, only *string) (map[string]*shape, error) {
	rows, err := q.Query(ctx, shapeSQL, only, typemap.QuotePG(Schema))
	if err != nil {
		return nil, fmt.Errorf("read the shape of raw's tables: %w", err)
	}
	defer rows.Close()
	out := map[string]*shape{}
	keys := map[string]map[int]string{}
	for rows.Next() {
		var table, col, typ string
		var keyPos int
		if err := rows.Scan(&table, &col, &typ, &keyPos); err != nil {
			return nil, fmt.Errorf("read the shape of raw's tables: %w", err)
		}
		if out[table] == nil {
			out[table], keys[table] = &shape{}, map[int]string{}
		}
		out[table].Columns = append(out[table].Columns, [2]string{col, typ})
		if keyPos > 0 {
			keys[table][keyPos] = col
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the shape of raw's tables: %w", err)
	}
	for table, k := range keys {
		for i := 1; i <= len(k); i++ {
			out[table].Key = append(out[table].Key, k[i])
		}
	}
	return out, nil
}

// handChangedPrefix starts every change handChanges reports.
const handChangedPrefix = "raw table changed by hand: "

// handChanges compares a raw table's shape now with the one the load left
// (recorded in the load state after its last write): anything else was
// changed by hand, and loading into it would change values (a narrower
// type) or fail (a dropped column). Without a recorded shape (a load state
// written by an older version) names and key are compared with the
// signature the table was last built with.
func handChanges(st *loadState, now *shape) []string {
	want := recorded(st)
	typed := want != nil
	if !typed {
		want = built(st)
	}
	var out []string
	have := map[string]string{}
	for _, c := range now.Columns {
		have[c[0]] = c[1]
	}
	expected := map[string]bool{}
	for _, c := range want.Columns {
		expected[c[0]] = true
		switch t, ok := have[c[0]]; {
		case !ok:
			out = append(out, fmt.Sprintf(handChangedPrefix+"column %q dropped", c[0]))
		case typed && t != c[1]:
			out = append(out, fmt.Sprintf(handChangedPrefix+"column %q type %s, expected %s", c[0], t, c[1]))
		}
	}
	for _, c := range now.Columns {
		if !expected[c[0]] {
			out = append(out, fmt.Sprintf(handChangedPrefix+"column %q added (%s)", c[0], c[1]))
		}
	}
	if !slices.Equal(now.Key, want.Key) {
		out = append(out, fmt.Sprintf(handChangedPrefix+"primary key (%s), expected (%s)", strings.Join(now.Key, ", "), strings.Join(want.Key, ", ")))
	}
	return out
}

// recorded is the shape the last load recorded; nil when none.
func recorded(st *loadState) *shape {
	if st == nil || st.Shape == nil {
		return nil
	}
	var s shape
	if json.Unmarshal([]byte(*st.Shape), &s) != nil {
		return nil
	}
	return &s
}

// built is the columns and key of the signature the table was last built
// with (their types are left out: the signature names them as typemap
// writes them, the catalog as format_type prints them).
func built(st *loadState) *shape {
	var sig signature
	_ = json.Unmarshal([]byte(*st.Signature), &sig)
	return &shape{Columns: sig.Columns, Key: sig.Key}
}

// byHand reports whether changes hold a change made by hand to raw.
func byHand(changes []string) bool {
	return slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, handChangedPrefix) })
}

// runStart is what the load reads once per run, before any table: every
// table's replica copy (nil: the replica has no state) and every raw
// table's shape (one catalog query for all of them).
type runStart struct {
	copies  map[string]state.Copy
	shapes  map[string]*shape
	states  map[string]*loadState    // etl_load_status by table name (a dry run before the first load: none)
	replica map[string]*schema.Table // the replica's tables (not read for a dry run)
	fence   *fence
}
