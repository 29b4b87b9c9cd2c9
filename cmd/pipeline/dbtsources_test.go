package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

type sourcesFile struct {
	Sources []struct {
		Name   string
		Tables []struct {
			Name    string
			Quoting struct{ Identifier bool }
			Config  struct {
				LoadedAtQuery string `yaml:"loaded_at_query"`
			}
			Columns []struct {
				Name      string
				Quote     bool
				DataTests []string `yaml:"data_tests"`
			}
		}
	}
}

// TestDBTSourcesAgainstTheWarehouse: after a run and a verification, the
// generated file's freshness query, run the way dbt runs it, returns when
// the table was confirmed current (a later verification that found nothing
// changed moves it on: an unchanged table is fresh), and every column, test
// and quoting decision works against raw as the load wrote it.
func TestDBTSourcesAgainstTheWarehouse(t *testing.T) {
	vars, srcName, pgName := testVars(t)
	user := testdb.SourceUser(t, testdb.MySQLConfig(srcName, catalog.DatabaseSource))
	vars["TEST_OPENDENTAL_SOURCE_USER"], vars["TEST_OPENDENTAL_SOURCE_PASSWORD"] = user.User, user.Password
	dir := useProcessEnv(t, vars)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tables.yml"), []byte(verifyTablesYML+"    column_policies: {Txt: drop}\n"), 0o600))
	src := openTestMySQL(t, srcName)
	pg := openTestPostgres(t, pgName)
	mustExec(t, src,
		"CREATE TABLE item (ItemNum INT NOT NULL PRIMARY KEY, Name VARCHAR(40) NOT NULL, `order` INT NULL,"+
			" DateTStamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=MyISAM",
		"INSERT INTO item SELECT seq, CONCAT('item ', seq), seq, '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_30",
		"CREATE TABLE note (NoteNum INT NOT NULL PRIMARY KEY, Txt VARCHAR(20) NULL) ENGINE=MyISAM",
		"INSERT INTO note SELECT seq, CONCAT('n', seq) FROM seq_1_to_20",
	)
	ctx := context.Background()
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(ctx, append([]string{"--config-dir", dir, "--env", "test"}, args...), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	code, out := run("run")
	require.Equal(t, exitOK, code, out)
	beforeVerify := time.Now()
	code, out = run("verify")
	require.Equal(t, exitOK, code, out)

	path := filepath.Join(dir, "models", "sources.yml")
	code, out = run("dbt-sources", "--out", path)
	require.Equal(t, exitOK, code, out)
	assert.Contains(t, out, "wrote "+path+": source opendental, 2 tables")
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var f sourcesFile
	require.NoError(t, yaml.Unmarshal(data, &f))
	require.Len(t, f.Sources, 1)
	require.Len(t, f.Sources[0].Tables, 2)
	assert.NotContains(t, string(data), "name: Txt", "the dropped column is not described")

	freshness := func(q string) *time.Time {
		// exactly how dbt (1.10, collect_freshness_custom_sql) runs a loaded_at_query
		var at *time.Time
		var now time.Time
		require.NoError(t, pg.QueryRow(ctx, "with source_query as (\n"+q+"\n)\nselect (select * from source_query) as max_loaded_at, now() as snapshotted_at").Scan(&at, &now), q)
		return at
	}
	confirmed := map[string]time.Time{}
	for _, tb := range f.Sources[0].Tables {
		at := freshness(tb.Config.LoadedAtQuery)
		require.NotNil(t, at, tb.Name)
		assert.False(t, at.Before(beforeVerify.Add(-time.Second)), "%s confirmed by the verification: %s", tb.Name, at)
		assert.False(t, at.After(time.Now()), tb.Name)
		confirmed[tb.Name] = *at
		rel := `"raw".` + ident(tb.Name, tb.Quoting.Identifier)
		for _, c := range tb.Columns {
			col := ident(c.Name, c.Quote)
			for _, test := range c.DataTests {
				q := map[string]string{ // dbt's generic tests (unique, not_null) as they render
					"unique":   "select " + col + " as unique_field, count(*) as n_records from " + rel + " where " + col + " is not null group by " + col + " having count(*) > 1",
					"not_null": "select " + col + " from " + rel + " where " + col + " is null",
				}[test]
				require.NotEmpty(t, q, test)
				rows, err := pg.Query(ctx, q)
				require.NoError(t, err, q)
				assert.False(t, rows.Next(), "%s fails: %s", test, q)
				rows.Close()
			}
			var n int64
			require.NoError(t, pg.QueryRow(ctx, "select count("+col+") from "+rel).Scan(&n), "column %s of %s as dbt names it", c.Name, tb.Name)
		}
	}

	// nothing changed: the next verification still confirms both tables, later
	code, out = run("verify")
	require.Equal(t, exitOK, code, out)
	for _, tb := range f.Sources[0].Tables {
		at := freshness(tb.Config.LoadedAtQuery)
		require.NotNil(t, at)
		assert.True(t, at.After(confirmed[tb.Name]), "%s: an unchanged table checked again is fresh", tb.Name)
	}

	// a re-run keeps a description someone wrote
	edited := strings.Replace(string(data), "description: Source table item", "description: Our items. Source table item", 1)
	require.NoError(t, os.WriteFile(path, []byte(edited), 0o644))
	code, out = run("dbt-sources", "--out", path)
	require.Equal(t, exitOK, code, out)
	again, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Contains(t, string(again), "Our items. Source table item")
	assert.Equal(t, edited, string(again))
}

// ident is name as dbt puts it in SQL for PostgreSQL: quoted when told to.
func ident(name string, quote bool) string {
	if quote {
		return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
	}
	return name
}
