package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

const verifyTablesYML = `tables:
  item:
    primary_key: [ItemNum]
    watermark_columns: [DateTStamp]
    extraction_strategy: incremental
    batch_size: 100
    importance: critical
  note:
    primary_key: [NoteNum]
    extraction_strategy: full_table
    batch_size: 100
    importance: standard
    detect_deletes: false
`

// The verify command end to end, as a scheduler sees it: exit 0 after a
// run, 1 (with the JSON result naming table, hop and keys, and the history
// rows) after changes the run cannot see, 0 after --repair and again on a
// second verification; 2 for bad flags.
func TestVerifyCommand(t *testing.T) {
	vars, srcName, pgName := testVars(t)
	user := testdb.SourceUser(t, testdb.MySQLConfig(srcName, catalog.DatabaseSource))
	vars["TEST_OPENDENTAL_SOURCE_USER"], vars["TEST_OPENDENTAL_SOURCE_PASSWORD"] = user.User, user.Password
	dir := useProcessEnv(t, vars)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tables.yml"), []byte(verifyTablesYML), 0o600))
	src := openTestMySQL(t, srcName)
	repl := openTestMySQL(t, vars["TEST_MYSQL_REPLICATION_DB"])
	pg := openTestPostgres(t, pgName)
	mustExec(t, src,
		"CREATE TABLE item (ItemNum INT NOT NULL PRIMARY KEY, Name VARCHAR(40) NOT NULL,"+
			" DateTStamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=MyISAM",
		"INSERT INTO item SELECT seq, CONCAT('item ', seq), '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_300",
		"CREATE TABLE note (NoteNum INT NOT NULL PRIMARY KEY, Txt VARCHAR(20) NULL) ENGINE=MyISAM",
		"INSERT INTO note SELECT seq, CONCAT('n', seq) FROM seq_1_to_20",
	)
	ctx := context.Background()
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(ctx, append([]string{"--config-dir", dir, "--env", "test"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := run("run")
	require.Equal(t, exitOK, code, "%s\n%s", out, errOut)
	code, out, errOut = run("verify")
	require.Equal(t, exitOK, code, "%s\n%s", out, errOut)
	assert.Regexp(t, `(?m)^item\s+source_replica\s+identical\s+300\s`, out)
	assert.Regexp(t, `(?m)^note\s+replica_raw\s+identical\s+20\s`, out)

	mustExec(t, src,
		"UPDATE item SET Name = 'changed', DateTStamp = DateTStamp WHERE ItemNum = 150",
		"INSERT INTO item VALUES (400, 'late', '2001-01-01 00:00:00')",
		"DELETE FROM note WHERE NoteNum = 7",
	)
	code, out, errOut = run("run")
	require.Equal(t, exitOK, code, "%s\n%s", out, errOut)
	mustExec(t, repl, "DELETE FROM item WHERE ItemNum = 50")
	_, err := pg.Exec(ctx, `UPDATE raw.item SET "Name" = 'tampered' WHERE "ItemNum" = 60`)
	require.NoError(t, err)

	code, out, errOut = run("verify", "--json")
	require.Equal(t, exitFailed, code, "%s\n%s", out, errOut)
	rep, err := report.Decode([]byte(out))
	require.NoError(t, err, out)
	assert.Equal(t, report.CommandVerify, rep.Command)
	assert.Equal(t, report.StatusFailed, rep.Status)
	assert.Equal(t, exitFailed, rep.ExitCode)
	assert.Equal(t, 2, rep.Totals.TablesDiffer)
	assert.Positive(t, rep.Totals.SourceQueries)
	hops := map[string]report.HopResult{}
	for _, e := range rep.Tables {
		require.NotNil(t, e.Verify, e.Table)
		assert.True(t, e.Verify.Complete)
		for _, h := range e.Verify.Hops {
			hops[e.Table+" "+string(h.Hop)] = h
		}
	}
	assert.Equal(t, []string{`["50"]`, `["400"]`, `["150"]`}, hops["item source_replica"].SampleKeys)
	assert.EqualValues(t, 2, hops["item source_replica"].Missing)
	assert.Equal(t, []string{`["60"]`, `["50"]`}, hops["item replica_raw"].SampleKeys)
	assert.Equal(t, []string{`["7"]`}, hops["note source_replica"].SampleKeys)
	assert.True(t, hops["note replica_raw"].Identical)
	var differ int
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(*) FROM pipeline.etl_table_history WHERE run_id = $1 AND phase = 'verify' AND status = 'differs'`,
		rep.RunID).Scan(&differ))
	assert.Equal(t, 2, differ, "the result is in the run history")

	code, out, errOut = run("verify", "--repair")
	require.Equal(t, exitOK, code, "%s\n%s", out, errOut)
	assert.Regexp(t, `(?m)^item\s+source_replica\s+repaired\s+301\s+2\s+0\s+1\s.*3 repaired`, out, "what was found, and that it was repaired")
	assert.Regexp(t, `(?m)^2 tables verified: 2 identical, 0 differ`, out)
	code, out, errOut = run("verify", "--tables", "item,note")
	require.Equal(t, exitOK, code, "%s\n%s", out, errOut)
	var name string
	require.NoError(t, pg.QueryRow(ctx, `SELECT "Name" FROM raw.item WHERE "ItemNum" = 150`).Scan(&name))
	assert.Equal(t, "changed", name)

	code, _, errOut = run("verify", "--budget", "-1m")
	assert.Equal(t, exitConfig, code, errOut)
	code, _, errOut = run("verify", "--tables", "nope")
	assert.Equal(t, exitConfig, code, errOut)
	assert.Contains(t, errOut, "nope")
	code, _, _ = run("verify", "--budget", "soon")
	assert.Equal(t, exitConfig, code)

	// pipeline.yml's verify section makes it a step of every run.
	yml := filepath.Join(dir, "pipeline.yml")
	data, err := os.ReadFile(yml)
	require.NoError(t, err)
	on := strings.Replace(string(data), "  enabled: false              # true: every run ends with a verification", "  enabled: true", 1)
	require.NotEqual(t, string(data), on, "the example has the verify section")
	require.NoError(t, os.WriteFile(yml, []byte(on), 0o600))
	code, out, errOut = run("run")
	require.Equal(t, exitOK, code, "%s\n%s", out, errOut)
	assert.Regexp(t, `(?m)^2 tables verified: 2 identical`, out)
	_, err = pg.Exec(ctx, `DELETE FROM raw.note WHERE "NoteNum" = 12`)
	require.NoError(t, err)
	code, out, errOut = run("run", "--json")
	require.Equal(t, exitFailed, code, "the run's verification found raw short of a row: %s\n%s", out, errOut)
	assert.Contains(t, out, `"hop": "replica_raw"`)
	require.NoError(t, os.WriteFile(yml, []byte(strings.Replace(on, "  repair: false", "  repair: true", 1)), 0o600))
	code, out, errOut = run("run")
	require.Equal(t, exitOK, code, "repaired within the run: %s\n%s", out, errOut)

	var ok int
	require.NoError(t, pg.QueryRow(ctx, `SELECT count(DISTINCT table_name) FROM pipeline.etl_table_history WHERE phase = 'verify' AND status = 'ok'
		AND started_at > (SELECT max(started_at) FROM pipeline.etl_run_history WHERE status = 'failed')`).Scan(&ok))
	assert.Equal(t, 2, ok, "status can see when each table was last proven equal")
}
