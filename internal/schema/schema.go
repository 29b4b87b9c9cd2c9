// Package schema reads a MySQL/MariaDB database's shape from its
// information_schema: tables with their metadata (rows, data length, average
// row length, update time, engine), columns, primary key and indexes, and
// the server's UTC clock. It is the one such reader of the program: discover,
// replicate, load and the demo all describe tables with its one Column type.
//
// A whole database is read with three queries whatever the number of tables
// (TABLES, COLUMNS, STATISTICS); one table with the same three, filtered.
package schema

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Column is one column as information_schema.COLUMNS describes it.
type Column struct {
	Name      string
	Type      string // COLUMN_TYPE, e.g. "int(10) unsigned", "decimal(10,2)", "enum('a','b')"
	DataType  string // DATA_TYPE, e.g. "int", "varchar"
	Nullable  bool
	Extra     string // EXTRA, e.g. "auto_increment", "on update current_timestamp()"
	Charset   string // CHARACTER_SET_NAME of text columns, "" otherwise
	Precision int64  // NUMERIC_PRECISION (decimal), bit width (bit); 0 otherwise
	Scale     int64  // NUMERIC_SCALE; 0 otherwise
	MaxLength int64  // CHARACTER_MAXIMUM_LENGTH (characters) of text columns; 0 otherwise
	Computed  bool   // a generated column (AS (expr) VIRTUAL/STORED): its value is derived, never written
}

// Unsigned reports whether the column is an unsigned number.
func (c Column) Unsigned() bool { return strings.Contains(strings.ToLower(c.Type), "unsigned") }

// Index is one index of a table, its columns in index order.
type Index struct {
	Name    string
	Unique  bool
	Columns []string
	Kind    string  // INDEX_TYPE: BTREE, HASH, FULLTEXT, SPATIAL
	Prefix  []int64 // SUB_PART per column: the indexed prefix length, 0 for the whole column
}

// Same reports whether two indexes have one definition: uniqueness, kind,
// columns (compared as MySQL compares column names) and prefix lengths.
// The name is not compared.
func (ix Index) Same(o Index) bool {
	if ix.Unique != o.Unique || !strings.EqualFold(ix.Kind, o.Kind) || len(ix.Columns) != len(o.Columns) || len(ix.Prefix) != len(o.Prefix) {
		return false
	}
	for i := range ix.Columns {
		if !strings.EqualFold(ix.Columns[i], o.Columns[i]) {
			return false
		}
	}
	for i := range ix.Prefix {
		if ix.Prefix[i] != o.Prefix[i] {
			return false
		}
	}
	return true
}

// Table is one base table: its columns in order, its keys and what the
// server knows about its size and last change.
type Table struct {
	Name       string
	Columns    []Column
	PrimaryKey []string // primary-key columns in key order; nil when none
	Indexes    []Index  // every index, PRIMARY included, by name
	Rows       int64    // TABLE_ROWS: exact for MyISAM, an estimate for InnoDB
	DataBytes  int64    // DATA_LENGTH
	AvgRowLen  int64    // AVG_ROW_LENGTH
	UpdateTime string   // MyISAM: last data change (session time zone, UTC here); "" when the engine does not know
	Engine     string
}

// Database is a database's base tables plus the server's clock when it was read.
type Database struct {
	Tables map[string]*Table
	Now    time.Time // the server's UTC_TIMESTAMP() (whole seconds) as the tables were read
}

// Querier is a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ScanOne reads the single row of query into dest (sql.ErrNoRows when
// none), through the one method every Querier has.
func ScanOne(ctx context.Context, q Querier, query string, args []any, dest ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// ErrNoTable is returned by ReadTable for a table the database does not have.
var ErrNoTable = errors.New("no such table")

// TimeLayout is how MySQL prints a DATETIME or TIMESTAMP without fraction.
const TimeLayout = "2006-01-02 15:04:05"

// Read reads every base table of the connection's current database with
// three information_schema queries, whatever the number of tables.
func Read(ctx context.Context, q Querier) (*Database, error) {
	return read(ctx, q, filter{})
}

// ReadTable reads one base table of the connection's current database
// (ErrNoTable when there is none by that name).
func ReadTable(ctx context.Context, q Querier, name string) (*Table, error) {
	db, err := read(ctx, q, filter{sql: " AND TABLE_NAME = ?", args: []any{name}})
	if err != nil {
		return nil, err
	}
	t := db.Tables[name]
	if t == nil {
		return nil, fmt.Errorf("table %s: %w", name, ErrNoTable)
	}
	return t, nil
}

// filter narrows the three queries to some tables.
type filter struct {
	sql  string
	args []any
}

func read(ctx context.Context, q Querier, f filter) (*Database, error) {
	db := &Database{Tables: map[string]*Table{}}
	if err := readTables(ctx, q, f, db); err != nil {
		return nil, err
	}
	if err := readColumns(ctx, q, f, db); err != nil {
		return nil, err
	}
	if err := readIndexes(ctx, q, f, db); err != nil {
		return nil, err
	}
	return db, nil
}

func readTables(ctx context.Context, q Querier, f filter, db *Database) error {
	var now string
	err := each(ctx, q, query{"read information_schema.TABLES", "SELECT TABLE_NAME, COALESCE(TABLE_ROWS,0), COALESCE(DATA_LENGTH,0), COALESCE(AVG_ROW_LENGTH,0)," +
		" UPDATE_TIME, COALESCE(ENGINE,''), UTC_TIMESTAMP() FROM information_schema.TABLES" +
		// MariaDB lists a system-versioned table as SYSTEM VERSIONED, not BASE TABLE.
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')" + f.sql, f.args}, func(rows *sql.Rows) error {
		var t Table
		var upd sql.NullString
		if err := rows.Scan(&t.Name, &t.Rows, &t.DataBytes, &t.AvgRowLen, &upd, &t.Engine, &now); err != nil {
			return err
		}
		t.UpdateTime = upd.String
		db.Tables[t.Name] = &t
		return nil
	})
	if err != nil {
		return err
	}
	if now == "" { // no table: ask the clock alone
		if err := each(ctx, q, query{"read server clock", "SELECT UTC_TIMESTAMP()", nil}, func(rows *sql.Rows) error {
			return rows.Scan(&now)
		}); err != nil {
			return err
		}
	}
	if db.Now, err = time.Parse(TimeLayout, now); err != nil {
		return fmt.Errorf("read server clock: %w", err)
	}
	return nil
}

func readColumns(ctx context.Context, q Querier, f filter, db *Database) error {
	return each(ctx, q, query{"read information_schema.COLUMNS", "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE = 'YES', EXTRA," +
		" COALESCE(CHARACTER_SET_NAME,''), COALESCE(NUMERIC_PRECISION,0), COALESCE(NUMERIC_SCALE,0), COALESCE(CHARACTER_MAXIMUM_LENGTH,0)," +
		// MariaDB lists a system-versioning period column as generated by 'ROW START'/'ROW END'.
		" COALESCE(GENERATION_EXPRESSION,'') NOT IN ('', 'ROW START', 'ROW END')" +
		" FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()" + f.sql + " ORDER BY TABLE_NAME, ORDINAL_POSITION", f.args},
		func(rows *sql.Rows) error {
			var tn string
			var c Column
			if err := rows.Scan(&tn, &c.Name, &c.Type, &c.DataType, &c.Nullable, &c.Extra, &c.Charset, &c.Precision, &c.Scale, &c.MaxLength, &c.Computed); err != nil {
				return err
			}
			if t := db.Tables[tn]; t != nil {
				t.Columns = append(t.Columns, c)
			}
			return nil
		})
}

func readIndexes(ctx context.Context, q Querier, f filter, db *Database) error {
	return each(ctx, q, query{"read information_schema.STATISTICS", "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE = 0, COLUMN_NAME, INDEX_TYPE, COALESCE(SUB_PART,0)" +
		" FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()" + f.sql + " ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX", f.args},
		func(rows *sql.Rows) error {
			var tn, cn string
			var sub int64
			var ix Index
			if err := rows.Scan(&tn, &ix.Name, &ix.Unique, &cn, &ix.Kind, &sub); err != nil {
				return err
			}
			t := db.Tables[tn]
			if t == nil {
				return nil
			}
			if n := len(t.Indexes); n > 0 && t.Indexes[n-1].Name == ix.Name {
				t.Indexes[n-1].Columns = append(t.Indexes[n-1].Columns, cn)
				t.Indexes[n-1].Prefix = append(t.Indexes[n-1].Prefix, sub)
			} else {
				ix.Columns, ix.Prefix = []string{cn}, []int64{sub}
				t.Indexes = append(t.Indexes, ix)
			}
			if ix.Name == "PRIMARY" {
				t.PrimaryKey = append(t.PrimaryKey, cn)
			}
			return nil
		})
}

// query is one statement: what it reads (for errors), its text and arguments.
type query struct {
	what string
	sql  string
	args []any
}

// each runs qy and calls scan for every row; errors say what was read.
func each(ctx context.Context, q Querier, qy query, scan func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, qy.sql, qy.args...)
	if err != nil {
		return fmt.Errorf("%s: %w", qy.what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("%s: %w", qy.what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", qy.what, err)
	}
	return nil
}

// Column returns the named column (case-insensitively, as MySQL compares
// column names) or nil.
func (t *Table) Column(name string) *Column {
	for i := range t.Columns {
		if strings.EqualFold(t.Columns[i].Name, name) {
			return &t.Columns[i]
		}
	}
	return nil
}

// ColumnNames lists the column names in order.
func (t *Table) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

// KeyTravels reports whether the primary key's values, as read from the
// source (raw bytes), can be sent back unchanged as query arguments over a
// UTF-8 connection, for keyset paging and delete detection: integers,
// binary strings and UTF-8 or ASCII text can; text in another character set
// (latin1…) cannot, and such a table is copied whole like a keyless one.
func (t *Table) KeyTravels() bool {
	for _, k := range t.PrimaryKey {
		c := t.Column(k)
		if c == nil {
			return false
		}
		switch cs := strings.ToLower(c.Charset); {
		case cs == "", cs == "binary", cs == "ascii", strings.HasPrefix(cs, "utf8"):
		default:
			return false
		}
	}
	return true
}
