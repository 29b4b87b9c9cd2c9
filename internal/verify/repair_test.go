package verify_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// load runs the load phase alone.
func (e *env) load(t testing.TB, cfg *tables.Config, names ...string) *load.Result {
	t.Helper()
	res, err := load.New(connections.ReplicationDB{DB: e.replica}, connections.AnalyticsRawDB{Pool: e.pg}, cfg, slog.New(slog.DiscardHandler)).
		Run(context.Background(), load.Options{Tables: names})
	require.NoError(t, err)
	for _, r := range res.Tables {
		require.Equal(t, load.StatusOK, r.Status, "load %s: %s", r.Table, r.Error)
	}
	return res
}

// raw reads one column of raw rows by key, as text.
func (e *env) rawText(t testing.TB, q string) []string {
	t.Helper()
	rows, err := e.pg.Query(context.Background(), q)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s *string
		require.NoError(t, rows.Scan(&s))
		if s == nil {
			out = append(out, "NULL")
		} else {
			out = append(out, *s)
		}
	}
	require.NoError(t, rows.Err())
	return out
}

// Repair re-copies exactly the rows that differ, source → replica (deletes
// included) → raw, whatever the tables' load modes: the load applies the
// changed-keys log. A repaired table is identical on a second verification,
// and no other row of raw was rewritten.
func TestRepairFixesEveryDifference(t *testing.T) {
	e := newEnv(t)
	e.clinic(t)
	cfg := e.config(t, 10000)
	no := false
	cfg.Tables["note"].DetectDeletes = &no
	e.pipeline(t, cfg)
	exec(t, e.src,
		"UPDATE item SET Name = 'changed at the source', DateTStamp = DateTStamp WHERE ItemNum = 12345",
		"INSERT INTO item VALUES (26000, 'inserted late', 1.00, '2001-01-01 00:00:00')",
		"DELETE FROM note WHERE NoteNum = 7",
	)
	e.pipeline(t, cfg)
	exec(t, e.repFix, "DELETE FROM item WHERE ItemNum = 500")
	e.pgExec(t, `UPDATE raw.item SET "Name" = 'tampered' WHERE "ItemNum" = 600`)
	var xminBefore string
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT xmin::text FROM raw.item WHERE "ItemNum" = 601`).Scan(&xminBefore))

	res := e.verify(t, cfg, verify.Options{})
	require.Equal(t, 2, res.Differ())
	done, err := verify.Repair(context.Background(), e.deps(cfg), verify.Options{Manager: fastManager()}, res)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"item", "note"}, done.Tables)
	assert.Empty(t, done.Whole)
	item := byTable(t, res, "item")
	require.NoError(t, item.RepairErr)
	assert.EqualValues(t, 3, item.SourceReplica.Repaired)
	assert.EqualValues(t, 2, item.ReplicaRaw.Repaired)

	lres := e.load(t, cfg, done.Tables...)
	for _, r := range lres.Tables {
		assert.Equal(t, load.ModeKeys, r.Mode, "%s: only the logged keys are loaded (%s)", r.Table, r.Reason)
	}
	again := e.verify(t, cfg, verify.Options{})
	assert.Zero(t, again.Differ(), "identical after the repair")
	for _, r := range again.Tables {
		assert.True(t, r.SourceReplica.Identical() && r.ReplicaRaw.Identical(), "%s: %+v %+v", r.Table, r.SourceReplica, r.ReplicaRaw)
	}
	assert.Equal(t, []string{"changed at the source"}, e.rawText(t, `SELECT "Name" FROM raw.item WHERE "ItemNum" = 12345`))
	assert.Equal(t, []string{"inserted late"}, e.rawText(t, `SELECT "Name" FROM raw.item WHERE "ItemNum" = 26000`))
	assert.Equal(t, []string{"item 600"}, e.rawText(t, `SELECT "Name" FROM raw.item WHERE "ItemNum" = 600`))
	assert.Equal(t, []string{"item 500"}, e.rawText(t, `SELECT "Name" FROM raw.item WHERE "ItemNum" = 500`), "deleted from the replica by hand: back from the source")
	var xminAfter string
	require.NoError(t, e.pg.QueryRow(context.Background(), `SELECT xmin::text FROM raw.item WHERE "ItemNum" = 601`).Scan(&xminAfter))
	assert.Equal(t, xminBefore, xminAfter, "a row that did not differ was not rewritten")
	assert.Empty(t, e.rawText(t, `SELECT "Txt" FROM raw.note WHERE "NoteNum" = 7`), "deleted at the source: gone from raw")

	// The repair is in the replica contract: every touched key logged, the
	// source's delete recorded for incremental loads too.
	n := 0
	require.NoError(t, e.repFix.QueryRow("SELECT COUNT(*) FROM `"+state.ChangedKeysTable+"`").Scan(&n))
	assert.Equal(t, 5, n, "item 500, 26000, 12345 re-copied and 600 for raw only; note 7")
}

// The demo's finding: a table replicated as an append-only log
// (incremental on its auto-increment key, like entrylog) whose old row is
// updated at the source never shows the change to a run. Verify names the
// row; repair brings it to the replica and raw.
func TestRepairAppendOnlyKeyTable(t *testing.T) {
	e := newEnv(t)
	exec(t, e.src,
		"CREATE TABLE entrylog (EntryLogNum BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, UserNum BIGINT NOT NULL,"+
			" FKeyType TINYINT NOT NULL, LogText TEXT NOT NULL) ENGINE=MyISAM",
		"INSERT INTO entrylog (UserNum, FKeyType, LogText) SELECT seq % 7, seq % 3, CONCAT('entry ', seq) FROM seq_1_to_3000",
	)
	cfg := e.config(t, 1000)
	tb := cfg.Tables["entrylog"]
	tb.Strategy, tb.WatermarkColumns = tables.Incremental, []string{"EntryLogNum"}
	e.pipeline(t, cfg)
	exec(t, e.src, "UPDATE entrylog SET LogText = 'edited long after' WHERE EntryLogNum = 42",
		"INSERT INTO entrylog (UserNum, FKeyType, LogText) VALUES (1, 1, 'a new entry')")
	e.pipeline(t, cfg) // takes the new entry, not the edit
	require.Equal(t, []string{"a new entry"}, e.rawText(t, `SELECT "LogText" FROM raw.entrylog WHERE "EntryLogNum" = 3001`))

	res := e.verify(t, cfg, verify.Options{})
	log := byTable(t, res, "entrylog")
	require.NoError(t, log.Err)
	assert.Equal(t, []string{`["42"]`}, keys(log.SourceReplica.ChangedKeys))
	assert.EqualValues(t, 1, log.SourceReplica.Differing())
	assert.True(t, log.ReplicaRaw.Identical(), "raw matches the replica: the replica missed it")

	done, err := verify.Repair(context.Background(), e.deps(cfg), verify.Options{Manager: fastManager()}, res)
	require.NoError(t, err)
	assert.Equal(t, []string{"entrylog"}, done.Tables)
	lres := e.load(t, cfg, "entrylog")
	assert.Equal(t, load.ModeKeys, lres.Tables[0].Mode)
	assert.EqualValues(t, 1, lres.Tables[0].RowsWritten)
	assert.Equal(t, []string{"edited long after"}, e.rawText(t, `SELECT "LogText" FROM raw.entrylog WHERE "EntryLogNum" = 42`))
	again := e.verify(t, cfg, verify.Options{})
	assert.Zero(t, again.Differ())
}

// A table without a key cannot be repaired by rows: a replica that differs
// from the source is re-copied whole (by replicate, as every run copies
// such a table), a raw that differs from the replica is reloaded whole.
func TestRepairKeylessTable(t *testing.T) {
	e := newEnv(t)
	exec(t, e.src, "CREATE TABLE loose (A INT, B VARCHAR(5)) ENGINE=MyISAM", "INSERT INTO loose SELECT seq % 10, 'x' FROM seq_1_to_100",
		"CREATE TABLE heap (A INT, B VARCHAR(5)) ENGINE=MyISAM", "INSERT INTO heap SELECT seq, 'y' FROM seq_1_to_30")
	cfg := e.config(t, 1000)
	e.pipeline(t, cfg)
	exec(t, e.repFix, "DELETE FROM loose WHERE A = 3 LIMIT 1")
	e.pgExec(t, `UPDATE raw.heap SET "B" = 'z' WHERE "A" = 7`)

	res := e.verify(t, cfg, verify.Options{})
	require.Equal(t, 2, res.Differ())
	done, err := verify.Repair(context.Background(), e.deps(cfg), verify.Options{Manager: fastManager()}, res)
	require.NoError(t, err)
	assert.Equal(t, []string{"loose"}, done.Whole, "the replica needs a whole copy")
	assert.Equal(t, []string{"heap"}, done.Tables, "raw is reloaded from the replica")
	e.pipeline(t, cfg) // replicate copies keyless tables whole; the load reloads heap (its change_seq moved)
	again := e.verify(t, cfg, verify.Options{})
	assert.Zero(t, again.Differ())
}
