package demo

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

const tinyScale = 0.0005 // ≈ 10 k rows

// demoDB gives a test its own fresh database (its name carries "demo") and a
// demo handle on it.
func demoDB(t *testing.T, prefix string) (*sql.DB, providers.DBConfig) {
	t.Helper()
	_, cfg := testdb.MySQL(t, prefix)
	db, err := Open(context.Background(), connOf(cfg), false)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, cfg
}

func connOf(cfg providers.DBConfig) Conn {
	return Conn{Host: cfg.Host, Port: cfg.Port, User: cfg.User, Password: cfg.Password, Database: cfg.Name}
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n sql.NullInt64
	require.NoError(t, db.QueryRow(q, args...).Scan(&n), q)
	return n.Int64
}

// orphans counts non-zero foreign keys with no parent row, over every
// documented foreign key of integer type.
func orphans(t *testing.T, db *sql.DB) map[string]int64 {
	t.Helper()
	tables, err := readTables(context.Background(), db)
	require.NoError(t, err)
	out := map[string]int64{}
	for _, tn := range sortedNames(tables) {
		for _, c := range tables[tn].Columns {
			p := tables[c.FK]
			if c.FK == "" || !isInteger(c.DataType) || p == nil || p.SeqPK < 0 {
				continue
			}
			key := p.Columns[p.SeqPK].Name
			n := count(t, db, "SELECT COUNT(*) FROM `"+tn+"` c LEFT JOIN `"+c.FK+"` p ON p.`"+key+"` = c.`"+c.Name+
				"` WHERE c.`"+c.Name+"` <> 0 AND p.`"+key+"` IS NULL")
			if n > 0 {
				out[tn+"."+c.Name] = n
			}
		}
	}
	return out
}

func TestSeedCreatesAllTablesWithJoiningRows(t *testing.T) {
	t.Parallel()
	db, _ := demoDB(t, "demo_seed")
	ctx := context.Background()
	rep, err := Seed(ctx, db, Options{Scale: tinyScale, Seed: 7, MinRows: 3})
	require.NoError(t, err)
	assert.Equal(t, 408, rep.Tables)
	assert.Greater(t, rep.RowsPerSecond(), 0.0)

	plan, err := PlannedRows(tinyScale, 3)
	require.NoError(t, err)
	var total int64
	for _, d := range opendental.Full408() {
		n := count(t, db, "SELECT COUNT(*) FROM `"+d.Name+"`")
		assert.Equal(t, plan[d.Name], n, "rows of %s", d.Name)
		assert.GreaterOrEqual(t, n, int64(3), "rows of %s", d.Name)
		total += n
	}
	assert.Equal(t, rep.Rows, total)
	assert.Greater(t, plan["securitylog"], plan["patient"], "volumes follow the clinic's proportions")

	assert.Empty(t, orphans(t, db), "every non-zero foreign key has its parent row")
	tests := []struct {
		name string
		q    string
		min  int64
	}{
		{"appointments belong to patients", "SELECT COUNT(*) FROM appointment a JOIN patient p ON p.PatNum = a.PatNum", count(t, db, "SELECT COUNT(*) FROM appointment")},
		{"claim procedures share their procedure's patient", "SELECT COUNT(*) FROM claimproc c JOIN procedurelog p ON p.ProcNum = c.ProcNum AND p.PatNum = c.PatNum", count(t, db, "SELECT COUNT(*) FROM claimproc")},
		{"sentinel dates", "SELECT COUNT(*) FROM procedurelog WHERE DateComplete = '0001-01-01'", 1},
		{"CDT codes", "SELECT COUNT(*) FROM procedurecode WHERE ProcCode REGEXP '^D[0-9]{4}$'", 1},
		{"non-ASCII names", "SELECT COUNT(*) FROM patient WHERE LName <> CONVERT(LName USING ascii) OR FName <> CONVERT(FName USING ascii)", 1},
		{"NULLs", "SELECT COUNT(*) FROM appointment WHERE Note IS NULL", 1},
		{"emoji in the utf8mb4 notes", "SELECT COUNT(*) FROM commlog WHERE HEX(Note) LIKE '%F09F%'", 1},
		{"escapes in notes", "SELECT COUNT(*) FROM commlog WHERE Note LIKE '%\t%' OR Note LIKE '%\n%' OR Note LIKE '%\\\\%'", 1},
		{"change stamps before AsOf", "SELECT COUNT(*) FROM patient WHERE DateTStamp > '2000-01-01' AND DateTStamp <= '2026-01-01'", count(t, db, "SELECT COUNT(*) FROM patient")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.GreaterOrEqual(t, count(t, db, tt.q), tt.min)
		})
	}
	// Emoji survive in the utf8mb4 note columns: the scale is tiny, so write
	// one through the generator's own quoting to prove the column holds it.
	_, err = db.Exec("UPDATE commlog SET Note = " + string(quote(nil, emojiNotes[0], 0)) + " WHERE CommlogNum = 1")
	require.NoError(t, err)
	var note string
	require.NoError(t, db.QueryRow("SELECT Note FROM commlog WHERE CommlogNum = 1").Scan(&note))
	assert.Equal(t, emojiNotes[0], note)
}

func checksums(t *testing.T, db *sql.DB) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, d := range opendental.Full408() {
		var name string
		var sum sql.NullInt64
		require.NoError(t, db.QueryRow("CHECKSUM TABLE `"+d.Name+"`").Scan(&name, &sum))
		out[d.Name] = sum.Int64
	}
	return out
}

func TestSeedIsDeterministic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, _ := demoDB(t, "demo_det_a")
	b, _ := demoDB(t, "demo_det_b")
	_, err := Seed(ctx, a, Options{Scale: tinyScale / 5, Seed: 42, MinRows: 2})
	require.NoError(t, err)
	_, err = Seed(ctx, b, Options{Scale: tinyScale / 5, Seed: 42, MinRows: 2, Workers: 1})
	require.NoError(t, err)
	first := checksums(t, a)
	assert.Equal(t, first, checksums(t, b), "same seed, same data (whatever the worker count)")

	_, err = Seed(ctx, b, Options{Scale: tinyScale / 5, Seed: 43, MinRows: 2})
	require.NoError(t, err)
	assert.NotEqual(t, first["patient"], checksums(t, b)["patient"], "another seed, other data")
}

func TestMutateAppliesADay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := demoDB(t, "demo_mutate")
	_, err := Seed(ctx, db, Options{Scale: tinyScale, Seed: 3, MinRows: 3})
	require.NoError(t, err)

	before := map[string]int64{}
	var totalBefore int64
	for _, d := range opendental.Full408() {
		before[d.Name] = count(t, db, "SELECT COUNT(*) FROM `"+d.Name+"`")
		totalBefore += before[d.Name]
	}
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	rep, err := Mutate(ctx, db, MutateOptions{Fraction: 0.05, Seed: 3, Now: now})
	require.NoError(t, err)
	assert.Positive(t, rep.Rows, "inserted")
	assert.Positive(t, rep.Updated, "updated")
	assert.Positive(t, rep.Deleted, "deleted")
	changed := rep.Rows + rep.Updated + rep.Deleted
	assert.InDelta(t, float64(totalBefore)*0.05, float64(changed), float64(totalBefore)*0.02, "about 5%% of the rows change")

	var totalAfter int64
	for _, d := range opendental.Full408() {
		totalAfter += count(t, db, "SELECT COUNT(*) FROM `"+d.Name+"`")
	}
	assert.Equal(t, totalBefore+rep.Rows-rep.Deleted, totalAfter)

	moved := count(t, db, "SELECT COUNT(*) FROM procedurelog WHERE DateTStamp = ?", now.Format(time.DateTime))
	assert.Positive(t, moved, "updated and inserted procedures carry the new stamp")
	assert.Equal(t, now.Format(time.DateTime), func() string {
		var s string
		require.NoError(t, db.QueryRow("SELECT CAST(MAX(SecDateTEdit) AS CHAR) FROM paysplit").Scan(&s))
		return s
	}(), "the paysplit watermark moved to the mutate's stamp")
	assert.Empty(t, orphans(t, db), "deletes never strand a child row")
}

func TestGuardRefusesNonDemoDatabases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name      string
		prefix    string
		withTable bool
		force     bool
		wantErr   bool
	}{
		{"demo name", "demo_guard", true, false, false},
		{"empty database", "guard_empty", false, false, false},
		{"real-looking data", "guard_clinic", true, false, true},
		{"real-looking data, forced", "guard_forced", true, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, _ := demoDB(t, tt.prefix)
			if tt.withTable {
				_, err := db.Exec("CREATE TABLE patient (PatNum BIGINT PRIMARY KEY, LName VARCHAR(100))")
				require.NoError(t, err)
				_, err = db.Exec("INSERT INTO patient VALUES (1, 'Real')")
				require.NoError(t, err)
			}
			_, err := Seed(ctx, db, Options{Scale: 0.00001, MinRows: 1, Force: tt.force})
			if !tt.wantErr {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrNotDemo)
			assert.Contains(t, err.Error(), "--force")
			assert.Equal(t, int64(1), count(t, db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"), "nothing created")
			assert.Equal(t, "Real", func() string {
				var s string
				require.NoError(t, db.QueryRow("SELECT LName FROM patient").Scan(&s))
				return s
			}(), "nothing changed")
		})
	}
}

func TestQuoteEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		max  int64
		want string
	}{
		{"O'Brien", 0, `'O\'Brien'`},
		{`C:\x`, 0, `'C:\\x'`},
		{"a\nb\r\x00\x1a", 0, `'a\nb\r\0\Z'`},
		{"Nguyễn", 3, "'Ngu'"},
		{"😀😀", 1, "'😀'"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, string(quote(nil, tt.in, tt.max)), tt.in)
	}
}
