package main

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// The operator's side (issue 11): history, status, notifications, metrics,
// the run window. Each test has its own source, replica and warehouse, and
// a pipeline.yml of its own.

const opsTablesYML = `tables:
  patient:
    primary_key: [PatNum]
    watermark_columns: [DateTStamp]
    extraction_strategy: incremental
    batch_size: 2
    importance: critical
  definition:
    primary_key: [DefNum]
    extraction_strategy: full_table
    batch_size: 100
    importance: reference
`

// opsPipelineYML is the base pipeline.yml; tests append sections.
const opsPipelineYML = `replication:
  workers: 1
  rate_limit_ms: 0
`

// ops is one test's world.
type ops struct {
	dir       string
	src, repl *sql.DB
	pg        *pgxpool.Pool
}

// newOps creates the databases, a source with patient (20 rows) and
// definition (3 rows), tables.yml and pipeline.yml (opsPipelineYML + extra).
func newOps(t *testing.T, extra string) *ops {
	t.Helper()
	vars, srcName, pgName := testVars(t)
	o := &ops{dir: useProcessEnv(t, vars)}
	o.src = openTestMySQL(t, srcName)
	o.repl = openTestMySQL(t, vars["TEST_MYSQL_REPLICATION_DB"])
	o.pg = openTestPostgres(t, pgName)
	mustExec(t, o.src,
		"CREATE TABLE patient (PatNum bigint PRIMARY KEY, LName varchar(50), Birthdate date NOT NULL,"+
			" DateTStamp timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp())",
		"INSERT INTO patient SELECT seq, CONCAT('name ', seq), IF(seq = 3, '0000-00-00', '1980-01-01'), '2024-01-01 00:00:00' + INTERVAL seq MINUTE FROM seq_1_to_20",
		"CREATE TABLE definition (DefNum bigint PRIMARY KEY, ItemName varchar(50))",
		"INSERT INTO definition VALUES (1, 'a'), (2, 'b'), (3, 'c')",
	)
	o.write(t, "tables.yml", opsTablesYML)
	o.write(t, "pipeline.yml", opsPipelineYML+extra)
	return o
}

func (o *ops) write(t *testing.T, name, content string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(o.dir, name), []byte(content), 0o600))
}

// cli runs the command line at clock (nil: the real clock).
func (o *ops) cli(clock func() time.Time, args ...string) (code int, stdout, stderr string) {
	return o.cliCtx(context.Background(), clock, args...)
}

func (o *ops) cliCtx(ctx context.Context, clock func() time.Time, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = dispatchCall(ctx, append([]string{"--config-dir", o.dir, "--env", "test"}, args...),
		call{stdout: &out, stderr: &errOut, clock: clock})
	return code, out.String(), errOut.String()
}

// rows is every row of table in db, as text, in key order: to compare copies.
func rows(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	rs, err := db.Query("SELECT * FROM `" + table + "` ORDER BY 1")
	require.NoError(t, err)
	defer rs.Close()
	cols, err := rs.Columns()
	require.NoError(t, err)
	var out []string
	for rs.Next() {
		vals := make([]sql.RawBytes, len(cols))
		dest := make([]any, len(cols))
		for i := range vals {
			dest[i] = &vals[i]
		}
		require.NoError(t, rs.Scan(dest...))
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = string(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	require.NoError(t, rs.Err())
	return out
}

func count(t *testing.T, pg *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pg.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// stepClock starts at from and moves on by step every time it is read:
// the run window closes after a known number of reads, with no sleeping.
type stepClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

// at is a clock standing still at t.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }
