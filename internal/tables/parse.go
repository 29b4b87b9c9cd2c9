package tables

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// ErrInvalid marks a tables.yml that cannot be used; errors.Is finds it in
// every error Parse returns for bad content.
var ErrInvalid = errors.New("invalid tables.yml")

// FileError is one problem in tables.yml, located by file and line, with the fix.
type FileError struct {
	File string
	Line int
	Msg  string
	Fix  string
}

func (e *FileError) Error() string {
	s := fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	if e.Fix != "" {
		s += "; fix: " + e.Fix
	}
	return s
}

func (e *FileError) Unwrap() error { return ErrInvalid }

// CheckName reports why name cannot be a MySQL table or column name, or nil.
// MySQL and MariaDB accept 1 to 64 characters of the Unicode BMP except NUL,
// not ending in a space; anything else (spaces, quotes, backticks, dots,
// hyphens, all digits, reserved words, non-ASCII letters) is a valid name
// once quoted, and every name is quoted wherever it is used.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("it is empty")
	case !utf8.ValidString(name):
		return errors.New("it is not valid UTF-8")
	case utf8.RuneCountInString(name) > 64:
		return fmt.Errorf("it has %d characters; MySQL allows 64", utf8.RuneCountInString(name))
	case strings.HasSuffix(name, " "):
		return errors.New("it ends with a space, which MySQL does not allow")
	}
	for _, r := range name {
		if r == 0 {
			return errors.New("it contains a NUL character")
		}
		if r > 0xFFFF {
			return fmt.Errorf("it contains %q, outside the Unicode Basic Multilingual Plane MySQL names are limited to", r)
		}
	}
	return nil
}

// tableKeys are the allowed keys of a table entry, from the yaml tags.
var tableKeys = func() []string {
	var out []string
	rt := reflect.TypeOf(Table{})
	for i := range rt.NumField() {
		tag := strings.Split(rt.Field(i).Tag.Get("yaml"), ",")[0]
		if tag != "-" && tag != "" {
			out = append(out, tag)
		}
	}
	return out
}()

// Parse decodes tables.yml strictly: unknown keys, unknown strategies or
// importances, duplicate tables and incremental tables without a watermark
// or key are errors naming the file, line and fix.
func Parse(filename string, data []byte) (*Config, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", filename, ErrInvalid, err)
	}
	cfg := &Config{Tables: map[string]*Table{}}
	if len(doc.Content) == 0 {
		return cfg, nil // an empty file lists no tables
	}
	ferr := func(n *yaml.Node, fix, format string, args ...any) error {
		return &FileError{File: filename, Line: n.Line, Msg: fmt.Sprintf(format, args...), Fix: fix}
	}
	tablesNode, err := findTables(doc.Content[0], ferr)
	if err != nil {
		return nil, err
	}
	if tablesNode == nil {
		return cfg, nil
	}
	seen := map[string]int{}
	for i := 0; i < len(tablesNode.Content); i += 2 {
		k, v := tablesNode.Content[i], tablesNode.Content[i+1]
		name := k.Value
		if err := CheckName(name); err != nil {
			return nil, ferr(k, "use the table's name as in the source database (quote it in YAML if it has special characters)", "table name %q is not a valid MySQL table name: %v", name, err)
		}
		// Exact: MySQL on Linux (lower_case_table_names=0) holds "Patient" and
		// "patient" as two tables.
		if line, dup := seen[name]; dup {
			return nil, ferr(k, "keep one entry and delete the other", "table %q is listed twice (first at line %d)", name, line)
		}
		seen[name] = k.Line
		t, err := parseTable(k, v, ferr)
		if err != nil {
			return nil, err
		}
		cfg.Tables[name] = t
	}
	return cfg, nil
}

// fileErr makes a FileError at node n (see Parse).
type fileErr func(n *yaml.Node, fix, format string, args ...any) error

// findTables is the mapping under the top-level "tables" key of root, nil
// when there is none or it is empty.
func findTables(root *yaml.Node, ferr fileErr) (*yaml.Node, error) {
	if root.Kind != yaml.MappingNode {
		return nil, ferr(root, "start the file with `tables:`", "the top level must be a mapping with the key \"tables\"")
	}
	var tablesNode *yaml.Node
	for i := 0; i < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Value != "tables" {
			return nil, ferr(k, "remove it; the only top-level key is \"tables\"", "unknown top-level key %q", k.Value)
		}
		if tablesNode != nil { // yaml.v3 keeps the last silently: the first block's tables would vanish
			return nil, ferr(k, "keep one \"tables:\" and list every table under it", "\"tables\" is given twice (first at line %d)", root.Content[i-2].Line)
		}
		tablesNode = root.Content[i+1]
	}
	if tablesNode == nil || tablesNode.Tag == "!!null" {
		return nil, nil
	}
	if tablesNode.Kind != yaml.MappingNode {
		return nil, ferr(tablesNode, "write one `name:` entry per table under `tables:`", "\"tables\" must be a mapping of table name to settings")
	}
	return tablesNode, nil
}

// parseTable decodes and checks the settings v of the table named by key k.
func parseTable(k, v *yaml.Node, ferr fileErr) (*Table, error) {
	name := k.Value
	if v.Kind != yaml.MappingNode {
		return nil, ferr(v, "give the table a mapping of settings (at least extraction_strategy)", "table %q: settings must be a mapping", name)
	}
	lines := map[string]*yaml.Node{}
	for j := 0; j < len(v.Content); j += 2 {
		key := v.Content[j]
		if !contains(tableKeys, key.Value) {
			return nil, ferr(key, "use one of: "+strings.Join(tableKeys, ", "), "table %q: unknown key %q", name, key.Value)
		}
		if first, dup := lines[key.Value]; dup {
			return nil, ferr(key, "keep one", "table %q: %s is set twice (first at line %d)", name, key.Value, first.Line)
		}
		lines[key.Value] = key
	}
	var t Table
	if err := v.Decode(&t); err != nil {
		return nil, ferr(v, "check the value types (lists in [..], numbers without quotes)", "table %q: %v", name, err)
	}
	t.Name = name
	if n, set := lines["batch_size"]; set && t.BatchSize == 0 { // validate cannot tell 0 from absent (the default)
		return nil, ferr(n, "use a positive number of rows, e.g. 10000, or leave batch_size out for the default", "table %q: batch_size must be at least 1, got 0", name)
	}
	at := func(key string) *yaml.Node {
		if n, ok := lines[key]; ok {
			return n
		}
		return k
	}
	if err := validate(&t, at, ferr); err != nil {
		return nil, err
	}
	if err := checkPolicies(&t, valueOf(v, "column_policies"), ferr); err != nil {
		return nil, err
	}
	return &t, nil
}

func validate(t *Table, at func(string) *yaml.Node, ferr fileErr) error {
	if t.Strategy == "" {
		return ferr(at("extraction_strategy"), "add `extraction_strategy: full_table` (or incremental with watermark_columns)", "table %q: extraction_strategy is missing", t.Name)
	}
	if !t.Strategy.Valid() {
		return ferr(at("extraction_strategy"), "use one of: "+joinValues(StrategyValues()), "table %q: unknown extraction_strategy %q", t.Name, t.Strategy)
	}
	if t.Importance == "" {
		t.Importance = Standard
	}
	if !t.Importance.Valid() {
		return ferr(at("importance"), "use one of: "+joinValues(ImportanceValues()), "table %q: unknown importance %q", t.Name, t.Importance)
	}
	if t.Strategy.IsIncremental() {
		if len(t.WatermarkColumns) == 0 {
			return ferr(at("extraction_strategy"), "add watermark_columns: [SecDateTEdit] (a timestamp ON UPDATE column) or use full_table", "table %q: %s needs watermark_columns", t.Name, t.Strategy)
		}
		if len(t.PrimaryKey) == 0 {
			return ferr(at("extraction_strategy"), "add primary_key: [..] or use full_table", "table %q: %s needs a primary_key to page on", t.Name, t.Strategy)
		}
	}
	for _, list := range []struct {
		key  string
		cols []string
	}{{"primary_key", t.PrimaryKey}, {"watermark_columns", t.WatermarkColumns}, {"columns", t.Columns}} {
		dup := map[string]bool{}
		for _, c := range list.cols {
			if err := CheckName(c); err != nil {
				return ferr(at(list.key), "use the column's name as in the source (quote it in YAML if it has special characters)", "table %q: %s: %q is not a valid column name: %v", t.Name, list.key, c, err)
			}
			if dup[strings.ToLower(c)] {
				return ferr(at(list.key), "list each column once", "table %q: %s lists %q twice", t.Name, list.key, c)
			}
			dup[strings.ToLower(c)] = true
		}
	}
	if t.BatchSize < 0 {
		return ferr(at("batch_size"), "use a positive number of rows, e.g. 10000", "table %q: batch_size %d is negative", t.Name, t.BatchSize)
	}
	if t.BatchSize == 0 {
		t.BatchSize = DefaultBatchSize
	}
	if t.LookbackSeconds < 0 {
		return ferr(at("lookback_seconds"), "use 0 or a positive number of seconds", "table %q: lookback_seconds %d is negative", t.Name, t.LookbackSeconds)
	}
	if t.EstimatedRows < 0 || t.EstimatedSizeMB < 0 {
		return ferr(at("estimated_rows"), "use 0 or a positive estimate", "table %q: estimates must not be negative", t.Name)
	}
	return nil
}

// valueOf is the value node of key in mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkPolicies validates column_policies (node n, nil when absent): known
// policies, valid column names listed once, columns the table has (when
// discover listed them), no key column dropped or hashed (the key is how
// raw is upserted, deleted from and verified) and no column both retyped
// and dropped or hashed.
func checkPolicies(t *Table, n *yaml.Node, ferr fileErr) error {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil // absent; a non-mapping already failed Decode
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		col := k.Value
		if err := CheckName(col); err != nil {
			return ferr(k, "use the column's name as in the source (quote it in YAML if it has special characters)", "table %q: column_policies: %q is not a valid column name: %v", t.Name, col, err)
		}
		if line, dup := seen[strings.ToLower(col)]; dup {
			return ferr(k, "keep one entry (column names are case-insensitive)", "table %q: column_policies names %q twice (first at line %d)", t.Name, col, line)
		}
		seen[strings.ToLower(col)] = k.Line
		p := ColumnPolicy(v.Value)
		if !p.Valid() {
			return ferr(v, "use one of: "+joinValues(ColumnPolicyValues()), "table %q: column_policies.%s: unknown policy %q", t.Name, col, v.Value)
		}
		if len(t.Columns) > 0 && !containsFold(t.Columns, col) {
			return ferr(k, "check the spelling against the table's columns: list, or run `pipeline discover` if the column is new", "table %q: column_policies names column %q, which the table does not have", t.Name, col)
		}
		if p == Keep {
			continue
		}
		if containsFold(t.PrimaryKey, col) {
			return ferr(k, "keep the key column (remove it from column_policies): raw is upserted, deleted from and verified by its primary key", "table %q: column_policies: %s is a primary key column and cannot be %s", t.Name, col, map[ColumnPolicy]string{Drop: "dropped", Hash: "hashed"}[p])
		}
		for c := range t.ColumnTypeOverride {
			if strings.EqualFold(c, col) {
				return ferr(k, "remove the column_types entry: a dropped column has no type and a hashed one is text", "table %q: column %s has both a column_types override and policy %s", t.Name, col, p)
			}
		}
	}
	return nil
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// NameNode is the YAML key of a table name: tagged as a string, so the
// encoder quotes a name YAML would read as something else (null, ~, true,
// 123, <<, …).
func NameNode(name string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name}
	if name == "<<" {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

// EncodeTable is the YAML mapping of one table's settings. yaml.v3 writes a
// "<<" map key (a column named so, in column_types) plain, which YAML reads
// as a merge: it is double-quoted here.
func EncodeTable(t *Table) (*yaml.Node, error) {
	var n yaml.Node
	if err := n.Encode(t); err != nil {
		return nil, fmt.Errorf("encode table %s: %w", t.Name, err)
	}
	var quote func(*yaml.Node)
	quote = func(n *yaml.Node) {
		if n.Kind == yaml.ScalarNode && n.Value == "<<" {
			n.Tag, n.Style = "!!str", yaml.DoubleQuotedStyle
		}
		for _, c := range n.Content {
			quote(c)
		}
	}
	quote(&n)
	return &n, nil
}

// Marshal renders cfg as tables.yml, tables sorted by name, after header
// (comment lines without the leading "# ").
func Marshal(cfg *Config, header []string) ([]byte, error) {
	var buf bytes.Buffer
	for _, h := range header {
		buf.WriteString(strings.TrimRight("# "+h, " ") + "\n")
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	tbls := &yaml.Node{Kind: yaml.MappingNode}
	root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "tables"}, tbls)
	names := cfg.Names()
	sort.Strings(names)
	for _, n := range names {
		v, err := EncodeTable(cfg.Tables[n])
		if err != nil {
			return nil, err
		}
		tbls.Content = append(tbls.Content, NameNode(n), v)
	}
	body, err := EncodeNode(root)
	if err != nil {
		return nil, err
	}
	buf.Write(body)
	return buf.Bytes(), nil
}

// EncodeNode renders a tables.yml document or mapping node as the file is
// written (two-space indent); discover re-encodes an edited file with it.
func EncodeNode(n *yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return nil, fmt.Errorf("encode tables.yml: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode tables.yml: %w", err)
	}
	return buf.Bytes(), nil
}
