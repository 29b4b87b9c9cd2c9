package replicate

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Column is one column as information_schema describes it.
type Column struct {
	Name     string
	Type     string // COLUMN_TYPE, e.g. varchar(255)
	DataType string // DATA_TYPE, e.g. varchar
	Nullable bool
	Extra    string
	Charset  string // CHARACTER_SET_NAME of text columns, "" otherwise
}

// TableMeta is what replication needs to know about one table of a schema.
type TableMeta struct {
	Name       string
	Columns    []Column
	PrimaryKey []string
	Rows       int64 // TABLE_ROWS: exact for MyISAM, an estimate for InnoDB
	DataBytes  int64
	AvgRowLen  int64
	UpdateTime string // MyISAM: last data change (UTC text); "" when the engine does not know
	Engine     string
}

// Schema is a database's tables plus the server's clock when it was read.
type Schema struct {
	Tables map[string]*TableMeta
	Now    string // server UTC_TIMESTAMP() as text
}

// Querier is a *sql.DB, *sql.Conn or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// ReadSchema reads every base table of the connection's current database with
// three information_schema queries, whatever the number of tables.
func ReadSchema(ctx context.Context, q Querier) (*Schema, error) {
	s := &Schema{Tables: map[string]*TableMeta{}}
	rows, err := q.QueryContext(ctx, "SELECT TABLE_NAME, COALESCE(TABLE_ROWS,0), COALESCE(DATA_LENGTH,0), COALESCE(AVG_ROW_LENGTH,0),"+
		" UPDATE_TIME, COALESCE(ENGINE,''), UTC_TIMESTAMP() FROM information_schema.TABLES"+
		" WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")
	if err != nil {
		return nil, fmt.Errorf("read information_schema.TABLES: %w", err)
	}
	for rows.Next() {
		var t TableMeta
		var upd sql.NullString
		if err := rows.Scan(&t.Name, &t.Rows, &t.DataBytes, &t.AvgRowLen, &upd, &t.Engine, &s.Now); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read information_schema.TABLES: %w", err)
		}
		t.UpdateTime = upd.String
		s.Tables[t.Name] = &t
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read information_schema.TABLES: %w", err)
	}
	if s.Now == "" {
		if err := scanOne(ctx, q, "SELECT UTC_TIMESTAMP()", &s.Now); err != nil {
			return nil, fmt.Errorf("read server clock: %w", err)
		}
	}
	rows, err = q.QueryContext(ctx, "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, EXTRA, COALESCE(CHARACTER_SET_NAME,'')"+
		" FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME, ORDINAL_POSITION")
	if err != nil {
		return nil, fmt.Errorf("read information_schema.COLUMNS: %w", err)
	}
	for rows.Next() {
		var tn, nullable string
		var c Column
		if err := rows.Scan(&tn, &c.Name, &c.Type, &c.DataType, &nullable, &c.Extra, &c.Charset); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read information_schema.COLUMNS: %w", err)
		}
		c.Nullable = nullable == "YES"
		if t := s.Tables[tn]; t != nil {
			t.Columns = append(t.Columns, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read information_schema.COLUMNS: %w", err)
	}
	rows, err = q.QueryContext(ctx, "SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS"+
		" WHERE TABLE_SCHEMA = DATABASE() AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX")
	if err != nil {
		return nil, fmt.Errorf("read information_schema.STATISTICS: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var tn, cn string
		if err := rows.Scan(&tn, &cn); err != nil {
			return nil, fmt.Errorf("read information_schema.STATISTICS: %w", err)
		}
		if t := s.Tables[tn]; t != nil {
			t.PrimaryKey = append(t.PrimaryKey, cn)
		}
	}
	return s, rows.Err()
}

// scanOne reads the single row of a query without arguments into dest.
func scanOne(ctx context.Context, q Querier, query string, dest ...any) error {
	return scanOneArgs(ctx, q, query, nil, dest...)
}

// scanOneArgs reads the single row of query into dest (sql.ErrNoRows when none).
func scanOneArgs(ctx context.Context, q Querier, query string, args []any, dest ...any) error {
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

// Column returns the named column (case-insensitively) or nil.
func (t *TableMeta) Column(name string) *Column {
	for i := range t.Columns {
		if strings.EqualFold(t.Columns[i].Name, name) {
			return &t.Columns[i]
		}
	}
	return nil
}

// KeyTravels reports whether the primary key's values, as read from the
// source (raw bytes), can be sent back unchanged as query arguments over a
// UTF-8 connection, for keyset paging and delete detection: integers,
// binary strings and UTF-8 or ASCII text can; text in another character set
// (latin1…) cannot, and such a table is copied whole like a keyless one.
func (t *TableMeta) KeyTravels() bool {
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

// Change is one schema difference applied to a replica table.
type Change struct {
	Table  string
	Kind   string // create_table | add_column | modify_column | drop_column
	Column string
	From   string
	To     string
}

func (c Change) String() string {
	switch c.Kind {
	case "create_table":
		return fmt.Sprintf("%s: created", c.Table)
	case "add_column":
		return fmt.Sprintf("%s: added column %s %s", c.Table, c.Column, c.To)
	case "drop_column":
		return fmt.Sprintf("%s: dropped column %s %s (no longer in the source)", c.Table, c.Column, c.From)
	default:
		return fmt.Sprintf("%s: changed column %s from %s to %s", c.Table, c.Column, c.From, c.To)
	}
}

var (
	engineRE  = regexp.MustCompile(`(?i)\bENGINE=\w+`)
	autoIncRE = regexp.MustCompile(`(?i)\s+AUTO_INCREMENT=\d+`)
	// MyISAM table options InnoDB rejects or ignores (ROW_FORMAT=FIXED is an error).
	myisamOptRE = regexp.MustCompile(`(?i)\s+(ROW_FORMAT|PACK_KEYS|DELAY_KEY_WRITE|CHECKSUM|KEY_BLOCK_SIZE)=\w+`)
	colLineRE   = regexp.MustCompile("^\\s*`((?:[^`]|``)+)` (.*?),?$")
)

// replicaDDL turns the source's SHOW CREATE TABLE into the replica's: same
// columns, types and keys, on InnoDB so that a chunk and its state commit
// together; the source's AUTO_INCREMENT counter is not carried over.
func replicaDDL(create string) string {
	ddl := autoIncRE.ReplaceAllString(create, "")
	if i := strings.LastIndex(ddl, "\n)"); i >= 0 {
		ddl = ddl[:i] + myisamOptRE.ReplaceAllString(ddl[i:], "")
	}
	if engineRE.MatchString(ddl) {
		ddl = engineRE.ReplaceAllString(ddl, "ENGINE=InnoDB")
	} else {
		ddl += " ENGINE=InnoDB"
	}
	return ddl
}

// splitIndexes cuts the plain secondary indexes (KEY, FULLTEXT KEY) out of
// a CREATE TABLE and returns the rest and the cut definitions. A full copy
// loads faster into a table without them and builds each once, sorted, at
// the end; primary and unique keys stay, they decide what an upsert replaces.
func splitIndexes(create string) (string, []string) {
	lines := strings.Split(create, "\n")
	if len(lines) < 3 {
		return create, nil
	}
	head, body, tail := lines[0], lines[1:len(lines)-1], lines[len(lines)-1]
	var keep, cut []string
	for _, l := range body {
		d := strings.TrimSuffix(strings.TrimSpace(l), ",")
		if strings.HasPrefix(d, "KEY ") || strings.HasPrefix(d, "FULLTEXT KEY ") || strings.HasPrefix(d, "SPATIAL KEY ") {
			cut = append(cut, d)
			continue
		}
		keep = append(keep, "  "+d)
	}
	return head + "\n" + strings.Join(keep, ",\n") + "\n" + tail, cut
}

// indexDefs lists the index definitions (every line after the columns) of a CREATE TABLE.
func indexDefs(create string) []string {
	var out []string
	for _, l := range strings.Split(create, "\n")[1:] {
		d := strings.TrimSuffix(strings.TrimSpace(l), ",")
		if strings.HasPrefix(d, "KEY ") || strings.HasPrefix(d, "FULLTEXT KEY ") || strings.HasPrefix(d, "SPATIAL KEY ") || strings.HasPrefix(d, "UNIQUE KEY ") {
			out = append(out, d)
		}
	}
	return out
}

// columnDefs maps each column of a SHOW CREATE TABLE to its definition text.
func columnDefs(create string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(create, "\n")[1:] {
		if m := colLineRE.FindStringSubmatch(line); m != nil {
			out[strings.ReplaceAll(m[1], "``", "`")] = strings.TrimSuffix(strings.TrimSpace(line), ",")
		}
	}
	return out
}

// diffColumns lists the ALTER TABLE clauses that make the replica's columns
// equal the source's (names, order, types, nullability), with what changed.
func diffColumns(table string, src, rep *TableMeta, defs map[string]string) ([]string, []Change, error) {
	var clauses []string
	var changes []Change
	have := map[string]Column{}
	for _, c := range rep.Columns {
		have[strings.ToLower(c.Name)] = c
	}
	prev := ""
	for _, c := range src.Columns {
		def, ok := defs[c.Name]
		if !ok {
			return nil, nil, fmt.Errorf("find definition of column %s.%s in SHOW CREATE TABLE", table, c.Name)
		}
		pos := " FIRST"
		if prev != "" {
			pos = " AFTER " + quoteIdent(prev)
		}
		r, ok := have[strings.ToLower(c.Name)]
		switch {
		case !ok:
			clauses = append(clauses, "ADD COLUMN "+def+pos)
			changes = append(changes, Change{Table: table, Kind: "add_column", Column: c.Name, To: c.Type})
		case !strings.EqualFold(r.Type, c.Type) || r.Nullable != c.Nullable:
			clauses = append(clauses, "MODIFY COLUMN "+def+pos)
			changes = append(changes, Change{Table: table, Kind: "modify_column", Column: c.Name, From: typeText(r), To: typeText(c)})
		}
		delete(have, strings.ToLower(c.Name))
		prev = c.Name
	}
	var dropped []string
	for k := range have {
		dropped = append(dropped, k)
	}
	sort.Strings(dropped)
	for _, k := range dropped {
		clauses = append(clauses, "DROP COLUMN "+quoteIdent(have[k].Name))
		changes = append(changes, Change{Table: table, Kind: "drop_column", Column: have[k].Name, From: have[k].Type})
	}
	if len(changes) == 0 && !sameOrder(src, rep) {
		// Same columns in another order: re-position every column.
		prev = ""
		for _, c := range src.Columns {
			pos := " FIRST"
			if prev != "" {
				pos = " AFTER " + quoteIdent(prev)
			}
			clauses = append(clauses, "MODIFY COLUMN "+defs[c.Name]+pos)
			prev = c.Name
		}
		changes = append(changes, Change{Table: table, Kind: "modify_column", Column: "*", From: "old column order", To: "source column order"})
	}
	return clauses, changes, nil
}

func typeText(c Column) string {
	if c.Nullable {
		return c.Type + " NULL"
	}
	return c.Type + " NOT NULL"
}

func sameOrder(a, b *TableMeta) bool {
	if len(a.Columns) != len(b.Columns) {
		return false
	}
	for i := range a.Columns {
		if !strings.EqualFold(a.Columns[i].Name, b.Columns[i].Name) {
			return false
		}
	}
	return true
}

// needsDDL reports whether the replica table differs from the source in
// columns (cheap: compares the information_schema reads already in memory).
func needsDDL(src, rep *TableMeta) bool {
	if rep == nil || len(src.Columns) != len(rep.Columns) {
		return true
	}
	for i, c := range src.Columns {
		r := rep.Columns[i]
		if !strings.EqualFold(c.Name, r.Name) || !strings.EqualFold(c.Type, r.Type) || c.Nullable != r.Nullable {
			return true
		}
	}
	return false
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }
