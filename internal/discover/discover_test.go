package discover_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/discover"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

func TestDiscoverWritesAndMergesTablesYML(t *testing.T) {
	t.Parallel()
	db, _ := testdb.MySQL(t, "discover")
	want := map[string]bool{"patient": true, "securitylog": true, "definition": true, "procedurelog": true, "allergy": true}
	for _, d := range opendental.Full408() {
		if want[d.Name] {
			_, err := db.Exec(strings.ReplaceAll(d.SQL, "utf8mb3_uca1400_ai_ci", "utf8mb3_general_ci"))
			require.NoError(t, err, d.Name)
		}
	}
	_, err := db.Exec("CREATE TABLE nokey (A INT) ENGINE=MyISAM")
	require.NoError(t, err)
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	src := manager.New(db, mo)
	defer src.Close()
	path := filepath.Join(t.TempDir(), "config", "tables.yml")

	changes, n, err := discover.Run(context.Background(), src, path)
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	assert.Len(t, changes, 6, "every table is new")
	cfg, err := loadTables(path)
	require.NoError(t, err)

	cases := []struct {
		table      string
		strategy   tables.Strategy
		watermark  []string
		key        []string
		importance tables.Importance
	}{
		{"patient", tables.Incremental, []string{"DateTStamp"}, []string{"PatNum"}, tables.Critical},
		{"procedurelog", tables.Incremental, []string{"DateTStamp"}, []string{"ProcNum"}, tables.Critical},
		{"securitylog", tables.IncrementalChunked, []string{"SecurityLogNum"}, []string{"SecurityLogNum"}, tables.Audit},
		{"definition", tables.FullTable, nil, []string{"DefNum"}, tables.Reference},
		{"nokey", tables.FullTable, nil, nil, tables.Standard},
	}
	for _, c := range cases {
		t.Run(c.table, func(t *testing.T) {
			tb := cfg.Tables[c.table]
			require.NotNil(t, tb)
			assert.Equal(t, c.strategy, tb.Strategy)
			assert.Equal(t, c.watermark, tb.WatermarkColumns)
			assert.Equal(t, c.key, tb.PrimaryKey)
			assert.Equal(t, c.importance, tb.Importance)
			assert.GreaterOrEqual(t, tb.BatchSize, 1000)
			assert.NotEmpty(t, tb.Columns)
		})
	}

	// The user edits the file; the schema drifts; discover runs again.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	edited := strings.Replace(string(data), "  definition:\n", "  definition:\n    exclude: true\n    lookback_seconds: 30\n", 1)
	require.NoError(t, os.WriteFile(path, []byte(edited), 0o644))
	cfg, err = loadTables(path)
	require.NoError(t, err)
	cfg.Tables["patient"].BatchSize = 1234
	cfg.Tables["patient"].Importance = tables.Important
	out, err := tables.Marshal(cfg, []string{"our clinic's tables"})
	require.NoError(t, err)
	commented := strings.Replace(string(out), "  patient:\n", "  # hand-tuned for the clinic\n  patient:\n", 1)
	commented = strings.Replace(commented, "    batch_size: 1234\n", "    batch_size: 1234 # small chunks: busy table\n", 1)
	require.NotEqual(t, string(out), commented)
	require.NoError(t, os.WriteFile(path, []byte(commented), 0o644))
	for _, q := range []string{
		"ALTER TABLE patient ADD COLUMN NewThing INT NOT NULL DEFAULT 0, DROP COLUMN Ward",
		"DROP TABLE allergy",
		"ALTER TABLE procedurelog DROP PRIMARY KEY, ADD PRIMARY KEY (ProcNum, PatNum)",
		"CREATE TABLE newtable (Id BIGINT NOT NULL PRIMARY KEY, T TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP)",
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	changes, n, err = discover.Run(context.Background(), src, path)
	require.NoError(t, err)
	assert.Equal(t, 6, n)
	assert.ElementsMatch(t, []string{
		"new table newtable (incremental, 0 rows)",
		"new column patient.NewThing",
		"dropped column patient.Ward",
		"dropped table allergy",
		"procedurelog: primary key changed from (ProcNum) to (ProcNum, PatNum) (replicate and load rebuild the table)",
	}, changes)
	cfg, err = loadTables(path)
	require.NoError(t, err)
	assert.Equal(t, 1234, cfg.Tables["patient"].BatchSize, "user edit kept")
	assert.Equal(t, tables.Important, cfg.Tables["patient"].Importance, "user edit kept")
	assert.True(t, cfg.Tables["definition"].Exclude, "user edit kept")
	assert.Equal(t, 30, cfg.Tables["definition"].LookbackSeconds, "user edit kept")
	assert.Contains(t, cfg.Tables["patient"].Columns, "NewThing")
	assert.Equal(t, []string{"ProcNum", "PatNum"}, cfg.Tables["procedurelog"].PrimaryKey, "the key follows the source")
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	for _, c := range []string{"# our clinic's tables", "  # hand-tuned for the clinic\n  patient:", "batch_size: 1234 # small chunks: busy table"} {
		assert.Contains(t, string(data), c, "comment kept")
	}
	assert.NotContains(t, string(data), "allergy:")
	assert.Contains(t, string(data), "newtable:")
	assert.NotContains(t, cfg.Tables["patient"].Columns, "Ward")
}

func TestImportanceAndBatchSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		want tables.Importance
	}{
		{"patient", tables.Critical}, {"claimproc", tables.Critical}, {"securitylog", tables.Audit},
		{"securityloghash", tables.Audit}, {"definition", tables.Reference}, {"provider", tables.Reference},
		{"patfield", tables.Important}, {"commlog", tables.Critical}, {"wikipage", tables.Standard},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, discover.Importance(c.name, 0), c.name)
	}
	assert.Equal(t, 50000, discover.BatchSize(10))
	assert.Equal(t, 1000, discover.BatchSize(1<<20))
	assert.Equal(t, 41000, discover.BatchSize(200))
}

// A nullable TIMESTAMP … ON UPDATE column is no watermark: a row inserted
// without it stays NULL, and `watermark >= last` would never select it.
func TestWatermarkCandidates(t *testing.T) {
	t.Parallel()
	onUpdate := "on update current_timestamp()"
	cases := []struct {
		name     string
		cols     []schema.Column
		want     []string
		strategy tables.Strategy
	}{
		{"not null", []schema.Column{{Name: "T", DataType: "timestamp", Extra: onUpdate}}, []string{"T"}, tables.Incremental},
		{"nullable", []schema.Column{{Name: "T", DataType: "timestamp", Nullable: true, Extra: onUpdate}}, nil, tables.FullTable},
		{"no on update", []schema.Column{{Name: "T", DataType: "timestamp"}}, nil, tables.FullTable},
		{"usual names first", []schema.Column{
			{Name: "Other", DataType: "timestamp", Extra: onUpdate}, {Name: "DateTStamp", DataType: "timestamp", Extra: onUpdate},
			{Name: "SecDateTEdit", DataType: "timestamp", Extra: onUpdate},
		}, []string{"SecDateTEdit", "DateTStamp", "Other"}, tables.Incremental},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &schema.Table{Name: "thing", PrimaryKey: []string{"Id"},
				Columns: append([]schema.Column{{Name: "Id", DataType: "bigint"}}, c.cols...)}
			got := discover.Table(m)
			assert.Equal(t, c.want, got.WatermarkColumns)
			assert.Equal(t, c.strategy, got.Strategy)
		})
	}
	// A latin1 text key cannot be paged on (replicate copies the table
	// whole), so the loader must refresh it whole too: full_table.
	keys := []struct {
		charset string
		want    tables.Strategy
	}{{"latin1", tables.FullTable}, {"utf8mb3", tables.Incremental}}
	for _, k := range keys {
		t.Run("key in "+k.charset, func(t *testing.T) {
			m := &schema.Table{Name: "thing", PrimaryKey: []string{"Code"}, Columns: []schema.Column{
				{Name: "Code", DataType: "varchar", Charset: k.charset}, {Name: "T", DataType: "timestamp", Extra: onUpdate},
			}}
			got := discover.Table(m)
			assert.Equal(t, k.want, got.Strategy)
			assert.Equal(t, []string{"Code"}, got.PrimaryKey)
		})
	}
}

// Source tables named like the pipeline's old bookkeeping (etl_copy_status,
// etl_deleted_rows) are ordinary tables and are listed; a table in the
// reserved namespace (_pipeline_…) is refused, with its name and the fix,
// not silently skipped.
func TestDiscoverReservedAndFormerBookkeepingNames(t *testing.T) {
	t.Parallel()
	db, _ := testdb.MySQL(t, "discover")
	for _, q := range []string{
		"CREATE TABLE etl_copy_status (Id INT NOT NULL PRIMARY KEY, Note TEXT)",
		"CREATE TABLE etl_deleted_rows (Id INT NOT NULL PRIMARY KEY)",
		"CREATE TABLE _pipeline_notes (Id INT NOT NULL PRIMARY KEY)",
		"CREATE TABLE patient (PatNum BIGINT NOT NULL PRIMARY KEY)",
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	src := manager.New(db, mo)
	defer src.Close()
	path := filepath.Join(t.TempDir(), "tables.yml")
	changes, n, err := discover.Run(context.Background(), src, path)
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	cfg, err := loadTables(path)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"etl_copy_status", "etl_deleted_rows", "patient"}, cfg.Names())
	var refused []string
	for _, c := range changes {
		if strings.HasPrefix(c, "refused") {
			refused = append(refused, c)
		}
	}
	require.Len(t, refused, 1, "changes: %q", changes)
	assert.Contains(t, refused[0], "_pipeline_notes")
	assert.Contains(t, refused[0], "reserved")
	assert.Contains(t, refused[0], "rename the table at the source")
}

// loadTables reads and parses the tables.yml discover wrote.
func loadTables(path string) (*tables.Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return tables.Parse(path, data)
}

// TestDiscoverSuggestsColumnPolicies: identifying columns get a commented
// suggestion, never an active policy; a table about a business gets none;
// a re-run neither repeats the comment nor touches the user's choice.
func TestDiscoverSuggestsColumnPolicies(t *testing.T) {
	t.Parallel()
	db, _ := testdb.MySQL(t, "discover_policy")
	want := map[string]bool{"patient": true, "carrier": true, "provider": true}
	for _, d := range opendental.Full408() {
		if want[d.Name] {
			_, err := db.Exec(strings.ReplaceAll(d.SQL, "utf8mb3_uca1400_ai_ci", "utf8mb3_general_ci"))
			require.NoError(t, err, d.Name)
		}
	}
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	src := manager.New(db, mo)
	defer src.Close()
	path := filepath.Join(t.TempDir(), "tables.yml")
	_, _, err := discover.Run(context.Background(), src, path)
	require.NoError(t, err)
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(data)
	assert.Contains(t, text, "  patient:\n    # column_policies suggested by `pipeline discover` for identifying columns (patient data);\n")
	assert.Contains(t, text, "    # column_policies: {LName: hash, FName: hash, MiddleI: hash, Preferred: hash, Birthdate: keep, SSN: drop, Address: hash, Address2: hash, City: keep, Zip: keep, HmPhone: hash, WkPhone: hash, WirelessPhone: hash, Email: hash, ChartNumber: hash, MedicaidID: drop}\n")
	assert.Contains(t, text, "    # column_policies: {LName: hash, FName: hash, MI: hash, SSN: drop, MedicaidID: drop, Birthdate: keep, PreferredName: hash}\n", "provider")
	assert.Equal(t, 2, strings.Count(text, "suggested by `pipeline discover`"), "carrier's address is a business's: no suggestion")
	cfg, err := loadTables(path)
	require.NoError(t, err)
	for _, tb := range cfg.Tables {
		assert.Empty(t, tb.ColumnPolicies, "nothing switched on: %s", tb.Name)
	}

	// the user applies their own choice for patient; provider keeps its comment
	edited := strings.Replace(text, "  patient:\n", "  patient:\n    column_policies: {SSN: drop, LName: hash} # ours\n", 1)
	require.NoError(t, os.WriteFile(path, []byte(edited), 0o644))
	_, _, err = discover.Run(context.Background(), src, path)
	require.NoError(t, err)
	data, err = os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(data), "column_policies: {SSN: drop, LName: hash} # ours")
	assert.Equal(t, 2, strings.Count(string(data), "suggested by `pipeline discover`"), "not repeated")
	cfg, err = loadTables(path)
	require.NoError(t, err)
	assert.Equal(t, map[string]tables.ColumnPolicy{"SSN": tables.Drop, "LName": tables.Hash}, cfg.Tables["patient"].ColumnPolicies)
	assert.Empty(t, cfg.Tables["provider"].ColumnPolicies)
}

// TestSuggestionsOverTheVendoredSchema: the tables of OpenDental 24.3 that
// get a suggestion, and their identifying columns, as the README lists them.
func TestSuggestionsOverTheVendoredSchema(t *testing.T) {
	t.Parallel()
	byTable := map[string]*schema.Table{}
	for _, c := range opendental.Columns() {
		if byTable[c.Table] == nil {
			byTable[c.Table] = &schema.Table{Name: c.Table}
		}
		byTable[c.Table].Columns = append(byTable[c.Table].Columns, schema.Column{Name: c.Name})
	}
	got := map[string][]string{}
	for name, m := range byTable {
		for _, s := range discover.Suggest(m) {
			got[name] = append(got[name], s.Column+":"+string(s.Policy))
		}
	}
	var names []string
	for n := range got {
		names = append(names, n)
	}
	assert.ElementsMatch(t, []string{"patient", "provider", "referral", "employee", "contact", "ehrprovkey", "screen", "etrans835"}, names, got)
	assert.Subset(t, got["patient"], []string{"SSN:drop", "LName:hash", "FName:hash", "Birthdate:keep", "HmPhone:hash", "Email:hash", "Address:hash", "Zip:keep"})
	assert.Empty(t, got["carrier"])
}
