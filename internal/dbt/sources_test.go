package dbt

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// The properties dbt documents for a sources file (docs.getdbt.com,
// "Source properties", "freshness", "quoting", "quote", "data_tests", and
// "meta"; dbt 1.10). Decoding with KnownFields(true) fails on any key dbt
// does not document at that place.
type (
	dbtFile struct {
		Version int         `yaml:"version"`
		Sources []dbtSource `yaml:"sources"`
	}
	dbtSource struct {
		Name        string         `yaml:"name"`
		Description string         `yaml:"description"`
		Database    string         `yaml:"database"`
		Schema      string         `yaml:"schema"`
		Loader      string         `yaml:"loader"`
		Quoting     *dbtQuoting    `yaml:"quoting"`
		Config      *dbtConfig     `yaml:"config"`
		Meta        map[string]any `yaml:"meta"`
		Tags        []string       `yaml:"tags"`
		Tables      []dbtTable     `yaml:"tables"`
	}
	dbtQuoting struct {
		Database   *bool `yaml:"database"`
		Schema     *bool `yaml:"schema"`
		Identifier *bool `yaml:"identifier"`
	}
	dbtConfig struct {
		Enabled       *bool          `yaml:"enabled"`
		Freshness     *dbtFreshness  `yaml:"freshness"`
		LoadedAtField string         `yaml:"loaded_at_field"`
		LoadedAtQuery string         `yaml:"loaded_at_query"`
		Meta          map[string]any `yaml:"meta"`
		Tags          []string       `yaml:"tags"`
	}
	dbtFreshness struct {
		WarnAfter  *dbtPeriod `yaml:"warn_after"`
		ErrorAfter *dbtPeriod `yaml:"error_after"`
		Filter     string     `yaml:"filter"`
	}
	dbtPeriod struct {
		Count  int    `yaml:"count"`
		Period string `yaml:"period"`
	}
	dbtTable struct {
		Name        string         `yaml:"name"`
		Description string         `yaml:"description"`
		Identifier  string         `yaml:"identifier"`
		Quoting     *dbtQuoting    `yaml:"quoting"`
		Config      *dbtConfig     `yaml:"config"`
		Meta        map[string]any `yaml:"meta"`
		Columns     []dbtColumn    `yaml:"columns"`
		DataTests   []any          `yaml:"data_tests"`
		Tests       []any          `yaml:"tests"`
	}
	dbtColumn struct {
		Name        string         `yaml:"name"`
		Description string         `yaml:"description"`
		DataType    string         `yaml:"data_type"`
		Quote       *bool          `yaml:"quote"`
		Meta        map[string]any `yaml:"meta"`
		DataTests   []any          `yaml:"data_tests"`
		Tests       []any          `yaml:"tests"`
	}
)

// checkDBT decodes data as dbt would read it and checks the documented
// rules the schema cannot express.
func checkDBT(t *testing.T, data []byte) dbtFile {
	t.Helper()
	var f dbtFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&f), string(data))
	require.Equal(t, 2, f.Version)
	for _, s := range f.Sources {
		require.NotEmpty(t, s.Name)
		checkConfig(t, s.Config)
		for _, tb := range s.Tables {
			require.NotEmpty(t, tb.Name)
			checkConfig(t, tb.Config)
			assert.False(t, len(tb.DataTests) > 0 && len(tb.Tests) > 0, "dbt refuses tests and data_tests together")
			for _, c := range tb.Columns {
				require.NotEmpty(t, c.Name)
				assert.False(t, len(c.DataTests) > 0 && len(c.Tests) > 0, "dbt refuses tests and data_tests together")
			}
		}
	}
	return f
}

func checkConfig(t *testing.T, c *dbtConfig) {
	if c == nil {
		return
	}
	assert.False(t, c.LoadedAtField != "" && c.LoadedAtQuery != "", "setting both loaded_at_query and loaded_at_field is a parse error")
	if f := c.Freshness; f != nil {
		for _, p := range []*dbtPeriod{f.WarnAfter, f.ErrorAfter} {
			if p != nil {
				assert.Positive(t, p.Count)
				assert.Contains(t, []string{"minute", "hour", "day"}, p.Period)
			}
		}
	}
}

func testDB() *schema.Database {
	return &schema.Database{Tables: map[string]*schema.Table{
		"patient": {Name: "patient", PrimaryKey: []string{"PatNum"}, Columns: []schema.Column{
			{Name: "PatNum", DataType: "bigint", Type: "bigint(20)"},
			{Name: "LName", DataType: "varchar", Type: "varchar(100)"},
			{Name: "SSN", DataType: "varchar", Type: "varchar(100)"},
			{Name: "Birthdate", DataType: "date", Type: "date"},
			{Name: "select", DataType: "float", Type: "float"},
			{Name: "note", DataType: "text", Type: "text"},
		}},
		"Fee Sched's": {Name: "Fee Sched's", PrimaryKey: []string{"a", "B"}, Columns: []schema.Column{
			{Name: "a", DataType: "int", Type: "int(11)"}, {Name: "B", DataType: "int", Type: "int(11)"},
		}},
		"_pipeline_copy_status": {Name: "_pipeline_copy_status"},
	}}
}

func testConfig() *tables.Config {
	return &tables.Config{Tables: map[string]*tables.Table{
		"patient": {Name: "patient", Strategy: tables.Incremental, WatermarkColumns: []string{"DateTStamp"},
			ColumnPolicies: map[string]tables.ColumnPolicy{"SSN": tables.Drop, "LName": tables.Hash}},
		"Fee Sched's": {Name: "Fee Sched's", Strategy: tables.FullTable},
		"gone":        {Name: "gone", Strategy: tables.FullTable},
		"excluded":    {Name: "excluded", Strategy: tables.FullTable, Exclude: true},
	}}
}

func TestBuildAndRender(t *testing.T) {
	src, notes, err := Build(testDB(), testConfig(), Options{Schema: "raw", LoadedAtColumn: "_loaded_at", StaleAfter: 26 * time.Hour})
	require.NoError(t, err)
	assert.Equal(t, []string{"gone: in tables.yml but not in the replica yet (run `pipeline replicate`); left out"}, notes)
	data, changes, err := Render(src, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"new table Fee Sched's", "new table patient"}, changes)
	f := checkDBT(t, data)
	require.Len(t, f.Sources, 1)
	s := f.Sources[0]
	assert.Equal(t, "opendental", s.Name)
	assert.Equal(t, "raw", s.Schema)
	assert.Equal(t, dbtPeriod{13, "hour"}, *s.Config.Freshness.WarnAfter)
	assert.Equal(t, dbtPeriod{26, "hour"}, *s.Config.Freshness.ErrorAfter)
	require.Len(t, s.Tables, 2)

	fee, pat := s.Tables[0], s.Tables[1]
	assert.Equal(t, "Fee Sched's", fee.Name)
	assert.True(t, *fee.Quoting.Identifier, "not a plain identifier")
	assert.Equal(t, `select last_confirmed_current_at from pipeline.etl_table_freshness where table_name = 'Fee Sched''s'`, fee.Config.LoadedAtQuery)
	assert.Contains(t, string(data), "dbt_utils.unique_combination_of_columns", "composite key: a commented suggestion")
	assert.Equal(t, []any{"not_null"}, fee.Columns[0].DataTests)
	assert.Nil(t, fee.Columns[0].Quote, "a is plain")
	assert.True(t, *fee.Columns[1].Quote, "B would fold to b")

	assert.Nil(t, pat.Quoting, "patient needs no quotes")
	var names []string
	for _, c := range pat.Columns {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"PatNum", "LName", "Birthdate", "select", "note", "_loaded_at"}, names, "source order, SSN dropped, the marker last")
	assert.Equal(t, []any{"unique", "not_null"}, pat.Columns[0].DataTests)
	assert.Equal(t, "text", pat.Columns[1].DataType)
	assert.Contains(t, pat.Columns[1].Description, "hashed: column_policies hash: keyed HMAC-SHA256")
	assert.Equal(t, map[string]any{"mysql_type": "varchar(100)", "policy": "hash"}, pat.Columns[1].Meta)
	assert.Contains(t, pat.Columns[2].Description, "MySQL date → date")
	assert.Contains(t, pat.Columns[2].Description, "become NULL")
	assert.True(t, *pat.Columns[3].Quote, "a reserved word")
	assert.Contains(t, pat.Columns[3].Description, "→ real")
	assert.Contains(t, pat.Columns[4].Description, "NUL bytes stripped")
	assert.Contains(t, pat.Description, "left out by column_policies: SSN")
	assert.NotContains(t, string(data), "SSN:", "no column entry for the dropped column")
}

func TestRenderMergeKeepsWhatPeopleWrote(t *testing.T) {
	src, _, err := Build(testDB(), testConfig(), Options{Schema: "raw", StaleAfter: 26 * time.Hour})
	require.NoError(t, err)
	first, _, err := Render(src, nil)
	require.NoError(t, err)

	edited := string(first)
	edited = strings.Replace(edited, "  - name: opendental\n", "  - name: opendental # our clinic\n", 1)
	edited = strings.Replace(edited, "warn_after: {count: 13, period: hour}", "warn_after: {count: 2, period: day}", 1)
	edited = replaceAfter(t, edited, "- name: LName\n", "description: 'MySQL varchar(100), hashed: column_policies hash: keyed HMAC-SHA256 of the value''s text, 64 lowercase hex digits (NULL stays NULL); compare with other hashed values, never with plain ones.'",
		"description: Surname, hashed. Join on it only. # keep")
	edited = replaceAfter(t, edited, "- name: note\n", "data_type: text\n", "data_type: text\n            tests: [{accepted_values: {values: [a, b]}}]\n            tags: [pii]\n")
	edited = replaceAfter(t, edited, "- name: PatNum\n", "data_tests: [unique, not_null]", "data_tests: [unique, not_null, {relationships: {to: \"ref('x')\", field: id}}]")
	edited += "models:\n  - name: stg_patient\n"

	// the source changes: a column added, one removed, a policy lifted
	db := testDB()
	p := db.Tables["patient"]
	p.Columns = append(p.Columns[:5], schema.Column{Name: "Email", DataType: "varchar", Type: "varchar(100)"})
	cfg := testConfig()
	cfg.Tables["patient"].ColumnPolicies = map[string]tables.ColumnPolicy{"LName": tables.Hash}
	src, _, err = Build(db, cfg, Options{Schema: "raw", StaleAfter: 26 * time.Hour})
	require.NoError(t, err)
	out, changes, err := Render(src, []byte(edited))
	require.NoError(t, err)
	text := string(out)
	f := checkDBT2(t, out)
	assert.ElementsMatch(t, []string{"removed column patient.note (no longer in raw)", "new column patient.SSN", "new column patient.Email"}, changes)
	assert.Contains(t, text, "- name: opendental # our clinic")
	assert.Contains(t, text, "warn_after: {count: 2, period: day}", "thresholds are the user's")
	assert.Contains(t, text, "description: Surname, hashed. Join on it only.")
	assert.Contains(t, text, "Join on it only. # keep")
	assert.Contains(t, text, "relationships", "added tests stay")
	assert.Contains(t, text, "models:\n  - name: stg_patient", "the rest of the file stays")
	pat := f.Sources[0].Tables[1]
	var names []string
	for _, c := range pat.Columns {
		names = append(names, c.Name)
	}
	assert.Equal(t, []string{"PatNum", "LName", "Birthdate", "select", "SSN", "Email"}, names)
	assert.Equal(t, []any{"unique", "not_null", map[string]any{"relationships": map[string]any{"to": "ref('x')", "field": "id"}}}, pat.Columns[0].DataTests)
	assert.NotContains(t, pat.Description, "left out", "the generated description follows the policy change")

	again, changes, err := Render(src, out)
	require.NoError(t, err)
	assert.Empty(t, changes)
	assert.Equal(t, text, string(again), "a re-run without changes changes nothing")

	_, _, err = Render(src, []byte("version: 1\nsources: []\n"))
	assert.ErrorIs(t, err, ErrNotSources)
}

// checkDBT2 is checkDBT for a file that also holds models (not decoded).
func checkDBT2(t *testing.T, data []byte) dbtFile {
	t.Helper()
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal(data, &doc))
	delete(doc, "models")
	clean, err := yaml.Marshal(doc)
	require.NoError(t, err)
	return checkDBT(t, clean)
}

// replaceAfter replaces the first old after the first anchor in s.
func replaceAfter(t *testing.T, s, anchor, old, nu string) string {
	t.Helper()
	i := strings.Index(s, anchor)
	require.GreaterOrEqual(t, i, 0, anchor)
	j := strings.Index(s[i:], old)
	require.GreaterOrEqual(t, j, 0, old)
	return s[:i+j] + nu + s[i+j+len(old):]
}

func TestNeedsQuotes(t *testing.T) {
	for name, want := range map[string]bool{"patnum": false, "pat_num2": false, "PatNum": true, "select": true, "user": true,
		"order": true, "Mixed Case": true, "123": true, "$x": true, "é": true, "a-b": true, "_loaded_at": false, "": true} {
		assert.Equal(t, want, NeedsQuotes(name), name)
	}
	assert.Equal(t, "{% raw %}select last_confirmed_current_at from pipeline.etl_table_freshness where table_name = 'a{{b}}'{% endraw %}", LoadedAtQuery("a{{b}}"))
}
