package verify_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// clinic creates the two tables most tests use: item (incremental on a
// TIMESTAMP … ON UPDATE, 25 000 rows: three ranges of 10 000) and note
// (full_table, 50 rows, deletes not detected), MyISAM like OpenDental.
func (e *env) clinic(t testing.TB) {
	t.Helper()
	exec(t, e.src,
		"CREATE TABLE item (ItemNum INT NOT NULL PRIMARY KEY, Name VARCHAR(40) NOT NULL, Amount DECIMAL(10,2) NOT NULL,"+
			" DateTStamp TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP) ENGINE=MyISAM",
		"INSERT INTO item SELECT seq, CONCAT('item ', seq), seq / 100, '2024-01-01 00:00:00' + INTERVAL seq SECOND FROM seq_1_to_25000",
		"CREATE TABLE note (NoteNum INT NOT NULL PRIMARY KEY, Txt VARCHAR(20) NULL) ENGINE=MyISAM",
		"INSERT INTO note SELECT seq, IF(seq % 5 = 0, NULL, CONCAT('n', seq)) FROM seq_1_to_50",
	)
}

// After a normal run, changes the incremental path cannot see and changes
// made by hand in the replica and raw are each reported on the right table,
// hop and keys; the tables nothing happened to are identical.
func TestVerifyFindsWhatRunsMiss(t *testing.T) {
	e := newEnv(t)
	e.clinic(t)
	cfg := e.config(t, 10000)
	no := false
	cfg.Tables["note"].DetectDeletes = &no
	require.Equal(t, "incremental", string(cfg.Tables["item"].Strategy))
	e.pipeline(t, cfg)

	res := e.verify(t, cfg, verify.Options{})
	require.Len(t, res.Tables, 2)
	for _, r := range res.Tables {
		require.NoError(t, r.Err)
		assert.Equal(t, report.TableOK, r.Status(), r.Table)
		assert.True(t, r.Complete)
	}
	assert.EqualValues(t, 25000, byTable(t, res, "item").SourceReplica.Compared)
	assert.EqualValues(t, 25000, byTable(t, res, "item").ReplicaRaw.Compared)

	exec(t, e.src,
		"UPDATE item SET Name = 'changed at the source', DateTStamp = DateTStamp WHERE ItemNum = 12345", // stamp kept
		"INSERT INTO item VALUES (26000, 'inserted late', 1.00, '2001-01-01 00:00:00')",                 // an old stamp
		"DELETE FROM note WHERE NoteNum = 7",                                                            // detect_deletes: false
	)
	e.pipeline(t, cfg) // a normal run sees none of it
	exec(t, e.repFix, "DELETE FROM item WHERE ItemNum = 500")
	e.pgExec(t, `UPDATE raw.item SET "Name" = 'tampered' WHERE "ItemNum" = 600`)
	// And the clinic works on after the run: changes the next run copies
	// (rows with new stamps) are pending, not differences.
	exec(t, e.src,
		"UPDATE item SET Name = 'edited today' WHERE ItemNum = 777",
		"INSERT INTO item (ItemNum, Name, Amount) VALUES (30000, 'new today', 1.00)",
	)

	res = e.verify(t, cfg, verify.Options{})
	item, note := byTable(t, res, "item"), byTable(t, res, "note")
	require.NoError(t, item.Err)
	require.NoError(t, note.Err)
	assert.Equal(t, report.TableDiffers, item.Status())
	assert.Equal(t, []string{`["500"]`, `["26000"]`}, keys(item.SourceReplica.MissingKeys))
	assert.Equal(t, []string{`["12345"]`}, keys(item.SourceReplica.ChangedKeys))
	assert.Empty(t, item.SourceReplica.ExtraKeys)
	assert.Equal(t, []string{`["500"]`}, keys(item.ReplicaRaw.ExtraKeys), "raw still has the row deleted from the replica")
	assert.Equal(t, []string{`["600"]`}, keys(item.ReplicaRaw.ChangedKeys))
	assert.Empty(t, item.ReplicaRaw.MissingKeys)
	assert.EqualValues(t, 25002, item.SourceReplica.Compared)
	assert.EqualValues(t, 2, item.SourceReplica.Pending, "777 and 30000: the next run takes them")

	assert.Equal(t, []string{`["7"]`}, keys(note.SourceReplica.ExtraKeys), "deleted at the source, kept by the replica")
	assert.EqualValues(t, 1, note.SourceReplica.Differing())
	assert.True(t, note.ReplicaRaw.Identical())
	assert.Equal(t, 2, res.Differ())
	assert.Positive(t, res.SourceQueries)
}

// What the clinic changed after the last run is pending, not a difference,
// when the next run copies it: rows stamped after the replica's watermark;
// in a table written since the run, changed rows (replicate compares it
// again) and deleted ones (when it looks for deletes). A deleted row it
// never looks for is a difference.
func TestVerifyPendingChanges(t *testing.T) {
	e := newEnv(t)
	e.clinic(t)
	exec(t, e.src, "CREATE TABLE keep (KeepNum INT NOT NULL PRIMARY KEY, V INT) ENGINE=MyISAM", "INSERT INTO keep SELECT seq, seq FROM seq_1_to_30")
	cfg := e.config(t, 10000)
	no := false
	cfg.Tables["keep"].DetectDeletes = &no
	e.pipeline(t, cfg)
	exec(t, e.src,
		"DELETE FROM item WHERE ItemNum = 24000",
		"UPDATE item SET Name = 'today' WHERE ItemNum = 10",
		"UPDATE note SET Txt = 'today' WHERE NoteNum = 3",
		"DELETE FROM keep WHERE KeepNum = 4",
	)
	// The writes came after the run; make the replica's record say so even
	// when they fell in the run's second (UPDATE_TIME counts seconds).
	exec(t, e.repFix, "UPDATE `"+state.CopyStatusTable+"` SET source_update_time = '2000-01-01 00:00:00'")

	res := e.verify(t, cfg, verify.Options{})
	item, note, keep := byTable(t, res, "item"), byTable(t, res, "note"), byTable(t, res, "keep")
	assert.True(t, item.SourceReplica.Identical(), "%+v", item.SourceReplica)
	assert.EqualValues(t, 2, item.SourceReplica.Pending, "the delete and the stamped update")
	assert.True(t, note.SourceReplica.Identical())
	assert.EqualValues(t, 1, note.SourceReplica.Pending, "replicate compares the table again")
	assert.Equal(t, []string{`["4"]`}, keys(keep.SourceReplica.ExtraKeys), "no run looks for this delete")
	assert.Zero(t, keep.SourceReplica.Pending)
	assert.Equal(t, 1, res.Differ())

	e.pipeline(t, cfg) // the next run takes what was pending
	res = e.verify(t, cfg, verify.Options{})
	assert.Zero(t, byTable(t, res, "item").SourceReplica.Pending+byTable(t, res, "note").SourceReplica.Pending)
	assert.Equal(t, 1, res.Differ(), "keep still differs")
}
