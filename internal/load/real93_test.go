package load

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/discover"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

const real93Rows = 12

var genTexts = []string{"", "plain", "tab\there", "new\nline", `back\slash`, "quote'\"", "nul\x00byte", "é€ü 😀", `\N`, "  padded  ", "Ünïcödé"}

// genValue is a small generic generator from the column type: row i,
// column j. Dates include zero and partial-zero values; text includes the
// characters COPY gives meaning to.
func genValue(c schema.Column, key bool, i, j int) any {
	if key {
		return strconv.Itoa(i + 1)
	}
	if c.Nullable && (i+j)%7 == 3 {
		return nil
	}
	u := c.Unsigned()
	n := i*31 + j*7
	switch c.DataType {
	case "tinyint":
		if u {
			return strconv.Itoa(n % 256)
		}
		return strconv.Itoa(n%256 - 128)
	case "smallint":
		if u {
			return strconv.Itoa(n * 211 % 65536)
		}
		return strconv.Itoa(n*211%65536 - 32768)
	case "int", "mediumint":
		if u {
			return strconv.Itoa(n * 100003)
		}
		return strconv.Itoa(n*100003 - 50000)
	case "bigint":
		if i == 1 && !u {
			return "-9223372036854775808"
		}
		return strconv.Itoa(n * 1000000007)
	case "double":
		return fmt.Sprintf("%g", float64(n)*1.1-0.3)
	case "float":
		return fmt.Sprintf("%g", float64(n)*0.37+1.23456789)
	case "decimal":
		return fmt.Sprintf("%d.%d", n, n%10)
	case "date":
		switch i {
		case 0:
			return "0000-00-00"
		case 1:
			return "2019-00-00"
		}
		return fmt.Sprintf("%04d-%02d-%02d", 1990+n%40, 1+n%12, 1+n%28)
	case "datetime", "timestamp":
		if i == 0 {
			return "0000-00-00 00:00:00"
		}
		// in the past: replication re-reads rows stamped after its start
		return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", 1990+n%35, 1+n%12, 1+n%28, n%24, n%60, (n*7)%60)
	case "time":
		if i == 2 {
			return "-12:34:56"
		}
		return fmt.Sprintf("%02d:%02d:%02d", n%24, n%60, (n*3)%60)
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		s := genTexts[(i+j)%len(genTexts)]
		var max int
		if k := strings.IndexByte(c.Type, '('); k >= 0 {
			fmt.Sscanf(c.Type[k+1:], "%d", &max)
		}
		if max > 0 && len([]rune(s)) > max {
			s = string([]rune(s)[:max])
		}
		return s
	}
	return nil
}

// canonical is a value's comparable text, computed independently on both
// sides: the MySQL value as PostgreSQL should hold it.
func canonicalMySQL(c schema.Column, v sql.RawBytes) string {
	if v == nil {
		return "∅"
	}
	s := string(v)
	switch c.DataType {
	case "date", "datetime", "timestamp":
		if strings.HasPrefix(s, "0000") || s[5:7] == "00" || s[8:10] == "00" {
			return "∅"
		}
	case "float":
		f, _ := strconv.ParseFloat(s, 32)
		return strconv.FormatFloat(f, 'g', -1, 32)
	case "double":
		f, _ := strconv.ParseFloat(s, 64)
		return strconv.FormatFloat(f, 'g', -1, 64)
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "\uFFFD")
	}
	return s
}

func canonicalPG(c schema.Column, v *string) string {
	if v == nil {
		return "∅"
	}
	s := *v
	switch c.DataType {
	case "timestamp":
		return strings.TrimSuffix(s, "+00")
	case "float":
		f, _ := strconv.ParseFloat(s, 32)
		return strconv.FormatFloat(f, 'g', -1, 32)
	case "double":
		f, _ := strconv.ParseFloat(s, 64)
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	return s
}

// TestReal93EndToEnd takes the 93 real OpenDental table definitions through
// both phases as `pipeline run` does (tables.yml from discover, replicate,
// load), twice: a full first run, then a run after a change at the source
// (update, insert, delete). Each time every raw table must hold exactly the
// source's rows: same count, same content checksum.
func TestReal93EndToEnd(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fixture, srcCfg := testdb.MySQL(t, "load_src")
	srcDB, err := factory.New().MySQL(testdb.MySQLConfig(srcCfg.Name, catalog.DatabaseSource))
	require.NoError(t, err)
	t.Cleanup(func() { srcDB.Close() })
	_, repCfg := testdb.MySQL(t, "load")
	replica, err := factory.New().MySQL(repCfg) // the replica as the CLI opens it
	require.NoError(t, err)
	t.Cleanup(func() { replica.Close() })
	pg, _ := testdb.Postgres(t, "load")
	e := &env{my: replica, replica: replica, pg: pg}

	ddls := opendental.Real93()
	require.Len(t, ddls, 93)
	srcs := map[string]*schema.Table{}
	for _, d := range ddls {
		_, err := fixture.Exec(d.SQL)
		require.NoError(t, err, d.Name)
		src, err := describe(ctx, fixture, d.Name)
		require.NoError(t, err)
		srcs[d.Name] = src
		for i := 0; i < real93Rows; i++ {
			insertGenerated(t, fixture, src, i)
		}
	}
	srcSchema, err := schema.Read(ctx, fixture)
	require.NoError(t, err)
	cfg := discover.Build(srcSchema)
	secondPasses(t, fixture) // the second replication finds every table unchanged
	replicateAll := func() {
		t.Helper()
		mo := manager.DefaultOptions()
		mo.RateLimit = 0 // tests are not a busy clinic
		sum, err := replicate.Run(ctx, replicate.Deps{Source: connections.SourceDB{DB: srcDB}, Replica: connections.ReplicationDB{DB: replica}, Tables: cfg, Log: slog.New(slog.DiscardHandler)},
			replicate.Options{Manager: &mo})
		require.NoError(t, err)
		for _, r := range sum.Tables {
			require.NoError(t, r.Err, "replicate %s", r.Table)
		}
	}

	replicateAll()
	res := e.run(t, cfg, Options{Workers: 3}) // tables in parallel; results in run order
	require.Len(t, res.Tables, 93)
	for i, tb := range cfg.Ordered() {
		require.Equal(t, tb.Name, res.Tables[i].Table, "run order kept")
	}
	var converted int64
	for _, r := range res.Tables {
		require.Equal(t, StatusOK, r.Status, "%s: %s", r.Table, r.Error)
		assert.Equal(t, ModeFull, r.Mode, r.Table)
		assert.EqualValues(t, real93Rows, r.RawRows, r.Table)
		converted += r.ConversionTotal()
	}
	assert.Positive(t, converted, "the generated zero dates and NULs were counted")
	assertSameContent(t, fixture, pg, ddls, srcs)

	// Nothing changed at the source: replication moves no change_seq, so
	// the load skips every table.
	before, err := state.ReadCopies(ctx, replica)
	require.NoError(t, err)
	replicateAll()
	after, err := state.ReadCopies(ctx, replica)
	require.NoError(t, err)
	require.Len(t, after, len(before))
	for name, c := range before {
		assert.Equal(t, c.ChangeSeq, after[name].ChangeSeq, "replication moved no change_seq: %s", name)
	}
	for _, r := range e.run(t, cfg, Options{}).Tables {
		assert.Equal(t, ModeUnchanged, r.Mode, "%s: %s", r.Table, r.Reason)
	}

	// A clinic day: patient 2 edited, patient 3 deleted, a new patient, a
	// definition renamed. Only those tables move; raw follows exactly.
	for _, q := range []string{
		"UPDATE patient SET LName = 'Edited', DateTStamp = NOW() WHERE PatNum = 2",
		"DELETE FROM patient WHERE PatNum = 3",
		"UPDATE definition SET ItemName = 'Renamed' WHERE DefNum = 1",
	} {
		_, err := fixture.Exec(q)
		require.NoError(t, err, q)
	}
	insertGenerated(t, fixture, srcs["patient"], real93Rows)
	_, err = fixture.Exec("UPDATE patient SET DateTStamp = NOW() WHERE PatNum = ?", real93Rows+1)
	require.NoError(t, err)
	replicateAll()
	res = e.run(t, cfg, Options{Workers: 3})
	moved := map[string]TableResult{}
	for _, r := range res.Tables {
		require.Equal(t, StatusOK, r.Status, "%s: %s", r.Table, r.Error)
		if r.Mode != ModeUnchanged {
			moved[r.Table] = r
		}
	}
	require.Contains(t, moved, "patient")
	require.Contains(t, moved, "definition")
	assert.Len(t, moved, 2, "only the changed tables are loaded")
	assert.Equal(t, ModeIncremental, moved["patient"].Mode)
	assert.EqualValues(t, 2, moved["patient"].RowsWritten, "patient 2 updated, 13 inserted")
	assert.EqualValues(t, 1, moved["patient"].RowsDeleted)
	assert.EqualValues(t, real93Rows, moved["patient"].RawRows)
	assertSameContent(t, fixture, pg, ddls, srcs)
}

// secondPasses waits until the server's clock has left the current second:
// replication finds a table unchanged by its UPDATE_TIME (the server's wall
// clock, whole seconds, which nothing can inject) only when the table's last
// write was in an earlier second than the run's start.
func secondPasses(t *testing.T, db *sql.DB) {
	t.Helper()
	var start, now string
	require.NoError(t, db.QueryRow("SELECT UTC_TIMESTAMP()").Scan(&start))
	for deadline := time.Now().Add(5 * time.Second); now <= start; {
		require.True(t, time.Now().Before(deadline), "the server clock did not move past %s", start)
		time.Sleep(20 * time.Millisecond)
		require.NoError(t, db.QueryRow("SELECT UTC_TIMESTAMP()").Scan(&now))
	}
}

// insertGenerated inserts generated row i into the source table.
func insertGenerated(t *testing.T, db *sql.DB, src *schema.Table, i int) {
	t.Helper()
	cols := make([]string, len(src.Columns))
	marks := make([]string, len(src.Columns))
	args := make([]any, len(src.Columns))
	for j, c := range src.Columns {
		cols[j], marks[j] = typemap.QuoteMySQL(c.Name), "?"
		args[j] = genValue(c, len(src.PrimaryKey) > 0 && src.PrimaryKey[0] == c.Name, i, j)
	}
	_, err := db.Exec("INSERT INTO "+typemap.QuoteMySQL(src.Name)+" ("+strings.Join(cols, ",")+") VALUES ("+strings.Join(marks, ",")+")", args...)
	require.NoError(t, err, src.Name)
}

// assertSameContent compares every table of the source with its raw copy,
// row by row in key order, through the canonical text of each value.
func assertSameContent(t *testing.T, my *sql.DB, pg *pgxpool.Pool, ddls []opendental.TableDDL, srcs map[string]*schema.Table) {
	t.Helper()
	ctx := context.Background()
	pc, err := pg.Acquire(ctx)
	require.NoError(t, err)
	defer pc.Release()
	_, err = pc.Exec(ctx, "SET TimeZone = 'UTC'")
	require.NoError(t, err)
	for _, d := range ddls {
		src := srcs[d.Name]
		require.NotEmpty(t, src.PrimaryKey, d.Name)
		order := typemap.QuoteMySQL(src.PrimaryKey[0])
		exprs := make([]string, len(src.Columns))
		pgExprs := make([]string, len(src.Columns))
		for j, c := range src.Columns {
			exprs[j] = typemap.QuoteMySQL(c.Name)
			if c.DataType == "float" {
				exprs[j] = "(" + exprs[j] + " + 0e0)"
			}
			pgExprs[j] = typemap.QuotePG(c.Name) + "::text"
		}
		var myRows, pgRows []string
		rows, err := my.Query("SELECT " + strings.Join(exprs, ",") + " FROM " + typemap.QuoteMySQL(d.Name) + " ORDER BY " + order)
		require.NoError(t, err)
		vals := make([]sql.RawBytes, len(exprs))
		ptrs := make([]any, len(exprs))
		for j := range vals {
			ptrs[j] = &vals[j]
		}
		for rows.Next() {
			require.NoError(t, rows.Scan(ptrs...))
			row := make([]string, len(src.Columns))
			for j, c := range src.Columns {
				row[j] = c.Name + "=" + canonicalMySQL(c, vals[j])
			}
			myRows = append(myRows, strings.Join(row, "|"))
		}
		require.NoError(t, rows.Err())
		rows.Close()

		prows, err := pc.Query(ctx, "SELECT "+strings.Join(pgExprs, ",")+" FROM "+qualified(d.Name)+" t ORDER BY t."+typemap.QuotePG(src.PrimaryKey[0]))
		require.NoError(t, err)
		for prows.Next() {
			pv, err := prows.Values()
			require.NoError(t, err)
			row := make([]string, len(src.Columns))
			for j, c := range src.Columns {
				var s *string
				if pv[j] != nil {
					x := pv[j].(string)
					s = &x
				}
				row[j] = c.Name + "=" + canonicalPG(c, s)
			}
			pgRows = append(pgRows, strings.Join(row, "|"))
		}
		require.NoError(t, prows.Err())
		require.Len(t, myRows, real93Rows, d.Name)
		assert.Equal(t, checksum(myRows), checksum(pgRows), "content checksum of %s", d.Name)
		assert.Equal(t, myRows, pgRows, "content of %s", d.Name)
	}
}

func checksum(rows []string) string {
	h := sha256.New()
	for _, r := range rows {
		h.Write([]byte(r))
		h.Write([]byte{'\x1e'})
	}
	return hex.EncodeToString(h.Sum(nil))
}
