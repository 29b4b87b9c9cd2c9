package replicate_test

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/discover"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// env is a source database (fixture handle + factory-built read-only
// handle) and an empty replica database.
type env struct {
	fixture *sql.DB // writes test data into the source
	source  *sql.DB // what replicate reads through: factory-built, read-only
	replica *sql.DB
	name    string // source database name
	srcCfg  providers.DBConfig
}

func newEnv(t testing.TB) *env {
	t.Helper()
	fixture, cfg := testdb.MySQL(t, "repl_src")
	_, repCfg := testdb.MySQL(t, "repl_dst")
	replica, err := factory.New().MySQL(repCfg) // the replica as the CLI opens it
	require.NoError(t, err)
	t.Cleanup(func() { replica.Close() })
	srcCfg := testdb.MySQLConfig(cfg.Name, catalog.DatabaseSource)
	require.True(t, srcCfg.ReadOnly)
	source, err := factory.New().MySQL(srcCfg)
	require.NoError(t, err)
	t.Cleanup(func() { source.Close() })
	return &env{fixture: fixture, source: source, replica: replica, name: cfg.Name, srcCfg: srcCfg}
}

// sourceConfig is the source database's config (root; SourceUser makes a
// SELECT-only user of it).
func (e *env) sourceConfig() providers.DBConfig { return e.srcCfg }

// runOn is run with another source handle (e.g. a metered SELECT-only user).
func (e *env) runOn(t testing.TB, source *sql.DB, cfg *tables.Config, opts replicate.Options) replicate.Summary {
	t.Helper()
	saved := e.source
	e.source = source
	defer func() { e.source = saved }()
	return e.run(t, cfg, opts)
}

var autoIncRE = regexp.MustCompile(` AUTO_INCREMENT=\d+`)

// createTables creates DDLs in the source; collations MariaDB 10.11 lacks
// are mapped to utf8mb3_general_ci.
func (e *env) createTables(t testing.TB, ddls []opendental.TableDDL) {
	t.Helper()
	for _, d := range ddls {
		q := strings.ReplaceAll(d.SQL, "utf8mb3_uca1400_ai_ci", "utf8mb3_general_ci")
		q = autoIncRE.ReplaceAllString(q, "") // keys start at 1, so tests can name rows
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, "create %s", d.Name)
	}
}

// realTable creates the real OpenDental table name at the source and fills
// it with rows generated from seed.
func (e *env) realTable(t testing.TB, name string, rows int, seed uint64) {
	t.Helper()
	e.createTables(t, pick(opendental.Real93(), name))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	fillTable(t, e.fixture, src.Tables[name], rows, seed)
}

func (e *env) config(t testing.TB, batch int) *tables.Config {
	t.Helper()
	s, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	cfg := discover.Build(s)
	for _, tb := range cfg.Tables {
		if batch > 0 {
			tb.BatchSize = batch
		}
	}
	return cfg
}

// deps are the run's databases: the factory-built source and replica.
func (e *env) deps(cfg *tables.Config) replicate.Deps {
	return replicate.Deps{Source: connections.SourceDB{DB: e.source}, Replica: connections.ReplicationDB{DB: e.replica}, Tables: cfg}
}

func (e *env) run(t testing.TB, cfg *tables.Config, opts replicate.Options) replicate.Summary {
	t.Helper()
	if opts.Manager == nil {
		mo := manager.DefaultOptions()
		mo.RateLimit = 0 // tests are not a busy clinic
		opts.Manager = &mo
	}
	sum, err := replicate.Run(context.Background(), e.deps(cfg), opts)
	require.NoError(t, err)
	for _, r := range sum.Tables {
		require.NoError(t, r.Err, "table %s", r.Table)
	}
	return sum
}

// fingerprint is a table's row count and an order-independent content
// checksum over every column's exact bytes (FLOAT as DOUBLE: all digits).
func fingerprint(t testing.TB, db *sql.DB, table string, cols []schema.Column) string {
	t.Helper()
	var parts []string
	for _, c := range cols {
		expr := "CAST(`" + c.Name + "` AS BINARY)"
		if strings.EqualFold(c.DataType, "float") {
			expr = "CAST(CAST(`" + c.Name + "` AS DOUBLE) AS BINARY)"
		}
		parts = append(parts, "IFNULL(HEX("+expr+"),'NULL')")
	}
	row := "CONCAT_WS(',', " + strings.Join(parts, ",") + ")"
	var n, sum, x int64
	q := fmt.Sprintf("SELECT COUNT(*), COALESCE(SUM(CRC32(%s)),0), COALESCE(BIT_XOR(CRC32(MD5(%s))),0) FROM `%s`", row, row, table)
	require.NoError(t, db.QueryRow(q).Scan(&n, &sum, &x), "fingerprint %s", table)
	return fmt.Sprintf("%d/%d/%d", n, sum, x)
}

// assertSame compares every table of the source with the replica: same
// columns in the same order with the same types, same rows, same bytes.
func (e *env) assertSame(t testing.TB) {
	t.Helper()
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	rep, err := schema.Read(context.Background(), e.replica)
	require.NoError(t, err)
	for name, s := range src.Tables {
		r := rep.Tables[name]
		if !assert.NotNil(t, r, "replica lacks %s", name) {
			continue
		}
		require.Equal(t, len(s.Columns), len(r.Columns), "columns of %s", name)
		for i := range s.Columns {
			assert.Equal(t, s.Columns[i].Name, r.Columns[i].Name, "%s column %d", name, i)
			assert.Equal(t, s.Columns[i].Type, r.Columns[i].Type, "%s.%s type", name, s.Columns[i].Name)
		}
		assert.Equal(t, fingerprint(t, e.fixture, name, s.Columns), fingerprint(t, e.replica, name, s.Columns), "content of %s", name)
		assert.Equal(t, indexes(t, e.fixture, name), indexes(t, e.replica, name), "indexes of %s", name)
	}
}

// indexes lists a table's indexes as "name(unique):col,col".
func indexes(t testing.TB, db *sql.DB, table string) []string {
	t.Helper()
	rows, err := db.Query("SELECT CONCAT(INDEX_NAME, '(', NON_UNIQUE, '):', GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX))"+
		" FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? GROUP BY INDEX_NAME, NON_UNIQUE ORDER BY INDEX_NAME", table)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// stamped creates the source table stamped (key Id, text V, watermark
// SecDateTEdit, a TIMESTAMP … ON UPDATE) with rows 1..n stamped at, or at
// the server's clock when at is "".
func (e *env) stamped(t testing.TB, n int, at string) { e.stampedTable(t, n, at, false) }

// stampedTable is stamped, with an index on the watermark when indexed
// (the changed rows are then read in its order; without it the table is
// scanned in key spans).
func (e *env) stampedTable(t testing.TB, n int, at string, indexed bool) {
	t.Helper()
	ix := ""
	if indexed {
		ix = ", KEY SecDateTEdit (SecDateTEdit)"
	}
	_, err := e.fixture.Exec("CREATE TABLE stamped (Id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, V VARCHAR(20) NOT NULL," +
		" SecDateTEdit TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP" + ix + ") ENGINE=MyISAM")
	require.NoError(t, err)
	stamp := "CURRENT_TIMESTAMP"
	if at != "" {
		stamp = "'" + at + "'"
	}
	_, err = e.fixture.Exec(fmt.Sprintf("INSERT INTO stamped (V, SecDateTEdit) SELECT seq, %s FROM seq_1_to_%d", stamp, n))
	require.NoError(t, err)
}

func byTable(sum replicate.Summary) map[string]*replicate.TableResult {
	out := map[string]*replicate.TableResult{}
	for _, r := range sum.Tables {
		out[r.Table] = r
	}
	return out
}

// secondPasses waits until the source server's clock has left the current
// second. Only a test asserting that a later run finds a table unchanged
// needs it: that test compares MyISAM's UPDATE_TIME, the server's wall clock
// in whole seconds, which nothing can inject, and a run may only trust it
// when the table's last write was in an earlier second than the run's start.
// Watermarks need no waiting: a run reads through its own start second.
func (e *env) secondPasses(t testing.TB) {
	t.Helper()
	var start, now string
	require.NoError(t, e.fixture.QueryRow("SELECT UTC_TIMESTAMP()").Scan(&start))
	for deadline := time.Now().Add(5 * time.Second); now <= start; {
		require.True(t, time.Now().Before(deadline), "the server clock did not move past %s", start)
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, e.fixture.QueryRow("SELECT UTC_TIMESTAMP()").Scan(&now))
	}
}

// at starts a run in the given second, whatever the clocks say.
func at(t testing.TB, second string) func(time.Time) time.Time {
	t.Helper()
	tm, err := time.Parse(schema.TimeLayout, second)
	require.NoError(t, err)
	return func(time.Time) time.Time { return tm }
}

// strs reads a one-column query's rows as strings.
func strs(t testing.TB, db *sql.DB, q string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(q, args...)
	require.NoError(t, err, q)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	return out
}

// changeSeqs is every replica table's change_seq.
func changeSeqs(t testing.TB, db *sql.DB) map[string]int64 {
	t.Helper()
	copies, err := state.ReadCopies(context.Background(), db)
	require.NoError(t, err)
	out := map[string]int64{}
	for name, c := range copies {
		out[name] = c.ChangeSeq
	}
	return out
}

func count(t testing.TB, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, db.QueryRow(q, args...).Scan(&n), q)
	return n
}

func TestReplicateReal93FullIncrementalDeletes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ddls := opendental.Real93()
	require.Len(t, ddls, 93)
	e.createTables(t, ddls)
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	for i, d := range ddls {
		fillTable(t, e.fixture, src.Tables[d.Name], 130, uint64(i))
	}
	// One stamp for every row of the two tables whose edits below keep their
	// stamp: the watermark's own second, which the next run reads again.
	// (Stamped by the clock, a slow fill may straddle two seconds, and an
	// edit that keeps an older stamp is invisible to any watermark.)
	for _, q := range []string{"UPDATE patient SET DateTStamp = '2024-05-01 10:00:00'", "UPDATE procedurelog SET DateTStamp = '2024-05-01 10:00:00'"} {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
	cfg := e.config(t, 40) // 130 rows: four chunks per table
	e.secondPasses(t)      // run 2 finds the tables it does not change unchanged

	sum := e.run(t, cfg, replicate.Options{})
	res := byTable(sum)
	require.Len(t, res, 93)
	for _, r := range sum.Tables {
		assert.Equal(t, state.ModeFull, r.Mode, r.Table)
		assert.GreaterOrEqual(t, r.Chunks, 1, r.Table)
	}
	assert.Equal(t, int64(130), res["patient"].RowsWritten)
	assert.Equal(t, 4, res["patient"].Chunks)
	e.assertSame(t)
	var wm, srcMax string
	require.NoError(t, e.replica.QueryRow("SELECT watermark FROM _pipeline_copy_status WHERE table_name='patient'").Scan(&wm))
	require.NoError(t, e.source.QueryRow("SELECT MAX(DateTStamp) FROM patient").Scan(&srcMax))
	assert.Equal(t, srcMax, wm, "a full copy leaves the source's MAX(watermark) at its start")

	// Inserts, updates (one keeping its timestamp second), deletes.
	mut := []string{
		"UPDATE patient SET LName = CONCAT(LName, 'x') WHERE PatNum <= 60",                             // many rows, one stamp second
		"UPDATE patient SET FName = 'same-second', DateTStamp = DateTStamp WHERE PatNum = 100",         // keeps its stamp
		"UPDATE procedurelog SET ProcFee = ProcFee + 1, DateTStamp = DateTStamp WHERE ProcNum % 7 = 0", // keeps its stamp
		"DELETE FROM patient WHERE PatNum IN (5, 77, 129)",
		"DELETE FROM procedurelog WHERE ProcNum > 120",
		"DELETE FROM definition WHERE DefNum = 3",
		"INSERT INTO definition (Category, ItemOrder, ItemName, ItemValue, ItemColor, IsHidden) VALUES (1, 2, 'new', '', 0, 0)",
		"UPDATE appointment SET Note = 'moved' WHERE AptNum BETWEEN 30 AND 90",
		"UPDATE clinic SET Description = 'renamed' WHERE ClinicNum = 50", // full_table: one key range differs
		"DELETE FROM clinic WHERE ClinicNum IN (90, 130)",                // a middle range and the tail
		"INSERT INTO clinic (ClinicNum, Description) VALUES (500, 'new')",
	}
	for _, q := range mut {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
	e.secondPasses(t) // run 3 finds every table unchanged
	sum = e.run(t, cfg, replicate.Options{})
	res = byTable(sum)
	assert.Equal(t, state.ModeIncremental, res["patient"].Mode)
	assert.Equal(t, int64(3), res["patient"].RowsDeleted)
	assert.Equal(t, int64(10), res["procedurelog"].RowsDeleted)
	assert.Equal(t, int64(1), res["definition"].RowsDeleted)
	assert.Equal(t, state.ModeDiff, res["clinic"].Mode)
	assert.Equal(t, int64(2), res["clinic"].RowsDeleted)
	// Ranges follow the source's keys: 1-40 same, 41-80 (50 changed), 81-121 (90 gone), 122-130 (130 gone),
	// then 500 is new. Only the changed and new rows are written, and logged with the deleted keys.
	assert.Equal(t, int64(2), res["clinic"].RowsWritten, "only the rows that differ are written")
	assert.ElementsMatch(t, []string{`["50"]`, `["90"]`, `["130"]`, `["500"]`}, strs(t, e.replica, "SELECT pk_values FROM _pipeline_changed_keys WHERE table_name='clinic'"))
	assert.Equal(t, state.ModeSkip, res["allergy"].Mode, "untouched table skipped by UPDATE_TIME")
	e.assertSame(t)

	// Deletes are recorded for the loader, keys as JSON string arrays.
	var keys []string
	rows, err := e.replica.Query("SELECT pk_values FROM _pipeline_deleted_rows WHERE table_name='patient' ORDER BY id")
	require.NoError(t, err)
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys = append(keys, k)
	}
	require.NoError(t, rows.Err())
	assert.ElementsMatch(t, []string{`["5"]`, `["77"]`, `["129"]`}, keys)

	// change_seq moved for changed tables only.
	before := changeSeqs(t, e.replica)
	sum = e.run(t, cfg, replicate.Options{})
	for _, r := range sum.Tables {
		assert.Equal(t, state.ModeSkip, r.Mode, "nothing changed: %s", r.Table)
	}
	assert.Equal(t, before, changeSeqs(t, e.replica))
	assert.Equal(t, int64(93), count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_copy_status WHERE status='ok'"))
}

// Rows sharing a stamp across a chunk boundary are all read: with an index
// on the watermark, read in its order (a chunk's last stamp is read again
// by the next); without, in key spans.
func TestReplicateEqualTimestampsAcrossChunks(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		indexed bool
		chunks  int
	}{
		// Indexed: each of the three stamps is shared by 33 or 34 rows, more than a
		// chunk holds, so each group is read in key spans of 7 keys (15 spans over
		// keys 1-100; the last span holds no row of one group).
		{true, 44},
		// Scanned: 15 spans of 7 keys.
		{false, 15},
	} {
		t.Run(fmt.Sprintf("indexed=%v", c.indexed), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.stampedTable(t, 100, "2024-05-01 10:00:00", c.indexed)
			cfg := e.config(t, 7)
			require.Equal(t, tables.Incremental, cfg.Tables["stamped"].Strategy)
			e.run(t, cfg, replicate.Options{})

			// 100 rows change, in groups that share a stamp: 7-row chunks split every group.
			_, err := e.fixture.Exec("UPDATE stamped SET V = CONCAT('u', Id), SecDateTEdit = CONCAT('2024-05-02 10:00:0', Id % 3)")
			require.NoError(t, err)
			sum := e.run(t, cfg, replicate.Options{})
			r := byTable(sum)["stamped"]
			assert.Equal(t, state.ModeIncremental, r.Mode)
			assert.Equal(t, int64(100), r.RowsRead)
			assert.Equal(t, c.chunks, r.Chunks)
			e.assertSame(t)
		})
	}
}

func TestReplicateResumesAfterKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "patient", "procedurelog", "appointment"))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	for i, n := range []string{"patient", "procedurelog", "appointment"} {
		fillTable(t, e.fixture, src.Tables[n], 200, uint64(i))
	}
	cfg := e.config(t, 25)

	ctx, cancel := context.WithCancel(context.Background())
	chunks := 0
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	sum, err := replicate.Run(ctx, e.deps(cfg), replicate.Options{
		Workers: 1, Manager: &mo,
		OnChunk: func(string, int) {
			if chunks++; chunks == 5 {
				cancel()
			}
		},
	})
	require.NoError(t, err)
	assert.Positive(t, sum.Failed(), "the interrupted run reports failures")
	first := sum.Tables[0].Table
	copied := count(t, e.replica, "SELECT COUNT(*) FROM `"+first+"`")
	assert.Equal(t, int64(5*25), copied, "five committed chunks survive the kill")
	assert.Equal(t, int64(1), count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_copy_status WHERE status='failed' AND error LIKE 'interrupted%'"))

	sum = e.run(t, cfg, replicate.Options{})
	r := byTable(sum)[first]
	assert.True(t, r.Resumed)
	assert.Equal(t, int64(200-125), r.RowsRead, "resumed after the last committed chunk")
	e.assertSame(t)
}

// Options.Stop (the run window closing) stops the run after a committed
// chunk without cancelling anything: the table being copied keeps its
// chunks and is recorded stopped, the tables not begun are untouched, and
// the next run resumes and finishes with a replica identical to the source.
func TestReplicateStopsCleanlyBetweenChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "patient", "procedurelog", "appointment"))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	for i, n := range []string{"patient", "procedurelog", "appointment"} {
		fillTable(t, e.fixture, src.Tables[n], 200, uint64(i))
	}
	cfg := e.config(t, 25)

	chunks, closed := 0, false
	sum, err := replicate.Run(context.Background(), e.deps(cfg), replicate.Options{
		Workers: 1, Manager: noRateLimit(),
		OnChunk: func(string, int) { chunks++; closed = chunks >= 5 },
		Stop:    func() bool { return closed },
	})
	require.NoError(t, err)
	assert.Zero(t, sum.Failed(), "a stop is not a failure")
	assert.Equal(t, 3, sum.Stopped())
	first := sum.Tables[0]
	assert.True(t, first.Stopped)
	assert.NoError(t, first.Err)
	assert.Equal(t, int64(125), first.RowsWritten, "five committed chunks, then stopped")
	assert.Equal(t, int64(125), count(t, e.replica, "SELECT COUNT(*) FROM `"+first.Table+"`"))
	assert.Equal(t, int64(1), count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_copy_status WHERE status='stopped' AND error IS NULL AND last_key IS NOT NULL"))
	for _, r := range sum.Tables[1:] {
		assert.Zero(t, r.RowsRead, "%s was not begun", r.Table)
		assert.Zero(t, r.SourceQueries, r.Table)
		assert.Equal(t, report.TableStopped, r.Report(false).Status)
	}
	entry := first.Report(false)
	assert.Equal(t, report.TableStopped, entry.Status)
	assert.Empty(t, entry.Error)
	// The start watermark (patient.DateTStamp has no index: MAX is taken span
	// by span, the key's MIN and MAX then 8 spans of 25 keys) and five chunks;
	// the tables' definitions were read together, counted for the run.
	assert.Equal(t, int64(1+8+5), entry.SourceQueries, "the watermark spans and five chunks")
	assert.GreaterOrEqual(t, sum.SourceQueries, entry.SourceQueries+1, "the run's total adds the schema read")

	sum = e.run(t, cfg, replicate.Options{})
	r := byTable(sum)[first.Table]
	assert.True(t, r.Resumed)
	assert.Equal(t, int64(200-125), r.RowsRead, "resumed after the last committed chunk")
	assert.Zero(t, sum.Stopped())
	e.assertSame(t)
}

func noRateLimit() *manager.Options {
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	return &mo
}

func pick(ddls []opendental.TableDDL, names ...string) []opendental.TableDDL {
	var out []opendental.TableDDL
	for _, d := range ddls {
		for _, n := range names {
			if d.Name == n {
				out = append(out, d)
			}
		}
	}
	return out
}

func TestReplicateTableWithoutPrimaryKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.fixture.Exec("CREATE TABLE nokey (A INT NULL, B VARCHAR(30) NOT NULL, D DATE NOT NULL) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = e.fixture.Exec("INSERT INTO nokey VALUES (1,'a','0000-00-00'),(1,'a','0000-00-00'),(NULL,'',  '2019-00-00'),(2,'tab\\tnl\\n','2020-01-01')")
	require.NoError(t, err)
	cfg := e.config(t, 2)
	require.Equal(t, tables.FullTable, cfg.Tables["nokey"].Strategy)
	sum := e.run(t, cfg, replicate.Options{})
	assert.Equal(t, state.ModeShadow, byTable(sum)["nokey"].Mode)
	e.assertSame(t)

	_, err = e.fixture.Exec("DELETE FROM nokey WHERE A = 2; INSERT INTO nokey VALUES (3,'c','2021-02-03')")
	require.NoError(t, err)
	sum = e.run(t, cfg, replicate.Options{})
	assert.Equal(t, int64(4), byTable(sum)["nokey"].RowsWritten)
	e.assertSame(t)
	assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_deleted_rows"), "no-key tables record no deletes")
	assert.Equal(t, int64(0), count(t, e.replica, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME IN (?, ?)",
		state.TempName("shadow", "nokey"), state.TempName("old", "nokey")), "no shadow table left behind")
}

func TestReplicateSchemaDrift(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "patient", "claimproc"))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	fillTable(t, e.fixture, src.Tables["patient"], 60, 1)
	fillTable(t, e.fixture, src.Tables["claimproc"], 60, 2)
	cfg := e.config(t, 25)
	e.run(t, cfg, replicate.Options{})

	// Like a real upgrade (schema_drift_21.1_to_24.3.tsv): add columns, widen types.
	for _, q := range []string{
		"ALTER TABLE claimproc ADD COLUMN IsOverpayNew tinyint(4) NOT NULL DEFAULT 1 AFTER ClaimAdjReasonCodes",
		"ALTER TABLE patient MODIFY COLUMN Email varchar(300) NOT NULL, MODIFY COLUMN Gender int(11) NOT NULL",
		"UPDATE patient SET Email = REPEAT('e', 290), DateTStamp = DateTStamp WHERE PatNum = 3",
	} {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
	sum := e.run(t, cfg, replicate.Options{})
	res := byTable(sum)
	var got []string
	for _, c := range append(res["claimproc"].Changes, res["patient"].Changes...) {
		got = append(got, c.String())
	}
	assert.ElementsMatch(t, []string{
		"claimproc: added column IsOverpayNew tinyint(4)",
		"patient: changed column Email from varchar(100) NULL to varchar(300) NOT NULL",
		"patient: changed column Gender from tinyint(3) unsigned NOT NULL to int(11) NOT NULL",
	}, got)
	assert.Equal(t, state.ModeFull, res["patient"].Mode, "drift re-copies the table")
	e.assertSame(t)
}

func TestReplicateFullRefreshAndDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "definition", "provider"))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	fillTable(t, e.fixture, src.Tables["definition"], 30, 1)
	fillTable(t, e.fixture, src.Tables["provider"], 30, 2)
	cfg := e.config(t, 100)

	sum := e.run(t, cfg, replicate.Options{DryRun: true})
	require.Len(t, sum.Tables, 2)
	assert.Contains(t, sum.Tables[0].Plan, "create replica table")
	assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=DATABASE()"), "a dry run writes nothing")

	e.run(t, cfg, replicate.Options{Tables: []string{"definition"}})
	assert.Equal(t, int64(1), count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_copy_status"))
	sum = e.run(t, cfg, replicate.Options{Tables: []string{"definition"}, FullRefresh: true})
	assert.Equal(t, state.ModeFull, sum.Tables[0].Mode)
	assert.Equal(t, int64(30), sum.Tables[0].RowsWritten)

	_, err = replicate.Run(context.Background(), e.deps(cfg),
		replicate.Options{Tables: []string{"nosuch"}})
	assert.ErrorIs(t, err, replicate.ErrConfig)
	assert.ErrorContains(t, err, "nosuch")
}

func TestReplicateTableFailureDoesNotStopOthers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "definition", "provider"))
	cfg := e.config(t, 100)
	cfg.Tables["ghost"] = &tables.Table{Name: "ghost", Strategy: tables.FullTable, Importance: tables.Critical, BatchSize: 10}
	sum, err := replicate.Run(context.Background(), e.deps(cfg), replicate.Options{})
	require.NoError(t, err)
	res := byTable(sum)
	assert.ErrorContains(t, res["ghost"].Err, "not in the source database")
	assert.NoError(t, res["definition"].Err)
	assert.NoError(t, res["provider"].Err)
	assert.Equal(t, 1, sum.Failed())
}

// roDoer records, for every source call, whether its session was the
// factory's source session: read-only, in UTC, returning values as stored.
type roDoer struct {
	d        *manager.Manager
	mu       *sync.Mutex
	calls    *int
	writable *int
	other    *[]string // sessions with another time zone or result character set
}

func (r roDoer) Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	return r.d.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var ro int
		var tz, results string
		if err := conn.QueryRowContext(ctx, "SELECT @@tx_read_only, @@time_zone, @@character_set_results").Scan(&ro, &tz, &results); err != nil {
			return err
		}
		r.mu.Lock()
		*r.calls++
		if ro != 1 {
			*r.writable++
		}
		if tz != "+00:00" || results != "binary" {
			*r.other = append(*r.other, tz+" "+results)
		}
		r.mu.Unlock()
		return fn(ctx, conn)
	})
}

func (r roDoer) Close() error { return r.d.Close() }

// The source is never written: every source call of a run (full copy,
// incremental, delete detection, diff) is on a read-only session of the
// factory-built source handle, and a write through that handle is refused.
// Every one reads TIMESTAMPs in UTC and values as stored, whatever the
// server's own time zone: the factory sets the session up, replicate sets
// nothing of its own.
func TestSourceSessionIsReadOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "definition", "patient"))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	fillTable(t, e.fixture, src.Tables["definition"], 30, 1)
	fillTable(t, e.fixture, src.Tables["patient"], 30, 2)
	cfg := e.config(t, 10)
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	var mu sync.Mutex
	var calls, writable int
	var other []string
	opts := replicate.Options{Manager: &mo, SourceConns: 2, NewDoer: func(db *sql.DB) replicate.Doer {
		return roDoer{d: manager.New(db, mo), mu: &mu, calls: &calls, writable: &writable, other: &other}
	}}
	e.run(t, cfg, opts)
	_, err = e.fixture.Exec("DELETE FROM definition WHERE DefNum = 3; UPDATE definition SET ItemName = 'x' WHERE DefNum = 20; UPDATE patient SET LName = 'y' WHERE PatNum = 4")
	require.NoError(t, err)
	e.run(t, cfg, opts)
	e.assertSame(t)
	assert.Greater(t, calls, 10, "source calls observed")
	assert.Zero(t, writable, "source calls on a writable session")
	assert.Empty(t, other, "source calls not in UTC or converting values")
	for _, q := range []string{
		"INSERT INTO definition (Category, ItemOrder, ItemName, ItemValue, ItemColor, IsHidden) VALUES (1,1,'x','',0,0)",
		"DELETE FROM definition",
		"CREATE TABLE _pipeline_copy_status (a int)",
	} {
		_, err := e.source.Exec(q)
		assert.Error(t, err, q)
	}
	assert.Zero(t, count(t, e.fixture, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME LIKE '\\_pipeline\\_%'"))
}

// Types OpenDental does not use today but a MySQL table may hold.
func TestReplicateOtherTypes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.fixture.Exec("CREATE TABLE odd (Id INT NOT NULL PRIMARY KEY, B BIT(10) NULL, D DECIMAL(20,6) NULL, E ENUM('a','b c','') NULL," +
		" S SET('x','y','z') NULL, Y YEAR NULL, BL BLOB NULL, VB VARBINARY(16) NULL, J LONGTEXT NULL, F FLOAT NULL, U BIGINT UNSIGNED NULL," +
		" L1 VARCHAR(20) CHARACTER SET latin1 NULL, TS TIMESTAMP(6) NULL, DT DATETIME(3) NULL, TM TIME(2) NULL) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = e.fixture.Exec("INSERT INTO odd VALUES " +
		"(1, b'1010101010', -12345678901234.123456, 'b c', 'x,z', 2155, 0x00FF0A0D5C09, 0x00, '{\"a\":[1,2]}', 3.4028234e38, 18446744073709551615, 'caf\xe9', '2038-01-19 03:14:07.999999', '0000-00-00 00:00:00.000', '-838:59:59.00')," +
		"(2, b'0', 0, '', '', 0000, '', '', '', -1.17549435e-38, 0, '', NULL, '2019-00-00 12:00:00.5', '00:00:00.01')," +
		"(3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)")
	require.NoError(t, err)
	cfg := e.config(t, 2)
	e.run(t, cfg, replicate.Options{})
	e.assertSame(t)
	var b, u string
	require.NoError(t, e.replica.QueryRow("SELECT BIN(B), U FROM odd WHERE Id = 1").Scan(&b, &u))
	assert.Equal(t, "1010101010", b)
	assert.Equal(t, "18446744073709551615", u)
}

// An incremental run killed mid-way resumes: read in the watermark index's
// order, from its last committed chunk's watermark; scanned in key spans
// (no index), from the start again, the watermark not having moved.
func TestReplicateIncrementalResumesAfterKill(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		indexed bool
		read    int64
	}{{true, 141}, {false, 200}} {
		t.Run(fmt.Sprintf("indexed=%v", c.indexed), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.stampedTable(t, 200, "2024-05-01 10:00:00", c.indexed)
			cfg := e.config(t, 10)
			e.run(t, cfg, replicate.Options{})
			_, err := e.fixture.Exec("UPDATE stamped SET V = CONCAT('u', Id), SecDateTEdit = '2024-06-01 00:00:00' + INTERVAL Id SECOND")
			require.NoError(t, err)

			ctx, cancel := context.WithCancel(context.Background())
			chunks := 0
			mo := manager.DefaultOptions()
			mo.RateLimit = 0
			sum, err := replicate.Run(ctx, e.deps(cfg), replicate.Options{
				Manager: &mo, OnChunk: func(string, int) {
					if chunks++; chunks == 6 {
						cancel()
					}
				},
			})
			require.NoError(t, err)
			require.Equal(t, 1, sum.Failed())
			assert.Equal(t, int64(60), count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE V LIKE 'u%'"), "six chunks committed")

			sum = e.run(t, cfg, replicate.Options{})
			r := byTable(sum)["stamped"]
			assert.Equal(t, state.ModeIncremental, r.Mode)
			assert.Equal(t, c.read, r.RowsRead)
			e.assertSame(t)
		})
	}
}

// A changed full_table table is compared by key-range checksums; only the
// rows that differ in a range that differs are written, and their keys
// logged for the load (in the same commit, one change_seq bump each); a
// change undone writes nothing.
func TestReplicateDiffCopiesOnlyChangedRows(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.realTable(t, "clinic", 130, 1)
	cfg := e.config(t, 40)
	require.Equal(t, tables.FullTable, cfg.Tables["clinic"].Strategy)
	e.run(t, cfg, replicate.Options{})
	seq := func() int64 {
		return count(t, e.replica, "SELECT change_seq FROM _pipeline_copy_status WHERE table_name='clinic'")
	}
	logged := func() []string {
		return strs(t, e.replica, "SELECT pk_values FROM _pipeline_changed_keys WHERE table_name='clinic' ORDER BY id")
	}
	before := seq()

	_, err := e.fixture.Exec("UPDATE clinic SET Description = 'renamed' WHERE ClinicNum = 50")
	require.NoError(t, err)
	r := byTable(e.run(t, cfg, replicate.Options{}))["clinic"]
	assert.Equal(t, state.ModeDiff, r.Mode)
	assert.Equal(t, int64(40), r.RowsRead, "the one range of 40 rows that differs")
	assert.Equal(t, int64(1), r.RowsWritten, "the one row that differs")
	assert.Equal(t, before+1, seq())
	assert.Equal(t, []string{`["50"]`}, logged())
	e.assertSame(t)

	_, err = e.fixture.Exec("UPDATE clinic SET Phone = 'tmp' WHERE ClinicNum = 7; UPDATE clinic SET Phone = (SELECT Phone FROM (SELECT Phone FROM clinic WHERE ClinicNum = 8) x) WHERE ClinicNum = 7")
	require.NoError(t, err)
	_, err = e.fixture.Exec("UPDATE clinic SET Phone = 'tmp' WHERE ClinicNum = 9")
	require.NoError(t, err)
	r = byTable(e.run(t, cfg, replicate.Options{}))["clinic"]
	assert.Equal(t, int64(2), r.RowsWritten)
	assert.Equal(t, []string{`["50"]`, `["7"]`, `["9"]`}, logged())
	e.assertSame(t)

	// Changed and changed back: the table was written, the data is the same.
	_, err = e.fixture.Exec("UPDATE clinic SET Zip = CONCAT(Zip, 'x') WHERE ClinicNum = 100")
	require.NoError(t, err)
	_, err = e.fixture.Exec("UPDATE clinic SET Zip = LEFT(Zip, CHAR_LENGTH(Zip) - 1) WHERE ClinicNum = 100")
	require.NoError(t, err)
	before = seq()
	r = byTable(e.run(t, cfg, replicate.Options{}))["clinic"]
	assert.Equal(t, state.ModeDiff, r.Mode)
	assert.Zero(t, r.RowsWritten)
	assert.Equal(t, before, seq(), "nothing written, change_seq unchanged")
	e.assertSame(t)
}

// Rows the copy did not take (stamped at or after the run's start second)
// make the source count larger than the replica's; delete detection then
// compares up to the replica's highest key and still finds a real delete.
func TestReplicateDeletesWithRowsBeyondTheRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stamped(t, 50, "2024-05-01 10:00:00")
	cfg := e.config(t, 10)
	e.run(t, cfg, replicate.Options{})

	_, err := e.fixture.Exec("DELETE FROM stamped WHERE Id = 20")
	require.NoError(t, err)
	_, err = e.fixture.Exec("INSERT INTO stamped (V, SecDateTEdit) VALUES ('later', '2037-12-31 00:00:00')")
	require.NoError(t, err)
	r := byTable(e.run(t, cfg, replicate.Options{}))["stamped"]
	assert.Equal(t, int64(1), r.RowsDeleted)
	assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE Id = 20"))
	assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE V = 'later'"), "a stamp past the run's start waits for a later run")
	assert.Equal(t, int64(49), count(t, e.replica, "SELECT COUNT(*) FROM stamped"))
}

// cutDoer runs source work through a real manager until the n-th call,
// which it refuses as if the run had been killed there.
type cutDoer struct {
	d      *manager.Manager
	calls  *int
	n      int
	cancel context.CancelFunc
}

func (c cutDoer) Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	if *c.calls++; *c.calls == c.n {
		c.cancel()
		return ctx.Err()
	}
	return c.d.Do(ctx, fn)
}

func (c cutDoer) Close() error { return c.d.Close() }

// A first copy killed after the replica table was created (without its
// secondary indexes, built after the copy) but before any chunk committed
// still ends with every index of the source once the next run completes.
func TestReplicateKilledBeforeFirstChunkBuildsIndexes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.realTable(t, "patient", 50, 1)
	cfg := e.config(t, 20)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	calls := 0
	sum, err := replicate.Run(ctx, e.deps(cfg), replicate.Options{
		Manager: &mo,
		// 1: schema, 2: SHOW CREATE TABLE, 3: the first chunk.
		NewDoer: func(db *sql.DB) replicate.Doer {
			return cutDoer{d: manager.New(db, mo), calls: &calls, n: 3, cancel: cancel}
		},
	})
	require.NoError(t, err)
	require.Equal(t, 1, sum.Failed())
	require.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM patient"), "killed before the first chunk")
	require.Less(t, len(indexes(t, e.replica, "patient")), len(indexes(t, e.fixture, "patient")), "secondary indexes wait for the end of the copy")

	e.run(t, cfg, replicate.Options{})
	e.assertSame(t)
}

// gaugeDoer runs source work through a real manager and records the
// source connection (CONNECTION_ID) each call ran on and how many calls
// were in flight at once. Counting connections needs no overlap in time,
// so no call is held back to make calls overlap.
type gaugeDoer struct {
	d *manager.Manager
	g *gauge
}

type gauge struct {
	mu             sync.Mutex
	inFlight, peak int
	conns          map[int64]bool
}

func (g gaugeDoer) Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	g.g.mu.Lock()
	g.g.inFlight++
	g.g.peak = max(g.g.peak, g.g.inFlight)
	g.g.mu.Unlock()
	defer func() { g.g.mu.Lock(); g.g.inFlight--; g.g.mu.Unlock() }()
	return g.d.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var id int64
		if err := conn.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return err
		}
		g.g.mu.Lock()
		g.g.conns[id] = true
		g.g.mu.Unlock()
		return fn(ctx, conn)
	})
}

func (g gaugeDoer) Close() error { return g.d.Close() }

// Every source query goes through the manager (one per source connection),
// and however many workers copy tables, the whole run's source work happens
// on SourceConns server sessions (one by default): since a session runs one
// statement at a time, no more source statements than that are ever in
// flight at the server, without the test having to catch them overlapping.
func TestSourceConnectionCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	names := []string{"definition", "provider", "clinic", "fee", "carrier", "employee"}
	e.createTables(t, pick(opendental.Real93(), names...))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(t, err)
	for i, n := range names {
		fillTable(t, e.fixture, src.Tables[n], 20, uint64(i))
	}
	cases := []struct {
		conns, want int
	}{{0, 1}, {2, 2}}
	for _, c := range cases {
		t.Run(fmt.Sprintf("source_connections=%d", c.conns), func(t *testing.T) {
			_, err := e.replica.Exec("DROP TABLE IF EXISTS " + strings.Join(append(names, state.CopyStatusTable, state.DeletedRowsTable), ","))
			require.NoError(t, err)
			mo := manager.DefaultOptions()
			mo.RateLimit = 0
			g := &gauge{conns: map[int64]bool{}}
			var doers int
			e.run(t, e.config(t, 5), replicate.Options{Workers: 4, SourceConns: c.conns, Manager: &mo,
				NewDoer: func(db *sql.DB) replicate.Doer {
					doers++
					return gaugeDoer{d: manager.New(db, mo), g: g}
				}})
			assert.Equal(t, c.want, doers, "one manager per source connection")
			assert.Len(t, g.conns, c.want, "source connections used: every one allowed, no more")
			assert.LessOrEqual(t, g.peak, c.want, "source calls in flight at once")
			e.assertSame(t)
		})
	}
}

// lookback_seconds re-reads that far behind the last watermark: a row
// stamped late (behind the watermark already copied) arrives with it and,
// as designed, not without it.
func TestReplicateLookback(t *testing.T) {
	t.Parallel()
	cases := []struct {
		lookback int
		want     int64
	}{{0, 0}, {60, 1}}
	for _, c := range cases {
		t.Run(fmt.Sprintf("lookback=%d", c.lookback), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.stamped(t, 20, "2024-05-01 10:00:00")
			cfg := e.config(t, 5)
			cfg.Tables["stamped"].LookbackSeconds = c.lookback
			e.run(t, cfg, replicate.Options{})

			_, err := e.fixture.Exec("INSERT INTO stamped (V, SecDateTEdit) VALUES ('late', '2024-05-01 09:59:30')")
			require.NoError(t, err)
			r := byTable(e.run(t, cfg, replicate.Options{}))["stamped"]
			assert.Equal(t, state.ModeIncremental, r.Mode)
			assert.Equal(t, c.want, count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE V = 'late'"))
		})
	}
}

// A composite primary key (integer and text) is paged on, upserted and
// compared for deletes column by column; deleted keys are recorded as JSON
// arrays in primary-key order.
func TestReplicateCompositeKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.fixture.Exec("CREATE TABLE pairs (Grp INT NOT NULL, Code VARCHAR(10) NOT NULL, V VARCHAR(20) NOT NULL," +
		" SecDateTEdit TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, PRIMARY KEY (Grp, Code)) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = e.fixture.Exec("INSERT INTO pairs (Grp, Code, V, SecDateTEdit) SELECT seq % 4, CONCAT('c', seq), seq, '2024-05-01 10:00:00' FROM seq_1_to_30")
	require.NoError(t, err)
	cfg := e.config(t, 4)
	require.Equal(t, tables.Incremental, cfg.Tables["pairs"].Strategy)
	require.Equal(t, []string{"Grp", "Code"}, cfg.Tables["pairs"].PrimaryKey)
	r := byTable(e.run(t, cfg, replicate.Options{}))["pairs"]
	assert.Equal(t, int64(30), r.RowsWritten)
	e.assertSame(t)

	for _, q := range []string{
		"UPDATE pairs SET V = 'u', SecDateTEdit = '2024-05-02 00:00:00' WHERE Grp IN (1, 2)", // one stamp over many chunks
		"DELETE FROM pairs WHERE Grp = 3 AND Code IN ('c3', 'c27')",
		"INSERT INTO pairs (Grp, Code, V, SecDateTEdit) VALUES (0, 'c0', 'new', '2024-05-02 00:00:00')",
	} {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
	r = byTable(e.run(t, cfg, replicate.Options{}))["pairs"]
	assert.Equal(t, state.ModeIncremental, r.Mode)
	assert.Equal(t, int64(2), r.RowsDeleted)
	e.assertSame(t)
	rows, err := e.replica.Query("SELECT pk_values FROM _pipeline_deleted_rows WHERE table_name = 'pairs'")
	require.NoError(t, err)
	var keys []string
	for rows.Next() {
		var k string
		require.NoError(t, rows.Scan(&k))
		keys = append(keys, k)
	}
	require.NoError(t, rows.Err())
	assert.ElementsMatch(t, []string{`["3","c3"]`, `["3","c27"]`}, keys)
}

// Rows changed or deleted at the source while a copy runs, behind its
// cursor, are taken by the next run: the replica ends identical.
func TestReplicateRowsChangedDuringRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stamped(t, 30, "2024-05-01 10:00:00")
	cfg := e.config(t, 6)
	once := func(qs ...string) func(string, int) {
		done := false
		return func(string, int) {
			if done {
				return
			}
			done = true
			for _, q := range qs {
				_, err := e.fixture.Exec(q)
				assert.NoError(t, err, q)
			}
		}
	}
	steps := []struct {
		name string
		opts replicate.Options
		mode string
	}{
		{"full copy, rows 1 and 2 changed after the first chunk", replicate.Options{
			// Row 29, ahead of the cursor, is stamped a second later than row 1:
			// a watermark taken at the end of the copy would pass row 1 by.
			OnChunk: once("UPDATE stamped SET V = 'during full', SecDateTEdit = '2024-06-01 00:00:00' WHERE Id = 1", "DELETE FROM stamped WHERE Id = 2",
				"UPDATE stamped SET V = 'ahead', SecDateTEdit = '2024-06-01 00:00:01' WHERE Id = 29"),
		}, state.ModeFull},
		{"next run", replicate.Options{}, state.ModeIncremental},
		{"incremental, rows 3 and 15 changed after the first chunk", replicate.Options{
			OnChunk: once("UPDATE stamped SET V = 'during incr' WHERE Id = 3", "DELETE FROM stamped WHERE Id = 15"),
		}, state.ModeIncremental},
		{"next run", replicate.Options{}, state.ModeIncremental},
	}
	for i, s := range steps {
		if i == 2 {
			_, err := e.fixture.Exec("UPDATE stamped SET V = CONCAT('u', Id) WHERE Id BETWEEN 3 AND 20")
			require.NoError(t, err)
		}
		r := byTable(e.run(t, cfg, s.opts))["stamped"]
		assert.Equal(t, s.mode, r.Mode, s.name)
	}
	e.assertSame(t)
	assert.Equal(t, int64(2), count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE V LIKE 'during%'"))
	assert.Equal(t, int64(2), count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_deleted_rows"))
}

// detect_deletes: false leaves rows deleted at the source in the replica and
// records nothing; the default removes and records them.
func TestReplicateDetectDeletesPerTable(t *testing.T) {
	t.Parallel()
	off := false
	cases := []struct {
		name        string
		detect      *bool
		left, noted int64
	}{{"default on", nil, 9, 1}, {"off", &off, 10, 0}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, err := e.fixture.Exec("CREATE TABLE plain (Id INT NOT NULL PRIMARY KEY, V INT NOT NULL) ENGINE=MyISAM")
			require.NoError(t, err)
			_, err = e.fixture.Exec("INSERT INTO plain SELECT seq, seq FROM seq_1_to_10")
			require.NoError(t, err)
			cfg := e.config(t, 4)
			cfg.Tables["plain"].DetectDeletes = c.detect
			e.run(t, cfg, replicate.Options{})
			_, err = e.fixture.Exec("DELETE FROM plain WHERE Id = 6")
			require.NoError(t, err)
			e.run(t, cfg, replicate.Options{})
			assert.Equal(t, c.left, count(t, e.replica, "SELECT COUNT(*) FROM plain"))
			assert.Equal(t, c.noted, count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_deleted_rows WHERE table_name = 'plain'"))
		})
	}
}

// A primary key of latin1 text comes back from the source as raw latin1
// bytes, which cannot travel back as a query argument (the connection
// speaks UTF-8): keyset paging failed and delete detection took such keys
// for deleted rows. These tables are copied whole, like a keyless one.
func TestReplicateLatin1TextKey(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{100, 3} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			_, err := e.fixture.Exec("CREATE TABLE lk (K VARCHAR(10) CHARACTER SET latin1 NOT NULL PRIMARY KEY, V INT NOT NULL) ENGINE=MyISAM")
			require.NoError(t, err)
			_, err = e.fixture.Exec("INSERT INTO lk VALUES ('a',1),('b',2),('café',3),('d',4),('été',5),('z',6),('über',7)")
			require.NoError(t, err)
			cfg := e.config(t, batch)
			e.run(t, cfg, replicate.Options{})
			e.assertSame(t)

			_, err = e.fixture.Exec("DELETE FROM lk WHERE K IN ('b', 'été')")
			require.NoError(t, err)
			_, err = e.fixture.Exec("UPDATE lk SET V = 30 WHERE K = 'café'")
			require.NoError(t, err)
			r := byTable(e.run(t, cfg, replicate.Options{}))["lk"]
			assert.Equal(t, state.ModeShadow, r.Mode)
			e.assertSame(t)
		})
	}
}

// A nullable watermark would never select the rows where it is NULL: the
// table fails with an error saying so and how to fix it, and nothing is
// written for it; the other tables run.
func TestReplicateNullableWatermarkRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, err := e.fixture.Exec("CREATE TABLE loose (Id INT NOT NULL PRIMARY KEY, Edited DATETIME NULL) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = e.fixture.Exec("INSERT INTO loose VALUES (1, '2024-05-01 10:00:00'), (2, NULL)")
	require.NoError(t, err)
	e.createTables(t, pick(opendental.Real93(), "definition"))
	cfg := e.config(t, 10)
	cfg.Tables["loose"].Strategy, cfg.Tables["loose"].WatermarkColumns = tables.Incremental, []string{"Edited"}
	sum, err := replicate.Run(context.Background(), e.deps(cfg), replicate.Options{})
	require.NoError(t, err)
	res := byTable(sum)
	require.Error(t, res["loose"].Err)
	assert.Contains(t, res["loose"].Err.Error(), "watermark column Edited of loose is nullable")
	assert.Contains(t, res["loose"].Err.Error(), "extraction_strategy: full_table")
	assert.NoError(t, res["definition"].Err)
	assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME='loose'"))
}

// Tables the source gained (an OpenDental upgrade adds some) are not
// copied until discover lists them, and the run says so.
func TestReplicateReportsTablesMissingFromConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createTables(t, pick(opendental.Real93(), "definition"))
	cfg := e.config(t, 100)
	e.createTables(t, pick(opendental.Real93(), "provider", "clinic"))
	sum := e.run(t, cfg, replicate.Options{})
	assert.Equal(t, []string{"clinic", "provider"}, sum.Unlisted)
	var out strings.Builder
	sum.Write(&out)
	assert.Contains(t, out.String(), "2 source tables not in tables.yml, not copied (run `pipeline discover`): clinic, provider")

	cfg.Tables["clinic"] = &tables.Table{Name: "clinic", Strategy: tables.FullTable, Exclude: true}
	assert.Equal(t, []string{"provider"}, e.run(t, cfg, replicate.Options{}).Unlisted, "an excluded table is listed")
}

// The pipeline's tables in the replica live under the reserved prefix
// _pipeline_: source tables called etl_copy_status and etl_deleted_rows
// (our tables' former names) are ordinary tables that replicate like any
// other, and a source table named _pipeline_… is refused, by name, with the
// fix: reported when tables.yml does not list it, failed when it does.
func TestReplicateReservedAndFormerBookkeepingNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, q := range []string{
		"CREATE TABLE etl_copy_status (Id INT NOT NULL PRIMARY KEY, Note VARCHAR(20) NOT NULL) ENGINE=MyISAM",
		"CREATE TABLE etl_deleted_rows (Id INT NOT NULL PRIMARY KEY, pk_values TEXT NULL) ENGINE=MyISAM",
		"CREATE TABLE _pipeline_notes (Id INT NOT NULL PRIMARY KEY) ENGINE=MyISAM",
		"INSERT INTO etl_copy_status VALUES (1, 'one'), (2, 'two')",
		"INSERT INTO etl_deleted_rows VALUES (7, '[\"x\"]')",
		"INSERT INTO _pipeline_notes VALUES (1)",
	} {
		_, err := e.fixture.Exec(q)
		require.NoError(t, err, q)
	}
	cfg := e.config(t, 10)
	sum := e.run(t, cfg, replicate.Options{})
	res := byTable(sum)
	require.Contains(t, res, "etl_copy_status")
	require.Contains(t, res, "etl_deleted_rows")
	assert.Equal(t, []string{"_pipeline_notes"}, sum.Reserved)
	assert.Empty(t, sum.Unlisted)
	var out strings.Builder
	sum.Write(&out)
	assert.Contains(t, out.String(), "_pipeline_notes")
	assert.Contains(t, out.String(), "rename them at the source")
	for _, tb := range []string{"etl_copy_status", "etl_deleted_rows"} {
		st, err := schema.ReadTable(context.Background(), e.fixture, tb)
		require.NoError(t, err)
		assert.Equal(t, fingerprint(t, e.fixture, tb, st.Columns), fingerprint(t, e.replica, tb, st.Columns), "content of %s", tb)
	}
	assert.Equal(t, int64(2), count(t, e.replica, "SELECT COUNT(*) FROM _pipeline_copy_status WHERE status = 'ok'"), "our state, beside the copies")

	cfg.Tables["_pipeline_notes"] = &tables.Table{Name: "_pipeline_notes", PrimaryKey: []string{"Id"}, Strategy: tables.FullTable, Importance: tables.Standard}
	sum, err := replicate.Run(context.Background(), e.deps(cfg), replicate.Options{})
	require.NoError(t, err)
	res = byTable(sum)
	require.Error(t, res["_pipeline_notes"].Err)
	assert.ErrorIs(t, res["_pipeline_notes"].Err, state.ErrReserved)
	assert.ErrorContains(t, res["_pipeline_notes"].Err, "_pipeline_notes")
	assert.NoError(t, res["etl_copy_status"].Err)
	assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME = '_pipeline_notes'"))
}

// A replica written by an older version keeps its state under etl_…: the
// next run renames the state tables and carries on from that state (an
// unchanged table is still skipped), even when the source now has a table
// called etl_copy_status of its own.
func TestReplicateMigratesFormerStateTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.realTable(t, "definition", 20, 1)
	cfg := e.config(t, 10)
	e.secondPasses(t) // the second run finds definition unchanged
	e.run(t, cfg, replicate.Options{})
	_, err := e.replica.Exec("RENAME TABLE _pipeline_copy_status TO etl_copy_status, _pipeline_deleted_rows TO etl_deleted_rows")
	require.NoError(t, err)
	seq := count(t, e.replica, "SELECT change_seq FROM etl_copy_status WHERE table_name = 'definition'")

	_, err = e.fixture.Exec("CREATE TABLE etl_copy_status (Id INT NOT NULL PRIMARY KEY) ENGINE=MyISAM")
	require.NoError(t, err)
	_, err = e.fixture.Exec("INSERT INTO etl_copy_status VALUES (1), (2), (3)")
	require.NoError(t, err)
	cfg.Tables["etl_copy_status"] = &tables.Table{Name: "etl_copy_status", PrimaryKey: []string{"Id"}, Strategy: tables.FullTable, Importance: tables.Standard}
	res := byTable(e.run(t, cfg, replicate.Options{}))
	assert.Equal(t, state.ModeSkip, res["definition"].Mode, "the migrated state says definition is unchanged")
	assert.Equal(t, seq, count(t, e.replica, "SELECT change_seq FROM _pipeline_copy_status WHERE table_name = 'definition'"))
	assert.Equal(t, int64(3), count(t, e.replica, "SELECT COUNT(*) FROM etl_copy_status"), "the source's own etl_copy_status, copied")
	assert.Zero(t, count(t, e.replica, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA=DATABASE() AND TABLE_NAME = 'etl_deleted_rows'"))
	e.assertSame(t)
}

// Freshness (issue 8 item 12): rows changed in the very second a run starts
// reach the replica in that run, and no row is ever skipped: rows sharing
// that second's stamp across chunk boundaries are all copied, a row changed
// in that second behind the copy's cursor is taken by the next run, and a
// row stamped in the future never becomes the watermark (which would hide
// every later change). The run's start second is injected (SourceNow) and
// the source's stamps are explicit: no test sleeps.
func TestReplicateFreshnessSameSecond(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.stamped(t, 30, "2024-06-01 11:59:00")
	_, err := e.fixture.Exec("INSERT INTO stamped (Id, V, SecDateTEdit) VALUES (40, 'future', '2037-12-31 00:00:00')")
	require.NoError(t, err)
	cfg := e.config(t, 4)
	e.run(t, cfg, replicate.Options{SourceNow: at(t, "2024-06-01 11:59:30")})
	assert.Equal(t, "2024-06-01 11:59:00", countText(t, e.replica, "SELECT watermark FROM _pipeline_copy_status WHERE table_name = 'stamped'"),
		"the full copy's watermark is the highest stamp before its start, not the future one")

	// Ten rows change in second 12:00:00 and the run starts in that second.
	// While it copies them, row 1 (already copied) changes again in the same
	// second and a new row arrives (ahead of the cursor).
	_, err = e.fixture.Exec("UPDATE stamped SET V = CONCAT('noon', Id), SecDateTEdit = '2024-06-01 12:00:00' WHERE Id <= 10")
	require.NoError(t, err)
	done := false
	during := func(string, int) {
		if done {
			return
		}
		done = true
		for _, q := range []string{
			"UPDATE stamped SET V = 'noon again', SecDateTEdit = '2024-06-01 12:00:00' WHERE Id = 1",
			"INSERT INTO stamped (Id, V, SecDateTEdit) VALUES (31, 'noon new', '2024-06-01 12:00:00')",
		} {
			_, err := e.fixture.Exec(q)
			assert.NoError(t, err, q)
		}
	}
	r := byTable(e.run(t, cfg, replicate.Options{SourceNow: at(t, "2024-06-01 12:00:00"), OnChunk: during}))["stamped"]
	assert.Equal(t, state.ModeIncremental, r.Mode)
	assert.Equal(t, int64(10), count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE V LIKE 'noon%' AND Id <= 10"),
		"every row changed in the run's second is copied by that run")
	assert.Equal(t, int64(1), count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE Id = 31"), "a row arriving ahead of the cursor too")
	assert.Equal(t, int64(31), r.RowsRead, "from the last watermark (11:59:00) on, inclusive: 20 rows re-read, 10 changed, 1 new")
	assert.Equal(t, "2024-06-01 12:00:00", countText(t, e.replica, "SELECT watermark FROM _pipeline_copy_status WHERE table_name = 'stamped'"))

	// The next run, in the same second again, re-reads that second and takes
	// row 1's second change.
	r = byTable(e.run(t, cfg, replicate.Options{SourceNow: at(t, "2024-06-01 12:00:00")}))["stamped"]
	assert.Equal(t, state.ModeIncremental, r.Mode)
	assert.Equal(t, int64(1), count(t, e.replica, "SELECT COUNT(*) FROM stamped WHERE Id = 1 AND V = 'noon again'"))
	e.assertSame(t)
}

func countText(t testing.TB, db *sql.DB, q string) string {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRow(q).Scan(&s), q)
	return s
}

// The key-range comparison of a full_table table applies exactly the
// ranges that differ, wherever they are: the first, the last, two apart in the middle, with
// updates and deletes of the first and last key, and reads no other.
func TestReplicateDiffFindsChangedRangesAnywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.realTable(t, "clinic", 200, 3)
	cfg := e.config(t, 20) // ten ranges of 20 keys: 1-20, 21-40, … 181-200
	e.run(t, cfg, replicate.Options{})

	_, err := e.fixture.Exec(`DELETE FROM clinic WHERE ClinicNum IN (1, 200);
		UPDATE clinic SET Description = 'changed' WHERE ClinicNum IN (2, 75, 120, 199)`)
	require.NoError(t, err)
	r := byTable(e.run(t, cfg, replicate.Options{}))["clinic"]
	assert.Equal(t, state.ModeDiff, r.Mode)
	assert.Equal(t, int64(4), r.RowsWritten, "the four updated rows")
	assert.Equal(t, int64(2), r.RowsDeleted, "the first and the last key")
	// The source's ranges start at key 2 once key 1 is gone: (…, 21],
	// (61, 81], (101, 121] and (181, 200] differ and are read (20 + 20 + 20
	// + 18 rows); the six between match.
	assert.Equal(t, int64(78), r.RowsRead, "only the four ranges that differ are read")
	e.assertSame(t)
}
