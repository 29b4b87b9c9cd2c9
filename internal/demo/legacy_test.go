package demo

import (
	"context"
	"database/sql"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/opendental"
)

// legacyCondition is the SQL test for a column holding its kind of legacy value.
func legacyCondition(col string, kind legacyKind) string {
	switch kind {
	case zeroDate:
		return "CAST(`" + col + "` AS CHAR) = '0000-00-00'"
	case zeroDateTime:
		return "CAST(`" + col + "` AS CHAR) = '0000-00-00 00:00:00'"
	case partialDate:
		return "CAST(`" + col + "` AS CHAR) LIKE '____-00-00' AND CAST(`" + col + "` AS CHAR) NOT LIKE '0000-%'"
	default:
		return "INSTR(CAST(`" + col + "` AS BINARY), X'00') > 0"
	}
}

func TestSeedLegacyValues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	legacy, _ := demoDB(t, "demo_legacy_on")
	plain, _ := demoDB(t, "demo_legacy_off")
	const scale, minRows = tinyScale / 2, 3
	rep, err := Seed(ctx, legacy, Options{Scale: scale, Seed: 11, MinRows: minRows, LegacyValues: true})
	require.NoError(t, err)
	off, err := Seed(ctx, plain, Options{Scale: scale, Seed: 11, MinRows: minRows})
	require.NoError(t, err)
	assert.Zero(t, off.Legacy, "no legacy values without the option")

	plan, err := PlannedRows(scale, minRows)
	require.NoError(t, err)
	require.Greater(t, plan["procedurelog"], int64(LegacyEvery), "the scale puts more than one legacy row into procedurelog")
	tables, err := readTables(ctx, legacy)
	require.NoError(t, err)
	var total int64
	for tn, cols := range legacyColumns {
		pk := tables[tn].PK[0]
		for col, kind := range cols {
			want := LegacyCount(plan[tn])
			total += want
			cond := legacyCondition(col, kind)
			t.Run(tn+"."+col, func(t *testing.T) {
				assert.Equal(t, want, count(t, legacy, "SELECT COUNT(*) FROM `"+tn+"` WHERE "+cond), "legacy values with the option")
				assert.Equal(t, want, count(t, legacy, fmt.Sprintf("SELECT COUNT(*) FROM `%s` WHERE %s AND `%s` %% %d = 1", tn, cond, pk, LegacyEvery)),
					"exactly the rows numbered 1 modulo %d", LegacyEvery)
				assert.Zero(t, count(t, plain, "SELECT COUNT(*) FROM `"+tn+"` WHERE "+cond), "none without the option")
				// Off the legacy rows the column holds what the plain seed wrote.
				differ := count(t, legacy, fmt.Sprintf("SELECT COUNT(*) FROM `%s` l JOIN `%s`.`%s` p USING (`%s`) WHERE NOT (BINARY l.`%s` <=> BINARY p.`%s`)",
					tn, dbName(t, plain), tn, pk, col, col))
				assert.Equal(t, want, differ, "only the legacy rows differ from the plain seed")
			})
		}
	}
	assert.Equal(t, total, rep.Legacy, "the report counts every legacy value")

	// The legacy values are drawn in place of ordinary ones, not in
	// addition: every other table is identical to the plain seed's.
	a, b := checksums(t, legacy), checksums(t, plain)
	for _, d := range opendental.Full408() {
		if _, ok := legacyColumns[d.Name]; ok {
			assert.NotEqual(t, b[d.Name], a[d.Name], "%s carries legacy values", d.Name)
			continue
		}
		assert.Equal(t, b[d.Name], a[d.Name], "%s is the same with or without legacy values", d.Name)
	}
}

func dbName(t *testing.T, db *sql.DB) string {
	t.Helper()
	var s string
	require.NoError(t, db.QueryRow("SELECT DATABASE()").Scan(&s))
	return s
}

func TestLegacyLiteral(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		kind  legacyKind
		plain string
		key   int64
		want  string
	}{
		{"zero date", zeroDate, "'2019-03-04'", 1, "'0000-00-00'"},
		{"zero datetime", zeroDateTime, "'0001-01-01 00:00:00'", 1, "'0000-00-00 00:00:00'"},
		{"partial date keeps the drawn year", partialDate, "'1987-05-12'", 1, "'1987-00-00'"},
		{"partial date without a drawn date", partialDate, "NULL", 3, "'1970-00-00'"},
		{"NUL byte after the drawn note", nulByte, `'line one\nline two'`, 1, `'line one\nline two\0'`},
		{"NUL byte in an empty note", nulByte, "''", 1, `'\0'`},
		{"NUL byte for a NULL note", nulByte, "NULL", 1, `'imported\0'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// plain shares the buffer's memory, as it does in gen.value.
			buf := append([]byte("(1,"), tt.plain...)
			got := tt.kind.literal(buf[:3], buf[3:], tt.key)
			assert.Equal(t, "(1,"+tt.want, string(got))
		})
	}
}

func TestLegacyCount(t *testing.T) {
	t.Parallel()
	tests := []struct{ rows, want int64 }{{0, 0}, {1, 1}, {200, 1}, {201, 2}, {401, 3}, {1000, 5}}
	for _, tt := range tests {
		assert.Equal(t, tt.want, LegacyCount(tt.rows), "rows %d", tt.rows)
		var n int64
		for k := int64(1); k <= tt.rows; k++ {
			if legacyRow(k) {
				n++
			}
		}
		assert.Equal(t, n, LegacyCount(tt.rows), "LegacyCount agrees with legacyRow for %d rows", tt.rows)
	}
}
