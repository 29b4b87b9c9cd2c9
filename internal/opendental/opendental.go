// Package opendental carries the vendored OpenDental reference data (see
// data/SOURCE.md): the real DDL of 93 tables, all 408 tables of 24.3, and a
// real clinic's table volumes. Tests, the demo seeder and the benchmarks
// build their databases from it.
package opendental

import (
	_ "embed"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

//go:embed data/opendental_real_ddl_93_tables.sql
var real93 string

//go:embed data/opendental_24.3_full_schema_hybrid.sql
var full408 string

//go:embed data/table_volumes.tsv
var volumesTSV []byte

// TableDDL is one CREATE TABLE statement.
type TableDDL struct {
	Name string
	SQL  string // without the trailing semicolon
}

var createRE = regexp.MustCompile("(?m)^CREATE TABLE `([^`]+)`")

// split cuts a schema dump into its CREATE TABLE statements, in file order.
func split(dump string) []TableDDL {
	locs := createRE.FindAllStringSubmatchIndex(dump, -1)
	out := make([]TableDDL, 0, len(locs))
	for _, loc := range locs {
		rest := dump[loc[0]:]
		end := strings.Index(rest, ";\n")
		if end < 0 {
			end = strings.LastIndex(rest, ";")
		}
		out = append(out, TableDDL{Name: dump[loc[2]:loc[3]], SQL: rest[:end]})
	}
	return out
}

// Real93 returns the 93 table definitions exported from a real clinic.
func Real93() []TableDDL { return split(real93) }

// Full408 returns all 408 tables of OpenDental 24.3.
func Full408() []TableDDL { return split(full408) }

// Volume is one real clinic's size of a table.
type Volume struct {
	Table         string
	Rows          int64
	SizeMB        float64
	PrimaryKey    string // "" when the table has none
	Watermark     string // the clinic's change column; "" when none
	SyncProfile   string // append_only | in_place_updates | ...
	ExtractionHow string // the clinic's extraction strategy
}

// Volumes returns the clinic's table volumes keyed by table name.
func Volumes() (map[string]Volume, error) {
	out := map[string]Volume{}
	for _, f := range tsvRows(volumesTSV, 8) {
		rows, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse table_volumes.tsv row %q: %w", f[0], err)
		}
		mb, _ := strconv.ParseFloat(f[2], 64)
		none := func(s string) string {
			if s == "None" {
				return ""
			}
			return s
		}
		out[f[0]] = Volume{Table: f[0], Rows: rows, SizeMB: mb, PrimaryKey: none(f[4]), Watermark: none(f[5]), SyncProfile: f[6], ExtractionHow: f[7]}
	}
	return out, nil
}

// tsvRows splits a vendored TSV file into its rows' fields, without the
// header row and without rows shorter than minFields.
func tsvRows(data []byte, minFields int) [][]string {
	var rows [][]string
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if f := strings.Split(line, "\t"); i > 0 && len(f) >= minFields {
			rows = append(rows, f)
		}
	}
	return rows
}
