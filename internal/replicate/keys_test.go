package replicate_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

func changeTexts(r *replicate.TableResult) []string {
	var out []string
	for _, c := range r.Changes {
		out = append(out, c.String())
	}
	return out
}

// Issue 8 item 1: a source primary-key change rebuilds the replica table,
// so rows sharing the old key value are not collapsed — also when
// tables.yml still names the old key (discover not re-run), which is
// reported. Dropping the key is followed the same way.
func TestReplicateFollowsPrimaryKeyChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mustExecAll(t, e, "CREATE TABLE t (id INT NOT NULL, v VARCHAR(10) NOT NULL, PRIMARY KEY (id)) ENGINE=MyISAM",
		"INSERT INTO t VALUES (1, 'a'), (2, 'b')")
	cfg := e.config(t, 0)
	e.run(t, cfg, replicate.Options{})

	mustExecAll(t, e, "ALTER TABLE t DROP PRIMARY KEY, ADD PRIMARY KEY (v)", "INSERT INTO t VALUES (1, 'c')")
	r := byTable(e.run(t, cfg, replicate.Options{}))["t"]
	assert.Equal(t, []string{"t: primary key changed from (id) to (v): replica table rebuilt and copied anew"}, changeTexts(r))
	assert.Contains(t, r.Plan, "tables.yml primary_key (id) is not the source's (v): the source's is used; run `pipeline discover`")
	assert.Equal(t, int64(3), count(t, e.replica, "SELECT COUNT(*) FROM t"), "no row collapsed on the old key")
	e.assertSame(t)
	assert.Equal(t, int64(1), count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_copy_status WHERE table_name='t' AND status='ok' AND mode='full'"))

	mustExecAll(t, e, "ALTER TABLE t DROP PRIMARY KEY", "INSERT INTO t VALUES (1, 'c')") // a duplicate row, now allowed
	r = byTable(e.run(t, cfg, replicate.Options{}))["t"]
	assert.Equal(t, []string{"t: primary key changed from (v) to (none): replica table rebuilt and copied anew"}, changeTexts(r))
	assert.Equal(t, state.ModeShadow, r.Mode)
	assert.Equal(t, int64(4), count(t, e.replica, "SELECT COUNT(*) FROM t"))
	e.assertSame(t)

	mustExecAll(t, e, "DELETE FROM t WHERE v = 'c' LIMIT 1", "ALTER TABLE t ADD PRIMARY KEY (v, id)")
	r = byTable(e.run(t, cfg, replicate.Options{}))["t"]
	assert.Equal(t, []string{"t: primary key changed from (none) to (v, id): replica table rebuilt and copied anew"}, changeTexts(r))
	e.assertSame(t)
	r = byTable(e.run(t, cfg, replicate.Options{}))["t"]
	assert.Empty(t, r.Changes, "nothing left to change")
}

// A unique index the source dropped is dropped in the replica before rows
// are copied: REPLACE would otherwise delete the rows sharing its value.
func TestReplicateDroppedUniqueIndexKeepsRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mustExecAll(t, e, "CREATE TABLE u (id INT NOT NULL PRIMARY KEY, v VARCHAR(10) NOT NULL, UNIQUE KEY uv (v)) ENGINE=MyISAM",
		"INSERT INTO u VALUES (1, 'a'), (2, 'b')")
	cfg := e.config(t, 0)
	e.run(t, cfg, replicate.Options{})
	mustExecAll(t, e, "ALTER TABLE u DROP INDEX uv", "INSERT INTO u VALUES (3, 'a')")
	r := byTable(e.run(t, cfg, replicate.Options{}))["u"]
	assert.Contains(t, changeTexts(r), "u: dropped index uv UNIQUE KEY `uv` (`v`) (not in the source, or changed)")
	assert.Equal(t, int64(3), count(t, e.replica, "SELECT COUNT(*) FROM u"))
	e.assertSame(t)
}

// Issue 8 item 10: indexes are compared and rebuilt by definition, so a
// renamed, dropped or re-added indexed column and an index whose columns
// changed never fail the table (it used to fail every run with "Duplicate
// key name").
func TestReplicateIndexDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	mustExecAll(t, e, "CREATE TABLE ix (id INT NOT NULL PRIMARY KEY, a INT NOT NULL, b INT NOT NULL, c VARCHAR(20) NOT NULL,"+
		" KEY ia (a), KEY iab (a, b), KEY ic (c(5)), UNIQUE KEY ub (b)) ENGINE=MyISAM",
		"INSERT INTO ix SELECT seq, seq % 7, seq, CONCAT('c', seq) FROM seq_1_to_50")
	cfg := e.config(t, 20)
	e.run(t, cfg, replicate.Options{})
	e.assertSame(t)
	for _, step := range [][]string{
		{"ALTER TABLE ix RENAME COLUMN a TO a2"},
		{"ALTER TABLE ix CHANGE b bb BIGINT NOT NULL"},
		{"ALTER TABLE ix DROP COLUMN c"},
		{"ALTER TABLE ix ADD COLUMN c VARCHAR(20) NOT NULL DEFAULT 'x', ADD KEY ic (c(7))"},
		{"ALTER TABLE ix DROP INDEX iab, ADD INDEX iab (bb, a2)"},
		{"ALTER TABLE ix DROP INDEX ia, ADD UNIQUE KEY ia (a2, id)", "UPDATE ix SET c = 'y' WHERE id = 3"},
	} {
		mustExecAll(t, e, step...)
		sum, err := replicate.Run(t.Context(), e.deps(cfg), replicate.Options{})
		require.NoError(t, err)
		require.NoError(t, byTable(sum)["ix"].Err, "%v", step)
		e.assertSame(t)
		sum = e.run(t, cfg, replicate.Options{})
		assert.Empty(t, byTable(sum)["ix"].Changes, "%v: nothing left to change", step)
	}
	sum := e.run(t, cfg, replicate.Options{FullRefresh: true})
	assert.Empty(t, byTable(sum)["ix"].Changes)
	e.assertSame(t)
}

func mustExecAll(t *testing.T, e *env, stmts ...string) {
	t.Helper()
	for _, q := range stmts {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
}
