// Package typemap decides, from a MySQL column definition alone, the
// PostgreSQL type of its raw column and how each value is written into a
// COPY text stream. Every load path (full and incremental) uses Map, so a
// column always lands the same way. The README's mapping table is the
// table of decisions with their reasons.
package typemap

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// Conv is how a value read in MySQL's text protocol becomes a COPY text field.
type Conv int

const (
	ConvNumber    Conv = iota // digits, sign, point, exponent: written as is
	ConvText                  // NUL bytes stripped, invalid UTF-8 replaced, COPY-escaped
	ConvBytes                 // bytea hex
	ConvBit                   // MySQL's big-endian bytes as a string of n '0'/'1'
	ConvDate                  // zero / impossible dates become NULL
	ConvDatetime              // as ConvDate, time of day kept
	ConvTimestamp             // as ConvDatetime, read in UTC and written with +00
	ConvInterval              // MySQL TIME text, ±838:59:59[.ffffff], is valid interval input
)

var convNames = [...]string{"number", "text", "bytes", "bit", "date", "datetime", "timestamp", "interval"}

func (c Conv) String() string { return convNames[c] }

// Mapping is the decision for one column.
type Mapping struct {
	Source     string // the MySQL COLUMN_TYPE
	Target     string // the PostgreSQL type of the raw column
	Conv       Conv
	SelectExpr string // the expression to read the column with (a quoted identifier unless a cast is needed)
	Override   bool   // Target came from tables.yml column_types
	Bits       int    // width of a bit(n) column (ConvBit), 0 otherwise
	Reason     string
	// Hash, when set, writes each value as its keyed hash instead
	// (tables.yml column_policies hash; internal/policy sets it).
	Hash Hasher
}

// Hasher appends the hash of a value's text to dst; it must write only
// characters that need no COPY escaping (e.g. hex).
type Hasher interface {
	AppendHash(dst, text []byte) []byte
}

// ErrUnknownType is returned for a MySQL type this mapping does not know.
var ErrUnknownType = fmt.Errorf("unknown MySQL type")

// Map decides the raw column of c (as internal/schema read it). override, when not empty, is the
// tables.yml column_types entry: it replaces the PostgreSQL type while the
// value conversion still follows the MySQL type (PostgreSQL casts the text).
func Map(c schema.Column, override string) (Mapping, error) {
	m, err := mapType(c)
	if err != nil && override == "" {
		return Mapping{}, fmt.Errorf("map column %q: %w %q; set tables.yml column_types.%s to a PostgreSQL type", c.Name, err, c.Type, c.Name)
	}
	if err != nil { // unknown type with an override: read as text, let PostgreSQL cast
		m = Mapping{Conv: ConvText, Reason: "unknown MySQL type, read as text"}
	}
	m.Source = c.Type
	m.SelectExpr = QuoteMySQL(c.Name)
	if m.Conv == ConvNumber && (c.DataType == "float") {
		// MySQL prints FLOAT with 6 significant digits, which loses bits;
		// widened to double in the query it prints the exact value, which
		// PostgreSQL real rounds back to the same float32.
		m.SelectExpr = "(" + QuoteMySQL(c.Name) + " + 0e0)"
	}
	if override != "" {
		m.Target = override
		m.Override = true
		m.Reason = "tables.yml column_types override"
	}
	return m, nil
}

func mapType(c schema.Column) (Mapping, error) {
	if m, ok := mapNumber(c); ok {
		return m, nil
	}
	return mapOther(c)
}

// mapNumber decides the integer, decimal, floating-point, bit and year types.
func mapNumber(c schema.Column) (Mapping, bool) {
	u := c.Unsigned()
	switch strings.ToLower(c.DataType) {
	case "tinyint":
		return Mapping{Target: "smallint", Conv: ConvNumber, Reason: "every tinyint, tinyint(1) too, stays an integer: OpenDental keeps enum codes > 1 in them; smallint holds -128..255"}, true
	case "smallint":
		if u {
			return Mapping{Target: "integer", Conv: ConvNumber, Reason: "unsigned smallint reaches 65535 > smallint max"}, true
		}
		return Mapping{Target: "smallint", Conv: ConvNumber, Reason: "same range"}, true
	case "mediumint":
		return Mapping{Target: "integer", Conv: ConvNumber, Reason: "24-bit, signed or not, fits integer"}, true
	case "int", "integer":
		if u {
			return Mapping{Target: "bigint", Conv: ConvNumber, Reason: "unsigned int reaches 4294967295 > integer max"}, true
		}
		return Mapping{Target: "integer", Conv: ConvNumber, Reason: "same range"}, true
	case "bigint":
		if u {
			return Mapping{Target: "numeric(20,0)", Conv: ConvNumber, Reason: "unsigned bigint reaches 18446744073709551615 > bigint max"}, true
		}
		return Mapping{Target: "bigint", Conv: ConvNumber, Reason: "same range"}, true
	case "decimal", "numeric":
		p, s := c.Precision, c.Scale
		if p == 0 {
			p, s = parsePS(c.Type)
		}
		return Mapping{Target: fmt.Sprintf("numeric(%d,%d)", p, s), Conv: ConvNumber, Reason: "exact decimal, same precision and scale"}, true
	case "float":
		return Mapping{Target: "real", Conv: ConvNumber, Reason: "float32; read widened to double so no digit is lost in transit"}, true
	case "double", "real", "double precision":
		return Mapping{Target: "double precision", Conv: ConvNumber, Reason: "float64; MySQL prints shortest round-trip digits"}, true
	case "bit":
		n := c.Precision
		if n == 0 {
			n, _ = parsePS(c.Type)
		}
		if n == 0 {
			n = 1
		}
		return Mapping{Target: fmt.Sprintf("bit(%d)", n), Conv: ConvBit, Bits: int(n), Reason: "same width; every bit kept and readable as a bit string"}, true
	case "year":
		return Mapping{Target: "smallint", Conv: ConvNumber, Reason: "a year number 1901..2155 or 0000; not a date"}, true
	}
	return Mapping{}, false
}

// mapOther decides the temporal, text, binary, spatial and MariaDB types.
func mapOther(c schema.Column) (Mapping, error) {
	switch strings.ToLower(c.DataType) {
	case "date":
		return Mapping{Target: "date", Conv: ConvDate, Reason: "zero and partial-zero dates become NULL, counted"}, nil
	case "datetime":
		return Mapping{Target: "timestamp", Conv: ConvDatetime, Reason: "wall-clock time without zone, microseconds kept; zero dates become NULL, counted"}, nil
	case "timestamp":
		return Mapping{Target: "timestamptz", Conv: ConvTimestamp, Reason: "MySQL stores an instant in UTC; read with time_zone +00:00 and kept as an instant"}, nil
	case "time":
		return Mapping{Target: "interval", Conv: ConvInterval, Reason: "MySQL TIME is a duration (±838:59:59); PostgreSQL time rejects > 24h and negatives"}, nil
	case "char", "varchar", "tinytext", "text", "mediumtext", "longtext":
		return Mapping{Target: "text", Conv: ConvText, Reason: "a length limit could only reject a row; char(n) padding would change values"}, nil
	case "json":
		return Mapping{Target: "text", Conv: ConvText, Reason: "jsonb reorders keys, drops duplicates and rejects \\u0000; text keeps the document as written"}, nil
	case "enum", "set":
		return Mapping{Target: "text", Conv: ConvText, Reason: "the label(s) as MySQL shows them; a PostgreSQL enum would break when a label is added"}, nil
	case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob":
		return Mapping{Target: "bytea", Conv: ConvBytes, Reason: "bytes, unchanged"}, nil
	case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection", "geomcollection":
		return Mapping{Target: "bytea", Conv: ConvBytes, Reason: "MySQL's internal value (4-byte SRID + WKB), unchanged; no PostGIS needed, SRID kept"}, nil
	case "inet4", "inet6", "uuid":
		return Mapping{Target: "text", Conv: ConvText, Reason: "MariaDB prints the canonical text form"}, nil
	}
	return Mapping{}, ErrUnknownType
}

// parsePS reads "(p,s)" or "(p)" out of a COLUMN_TYPE.
func parsePS(columnType string) (int64, int64) {
	i := strings.IndexByte(columnType, '(')
	j := strings.IndexByte(columnType, ')')
	if i < 0 || j < i {
		return 0, 0
	}
	parts := strings.Split(columnType[i+1:j], ",")
	p, _ := strconv.ParseInt(strings.TrimSpace(parts[0]), 10, 64)
	var s int64
	if len(parts) > 1 {
		s, _ = strconv.ParseInt(strings.TrimSpace(parts[1]), 10, 64)
	}
	return p, s
}

// QuoteMySQL quotes a MySQL identifier.
func QuoteMySQL(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }

// QuotePG quotes a PostgreSQL identifier, keeping its case and spaces.
func QuotePG(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// SnakeCase turns a MySQL name into a lower-case snake_case one:
// "PatNum" → "pat_num", "ADACode" → "ada_code", "Mixed Case" → "mixed_case".
func SnakeCase(name string) string {
	rs := []rune(name)
	var b strings.Builder
	isUpper := func(r rune) bool { return r >= 'A' && r <= 'Z' }
	isLower := func(r rune) bool { return r >= 'a' && r <= 'z' }
	isDigit := func(r rune) bool { return r >= '0' && r <= '9' }
	underscore := func() {
		if s := b.String(); s != "" && !strings.HasSuffix(s, "_") {
			b.WriteByte('_')
		}
	}
	for i, r := range rs {
		switch {
		case isUpper(r):
			if i > 0 && (isLower(rs[i-1]) || isDigit(rs[i-1]) || (isUpper(rs[i-1]) && i+1 < len(rs) && isLower(rs[i+1]))) {
				underscore()
			}
			b.WriteRune(r + ('a' - 'A'))
		case isLower(r) || isDigit(r) || r > 127:
			b.WriteRune(r)
		default: // space, punctuation
			underscore()
		}
	}
	return strings.Trim(b.String(), "_")
}
