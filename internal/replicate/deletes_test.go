package replicate_test

import (
	"database/sql"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// metered returns a source handle for a fresh SELECT-only user of e's
// source, behind a meter: what the code under test costs the server.
func (e *env) metered(t *testing.T) (*sql.DB, *testdb.Meter) {
	t.Helper()
	cfg, meter := testdb.Metered(t, testdb.SourceUser(t, e.sourceConfig()))
	db, err := factory.New().MySQL(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, meter
}

// runCost sums what a run's statements cost: statements (a prepared
// statement's Prepare and Execute count once, as the server counts them),
// rows examined, and the statement that examined the most beyond what it
// returned.
type runCost struct {
	queries, examined int64
	worst             testdb.Statement
}

func costOf(all []testdb.Statement) runCost {
	var c runCost
	for _, s := range all {
		if s.Command == "Prepare" {
			continue
		}
		c.queries++
		c.examined += s.RowsRead
		if s.Excess() > c.worst.Excess() {
			c.worst = s
		}
	}
	return c
}

// Delete detection finds deletes wherever they are (first key, last key, a
// run of keys, one in every key range, every row) and nothing when there
// are none, at a cost that follows what was deleted: the counts first (one
// statement for the table, reading no row), then the keys listed up to the
// last delete. A row stamped after the run (not copied) has a higher key
// and changes nothing. With and without an index on the watermark.
func TestDeleteDetectionFindsDeletesAnywhere(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		where string
		// rows examined at most, beyond the changed-row read: the keys listed
		// up to the last delete (lists of 400 keys), plus the scan of 2000
		// rows without an index.
		walked int64
	}{
		{"first key", "Id = 1", 400},
		{"last key", "Id = 2000", 2000},
		{"a run of keys", "Id BETWEEN 700 AND 760", 800},
		{"one in every range", "Id % 97 = 0", 2000},
		{"every row", "Id <= 2000", 2000},
		{"none", "", 0},
	}
	for _, indexed := range []bool{true, false} {
		for _, c := range cases {
			t.Run(fmt.Sprintf("%s/indexed=%v", c.name, indexed), func(t *testing.T) {
				t.Parallel()
				e := newEnv(t)
				e.stampedTable(t, 2000, "2024-05-01 10:00:00", indexed)
				_, err := e.fixture.Exec("UPDATE stamped SET SecDateTEdit = SecDateTEdit + INTERVAL Id SECOND") // one row per stamp
				require.NoError(t, err)
				cfg := e.config(t, 100)
				e.run(t, cfg, replicate.Options{})
				_, err = e.fixture.Exec("INSERT INTO stamped (V, SecDateTEdit) VALUES ('later', '2037-12-31 00:00:00')")
				require.NoError(t, err)
				var want []string
				if c.where != "" {
					want = strs(t, e.fixture, "SELECT CONCAT('[\"', Id, '\"]') FROM stamped WHERE "+c.where+" ORDER BY Id")
					_, err = e.fixture.Exec("DELETE FROM stamped WHERE " + c.where)
					require.NoError(t, err)
				}
				src, meter := e.metered(t)
				r := byTable(e.runOn(t, src, cfg, replicate.Options{}))["stamped"]

				assert.Equal(t, int64(len(want)), r.RowsDeleted)
				assert.Equal(t, want, strs(t, e.replica, "SELECT pk_values FROM _pipeline_deleted_rows WHERE table_name = 'stamped' ORDER BY id"))
				assert.Equal(t, int64(2000-len(want)), count(t, e.replica, "SELECT COUNT(*) FROM stamped"))
				assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE V = 'later'"), "stamped past the run: not copied yet")

				cost := costOf(meter.Statements())
				scan := int64(0)
				if !indexed {
					scan = 2001
				}
				assert.LessOrEqual(t, cost.examined, 10+scan+c.walked, "rows examined")
				assert.LessOrEqual(t, cost.worst.Excess(), int64(100), "no statement examines more than a chunk beyond what it returns: %s", cost.worst)
				t.Logf("%d queries, %d rows examined; worst %s", cost.queries, cost.examined, cost.worst)
			})
		}
	}
}

// Delete detection never deletes a row the source has: rows inserted while
// the run copies (a higher key, and a low key into a gap) are kept, and a
// delete that an insert evens out (whole-table counts equal) is still
// found, whether the insert took a new key or an old gap.
func TestDeleteDetectionKeepsEveryRowThatExists(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		before []string // at the source between the runs
		during []string // at the source once the run has committed a chunk
		gone   []string
	}{
		{"insert and delete: a new key", []string{"DELETE FROM stamped WHERE Id = 500", "INSERT INTO stamped (V) VALUES ('new')"}, nil, []string{`["500"]`}},
		{"insert and delete: a low key", []string{"DELETE FROM stamped WHERE Id = 500", "INSERT INTO stamped (Id, V) VALUES (10, 'gap')"}, nil, []string{`["500"]`}},
		{"inserted during the run", []string{"UPDATE stamped SET V = 'changed' WHERE Id = 1"},
			[]string{"INSERT INTO stamped (V) VALUES ('during')", "INSERT INTO stamped (Id, V) VALUES (11, 'during gap')"}, nil},
		{"inserted and deleted during the run", []string{"UPDATE stamped SET V = 'changed' WHERE Id = 1", "DELETE FROM stamped WHERE Id = 1500"},
			[]string{"INSERT INTO stamped (V) VALUES ('during')", "INSERT INTO stamped (Id, V) VALUES (11, 'during gap')", "DELETE FROM stamped WHERE Id = 1600"},
			[]string{`["1500"]`, `["1600"]`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.stampedTable(t, 2000, "2024-05-01 10:00:00", true)
			_, err := e.fixture.Exec("DELETE FROM stamped WHERE Id IN (10, 11)") // gaps
			require.NoError(t, err)
			cfg := e.config(t, 100)
			e.run(t, cfg, replicate.Options{})
			for _, q := range c.before {
				_, err := e.fixture.Exec(q)
				require.NoError(t, err, q)
			}
			done := false
			e.run(t, cfg, replicate.Options{OnChunk: func(string, int) {
				if !done {
					done = true
					for _, q := range c.during {
						_, err := e.fixture.Exec(q)
						assert.NoError(t, err, q)
					}
				}
			}})
			extra := count(t, e.replica, "SELECT COUNT(*) FROM stamped r WHERE NOT EXISTS (SELECT 1 FROM `"+e.name+"`.stamped s WHERE s.Id = r.Id)")
			assert.Zero(t, extra, "the replica holds no row the source lacks")
			e.run(t, cfg, replicate.Options{}) // the next run takes what came during this one
			e.assertSame(t)
			assert.Equal(t, c.gone, strs(t, e.replica, "SELECT pk_values FROM _pipeline_deleted_rows WHERE table_name = 'stamped' ORDER BY id"),
				"only the rows the source deleted were deleted")
			assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE V LIKE 'during%' OR V IN ('new', 'gap')")-
				count(t, e.fixture, "SELECT COUNT(*) FROM stamped WHERE V LIKE 'during%' OR V IN ('new', 'gap')"))
		})
	}
}
