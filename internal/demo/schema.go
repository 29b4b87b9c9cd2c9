package demo

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// column is what the generator needs to know about one column: the
// column as the server describes it after the tables are created, and what
// the vendored documentation adds.
type column struct {
	schema.Column
	FK   string // parent table when the documented foreign key is an existing table
	Wide bool   // utf8mb4 column that may hold 4-byte characters
}

// table is one table of the demo database.
type table struct {
	Name    string
	Columns []column
	PK      []string
	SeqPK   int // index of the single integer primary-key column numbered 1..N, or -1
	Rows    int64
}

// fkAlias maps the documentation's informal foreign-key targets to table names.
var fkAlias = map[string]string{
	"def": "definition", "user": "userod", "computers": "computer", "pref": "preference",
}

// wideColumns are free-text notes stored as utf8mb4 in the demo so that
// 4-byte characters (emoji) travel the whole data path. The real schema is
// utf8mb3 throughout; this is the demo's one deliberate schema change.
var wideColumns = map[string]string{
	"commlog": "Note", "appointment": "Note", "procnote": "Note",
}

// ddlFor adapts a vendored CREATE TABLE to the local server: MariaDB before
// 11.x lacks the uca1400 collations the real clinic's export names.
func ddlFor(d opendental.TableDDL) string {
	return strings.ReplaceAll(d.SQL, "utf8mb3_uca1400_ai_ci", "utf8mb3_general_ci")
}

// createTables (re)creates all 408 tables of OpenDental 24.3 in db.
func createTables(ctx context.Context, db *sql.DB) error {
	for _, d := range opendental.Full408() {
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+d.Name+"`"); err != nil {
			return fmt.Errorf("drop table %s: %w", d.Name, err)
		}
		if _, err := db.ExecContext(ctx, ddlFor(d)); err != nil {
			return fmt.Errorf("create table %s: %w", d.Name, err)
		}
	}
	for tbl, col := range wideColumns {
		st, err := schema.ReadTable(ctx, db, tbl)
		if err != nil {
			return fmt.Errorf("read table %s: %w", tbl, err)
		}
		c := st.Column(col)
		if c == nil {
			return fmt.Errorf("widen %s.%s to utf8mb4: no such column", tbl, col)
		}
		null := " NULL"
		if !c.Nullable {
			null = " NOT NULL"
		}
		stmt := fmt.Sprintf("ALTER TABLE `%s` MODIFY `%s` %s CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci%s", tbl, col, c.Type, null)
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("widen %s.%s to utf8mb4: %w", tbl, col, err)
		}
	}
	return nil
}

// foreignKeys returns table → column → parent table from the documented
// columns, keeping only targets that are tables of the schema.
func foreignKeys(known map[string]bool) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, c := range opendental.Columns() {
		parent := strings.ToLower(c.FKTable)
		if a, ok := fkAlias[parent]; ok {
			parent = a
		}
		if parent == "" || !known[parent] {
			continue
		}
		if out[c.Table] == nil {
			out[c.Table] = map[string]string{}
		}
		out[c.Table][c.Name] = parent
	}
	return out
}

// readTables reads the demo tables' columns and keys back from the server.
func readTables(ctx context.Context, db *sql.DB) (map[string]*table, error) {
	known := map[string]bool{}
	for _, d := range opendental.Full408() {
		known[d.Name] = true
	}
	fks := foreignKeys(known)
	s, err := schema.Read(ctx, db)
	if err != nil {
		return nil, err
	}
	tables := map[string]*table{}
	for tn, st := range s.Tables {
		if known[tn] {
			tables[tn] = demoTable(st, fks[tn])
		}
	}
	if len(tables) != len(known) {
		return nil, fmt.Errorf("read tables: found %d of the %d OpenDental tables; seed the database first (pipeline demo seed)", len(tables), len(known))
	}
	return tables, nil
}

// demoTable is st with the documented foreign keys (column → parent table).
func demoTable(st *schema.Table, fks map[string]string) *table {
	t := &table{Name: st.Name, PK: st.PrimaryKey, SeqPK: -1}
	for _, c := range st.Columns {
		t.Columns = append(t.Columns, column{Column: c, FK: fks[c.Name], Wide: c.Charset == "utf8mb4"})
	}
	if len(t.PK) == 1 {
		for i, c := range t.Columns {
			if c.Name == t.PK[0] && isInteger(c.DataType) {
				t.SeqPK = i
			}
		}
	}
	return t
}

func isInteger(dataType string) bool {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint":
		return true
	}
	return false
}

// sortedNames returns the table names in a stable order.
func sortedNames(tables map[string]*table) []string {
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
