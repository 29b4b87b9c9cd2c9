package replicate_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// costClinic is a small clinic shaped like OpenDental (MyISAM; batch_size
// 100): a 1000-row table whose TIMESTAMP watermark has no index (like
// commlog), one whose watermark has an index (like procedurelog), an audit
// log following its key (like securitylog), a 1000-row full_table table
// (like sheetfield), and 20 small tables of 10 rows, half with an unindexed
// watermark, half full_table.
func costClinic(t *testing.T, e *env) *tables.Config {
	t.Helper()
	stamped := " (Id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, V VARCHAR(40) NOT NULL, SecDateTEdit TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP"
	ddl := []string{
		"CREATE TABLE noidx" + stamped + ") ENGINE=MyISAM",
		"CREATE TABLE idx" + stamped + ", KEY SecDateTEdit (SecDateTEdit)) ENGINE=MyISAM",
		"CREATE TABLE applog (Id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, V VARCHAR(40) NOT NULL) ENGINE=MyISAM",
		"CREATE TABLE plain (Id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, V VARCHAR(40) NOT NULL) ENGINE=MyISAM",
	}
	fill := []string{
		"INSERT INTO noidx (V, SecDateTEdit) SELECT seq, '2024-05-01' + INTERVAL seq MINUTE FROM seq_1_to_1000",
		"INSERT INTO idx (V, SecDateTEdit) SELECT seq, '2024-05-01' + INTERVAL seq MINUTE FROM seq_1_to_1000",
		"INSERT INTO applog (V) SELECT seq FROM seq_1_to_1000",
		"INSERT INTO plain (V) SELECT seq FROM seq_1_to_1000",
	}
	for i := range 10 {
		ddl = append(ddl, fmt.Sprintf("CREATE TABLE small%d%s) ENGINE=MyISAM", i, stamped),
			fmt.Sprintf("CREATE TABLE lookup%d (Id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, V VARCHAR(40) NOT NULL) ENGINE=MyISAM", i))
		fill = append(fill, fmt.Sprintf("INSERT INTO small%d (V, SecDateTEdit) SELECT seq, '2024-05-01' + INTERVAL seq MINUTE FROM seq_1_to_10", i),
			fmt.Sprintf("INSERT INTO lookup%d (V) SELECT seq FROM seq_1_to_10", i))
	}
	for _, q := range append(ddl, fill...) {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
	cfg := e.config(t, 100)
	cfg.Tables["applog"].Strategy = tables.IncrementalChunked // an audit log follows its key
	cfg.Tables["applog"].WatermarkColumns = []string{"Id"}
	return cfg
}

// costDay is a clinic day: 1% of the rows inserted, changed (moving the
// watermark) and, in the two large stamped tables and the full_table one,
// deleted; one row more in each small table.
var costDay = []string{
	"INSERT INTO noidx (V) SELECT CONCAT('n', seq) FROM seq_1_to_10",
	"UPDATE noidx SET V = CONCAT(V, 'u') WHERE Id % 100 = 7",
	"DELETE FROM noidx WHERE Id IN (250, 750)",
	"INSERT INTO idx (V) SELECT CONCAT('n', seq) FROM seq_1_to_10",
	"UPDATE idx SET V = CONCAT(V, 'u') WHERE Id % 100 = 7",
	"DELETE FROM idx WHERE Id IN (250, 750)",
	"INSERT INTO applog (V) SELECT CONCAT('n', seq) FROM seq_1_to_10",
	"INSERT INTO plain (V) SELECT CONCAT('n', seq) FROM seq_1_to_10",
	"UPDATE plain SET V = CONCAT(V, 'u') WHERE Id % 100 = 7",
	"DELETE FROM plain WHERE Id IN (250, 750)",
}

func init() {
	for i := range 10 {
		costDay = append(costDay, fmt.Sprintf("INSERT INTO small%d (V) VALUES ('new')", i), fmt.Sprintf("INSERT INTO lookup%d (V) VALUES ('new')", i))
	}
}

// What a first run, a clinic day and a night without changes cost the
// source, statement by statement (testdb's meter): counts of statements and
// rows examined, so a regression in cost fails here. No statement of any of
// them examines more than a chunk (batch_size, 100) beyond what it returns
// (issue 8 item 6: no MAX(watermark) or ORDER BY over an unindexed column,
// no COUNT over a whole key range).
func TestSourceCostOfARunADayAndANight(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := costClinic(t, e)
	src, meter := e.metered(t)

	measure := func(name string, maxQueries, maxExamined int64) runCost {
		t.Helper()
		before := len(meter.Statements())
		e.runOn(t, src, cfg, replicate.Options{})
		all := meter.Statements()[before:]
		cost := costOf(all)
		for _, s := range all {
			if s.Command != "Prepare" {
				t.Logf("  %5d %5d %.150s", s.RowsRead, s.RowsSent, s.Query)
			}
		}
		t.Logf("%s: %d queries, %d rows examined; most beyond what it returned: %s", name, cost.queries, cost.examined, cost.worst)
		assert.LessOrEqual(t, cost.worst.Excess(), int64(100), "%s: a statement examined more than a chunk beyond what it returned: %s", name, cost.worst)
		assert.LessOrEqual(t, cost.queries, maxQueries, "%s: source queries", name)
		assert.LessOrEqual(t, cost.examined, maxExamined, "%s: rows examined", name)
		return cost
	}
	// First run (87 statements, 5304 rows): the session (2) and the schema
	// (3), the 24 definitions in one turn (24 SHOW CREATE TABLE), the 20 small
	// tables whole with their MAX(watermark) in one sweep statement (220
	// rows), the four large ones in 10 key chunks each and an empty 11th
	// (4000 rows), noidx's start watermark span by span (its key's MIN/MAX and
	// 10 spans: 1000 rows), idx's and applog's MAX by their index.
	measure("first run", 87, 5304)
	e.assertSame(t)

	for _, q := range costDay {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
	e.secondPasses(t) // the night after finds every table unchanged
	// The day (42 statements, 4908 rows): the schema; 2 sweep statements
	// (the changed rows of idx and applog by their index, the small tables
	// whole, the delete counts of idx, noidx, applog and the small tables);
	// noidx scanned in 10 spans (1010 rows); plain compared in 10 ranges
	// (1010 rows), all of which differ (an update in each) and are read
	// (1008 rows); the deletes of idx and noidx found by listing keys up to
	// the second one (800 each).
	day := measure("day", 42, 4908)
	assert.Greater(t, day.queries, int64(5))
	e.assertSame(t)

	// A night without changes: the schema read and nothing else.
	night := measure("no change", 3, 0)
	assert.Equal(t, int64(3), night.queries)
	for _, s := range meter.Statements() {
		assert.NotContains(t, strings.ToUpper(s.Query), "ORDER BY `SECDATETEDIT`,", "no paging on (watermark, key): %s", s)
	}
}
