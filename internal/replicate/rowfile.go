package replicate

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/state"
)

// rowFile accumulates rows in the text format of LOAD DATA (tab-separated,
// backslash escapes, \N for NULL). Values are the source's bytes unchanged:
// the file is loaded with CHARACTER SET binary, so nothing is converted.
type rowFile struct {
	buf  bytes.Buffer
	rows int

	keepKeys bool     // also list each row's key (as JSON), for delete detection
	keys     []string // filled by readSource when keepKeys
}

func (f *rowFile) reset() { f.buf.Reset(); f.rows = 0; f.keys = f.keys[:0] }

func (f *rowFile) add(vals []sql.RawBytes) {
	for i, v := range vals {
		if i > 0 {
			f.buf.WriteByte('\t')
		}
		if v == nil {
			f.buf.WriteString(`\N`)
			continue
		}
		start := 0
		for j, b := range v {
			var esc string
			switch b {
			case '\\':
				esc = `\\`
			case '\t':
				esc = `\t`
			case '\n':
				esc = `\n`
			case '\r':
				esc = `\r`
			case 0:
				esc = `\0`
			default:
				continue
			}
			f.buf.Write(v[start:j])
			f.buf.WriteString(esc)
			start = j + 1
		}
		f.buf.Write(v[start:])
	}
	f.buf.WriteByte('\n')
	f.rows++
}

var readerSeq atomic.Int64

// loadRows writes the file into table with LOAD DATA LOCAL … REPLACE (an
// upsert by primary key: re-running a chunk is harmless) and returns the
// server's warning count, which must be zero for an exact copy.
func loadRows(ctx context.Context, ex interface {
	state.Execer
	querier
}, table string, cols []schema.Column, f *rowFile) (int, error) {
	if f.rows == 0 {
		return 0, nil
	}
	name := "replicate-" + strconv.FormatInt(readerSeq.Add(1), 10)
	data := f.buf.Bytes()
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(data) })
	defer mysql.DeregisterReaderHandler(name)
	q := "LOAD DATA LOCAL INFILE 'Reader::" + name + "' REPLACE INTO TABLE " + quoteIdent(table) +
		` CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' ` + loadColumns(cols)
	if _, err := ex.ExecContext(ctx, q); err != nil {
		return 0, fmt.Errorf("load %d rows into replica %s: %w", f.rows, table, err)
	}
	var warnings int
	if err := scanOne(ctx, ex, "SELECT @@warning_count", &warnings); err != nil {
		return 0, fmt.Errorf("read warnings of load into %s: %w", table, err)
	}
	if warnings > 0 {
		return warnings, fmt.Errorf("load into replica %s: %d values would change (%s); the replica table must match the source definition",
			table, warnings, firstWarnings(ctx, ex))
	}
	return 0, nil
}

// loadColumns is the column list of LOAD DATA. A YEAR given as the text
// "0000" would load as 2000, so YEAR goes through a variable as a number.
// MariaDB's UUID, INET4 and INET6 take a binary string as their binary
// form (a 16-byte INET6 text such as 2001:db8:0:1::1a would load as
// another address, a longer one fails), so their text goes through a
// variable converted to a character set. A generated column's value is
// read into a variable and dropped: the replica computes it from the same
// expression (MariaDB would ignore it anyway; MySQL refuses it).
func loadColumns(cols []schema.Column) string {
	var list, set []string
	for i, c := range cols {
		v := "@v" + strconv.Itoa(i)
		switch dt := strings.ToLower(c.DataType); {
		case c.Computed:
			list = append(list, v)
		case dt == "year":
			list = append(list, v)
			set = append(set, quoteIdent(c.Name)+" = "+v+" + 0")
		case dt == "uuid" || dt == "inet4" || dt == "inet6":
			list = append(list, v)
			set = append(set, quoteIdent(c.Name)+" = CONVERT("+v+" USING ascii)")
		default:
			list = append(list, quoteIdent(c.Name))
		}
	}
	out := "(" + strings.Join(list, ",") + ")"
	if len(set) > 0 {
		out += " SET " + strings.Join(set, ", ")
	}
	return out
}

func firstWarnings(ctx context.Context, q querier) string {
	rows, err := q.QueryContext(ctx, "SHOW WARNINGS LIMIT 3")
	if err != nil {
		return "warnings unreadable: " + err.Error()
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var level, msg string
		var code int
		if rows.Scan(&level, &code, &msg) == nil {
			out = append(out, msg)
		}
	}
	return strings.Join(out, "; ")
}

func identList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ",")
}
