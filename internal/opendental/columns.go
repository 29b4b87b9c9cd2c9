package opendental

import (
	_ "embed"
	"strconv"
	"strings"
)

//go:embed data/opendental_columns_24.3.tsv
var columnsTSV []byte

// Column is one documented column of OpenDental 24.3.
type Column struct {
	Table    string
	Ordinal  int
	Name     string
	DocType  string // the documented type, e.g. bigint(20)
	FKTable  string // the documented foreign-key target as written ("" when none; may be prose)
	EnumName string
}

// Columns returns every documented column of 24.3 in file order.
func Columns() []Column {
	var out []Column
	for _, f := range tsvRows(columnsTSV, 7) {
		ord, _ := strconv.Atoi(f[1])
		out = append(out, Column{Table: f[0], Ordinal: ord, Name: f[2], DocType: f[3], FKTable: strings.TrimSpace(f[4]), EnumName: f[6]})
	}
	return out
}
