package demo

// Real OpenDental databases that have been upgraded for twenty years hold
// values the current schema would not write: zero dates (MySQL's
// 0000-00-00 from before the '0001-01-01' default), partial dates such as
// 1987-00-00 for a birth date whose day was unknown, and NUL bytes left in
// notes by old imports. PostgreSQL can hold none of them, so the pipeline
// converts them (zero dates → NULL, NUL bytes stripped) and counts each one.
// Seeding with Options.LegacyValues writes a few of each so that the demo
// shows that count.

// LegacyEvery is how often a legacy column gets its legacy value: rows
// whose key is 1 modulo LegacyEvery (0.5% of the rows, and always the
// first, so that even a tiny table shows one).
const LegacyEvery = 200

// legacyKind is one kind of legacy value.
type legacyKind int

const (
	zeroDate     legacyKind = iota // '0000-00-00'
	zeroDateTime                   // '0000-00-00 00:00:00'
	partialDate                    // the drawn date's year with month and day 00
	nulByte                        // the drawn text with a NUL byte appended
)

// legacyColumns are the table → column → kind of value that Seed writes
// with Options.LegacyValues.
var legacyColumns = map[string]map[string]legacyKind{
	"patient":      {"Birthdate": partialDate},
	"procedurelog": {"DateTP": zeroDate},
	"adjustment":   {"ProcDate": zeroDate, "AdjNote": nulByte},
	"commlog":      {"CommDateTime": zeroDateTime, "Note": nulByte},
	"payment":      {"PayNote": nulByte},
}

// legacyRow reports whether the row numbered key carries legacy values.
func legacyRow(key int64) bool { return key%LegacyEvery == 1 }

// LegacyCount is how many of a table's rows numbered 1..rows carry a legacy
// value in each legacy column.
func LegacyCount(rows int64) int64 {
	if rows <= 0 {
		return 0
	}
	return (rows-1)/LegacyEvery + 1
}

// LegacyColumns lists the columns Seed gives legacy values, as table → columns.
func LegacyColumns() map[string][]string {
	out := map[string][]string{}
	for t, cols := range legacyColumns {
		for c := range cols {
			out[t] = append(out[t], c)
		}
	}
	return out
}

// literal appends the legacy literal of kind to b; plain is the ordinary
// literal drawn for the same value (it may share b's memory past len(b)).
func (k legacyKind) literal(b, plain []byte, key int64) []byte {
	switch k {
	case zeroDate:
		return append(b, "'0000-00-00'"...)
	case zeroDateTime:
		return append(b, "'0000-00-00 00:00:00'"...)
	case partialDate:
		year := "19" + string(rune('4'+key%6)) + "0"
		if len(plain) >= len("'2006-01-02'") && plain[0] == '\'' {
			year = string(plain[1:5])
		}
		return append(b, "'"+year+"-00-00'"...)
	default: // nulByte
		if len(plain) >= 2 && plain[0] == '\'' {
			text := string(plain[1 : len(plain)-1]) // copy: b overwrites plain
			return append(b, "'"+text+`\0'`...)
		}
		return append(b, `'imported\0'`...) // the drawn value was NULL
	}
}
