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

	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// Benchmarks (numbers, not pass/fail):
//
//	go test ./internal/replicate -run '^$' -bench . -benchtime 1x
//
// BENCH_ROWS sets the rows per table of BenchmarkFullCopy (default 50000).
// BENCH_RATE_LIMIT_MS sets the manager's gap between source queries (default 0;
// production uses 100).

func benchRows() int {
	if n, err := strconv.Atoi(os.Getenv("BENCH_ROWS")); err == nil && n > 0 {
		return n
	}
	return 50000
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
func grow(b *testing.B, e *env, meta *replicate.TableMeta, n int) {
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
	src, err := replicate.ReadSchema(context.Background(), e.fixture)
	require.NoError(b, err)
	rows := benchRows()
	for _, n := range benchTables {
		grow(b, e, src.Tables[n], rows)
	}
	cfg := e.config(b, 0)
	s, err := replicate.ReadSchema(context.Background(), e.fixture)
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
		sum, err := replicate.Run(context.Background(), replicate.Deps{Source: e.source, Replica: rep, Tables: cfg},
			replicate.Options{Manager: benchManager()})
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

