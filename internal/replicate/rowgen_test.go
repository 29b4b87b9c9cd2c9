package replicate_test

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// Test fixtures: a small generic row generator driven by column types, with
// the edge cases the copy must keep: NULL vs empty, zero and half-zero
// dates, control bytes, backslashes, multi-byte text, full-precision floats.

var texts = []string{"", "plain", "tab\there", "new\nline", `back\slash`, "quote'\"", "nul\x00byte", "crlf\r\n", "é€ü", `\N`, "  padded  "}

func genValue(r *rand.Rand, c schema.Column, seq int) any {
	if c.Nullable && r.IntN(8) == 0 {
		return nil
	}
	switch strings.ToLower(c.DataType) {
	case "tinyint":
		return r.IntN(100)
	case "smallint", "mediumint", "int", "integer":
		return r.IntN(30000)
	case "bigint":
		if r.IntN(5) == 0 {
			return int64(r.Uint64() >> 2)
		}
		return r.IntN(1000)
	case "double":
		switch r.IntN(4) {
		case 0:
			return 0.1
		case 1:
			return math.Pi * float64(r.IntN(1000000))
		default:
			return r.NormFloat64() * 1e6
		}
	case "float":
		return float32(r.NormFloat64() * 1e3)
	case "decimal":
		return fmt.Sprintf("%d.%02d", r.IntN(10000), r.IntN(100))
	case "date":
		switch r.IntN(6) {
		case 0:
			return "0000-00-00"
		case 1:
			return "2019-00-00"
		case 2:
			return "0001-01-01"
		}
		return fmt.Sprintf("20%02d-%02d-%02d", r.IntN(25), 1+r.IntN(12), 1+r.IntN(28))
	case "datetime":
		if r.IntN(6) == 0 {
			return "0000-00-00 00:00:00"
		}
		return fmt.Sprintf("20%02d-%02d-%02d %02d:%02d:%02d", r.IntN(25), 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	case "time":
		return fmt.Sprintf("%02d:%02d:%02d", r.IntN(24), r.IntN(60), r.IntN(60))
	case "char", "varchar":
		n := typeLen(c.Type, 10)
		s := texts[r.IntN(len(texts))] + fmt.Sprint(seq)
		return truncRunes(s, n)
	case "blob", "longblob", "mediumblob", "tinyblob", "varbinary", "binary":
		b := make([]byte, r.IntN(20))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		return b
	default: // text types
		return strings.Repeat(texts[r.IntN(len(texts))], 1+r.IntN(4))
	}
}

var lenRE = regexp.MustCompile(`\((\d+)\)`)

func typeLen(t string, def int) int {
	if m := lenRE.FindStringSubmatch(t); m != nil {
		var n int
		fmt.Sscan(m[1], &n)
		return n
	}
	return def
}

func truncRunes(s string, n int) string {
	r := []rune(s)
	if len(r) > n {
		r = r[:n]
	}
	return string(r)
}

// fillTable inserts n generated rows into table (auto-increment keys and
// timestamp columns take their defaults).
func fillTable(t testing.TB, db *sql.DB, meta *schema.Table, n int, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	var cols []schema.Column
	for _, c := range meta.Columns {
		if strings.Contains(strings.ToLower(c.Extra), "auto_increment") || strings.EqualFold(c.DataType, "timestamp") {
			continue
		}
		cols = append(cols, c)
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
	}
	const per = 50
	for done := 0; done < n; done += per {
		var rows []string
		var args []any
		for i := done; i < min(n, done+per); i++ {
			var ph []string
			for _, c := range cols {
				v := genValue(r, c, i)
				if isKey(meta, c.Name) && strings.Contains(strings.ToLower(c.DataType), "int") {
					v = i + 1
				}
				ph = append(ph, "?")
				args = append(args, v)
			}
			rows = append(rows, "("+strings.Join(ph, ",")+")")
		}
		q := "INSERT IGNORE INTO " + "`" + meta.Name + "`"
		if len(cols) == 0 {
			q += " () VALUES " + strings.Repeat("(),", min(n, done+per)-done)
			q = strings.TrimSuffix(q, ",")
		} else {
			q += " (" + "`" + strings.Join(names, "`,`") + "`" + ") VALUES " + strings.Join(rows, ",")
		}
		_, err := db.ExecContext(context.Background(), q, args...)
		require.NoError(t, err, "fill %s", meta.Name)
	}
}

func isKey(m *schema.Table, col string) bool {
	for _, k := range m.PrimaryKey {
		if strings.EqualFold(k, col) {
			return true
		}
	}
	return false
}
