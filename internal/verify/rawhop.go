package verify

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/keyset"
	"github.com/opendental-pipeline/pipeline/internal/policy"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// rawSchema is where the load writes the tables verify compares.
const rawSchema = string(catalog.SchemaRaw)

// stage is the session temp table a range of replica rows is copied into,
// in raw's column types, plus the row's key as the replica prints it.
const stage = "pg_temp.verify_stage"

// rawCol is one replica column and where the load put it.
type rawCol struct {
	typemap.Mapping
	name   string // replica (source) column
	target string // raw column
	pgType string // raw's column type, format_type()
}

// rawHop compares a table's replica rows with raw: each range of replica
// rows is read as the load reads it (the same select expressions, the same
// typemap conversion), copied into a temp table of raw's column types, and
// compared there with raw by PostgreSQL. Two values are the same when
// PostgreSQL prints them alike in raw's type (NULL distinct from any value).
type rawHop struct {
	tv      *tableVerify
	pg      *pgxpool.Conn
	target  string
	cols    []rawCol
	key     []int       // indexes into cols, key order
	ordered bool        // the key sorts alike in MySQL and PostgreSQL: raw can be bounded by it
	hashKey *policy.Key // column_policies hash key (Options.HashKey)
}

// openRawHop finds the table's raw table and columns and creates the stage.
func (r *runner) openRawHop(ctx context.Context, tv *tableVerify) (*rawHop, error) {
	pg, err := r.deps.Raw.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to analytics for %s: %w", tv.cfg.Name, err)
	}
	h := &rawHop{tv: tv, pg: pg, hashKey: r.opts.HashKey}
	if err := h.resolve(ctx); err != nil {
		pg.Release()
		return nil, err
	}
	if err := h.createStage(ctx); err != nil {
		pg.Release()
		return nil, err
	}
	return h, nil
}

func (h *rawHop) close(ctx context.Context) {
	_, _ = h.pg.Exec(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS "+stage+", pg_temp.verify_keys")
	h.pg.Release()
}

// resolve maps every replica column to its raw column (the load's raw
// name of it, or of its snake_case form for a load with --snake-case).
func (h *rawHop) resolve(ctx context.Context) error {
	tv := h.tv
	name := tv.cfg.Name
	types, target, err := h.rawColumns(ctx, name)
	if err != nil {
		return err
	}
	h.target = target
	// The load's own column decision (column_policies applied): dropped
	// columns are not in raw, hashed ones are compared as their hashes.
	cols, err := policy.Columns(tv.cfg, tv.rep, h.hashKey)
	if err != nil {
		return fmt.Errorf("verify %s: %w", name, err)
	}
	for _, c := range cols {
		rc := rawCol{Mapping: c.Mapping, name: c.Name, target: typemap.RawName(c.Name, false)}
		if _, ok := types[rc.target]; !ok {
			rc.target = typemap.RawName(c.Name, true)
		}
		if rc.pgType = types[rc.target]; rc.pgType == "" {
			return fmt.Errorf("raw %s has no column %s (replica column %s); run `pipeline load` to bring raw up to date, then verify", target, c.Name, c.Name)
		}
		h.cols = append(h.cols, rc)
	}
	h.ordered = true
	for _, k := range tv.key.Cols {
		i := slices.IndexFunc(h.cols, func(c rawCol) bool { return c.name == k })
		h.key = append(h.key, i)
		h.ordered = h.ordered && sortsAlike(tv.key.Types[len(h.key)-1])
	}
	return nil
}

// rawColumns reads raw's table for name (its own name, else its snake_case
// one) and its columns' types.
func (h *rawHop) rawColumns(ctx context.Context, name string) (map[string]string, string, error) {
	for _, target := range []string{typemap.RawName(name, false), typemap.RawName(name, true)} {
		rows, err := h.pg.Query(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
			WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, qualified(target))
		if err != nil {
			return nil, "", fmt.Errorf("read raw columns of %s: %w", name, err)
		}
		types := map[string]string{}
		for rows.Next() {
			var col, typ string
			if err := rows.Scan(&col, &typ); err != nil {
				rows.Close()
				return nil, "", fmt.Errorf("read raw columns of %s: %w", name, err)
			}
			types[col] = typ
		}
		if err := rows.Err(); err != nil {
			return nil, "", fmt.Errorf("read raw columns of %s: %w", name, err)
		}
		if len(types) > 0 {
			return types, target, nil
		}
	}
	return nil, "", fmt.Errorf("raw has no table %s yet; run `pipeline load` (or `pipeline run`) first", name)
}

// sortsAlike reports whether keys of a MySQL type sort the same way in
// PostgreSQL after the load's conversion: numbers, dates and bytes do; text
// (collations), enum (label index), floats and times are not relied on.
func sortsAlike(dataType string) bool {
	switch t := strings.ToLower(dataType); {
	case keyset.IsInt(t), t == "decimal", t == "numeric", t == "year", t == "date", t == "datetime", t == "binary", t == "varbinary":
		return true
	}
	return false
}

func (h *rawHop) createStage(ctx context.Context) error {
	defs := make([]string, len(h.cols))
	for i, c := range h.cols {
		defs[i] = typemap.QuotePG(c.target) + " " + c.pgType
	}
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + stage,
		"CREATE TEMP TABLE verify_stage (" + strings.Join(defs, ", ") + ", _verify_key text)",
	} {
		if _, err := h.pg.Exec(ctx, q); err != nil {
			return fmt.Errorf("create the comparison table for %s: %w", h.tv.cfg.Name, err)
		}
	}
	return nil
}

// compare compares the replica's rows with key in (lo, hi] (hi nil: to the
// end) with raw's.
func (h *rawHop) compare(ctx context.Context, lo, hi []string) error {
	if _, err := h.pg.Exec(ctx, "TRUNCATE "+stage); err != nil {
		return fmt.Errorf("clear the comparison table for %s: %w", h.tv.cfg.Name, err)
	}
	staged, err := h.stageRows(ctx, h.tv.key.Literal(lo, hi))
	if err != nil {
		return err
	}
	d := &h.tv.res.ReplicaRaw
	d.Compared += staged
	q, args := h.diffSQL(lo, hi)
	rows, err := h.pg.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("compare %s with raw: %w", h.tv.cfg.Name, err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind int
		var key string
		if err := rows.Scan(&kind, &key); err != nil {
			return fmt.Errorf("compare %s with raw: %w", h.tv.cfg.Name, err)
		}
		k, err := h.replicaKey(kind, key)
		if err != nil {
			return err
		}
		d.add(kind, k)
	}
	return rows.Err()
}

// diffSQL finds, among the staged rows and raw's rows of the same range,
// the missing (kind 0), extra (1) and changed (2) ones. Raw is bounded by
// the range only when its key sorts alike; otherwise extra rows are found
// at the end of the table (extraByKeys).
func (h *rawHop) diffSQL(lo, hi []string) (string, []any) {
	var match, vals, rvals, rkeys []string
	for _, i := range h.key {
		c := typemap.QuotePG(h.cols[i].target)
		match = append(match, "r."+c+" = s."+c)
		rkeys = append(rkeys, "r."+c+"::text")
	}
	for _, c := range h.cols {
		q := typemap.QuotePG(c.target)
		vals, rvals = append(vals, "s."+q+"::text"), append(rvals, "r."+q+"::text")
	}
	on := strings.Join(match, " AND ")
	t := qualified(h.target)
	q := "SELECT 0, s._verify_key FROM " + stage + " s WHERE NOT EXISTS (SELECT 1 FROM " + t + " r WHERE " + on + ")" +
		" UNION ALL SELECT 2, s._verify_key FROM " + stage + " s JOIN " + t + " r ON " + on +
		" WHERE ROW(" + strings.Join(vals, ", ") + ") IS DISTINCT FROM ROW(" + strings.Join(rvals, ", ") + ")"
	if !h.ordered {
		return q, nil
	}
	bound, args := h.rawRange(lo, hi)
	return q + " UNION ALL SELECT 1, json_build_array(" + strings.Join(rkeys, ", ") + ")::text FROM " + t + " r WHERE " + bound +
		" AND NOT EXISTS (SELECT 1 FROM " + stage + " s WHERE " + on + ")", args
}

// rawRange bounds raw's key by (lo, hi], as a row comparison PostgreSQL
// serves from the primary key.
func (h *rawHop) rawRange(lo, hi []string) (string, []any) {
	var cols, types []string
	for _, i := range h.key {
		cols = append(cols, "r."+typemap.QuotePG(h.cols[i].target))
		types = append(types, h.cols[i].pgType)
	}
	row := "(" + strings.Join(cols, ", ") + ")"
	var conds []string
	var args []any
	for _, b := range []struct {
		vals []string
		op   string
	}{{lo, " > "}, {hi, " <= "}} {
		if b.vals == nil {
			continue
		}
		ph := make([]string, len(b.vals))
		for i, v := range b.vals {
			args = append(args, h.pgArg(i, v))
			ph[i] = "$" + strconv.Itoa(len(args)) + "::" + types[i]
		}
		conds = append(conds, row+b.op+"("+strings.Join(ph, ", ")+")")
	}
	if len(conds) == 0 {
		return "TRUE", nil
	}
	return strings.Join(conds, " AND "), args
}

// pgArg is key column i's MySQL value as a PostgreSQL argument.
func (h *rawHop) pgArg(i int, v string) any {
	if h.cols[h.key[i]].Conv == typemap.ConvBytes {
		return []byte(v)
	}
	return v
}

// replicaKey turns a key the comparison returned into the replica's form:
// staged rows carry it (JSON of the replica's values); raw-only rows are
// printed by PostgreSQL, whose bytea text is decoded back to bytes.
func (h *rawHop) replicaKey(kind int, key string) ([]string, error) {
	var vals []string
	if err := json.Unmarshal([]byte(key), &vals); err != nil || len(vals) != len(h.key) {
		return nil, fmt.Errorf("compare %s with raw: unreadable key %q", h.tv.cfg.Name, key)
	}
	if kind != kindExtra {
		return vals, nil
	}
	for i, v := range vals {
		if h.cols[h.key[i]].Conv == typemap.ConvBytes && strings.HasPrefix(v, `\x`) {
			b, err := hex.DecodeString(v[2:])
			if err != nil {
				return nil, fmt.Errorf("compare %s with raw: key %q: %w", h.tv.cfg.Name, key, err)
			}
			vals[i] = string(b)
		}
	}
	return vals, nil
}

func qualified(name string) string { return typemap.QuotePG(rawSchema) + "." + typemap.QuotePG(name) }
