package replicate_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// Benchmarks (numbers, not pass/fail):
//
//	go test ./internal/replicate -run '^$' -bench . -benchtime 1x
//
// BENCH_ROWS sets the rows per table of BenchmarkFullCopy (default 50000).
// BENCH_RATE_LIMIT_MS sets the manager's gap between source queries (default 0;
// production uses 100). BENCH_WORKERS and BENCH_SOURCE_CONNS set the run's
// parallel tables and source connections (defaults: pipeline.yml's, 2 and 1).

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 50000
}

func benchOptions() replicate.Options {
	o := replicate.Options{Manager: benchManager()}
	o.Workers, _ = strconv.Atoi(os.Getenv("BENCH_WORKERS"))
	o.SourceConns, _ = strconv.Atoi(os.Getenv("BENCH_SOURCE_CONNS"))
	return o
}

func benchManager() *manager.Options {
	mo := manager.DefaultOptions()
	mo.RateLimit = 0
	if n, err := strconv.Atoi(os.Getenv("BENCH_RATE_LIMIT_MS")); err == nil {
		mo.RateLimit = time.Duration(n) * time.Millisecond
	}
	return &mo
}

// grow fills a table to about n rows: 500 generated rows, then doubled by
// INSERT … SELECT (keys renumbered by AUTO_INCREMENT).
func grow(b *testing.B, e *env, meta *schema.Table, n int) {
	fillTable(b, e.fixture, meta, min(n, 500), 1)
	var cols []string
	for _, c := range meta.Columns {
		if !strings.Contains(strings.ToLower(c.Extra), "auto_increment") {
			cols = append(cols, "`"+c.Name+"`")
		}
	}
	list := strings.Join(cols, ",")
	for have := min(n, 500); have < n; have *= 2 {
		_, err := e.fixture.Exec(fmt.Sprintf("INSERT INTO `%s` (%s) SELECT %s FROM `%s` LIMIT %d", meta.Name, list, list, meta.Name, n-have))
		require.NoError(b, err)
	}
}

var benchTables = []string{"patient", "procedurelog", "appointment", "claimproc", "paysplit", "commlog", "securitylog", "adjustment"}

// BenchmarkFullCopy copies a table set with replicate and, on the same data
// in the same run, with `mariadb-dump | mariadb`, and reports both and the ratio.
func BenchmarkFullCopy(b *testing.B) {
	e := newEnv(b)
	e.createTables(b, pick(opendental.Real93(), benchTables...))
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(b, err)
	rows := benchRows()
	for _, n := range benchTables {
		grow(b, e, src.Tables[n], rows)
	}
	cfg := e.config(b, 0)
	s, err := schema.Read(context.Background(), e.fixture)
	require.NoError(b, err)
	var total int64
	var mb float64
	for _, n := range benchTables {
		total += s.Tables[n].Rows
		mb += float64(s.Tables[n].DataBytes) / (1 << 20)
	}
	var repTime, dumpTime time.Duration
	for b.Loop() {
		// replicate into a fresh replica
		rep, _ := testdb.MySQL(b, "bench_rep")
		start := time.Now()
		sum, err := replicate.Run(context.Background(), replicate.Deps{Source: connections.SourceDB{DB: e.source}, Replica: connections.ReplicationDB{DB: rep}, Tables: cfg}, benchOptions())
		require.NoError(b, err)
		require.Zero(b, sum.Failed())
		repTime = time.Since(start)

		// mariadb-dump | mariadb into another fresh database
		_, dstCfg := testdb.MySQL(b, "bench_dump")
		start = time.Now()
		cmd := exec.Command("bash", "-o", "pipefail", "-c", fmt.Sprintf(
			"mariadb-dump -h127.0.0.1 -uroot --skip-lock-tables %s | mariadb -h127.0.0.1 -uroot %s", e.name, dstCfg.Name))
		out, err := cmd.CombinedOutput()
		require.NoError(b, err, string(out))
		dumpTime = time.Since(start)
	}
	b.ReportMetric(float64(total), "rows")
	b.ReportMetric(mb, "MB")
	b.ReportMetric(repTime.Seconds(), "replicate-s")
	b.ReportMetric(dumpTime.Seconds(), "dump-load-s")
	b.ReportMetric(repTime.Seconds()/dumpTime.Seconds(), "ratio")
	b.ReportMetric(float64(total)/repTime.Seconds(), "rows/s")
}

// BenchmarkIncremental408 replicates all 408 OpenDental 24.3 tables
// (BENCH_ROWS_408 rows each, default 100), then times a run with nothing
// changed and a run after 1% of the rows of every table were updated.
func BenchmarkIncremental408(b *testing.B) {
	e := newEnv(b)
	ddls := opendental.Full408()
	require.Len(b, ddls, 408)
	e.createTables(b, ddls)
	src, err := schema.Read(context.Background(), e.fixture)
	require.NoError(b, err)
	rows := 100
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROWS_408")); err == nil && n > 0 {
		rows = n
	}
	for i, d := range ddls {
		fillTable(b, e.fixture, src.Tables[d.Name], rows, uint64(i))
	}
	cfg := e.config(b, 0)
	opts := benchOptions()
	run := func() (replicate.Summary, time.Duration) {
		start := time.Now()
		sum, err := replicate.Run(context.Background(), e.deps(cfg), opts)
		require.NoError(b, err)
		require.Zero(b, sum.Failed())
		return sum, time.Since(start)
	}
	e.secondPasses(b) // the next run may skip what this one copied
	_, first := run()
	var noChange, changed time.Duration
	var changedRows int64
	for b.Loop() {
		sum, d := run()
		noChange = d
		for _, t := range sum.Tables {
			require.Equal(b, state.ModeSkip, t.Mode, t.Table)
		}
		changedRows = touchOnePercent(b, e, src)
		e.secondPasses(b)
		sum, changed = run()
		var read int64
		for _, t := range sum.Tables {
			read += t.RowsRead
		}
		b.ReportMetric(float64(read), "rows-read-after-1%")
	}
	b.ReportMetric(first.Seconds(), "first-full-s")
	b.ReportMetric(noChange.Seconds(), "no-change-s")
	b.ReportMetric(changed.Seconds(), "one-percent-s")
	b.ReportMetric(float64(changedRows), "rows-changed")
}

// touchOnePercent updates 1% (at least one row) of every table with a key,
// changing its first numeric non-key column (ON UPDATE stamps move with it).
func touchOnePercent(b *testing.B, e *env, s *schema.Database) int64 {
	var total int64
	for _, m := range s.Tables {
		if len(m.PrimaryKey) == 0 {
			continue
		}
		var col string
		for _, c := range m.Columns {
			if !isKeyCol(m, c.Name) && strings.Contains(c.DataType, "int") {
				col = c.Name
				break
			}
		}
		if col == "" {
			continue
		}
		var n int64
		require.NoError(b, e.fixture.QueryRow("SELECT COUNT(*) FROM `"+m.Name+"`").Scan(&n))
		res, err := e.fixture.Exec(fmt.Sprintf("UPDATE `%s` SET `%s` = `%s` XOR 1 ORDER BY `%s` LIMIT %d", m.Name, col, col, m.PrimaryKey[0], max(1, n/100)))
		require.NoError(b, err, m.Name)
		k, _ := res.RowsAffected()
		total += k
	}
	return total
}

func isKeyCol(m *schema.Table, col string) bool {
	for _, k := range m.PrimaryKey {
		if strings.EqualFold(k, col) {
			return true
		}
	}
	return false
}
