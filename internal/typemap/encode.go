package typemap

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Conversion is a kind of value PostgreSQL cannot hold that was changed.
type Conversion int

const (
	ZeroDate    Conversion = iota // 0000-00-00, 2019-00-00, year 0 → NULL
	InvalidDate                   // impossible day such as 2019-02-31 → NULL
	NULByte                       // NUL bytes stripped from text
	InvalidUTF8                   // invalid UTF-8 sequences replaced by U+FFFD
	numConversions
)

var conversionNames = [...]string{"zero_date", "invalid_date", "nul_byte", "invalid_utf8"}

func (c Conversion) String() string { return conversionNames[c] }

// Conversions lists every kind, in order.
func Conversions() []Conversion { return []Conversion{ZeroDate, InvalidDate, NULByte, InvalidUTF8} }

// Counts is how many values of one column were converted, per kind.
type Counts [numConversions]int64

// Total is the sum over kinds.
func (c *Counts) Total() int64 {
	var n int64
	for _, v := range c {
		n += v
	}
	return n
}

// Map returns the non-zero counts keyed by kind name.
func (c *Counts) Map() map[string]int64 {
	out := map[string]int64{}
	for k, v := range c {
		if v != 0 {
			out[conversionNames[k]] = v
		}
	}
	return out
}

var replacement = []byte("\uFFFD")

// AppendCopy appends v, a value in MySQL's text protocol (nil is NULL), to
// dst as one field of PostgreSQL's COPY text format, counting conversions.
// bits is the width of a bit column (0 otherwise).
func AppendCopy(dst []byte, v []byte, conv Conv, bits int, counts *Counts) []byte {
	if v == nil {
		return append(dst, `\N`...)
	}
	switch conv {
	case ConvNumber, ConvInterval:
		return append(dst, v...) // digits, signs, '.', ':', 'e': nothing to escape
	case ConvText:
		return appendEscaped(dst, cleanText(v, counts))
	case ConvBytes:
		dst = append(dst, `\\x`...)
		return hex.AppendEncode(dst, v)
	case ConvBit:
		return appendBits(dst, v, bits)
	case ConvDate, ConvDatetime, ConvTimestamp:
		if k, ok := checkDate(v); !ok {
			counts[k]++
			return append(dst, `\N`...)
		}
		dst = append(dst, v...)
		if conv == ConvTimestamp {
			dst = append(dst, "+00"...)
		}
		return dst
	}
	return appendEscaped(dst, v)
}

// cleanText strips NUL bytes (PostgreSQL text cannot hold them) and
// replaces each invalid UTF-8 run by U+FFFD, counting both.
func cleanText(v []byte, counts *Counts) []byte {
	if bytes.IndexByte(v, 0) >= 0 {
		v = bytes.ReplaceAll(v, []byte{0}, nil)
		counts[NULByte]++
	}
	if !utf8.Valid(v) {
		v = bytes.ToValidUTF8(v, replacement)
		counts[InvalidUTF8]++
	}
	return v
}

// appendEscaped escapes backslash and the control characters COPY text
// format gives meaning to.
func appendEscaped(dst, v []byte) []byte {
	start := 0
	for i, c := range v {
		var esc string
		switch c {
		case '\\':
			esc = `\\`
		case '\n':
			esc = `\n`
		case '\r':
			esc = `\r`
		case '\t':
			esc = `\t`
		default:
			continue
		}
		dst = append(dst, v[start:i]...)
		dst = append(dst, esc...)
		start = i + 1
	}
	return append(dst, v[start:]...)
}

// appendBits writes the low n bits of the big-endian value v as '0'/'1'.
func appendBits(dst, v []byte, n int) []byte {
	total := len(v) * 8
	for i := total - n; i < total; i++ {
		if i < 0 { // fewer bytes than the width: leading zeros
			dst = append(dst, '0')
			continue
		}
		if v[i/8]&(0x80>>(i%8)) != 0 {
			dst = append(dst, '1')
		} else {
			dst = append(dst, '0')
		}
	}
	return dst
}

// checkDate validates the YYYY-MM-DD prefix of a MySQL date/datetime text.
func checkDate(v []byte) (Conversion, bool) {
	if len(v) < 10 || v[4] != '-' || v[7] != '-' {
		return InvalidDate, false
	}
	num := func(b []byte) int {
		n := 0
		for _, c := range b {
			if c < '0' || c > '9' {
				return -1
			}
			n = n*10 + int(c-'0')
		}
		return n
	}
	y, m, d := num(v[0:4]), num(v[5:7]), num(v[8:10])
	if y < 0 || m < 0 || d < 0 {
		return InvalidDate, false
	}
	if y == 0 || m == 0 || d == 0 {
		return ZeroDate, false
	}
	if m > 12 || d > daysIn(y, m) {
		return InvalidDate, false
	}
	return 0, true
}

func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// AppendValue appends v, one value as the MySQL driver hands it over on the
// text protocol (nil, []byte, string, or int64/uint64/float64/float32 for
// numbers), to dst as one field of PostgreSQL's COPY text format, counting
// conversions. Integers are printed in full and floats with the shortest
// digits that read back as the same value; everything else goes through
// AppendCopy. It is how the load writes a replica row, and how verify reads
// one to compare it with raw.
func AppendValue(dst []byte, v any, m *Mapping, counts *Counts) ([]byte, error) {
	if m.Hash != nil {
		return appendHashed(dst, v, m, counts)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, `\N`...), nil
	case []byte:
		return AppendCopy(dst, x, m.Conv, m.Bits, counts), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case uint64:
		return strconv.AppendUint(dst, x, 10), nil
	case float64: // shortest text that reads back as the same float64
		return strconv.AppendFloat(dst, x, 'g', -1, 64), nil
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'g', -1, 32), nil
	case string:
		return AppendCopy(dst, []byte(x), m.Conv, m.Bits, counts), nil
	}
	return dst, fmt.Errorf("unexpected %T from the MySQL driver (the connection must keep parseTime off)", v)
}

// appendHashed writes v as m.Hash of its text: the value as raw would hold
// it without the policy, unescaped (text with NUL bytes stripped and
// invalid UTF-8 replaced, a number's digits, a date's YYYY-MM-DD, a
// timestamp's UTC text without zone, a blob's bytes). NULL, and a date that
// would load as NULL, stay NULL.
func appendHashed(dst []byte, v any, m *Mapping, counts *Counts) ([]byte, error) {
	var text []byte
	switch x := v.(type) {
	case nil:
		return append(dst, `\N`...), nil
	case []byte:
		text = x
	case string:
		text = []byte(x)
	default:
		var err error
		if text, err = AppendValue(nil, v, &Mapping{Conv: ConvNumber}, counts); err != nil {
			return dst, err
		}
		return m.Hash.AppendHash(dst, text), nil
	}
	switch m.Conv {
	case ConvText:
		text = cleanText(text, counts)
	case ConvBit:
		text = appendBits(nil, text, m.Bits)
	case ConvDate, ConvDatetime, ConvTimestamp:
		if k, ok := checkDate(text); !ok {
			counts[k]++
			return append(dst, `\N`...), nil
		}
	}
	return m.Hash.AppendHash(dst, text), nil
}
