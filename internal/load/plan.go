package load

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// maxIdent is PostgreSQL's identifier limit in bytes (NAMEDATALEN-1).
const maxIdent = typemap.MaxIdent

// column is one source column with its raw decision.
type column struct {
	schema.Column
	typemap.Mapping
	Target string // raw column name
}

// plan is everything needed to load one table.
type plan struct {
	table     *tables.Table
	src       *schema.Table
	target    string
	cols      []column
	key       []int   // indexes into cols of the primary key, in key order
	watermark *column // first watermark column; nil when none
	signature string
}

type signature struct {
	Columns [][2]string `json:"columns"` // target name, PostgreSQL type
	Key     []string    `json:"key"`
}

func buildPlan(t *tables.Table, src *schema.Table, snake bool) (*plan, error) {
	p := &plan{table: t, src: src, target: rawName(src.Name, snake)}
	if err := checkIdent("table", src.Name, p.target); err != nil {
		return nil, err
	}
	for name := range t.ColumnTypeOverride {
		if !slices.ContainsFunc(src.Columns, func(c schema.Column) bool { return c.Name == name }) {
			return nil, fmt.Errorf("%w: tables.yml %s.column_types names column %q, which the replica table does not have", ErrConfig, src.Name, name)
		}
	}
	seen := map[string]string{}
	var sig signature
	for _, c := range src.Columns {
		m, err := typemap.Map(c, t.ColumnTypeOverride[c.Name])
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", src.Name, err)
		}
		col := column{Column: c, Mapping: m, Target: rawName(c.Name, snake)}
		if err := checkIdent("column", c.Name, col.Target); err != nil {
			return nil, fmt.Errorf("plan %s: %w", src.Name, err)
		}
		if prev, ok := seen[col.Target]; ok {
			return nil, fmt.Errorf("%w: %s columns %q and %q both become %q in raw; load without snake_case or rename one", ErrConfig, src.Name, prev, c.Name, col.Target)
		}
		seen[col.Target] = c.Name
		p.cols = append(p.cols, col)
		sig.Columns = append(sig.Columns, [2]string{col.Target, m.Target})
	}
	for _, k := range src.PrimaryKey {
		i := slices.IndexFunc(p.cols, func(c column) bool { return c.Name == k })
		p.key = append(p.key, i)
		sig.Key = append(sig.Key, p.cols[i].Target)
	}
	if wm := t.Watermark(); wm != "" {
		i := slices.IndexFunc(p.cols, func(c column) bool { return c.Name == wm })
		if i < 0 {
			return nil, fmt.Errorf("%w: tables.yml %s.watermark_columns names %q, which the replica table does not have", ErrConfig, src.Name, wm)
		}
		p.watermark = &p.cols[i]
	}
	b, _ := json.Marshal(sig)
	p.signature = string(b)
	return p, nil
}

// RawName is the raw name of a source table or column (typemap.RawName).
func RawName(name string, snake bool) string { return typemap.RawName(name, snake) }

func rawName(name string, snake bool) string { return typemap.RawName(name, snake) }

func checkIdent(kind, source, target string) error {
	if target == "" {
		return fmt.Errorf("%w: %s %q has no usable snake_case name; load without snake_case", ErrConfig, kind, source)
	}
	if len(target) > maxIdent {
		return fmt.Errorf("%w: %s name %q is %d bytes, PostgreSQL keeps only %d and would silently truncate it", ErrConfig, kind, target, len(target), maxIdent)
	}
	return nil
}

func fitIdent(s string) string { return typemap.FitIdent(s) }

func qualified(name string) string { return typemap.QuotePG(Schema) + "." + typemap.QuotePG(name) }

func (p *plan) tmpName() string          { return fitIdent("_etl_new_" + p.target) }
func (p *plan) pkeyName(t string) string { return fitIdent(t + "_pkey") }

// selectSQL is the replica query reading every column, in order.
func (p *plan) selectSQL(where string) string {
	exprs := make([]string, len(p.cols))
	for i, c := range p.cols {
		exprs[i] = c.SelectExpr
	}
	return "SELECT " + strings.Join(exprs, ", ") + " FROM " + typemap.QuoteMySQL(p.src.Name) + where
}

func (p *plan) columnList(prefix string) string {
	names := make([]string, len(p.cols))
	for i, c := range p.cols {
		names[i] = prefix + typemap.QuotePG(c.Target)
	}
	return strings.Join(names, ", ")
}

func (p *plan) keyList(prefix string) string {
	names := make([]string, len(p.key))
	for i, k := range p.key {
		names[i] = prefix + typemap.QuotePG(p.cols[k].Target)
	}
	return strings.Join(names, ", ")
}

// createSQL creates the raw table; columns are nullable (a zero date becomes
// NULL even in a NOT NULL column), except the key, added after the data.
func (p *plan) createSQL(name string) string {
	defs := make([]string, len(p.cols))
	for i, c := range p.cols {
		defs[i] = typemap.QuotePG(c.Target) + " " + c.Mapping.Target
	}
	return "CREATE TABLE " + qualified(name) + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"
}

func (p *plan) addKeySQL(table, constraint string) string {
	return "ALTER TABLE " + qualified(table) + " ADD CONSTRAINT " + typemap.QuotePG(constraint) +
		" PRIMARY KEY (" + p.keyList("") + ")"
}

// upsertSQL inserts the staged rows, updating only rows that really differ.
func (p *plan) upsertSQL(stage string) string {
	s := "INSERT INTO " + qualified(p.target) + " AS t (" + p.columnList("") + ")\nSELECT " + p.columnList("") +
		" FROM " + stage + "\nON CONFLICT (" + p.keyList("") + ") DO "
	var sets []string
	var nonKey []int
	for i, c := range p.cols {
		if !slices.Contains(p.key, i) {
			sets = append(sets, typemap.QuotePG(c.Target)+" = EXCLUDED."+typemap.QuotePG(c.Target))
			nonKey = append(nonKey, i)
		}
	}
	if len(sets) == 0 {
		return s + "NOTHING"
	}
	var old, nu []string
	for _, i := range nonKey {
		old = append(old, "t."+typemap.QuotePG(p.cols[i].Target))
		nu = append(nu, "EXCLUDED."+typemap.QuotePG(p.cols[i].Target))
	}
	return s + "UPDATE SET " + strings.Join(sets, ", ") +
		"\nWHERE ROW(" + strings.Join(old, ", ") + ") IS DISTINCT FROM ROW(" + strings.Join(nu, ", ") + ")"
}

// columnPlans is the type decision list shown by --dry-run.
func (p *plan) columnPlans() []ColumnPlan {
	out := make([]ColumnPlan, len(p.cols))
	for i, c := range p.cols {
		out[i] = ColumnPlan{Column: c.Name, Target: c.Target, Source: c.Source, Type: c.Mapping.Target, Override: c.Override, Reason: c.Reason}
	}
	return out
}

// schemaChanges describes how the raw table's recorded signature differs
// from the planned one.
func schemaChanges(old, nu string) []string {
	var a, b signature
	if err := json.Unmarshal([]byte(old), &a); err != nil {
		return []string{"no recorded column signature"}
	}
	_ = json.Unmarshal([]byte(nu), &b)
	oldT := map[string]string{}
	for _, c := range a.Columns {
		oldT[c[0]] = c[1]
	}
	newT := map[string]string{}
	var out []string
	for _, c := range b.Columns {
		newT[c[0]] = c[1]
		switch t, ok := oldT[c[0]]; {
		case !ok:
			out = append(out, fmt.Sprintf("column %q added (%s)", c[0], c[1]))
		case t != c[1]:
			out = append(out, fmt.Sprintf("column %q type changed %s → %s", c[0], t, c[1]))
		}
	}
	for _, c := range a.Columns {
		if _, ok := newT[c[0]]; !ok {
			out = append(out, fmt.Sprintf("column %q removed", c[0]))
		}
	}
	if !slices.Equal(a.Key, b.Key) {
		out = append(out, fmt.Sprintf("primary key changed (%s) → (%s)", strings.Join(a.Key, ", "), strings.Join(b.Key, ", ")))
	}
	if len(out) == 0 && old != nu {
		out = append(out, "column order changed")
	}
	return out
}
