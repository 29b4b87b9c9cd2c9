package load

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/opendental-pipeline/pipeline/internal/policy"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// KeyVarNote names the hash key's variable in messages.
const KeyVarNote = policy.KeyVar

// maxIdent is PostgreSQL's identifier limit in bytes (NAMEDATALEN-1).
const maxIdent = typemap.MaxIdent

// column is one source column that reaches raw, with its raw decision
// (column_policies applied by internal/policy).
type column struct {
	policy.Column
	Target string // raw column name
}

// plan is everything needed to load one table.
type plan struct {
	table     *tables.Table
	src       *schema.Table
	target    string
	cols      []column
	key       []int   // indexes into cols of the primary key, in key order
	watermark *column // first watermark column (read in the replica, even when dropped from raw); nil when none
	loadedAt  string  // the loaded-at marker column (pipeline.yml load.loaded_at_column); "" when off
	signature string
}

type signature struct {
	Columns [][2]string `json:"columns"` // target name, PostgreSQL type
	Key     []string    `json:"key"`
	Hashed  []string    `json:"hashed,omitempty"`   // target names of hashed columns
	HashKey string      `json:"hash_key,omitempty"` // fingerprint of the key they were hashed with
}

func buildPlan(t *tables.Table, src *schema.Table, opts Options) (*plan, error) {
	p := &plan{table: t, src: src, target: rawName(src.Name, opts.SnakeCase), loadedAt: opts.LoadedAtColumn}
	if err := checkIdent("table", src.Name, p.target); err != nil {
		return nil, err
	}
	for name := range t.ColumnTypeOverride {
		if !slices.ContainsFunc(src.Columns, func(c schema.Column) bool { return c.Name == name }) {
			return nil, fmt.Errorf("%w: tables.yml %s.column_types names column %q, which the replica table does not have", ErrConfig, src.Name, name)
		}
	}
	cols, err := policy.Columns(t, src, opts.HashKey)
	if err != nil {
		if errors.Is(err, policy.ErrConfig) || errors.Is(err, policy.ErrNoKey) {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		return nil, fmt.Errorf("plan %s: %w", src.Name, err)
	}
	sig, err := p.addColumns(cols, opts)
	if err != nil {
		return nil, err
	}
	for _, k := range src.PrimaryKey {
		i := slices.IndexFunc(p.cols, func(c column) bool { return c.Name == k })
		p.key = append(p.key, i)
		sig.Key = append(sig.Key, p.cols[i].Target)
	}
	if err := p.findWatermark(); err != nil {
		return nil, err
	}
	b, _ := json.Marshal(sig)
	p.signature = string(b)
	return p, nil
}

// addColumns names cols in raw, refusing names PostgreSQL cannot hold or
// that collide (with each other or with the loaded-at marker), and returns
// the signature of the raw table's columns.
func (p *plan) addColumns(cols []policy.Column, opts Options) (signature, error) {
	var sig signature
	seen := map[string]string{}
	for _, pc := range cols {
		col := column{Column: pc, Target: rawName(pc.Name, opts.SnakeCase)}
		if err := checkIdent("column", pc.Name, col.Target); err != nil {
			return sig, fmt.Errorf("plan %s: %w", p.src.Name, err)
		}
		if prev, ok := seen[col.Target]; ok {
			return sig, fmt.Errorf("%w: %s columns %q and %q both become %q in raw; load without snake_case or rename one", ErrConfig, p.src.Name, prev, pc.Name, col.Target)
		}
		seen[col.Target] = pc.Name
		p.cols = append(p.cols, col)
		sig.Columns = append(sig.Columns, [2]string{col.Target, col.Mapping.Target})
		if pc.Policy == tables.Hash {
			sig.Hashed = append(sig.Hashed, col.Target)
			sig.HashKey = opts.HashKey.Fingerprint()
		}
	}
	if p.loadedAt != "" {
		if c := p.src.Column(p.loadedAt); c != nil {
			return sig, fmt.Errorf("%w: pipeline.yml load.loaded_at_column %q is also a column of %s; choose another name for the marker", ErrConfig, p.loadedAt, p.src.Name)
		}
		if src, ok := seen[p.loadedAt]; ok {
			return sig, fmt.Errorf("%w: pipeline.yml load.loaded_at_column %q is the raw name of %s.%s; choose another name for the marker", ErrConfig, p.loadedAt, p.src.Name, src)
		}
		sig.Columns = append(sig.Columns, [2]string{p.loadedAt, LoadedAtType})
	}
	return sig, nil
}

// findWatermark sets the watermark column: one of cols, or, when the
// column is dropped from raw, the replica column alone (the watermark is
// only ever read in the replica).
func (p *plan) findWatermark() error {
	wm := p.table.Watermark()
	if wm == "" {
		return nil
	}
	if i := slices.IndexFunc(p.cols, func(c column) bool { return c.Name == wm }); i >= 0 {
		p.watermark = &p.cols[i]
		return nil
	}
	c := p.src.Column(wm)
	if c == nil || c.Name != wm {
		return fmt.Errorf("%w: tables.yml %s.watermark_columns names %q, which the replica table does not have", ErrConfig, p.src.Name, wm)
	}
	m, err := typemap.Map(*c, "")
	if err != nil {
		return fmt.Errorf("plan %s: %w", p.src.Name, err)
	}
	p.watermark = &column{Column: policy.Column{Column: *c, Mapping: m, Policy: tables.Drop}}
	return nil
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

func qualified(name string) string { return typemap.QuotePG(Schema) + "." + typemap.QuotePG(name) }

// building is the name of the table under construction: the raw name, in
// the pipeline's own BuildSchema, so it never meets a table of raw.
func (p *plan) building() string {
	return typemap.QuotePG(BuildSchema) + "." + typemap.QuotePG(p.target)
}

// pkeyName names the primary key (and its index) of the raw table target.
// Indexes share one namespace with tables per schema, so the name must be
// one no source table can have in raw: it ends with a space, which MySQL
// never allows at the end of a name (nor tables.yml, nor snake_case). A
// long name is shortened with a hash first (distinct names stay distinct).
func pkeyName(target string) string {
	name := target + "_pkey"
	if len(name) > maxIdent-1 {
		sum := sha256.Sum256([]byte(name))
		for len(name) > maxIdent-10 {
			_, size := utf8.DecodeLastRuneInString(name)
			name = name[:len(name)-size]
		}
		name += "_" + hex.EncodeToString(sum[:4])
	}
	return name + " "
}

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

// rawColumnList is every column of the raw table: the source's, then the
// loaded-at marker when it is on.
func (p *plan) rawColumnList() string {
	if p.loadedAt == "" {
		return p.columnList("")
	}
	return p.columnList("") + ", " + typemap.QuotePG(p.loadedAt)
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
func (p *plan) createSQL(qualifiedName string) string {
	defs := make([]string, len(p.cols))
	for i, c := range p.cols {
		defs[i] = typemap.QuotePG(c.Target) + " " + c.Mapping.Target
	}
	if p.loadedAt != "" {
		defs = append(defs, typemap.QuotePG(p.loadedAt)+" "+LoadedAtType)
	}
	return "CREATE TABLE " + qualifiedName + " (\n  " + strings.Join(defs, ",\n  ") + "\n)"
}

// addKeySQL adds the primary key to the table under construction, named
// for the raw table it becomes (pkeyName).
func (p *plan) addKeySQL(building string) string {
	return "ALTER TABLE " + building + " ADD CONSTRAINT " + typemap.QuotePG(pkeyName(p.target)) +
		" PRIMARY KEY (" + p.keyList("") + ")"
}

// upsertSQL inserts the staged rows, updating only rows that really differ
// (the loaded-at marker is not compared: it is what changes with them).
func (p *plan) upsertSQL(stage string) string {
	cols, vals := p.columnList(""), p.columnList("")
	if p.loadedAt != "" { // stamped with $1, and only where the row is new or really changed
		cols, vals = cols+", "+typemap.QuotePG(p.loadedAt), vals+", $1::timestamptz"
	}
	s := "INSERT INTO " + qualified(p.target) + " AS t (" + cols + ")\nSELECT " + vals +
		" FROM " + stage + "\nON CONFLICT (" + p.keyList("") + ") DO "
	var sets []string
	var nonKey []int
	for i, c := range p.cols {
		if !slices.Contains(p.key, i) {
			sets = append(sets, typemap.QuotePG(c.Target)+" = EXCLUDED."+typemap.QuotePG(c.Target))
			nonKey = append(nonKey, i)
		}
	}
	if p.loadedAt != "" && len(sets) > 0 {
		sets = append(sets, typemap.QuotePG(p.loadedAt)+" = EXCLUDED."+typemap.QuotePG(p.loadedAt))
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
	out = append(out, hashChanges(a, b)...)
	if len(out) == 0 && old != nu {
		out = append(out, "column order changed")
	}
	return out
}

// hashChanges describes the columns that became or stopped being hashed
// (tables.yml column_policies) and a new hash key: each rebuilds the table,
// so no column mixes plain values with hashes, or two keys' hashes.
func hashChanges(a, b signature) []string {
	var out []string
	for _, c := range b.Hashed {
		if !slices.Contains(a.Hashed, c) {
			out = append(out, fmt.Sprintf("column %q now hashed (column_policies)", c))
		}
	}
	for _, c := range a.Hashed {
		if !slices.Contains(b.Hashed, c) {
			out = append(out, fmt.Sprintf("column %q no longer hashed (column_policies)", c))
		}
	}
	if len(a.Hashed) > 0 && len(b.Hashed) > 0 && a.HashKey != b.HashKey {
		out = append(out, "hash key changed ("+KeyVarNote+"): hashed columns rehashed")
	}
	return out
}
