// Package rowcopy is how rows travel from the source into the replica byte
// for byte: the select list that reads every column's exact value, the
// LOAD DATA text file the rows are collected in, and the LOAD DATA LOCAL …
// REPLACE that writes them (CHARACTER SET binary: nothing is converted; a
// server warning fails the write rather than let a value change).
// Replication copies with it, and verify's repair re-copies the rows that
// differ with it, so a repaired row is written exactly as a copied one.
package rowcopy

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
)

// SelectList reads cols in order, each as its exact value: FLOAT as DOUBLE
// (MySQL prints FLOAT with 6 significant digits; as DOUBLE it round-trips,
// and the replica's FLOAT column rounds it back to the same float32).
func SelectList(cols []schema.Column) string {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = quote(c.Name)
		if strings.EqualFold(c.DataType, "float") {
			sel[i] = "CAST(" + quote(c.Name) + " AS DOUBLE)"
		}
	}
	return strings.Join(sel, ",")
}

// File accumulates rows in the text format of LOAD DATA (tab-separated,
// backslash escapes, \N for NULL). Values are the source's bytes unchanged:
// the file is loaded with CHARACTER SET binary, so nothing is converted.
type File struct {
	buf  bytes.Buffer
	rows int

	KeepKeys bool     // the reader also lists each row's key (as JSON), e.g. for delete detection
	Keys     []string // the reader's list when KeepKeys
}

// Rows is the number of rows in the file.
func (f *File) Rows() int { return f.rows }

// Reset empties the file (and its key list).
func (f *File) Reset() { f.buf.Reset(); f.rows = 0; f.Keys = f.Keys[:0] }

// Mark is a position in a File: its rows up to there.
type Mark struct{ bytes, rows, keys int }

// Mark returns the file's current end, for Truncate.
func (f *File) Mark() Mark { return Mark{f.buf.Len(), f.rows, len(f.Keys)} }

// Truncate drops the rows added after m.
func (f *File) Truncate(m Mark) { f.buf.Truncate(m.bytes); f.rows = m.rows; f.Keys = f.Keys[:m.keys] }

// Add appends one row of raw values (nil is NULL).
func (f *File) Add(vals []sql.RawBytes) {
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

// Conn is where Load writes: a *sql.Conn or *sql.Tx of the replica.
type Conn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

var readerSeq atomic.Int64

// Load writes f into table with LOAD DATA LOCAL … REPLACE (an upsert by
// primary key: writing a row again is harmless) and returns the server's
// warning count, which must be zero for an exact copy (an error otherwise).
func Load(ctx context.Context, ex Conn, table string, cols []schema.Column, f *File) (int, error) {
	if f.rows == 0 {
		return 0, nil
	}
	name := "rowcopy-" + strconv.FormatInt(readerSeq.Add(1), 10)
	data := f.buf.Bytes()
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(data) })
	defer mysql.DeregisterReaderHandler(name)
	q := "LOAD DATA LOCAL INFILE 'Reader::" + name + "' REPLACE INTO TABLE " + quote(table) +
		` CHARACTER SET binary FIELDS TERMINATED BY '\t' ESCAPED BY '\\' LINES TERMINATED BY '\n' ` + loadColumns(cols)
	if _, err := ex.ExecContext(ctx, q); err != nil {
		return 0, fmt.Errorf("load %d rows into replica %s: %w", f.rows, table, err)
	}
	var warnings int
	if err := schema.ScanOne(ctx, ex, "SELECT @@warning_count", nil, &warnings); err != nil {
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
			set = append(set, quote(c.Name)+" = "+v+" + 0")
		case dt == "uuid" || dt == "inet4" || dt == "inet6":
			list = append(list, v)
			set = append(set, quote(c.Name)+" = CONVERT("+v+" USING ascii)")
		default:
			list = append(list, quote(c.Name))
		}
	}
	out := "(" + strings.Join(list, ",") + ")"
	if len(set) > 0 {
		out += " SET " + strings.Join(set, ", ")
	}
	return out
}

func firstWarnings(ctx context.Context, q Conn) string {
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

func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
