package tables

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const good = `# comment kept out of the model
tables:
  patient:
    primary_key: [PatNum]
    watermark_columns: [DateTStamp]
    extraction_strategy: incremental
    batch_size: 5000
    importance: critical
    estimated_rows: 1200
    estimated_size_mb: 3.5
    lookback_seconds: 60
  definition:
    primary_key: [DefNum]
    extraction_strategy: full_table
    importance: reference
    detect_deletes: false
    estimated_rows: 10
    estimated_size_mb: 0.1
  securitylog:
    primary_key: [SecurityLogNum]
    watermark_columns: [SecurityLogNum]
    extraction_strategy: incremental_chunked
    importance: audit
    estimated_rows: 900000
    estimated_size_mb: 120
  nokey:
    extraction_strategy: full_table
    exclude: true
`

func TestParseGood(t *testing.T) {
	cfg, err := Parse("tables.yml", []byte(good))
	require.NoError(t, err)
	require.Len(t, cfg.Tables, 4)
	p := cfg.Tables["patient"]
	assert.Equal(t, "patient", p.Name)
	assert.Equal(t, []string{"PatNum"}, p.PrimaryKey)
	assert.Equal(t, "DateTStamp", p.Watermark())
	assert.Equal(t, Incremental, p.Strategy)
	assert.Equal(t, 5000, p.BatchSize)
	assert.Equal(t, 60, p.LookbackSeconds)
	assert.True(t, p.DeletesEnabled())
	assert.False(t, cfg.Tables["definition"].DeletesEnabled())
	assert.Equal(t, DefaultBatchSize, cfg.Tables["definition"].BatchSize, "batch_size defaults")
	assert.Equal(t, Standard, cfg.Tables["nokey"].Importance, "importance defaults")

	var order []string
	for _, tb := range cfg.Ordered() {
		order = append(order, tb.Name)
	}
	assert.Equal(t, []string{"patient", "securitylog", "definition"}, order, "critical first, excluded dropped")
}

func TestParseRoundTrip(t *testing.T) {
	cfg, err := Parse("tables.yml", []byte(good))
	require.NoError(t, err)
	out, err := Marshal(cfg, []string{"generated"})
	require.NoError(t, err)
	again, err := Parse("tables.yml", out)
	require.NoError(t, err, string(out))
	assert.Equal(t, cfg, again)
}

// Every name MySQL accepts is accepted, written back quoted where YAML needs
// it, and read back exactly; names differing only in case are two tables (as
// on MySQL with lower_case_table_names=0), while column names are
// case-insensitive in MySQL, so Id and ID would be one column twice.
func TestOddNamesRoundTrip(t *testing.T) {
	names := []string{"a b", "a-b", "it's", `say "hi"`, "back`tick", "dollar$", "dot.ted", "café", "日本", "select", "123",
		strings.Repeat("L", 64), "comma,name", " lead", "null", "~", "true", "- x", "#hash", "a: b", "{x}", "*star", "&amp", "!bang",
		"%pct", "@at", "`", "'", `"`, "\t\\", "Patient", "patient", "0x1F", "1e3", ".inf", "yes", "<<"}
	cfg := &Config{Tables: map[string]*Table{}}
	for i, n := range names {
		cfg.Tables[n] = &Table{Name: n, Strategy: FullTable, BatchSize: DefaultBatchSize, Importance: Standard,
			PrimaryKey: []string{n}, Columns: []string{n, names[(i+3)%len(names)]}, ColumnTypeOverride: map[string]string{n: "text"}}
		require.NoError(t, CheckName(n), n)
	}
	out, err := Marshal(cfg, nil)
	require.NoError(t, err)
	again, err := Parse("tables.yml", out)
	require.NoError(t, err, string(out))
	assert.Equal(t, cfg, again, string(out))
	for _, plain := range []string{"\n  null:", "\n  ~:", "\n  true:", "\n  123:", "\n  <<:"} {
		assert.NotContains(t, string(out), plain, "a key YAML reads as null, bool, number or merge is quoted for other YAML readers")
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, yml, want string
	}{
		{"unknown key", "tables:\n  a:\n    extraction_strategy: full_table\n    batchsize: 3\n", `t.yml:4: table "a": unknown key "batchsize"; fix: use one of:`},
		{"unknown strategy", "tables:\n  a:\n    extraction_strategy: incremntal\n", `t.yml:3: table "a": unknown extraction_strategy "incremntal"; fix: use one of: full_table, incremental, incremental_chunked`},
		{"no watermark", "tables:\n  a:\n    primary_key: [Id]\n    extraction_strategy: incremental\n", `t.yml:4: table "a": incremental needs watermark_columns`},
		{"no key", "tables:\n  a:\n    watermark_columns: [T]\n    extraction_strategy: incremental_chunked\n", `t.yml:4: table "a": incremental_chunked needs a primary_key`},
		{"duplicate", "tables:\n  a:\n    extraction_strategy: full_table\n  a:\n    extraction_strategy: full_table\n", `t.yml:4: table "a" is listed twice (first at line 2)`},
		{"name too long", "tables:\n  " + strings.Repeat("x", 65) + ":\n    extraction_strategy: full_table\n", `it has 65 characters; MySQL allows 64`},
		{"trailing space", "tables:\n  'a ':\n    extraction_strategy: full_table\n", `table name "a " is not a valid MySQL table name: it ends with a space`},
		{"outside the BMP", "tables:\n  a😀:\n    extraction_strategy: full_table\n", `outside the Unicode Basic Multilingual Plane`},
		{"empty name", "tables:\n  '':\n    extraction_strategy: full_table\n", `table name "" is not a valid MySQL table name: it is empty`},
		{"NUL in a column", "tables:\n  a:\n    extraction_strategy: full_table\n    columns: [\"x\\0y\"]\n", `columns: "x\x00y" is not a valid column name: it contains a NUL`},
		{"column twice ignoring case", "tables:\n  a:\n    extraction_strategy: full_table\n    columns: [Id, ID]\n", `columns lists "ID" twice`},
		{"unknown importance", "tables:\n  a:\n    extraction_strategy: full_table\n    importance: vital\n", `t.yml:4: table "a": unknown importance "vital"`},
		{"missing strategy", "tables:\n  a:\n    batch_size: 10\n", `t.yml:2: table "a": extraction_strategy is missing`},
		{"negative batch", "tables:\n  a:\n    extraction_strategy: full_table\n    batch_size: -1\n", `t.yml:4: table "a": batch_size -1 is negative`},
		{"zero batch", "tables:\n  a:\n    extraction_strategy: full_table\n    batch_size: 0\n", `t.yml:4: table "a": batch_size must be at least 1, got 0`},
		{"top-level key", "tabels:\n  a: {}\n", `t.yml:1: unknown top-level key "tabels"`},
		{"bad type", "tables:\n  a:\n    extraction_strategy: full_table\n    batch_size: many\n", `t.yml:3: table "a"`},
		{"bad yaml", "tables:\n  a: [\n", `t.yml: invalid tables.yml`},
		{"tables twice", "tables:\n  a:\n    extraction_strategy: full_table\ntables:\n  b:\n    extraction_strategy: full_table\n", `t.yml:4: "tables" is given twice (first at line 1); fix: keep one "tables:" and list every table under it`},
		{"key twice", "tables:\n  a:\n    extraction_strategy: full_table\n    batch_size: 3\n    batch_size: 4\n", `t.yml:5: table "a": batch_size is set twice (first at line 4); fix: keep one`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse("t.yml", []byte(c.yml))
			require.Error(t, err)
			assert.Nil(t, cfg)
			assert.Contains(t, err.Error(), c.want)
			assert.True(t, errors.Is(err, ErrInvalid))
		})
	}
}

func TestEnums(t *testing.T) {
	_, err := ParseStrategy("x")
	assert.ErrorContains(t, err, "allowed: full_table, incremental, incremental_chunked")
	s, err := ParseStrategy("incremental")
	require.NoError(t, err)
	assert.True(t, s.IsIncremental())
	_, err = ParseImportance("x")
	assert.ErrorContains(t, err, "allowed: critical, important, standard, audit, reference")
	assert.Equal(t, 0, Critical.Rank())
}

// Ordered is the run order: most important first, then largest (size, then
// rows), then by name; excluded tables are left out.
func TestOrdered(t *testing.T) {
	cfg := &Config{Tables: map[string]*Table{}}
	for _, tb := range []*Table{
		{Name: "small", Importance: Standard, EstimatedSizeMB: 1},
		{Name: "big", Importance: Standard, EstimatedSizeMB: 500},
		{Name: "tiny_ref", Importance: Reference, EstimatedSizeMB: 0.1},
		{Name: "b_same", Importance: Standard, EstimatedSizeMB: 1},
		{Name: "more_rows", Importance: Standard, EstimatedSizeMB: 1, EstimatedRows: 10},
		{Name: "core", Importance: Critical, EstimatedSizeMB: 0.5},
		{Name: "skipped", Importance: Critical, EstimatedSizeMB: 900, Exclude: true},
	} {
		cfg.Tables[tb.Name] = tb
	}
	var order []string
	for _, tb := range cfg.Ordered() {
		order = append(order, tb.Name)
	}
	assert.Equal(t, []string{"core", "big", "more_rows", "b_same", "small", "tiny_ref"}, order)
}

// Select is what replicate and verify run for --tables: the named tables
// in run order (excluded ones after, when named), names exact.
func TestSelect(t *testing.T) {
	cfg := &Config{Tables: map[string]*Table{}}
	for _, tb := range []*Table{
		{Name: "small", Importance: Standard, EstimatedSizeMB: 1},
		{Name: "core", Importance: Critical},
		{Name: " spaced", Importance: Standard},
		{Name: "z_off", Importance: Critical, Exclude: true},
		{Name: "a_off", Importance: Critical, Exclude: true},
	} {
		cfg.Tables[tb.Name] = tb
	}
	names := func(ts []*Table) []string {
		var out []string
		for _, tb := range ts {
			out = append(out, tb.Name)
		}
		return out
	}
	all, err := cfg.Select(nil)
	require.NoError(t, err)
	assert.Equal(t, names(cfg.Ordered()), names(all), "no names: every table not excluded")
	got, err := cfg.Select([]string{"z_off", "small", "", " spaced", "a_off", "core"})
	require.NoError(t, err)
	assert.Equal(t, []string{"core", "small", " spaced", "a_off", "z_off"}, names(got))
	_, err = cfg.Select([]string{"zz", "spaced", "core"})
	require.Error(t, err)
	assert.Equal(t, "--tables names spaced, zz, not in tables.yml; run `pipeline discover` or fix the name", err.Error(), "exact names, sorted")
}

func TestParseColumnPolicies(t *testing.T) {
	const ok = `tables:
  patient:
    primary_key: [PatNum]
    extraction_strategy: full_table
    columns: [PatNum, LName, SSN, Birthdate]
    column_policies: {SSN: drop, birthdate: keep, LName: hash}
`
	cfg, err := Parse("tables.yml", []byte(ok))
	require.NoError(t, err)
	p := cfg.Tables["patient"]
	assert.Equal(t, Drop, p.Policy("SSN"))
	assert.Equal(t, Hash, p.Policy("lname"), "column names match case-insensitively, as in MySQL")
	assert.Equal(t, Keep, p.Policy("Birthdate"))
	assert.Equal(t, Keep, p.Policy("PatNum"), "unlisted columns are kept")
	assert.True(t, cfg.Hashes())
	cfg.Tables["patient"].Exclude = true
	assert.False(t, cfg.Hashes(), "an excluded table needs no key")

	bad := []struct{ name, policies, line, want string }{
		{"unknown policy", `{SSN: mask}`, ":6:", `unknown policy "mask"; fix: use one of: keep, drop, hash`},
		{"unknown column", `{SNN: drop}`, ":6:", `names column "SNN", which the table does not have`},
		{"twice", `{SSN: drop, ssn: hash}`, ":6:", `names "ssn" twice`},
		{"key dropped", `{PatNum: drop}`, ":6:", `PatNum is a primary key column and cannot be dropped`},
		{"key hashed", `{patnum: hash}`, ":6:", `patnum is a primary key column and cannot be hashed`},
		{"retyped", "{LName: hash}\n    column_types: {LName: varchar}", ":6:", `both a column_types override and policy hash`},
		{"not a mapping", `[SSN]`, ":3:", `line 6: cannot unmarshal`},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			doc := strings.Replace(ok, "{SSN: drop, birthdate: keep, LName: hash}", c.policies, 1)
			_, err := Parse("tables.yml", []byte(doc))
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrInvalid))
			assert.Contains(t, err.Error(), "tables.yml"+c.line)
			assert.Contains(t, err.Error(), c.want)
		})
	}
}
