package typemap

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

func TestMap(t *testing.T) {
	tests := []struct {
		col    schema.Column
		target string
		conv   Conv
	}{
		{schema.Column{Name: "a", DataType: "tinyint", Type: "tinyint(1)"}, "smallint", ConvNumber},
		{schema.Column{Name: "a", DataType: "tinyint", Type: "tinyint(3) unsigned"}, "smallint", ConvNumber},
		{schema.Column{Name: "a", DataType: "smallint", Type: "smallint(5) unsigned"}, "integer", ConvNumber},
		{schema.Column{Name: "a", DataType: "smallint", Type: "smallint(6)"}, "smallint", ConvNumber},
		{schema.Column{Name: "a", DataType: "mediumint", Type: "mediumint(8) unsigned"}, "integer", ConvNumber},
		{schema.Column{Name: "a", DataType: "int", Type: "int(11)"}, "integer", ConvNumber},
		{schema.Column{Name: "a", DataType: "int", Type: "int(10) unsigned"}, "bigint", ConvNumber},
		{schema.Column{Name: "a", DataType: "bigint", Type: "bigint(20)"}, "bigint", ConvNumber},
		{schema.Column{Name: "a", DataType: "bigint", Type: "bigint(20) unsigned"}, "numeric(20,0)", ConvNumber},
		{schema.Column{Name: "a", DataType: "decimal", Type: "decimal(65,30)", Precision: 65, Scale: 30}, "numeric(65,30)", ConvNumber},
		{schema.Column{Name: "a", DataType: "decimal", Type: "decimal(10,2) unsigned"}, "numeric(10,2)", ConvNumber},
		{schema.Column{Name: "a", DataType: "float", Type: "float"}, "real", ConvNumber},
		{schema.Column{Name: "a", DataType: "double", Type: "double"}, "double precision", ConvNumber},
		{schema.Column{Name: "a", DataType: "bit", Type: "bit(1)", Precision: 1}, "bit(1)", ConvBit},
		{schema.Column{Name: "a", DataType: "bit", Type: "bit(64)"}, "bit(64)", ConvBit},
		{schema.Column{Name: "a", DataType: "bit", Type: "bit"}, "bit(1)", ConvBit},
		{schema.Column{Name: "a", DataType: "year", Type: "year(4)"}, "smallint", ConvNumber},
		{schema.Column{Name: "a", DataType: "date", Type: "date"}, "date", ConvDate},
		{schema.Column{Name: "a", DataType: "datetime", Type: "datetime(6)"}, "timestamp", ConvDatetime},
		{schema.Column{Name: "a", DataType: "timestamp", Type: "timestamp"}, "timestamptz", ConvTimestamp},
		{schema.Column{Name: "a", DataType: "time", Type: "time"}, "interval", ConvInterval},
		{schema.Column{Name: "a", DataType: "varchar", Type: "varchar(255)"}, "text", ConvText},
		{schema.Column{Name: "a", DataType: "char", Type: "char(2)"}, "text", ConvText},
		{schema.Column{Name: "a", DataType: "longtext", Type: "longtext"}, "text", ConvText},
		{schema.Column{Name: "a", DataType: "json", Type: "json"}, "text", ConvText},
		{schema.Column{Name: "a", DataType: "enum", Type: "enum('a','b')"}, "text", ConvText},
		{schema.Column{Name: "a", DataType: "set", Type: "set('a','b')"}, "text", ConvText},
		{schema.Column{Name: "a", DataType: "mediumblob", Type: "mediumblob"}, "bytea", ConvBytes},
		{schema.Column{Name: "a", DataType: "varbinary", Type: "varbinary(16)"}, "bytea", ConvBytes},
		{schema.Column{Name: "a", DataType: "geometry", Type: "geometry"}, "bytea", ConvBytes},
		{schema.Column{Name: "a", DataType: "point", Type: "point"}, "bytea", ConvBytes},
	}
	for _, tt := range tests {
		t.Run(tt.col.Type, func(t *testing.T) {
			m, err := Map(tt.col, "")
			require.NoError(t, err)
			assert.Equal(t, tt.target, m.Target)
			assert.Equal(t, tt.conv, m.Conv)
			assert.Equal(t, tt.col.Type, m.Source)
			assert.NotEmpty(t, m.Reason)
			if tt.conv == ConvBit {
				assert.Equal(t, tt.target, fmt.Sprintf("bit(%d)", m.Bits), "width for the encoder")
			}
		})
	}
}

func TestMapFloatReadWidened(t *testing.T) {
	m, err := Map(schema.Column{Name: "x`y", DataType: "float", Type: "float"}, "")
	require.NoError(t, err)
	assert.Equal(t, "(`x``y` + 0e0)", m.SelectExpr)
}

func TestMapOverrideAndUnknown(t *testing.T) {
	m, err := Map(schema.Column{Name: "IsHidden", DataType: "tinyint", Type: "tinyint(1)"}, "boolean")
	require.NoError(t, err)
	assert.Equal(t, "boolean", m.Target)
	assert.True(t, m.Override)
	assert.Equal(t, ConvNumber, m.Conv)

	_, err = Map(schema.Column{Name: "odd", DataType: "vector", Type: "vector(3)"}, "")
	require.ErrorIs(t, err, ErrUnknownType)
	assert.Contains(t, err.Error(), "column_types.odd")

	m, err = Map(schema.Column{Name: "odd", DataType: "vector", Type: "vector(3)"}, "text")
	require.NoError(t, err)
	assert.Equal(t, ConvText, m.Conv)
}

func TestAppendCopy(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		conv  Conv
		bits  int
		want  string
		count Conversion
		n     int64
	}{
		{"null", nil, ConvText, 0, `\N`, 0, 0},
		{"empty text is not null", []byte{}, ConvText, 0, ``, 0, 0},
		{"escapes", []byte("a\\b\tc\nd\re"), ConvText, 0, `a\\b\tc\nd\re`, 0, 0},
		{"emoji", []byte("😀"), ConvText, 0, "😀", 0, 0},
		{"nul stripped", []byte("a\x00b\x00"), ConvText, 0, "ab", NULByte, 1},
		{"surrogate replaced", []byte("A\xed\xa0\x80B"), ConvText, 0, "A\uFFFDB", InvalidUTF8, 1},
		{"bytes", []byte{0, 0xff, '\\'}, ConvBytes, 0, `\\x00ff5c`, 0, 0},
		{"bit1", []byte{1}, ConvBit, 1, "1", 0, 0},
		{"bit10", []byte{0x02, 0x01}, ConvBit, 10, "1000000001", 0, 0},
		{"bit64", []byte{0x80, 0, 0, 0, 0, 0, 0, 1}, ConvBit, 64, "1000000000000000000000000000000000000000000000000000000000000001", 0, 0},
		{"zero date", []byte("0000-00-00"), ConvDate, 0, `\N`, ZeroDate, 1},
		{"partial zero", []byte("2019-00-00 00:00:00"), ConvDatetime, 0, `\N`, ZeroDate, 1},
		{"year zero", []byte("0000-01-01"), ConvDate, 0, `\N`, ZeroDate, 1},
		{"feb 30", []byte("2019-02-30"), ConvDate, 0, `\N`, InvalidDate, 1},
		{"leap day", []byte("2020-02-29"), ConvDate, 0, "2020-02-29", 0, 0},
		{"first day", []byte("0001-01-01"), ConvDate, 0, "0001-01-01", 0, 0},
		{"timestamp utc", []byte("2020-01-02 03:04:05.123456"), ConvTimestamp, 0, "2020-01-02 03:04:05.123456+00", 0, 0},
		{"time", []byte("-838:59:59"), ConvInterval, 0, "-838:59:59", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Counts
			got := AppendCopy([]byte("x"), tt.in, tt.conv, tt.bits, &c)
			assert.Equal(t, "x"+tt.want, string(got))
			assert.Equal(t, tt.n, c[tt.count])
			assert.Equal(t, tt.n, c.Total())
		})
	}
}

func TestSnakeCase(t *testing.T) {
	for in, want := range map[string]string{
		"PatNum": "pat_num", "ADACode": "ada_code", "Mixed Case": "mixed_case", "select": "select",
		"DateTStamp": "date_t_stamp", "ProcNum2": "proc_num2", "already_snake": "already_snake", "X": "x",
	} {
		assert.Equal(t, want, SnakeCase(in), in)
	}
}

// AppendValue writes each kind of driver value as the COPY text field the
// load has always written, counting conversions, and refuses a type the
// text protocol never sends (time.Time: parseTime on).
func TestAppendValue(t *testing.T) {
	text := Mapping{Conv: ConvText}
	date := Mapping{Conv: ConvDate}
	bits := Mapping{Conv: ConvBit, Bits: 3}
	var counts Counts
	for _, c := range []struct {
		v    any
		m    Mapping
		want string
	}{
		{nil, text, `\N`},
		{int64(-9223372036854775808), Mapping{}, "-9223372036854775808"},
		{uint64(18446744073709551615), Mapping{}, "18446744073709551615"},
		{float64(0.1), Mapping{}, "0.1"},
		{float32(0.1), Mapping{}, "0.1"},
		{[]byte("a\tb\x00"), text, `a\tb`},
		{"x\\y", text, `x\\y`},
		{[]byte("0000-00-00"), date, `\N`},
		{[]byte{0x05}, bits, "101"},
	} {
		got, err := AppendValue(nil, c.v, &c.m, &counts)
		require.NoError(t, err)
		assert.Equal(t, c.want, string(got), "%#v", c.v)
	}
	assert.Equal(t, int64(1), counts[NULByte])
	assert.Equal(t, int64(1), counts[ZeroDate])
	_, err := AppendValue(nil, struct{}{}, &text, &counts)
	assert.ErrorContains(t, err, "parseTime")
}
