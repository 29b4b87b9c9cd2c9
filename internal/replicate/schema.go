package replicate

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// querier is a *sql.DB, *sql.Conn or *sql.Tx.
type querier = schema.Querier

// scanOne reads the single row of a query without arguments into dest
// (sql.ErrNoRows when none).
func scanOne(ctx context.Context, q querier, query string, dest ...any) error {
	return schema.ScanOne(ctx, q, query, nil, dest...)
}

// Change is one schema difference applied to a replica table.
type Change struct {
	Table  string
	Kind   string // create_table | rebuild_table | add_column | modify_column | drop_column | drop_index | add_index
	Column string // the column, or the index
	From   string
	To     string
}

func (c Change) String() string {
	switch c.Kind {
	case "create_table":
		return fmt.Sprintf("%s: created", c.Table)
	case "rebuild_table":
		return fmt.Sprintf("%s: primary key changed from %s to %s: replica table rebuilt and copied anew", c.Table, c.From, c.To)
	case "drop_index":
		return fmt.Sprintf("%s: dropped index %s %s (not in the source, or changed)", c.Table, c.Column, c.From)
	case "add_index":
		return fmt.Sprintf("%s: added index %s %s", c.Table, c.Column, c.To)
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
	colLineRE   = regexp.MustCompile("(?s)^\\s*`((?:[^`]|``)+)` (.*?),?$")
)

// replicaDDL turns the source's SHOW CREATE TABLE into the replica's: same
// columns, types and keys, on InnoDB so that a chunk and its state commit
// together; the source's AUTO_INCREMENT counter is not carried over; a
// system-versioned table becomes a plain one (see unversioned).
func replicaDDL(create string) string {
	ddl := autoIncRE.ReplaceAllString(unversioned(create), "")
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

var (
	versioningRE = regexp.MustCompile(`(?i) WITH(OUT)? SYSTEM VERSIONING\b`)
	rowPeriodRE  = regexp.MustCompile(`(?i) GENERATED ALWAYS AS ROW (START|END)\b`)
	periodRE     = regexp.MustCompile(`(?i)^\s*PERIOD FOR SYSTEM_TIME\b`)
	sysPartRE    = regexp.MustCompile(`(?is)\s*(/\*!\d+\s*)?PARTITION BY SYSTEM_TIME\b.*$`)
)

// unversioned makes a MariaDB system-versioned table (WITH SYSTEM
// VERSIONING) a plain table. The replica holds the source's current rows,
// which is all a SELECT reads; history of its own (every REPLACE of a run
// would add some) would be meaningless and grow without end, and
// TRUNCATE and ALTER refuse versioned tables. Explicit ROW START / ROW END
// columns become plain NOT NULL columns holding the source's values; the
// PERIOD, the column-level (WITH|WITHOUT) SYSTEM VERSIONING and a PARTITION
// BY SYSTEM_TIME go. A table without versioning is returned unchanged.
func unversioned(create string) string {
	masked := maskQuoted(create)
	if !versioningRE.MatchString(masked) {
		return create
	}
	if loc := sysPartRE.FindStringIndex(masked); loc != nil {
		create = create[:loc[0]]
	}
	lines, mlines := createLines(create)
	var out []string
	for i, l := range lines {
		if periodRE.MatchString(mlines[i]) {
			if !strings.HasSuffix(l, ",") && len(out) > 0 { // it was the last definition
				out[len(out)-1] = strings.TrimSuffix(out[len(out)-1], ",")
			}
			continue
		}
		l, m := replaceOutside(l, mlines[i], rowPeriodRE, " NOT NULL DEFAULT 0")
		l, _ = replaceOutside(l, m, versioningRE, "")
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// maskQuoted returns sql with every byte of quoted identifiers (`…`, “
// doubled) and string literals ('…', ” doubled or backslash-escaped)
// replaced by '_' (newlines kept), so that a clause is only ever found
// outside them: a column named "a with system versioning" or a COMMENT is
// not a clause.
func maskQuoted(sql string) string {
	b := []byte(sql)
	for i := 0; i < len(b); i++ {
		q := b[i]
		if q != '`' && q != '\'' {
			continue
		}
		j := i + 1
		for ; j < len(b); j++ {
			if q == '\'' && b[j] == '\\' {
				j++
				continue
			}
			if b[j] == q {
				if j+1 < len(b) && b[j+1] == q {
					j++
					continue
				}
				break
			}
		}
		for k := i; k <= j && k < len(b); k++ {
			b[k] = '_'
		}
		i = j
	}
	return string(b)
}

// createLines splits a SHOW CREATE TABLE into its lines (one definition
// each), at line breaks outside quoted names and strings: MySQL allows a
// line break in a name. It returns each line and its masked form.
func createLines(create string) (lines, masked []string) {
	m := maskQuoted(create)
	start := 0
	for i := 0; i <= len(m); i++ {
		if i == len(m) || m[i] == '\n' {
			lines, masked = append(lines, create[start:i]), append(masked, m[start:i])
			start = i + 1
		}
	}
	return lines, masked
}

// replaceOutside replaces the matches of re found in masked (the masked
// form of s) in s, and returns the new s and its masked form.
func replaceOutside(s, masked string, re *regexp.Regexp, repl string) (string, string) {
	var out, mout strings.Builder
	last := 0
	for _, loc := range re.FindAllStringIndex(masked, -1) {
		out.WriteString(s[last:loc[0]])
		mout.WriteString(masked[last:loc[0]])
		out.WriteString(repl)
		mout.WriteString(repl)
		last = loc[1]
	}
	out.WriteString(s[last:])
	mout.WriteString(masked[last:])
	return out.String(), mout.String()
}

// splitIndexes cuts the plain secondary indexes (KEY, FULLTEXT KEY) out of
// a CREATE TABLE and returns the rest and the cut definitions. A full copy
// loads faster into a table without them and builds each once, sorted, at
// the end; primary and unique keys stay, they decide what an upsert replaces.
func splitIndexes(create string) (string, []string) {
	lines, _ := createLines(create)
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

// indexDefRE matches an index definition of SHOW CREATE TABLE (the primary
// key aside) and captures its kind and name.
var indexDefRE = regexp.MustCompile("^(UNIQUE |FULLTEXT |SPATIAL )?KEY `((?:[^`]|``)+)`")

// indexDefs maps the index definitions of a CREATE TABLE (the primary key
// aside) by lower-case name (MySQL compares index names case-insensitively).
func indexDefs(create string) map[string]string {
	out := map[string]string{}
	lines, _ := createLines(create)
	for _, l := range lines[1:] {
		d := strings.TrimSuffix(strings.TrimSpace(l), ",")
		if m := indexDefRE.FindStringSubmatch(d); m != nil {
			out[strings.ToLower(strings.ReplaceAll(m[2], "``", "`"))] = d
		}
	}
	return out
}

// indexClauses compares the indexes of two CREATE TABLEs by name and
// definition and returns the ALTER TABLE clauses that drop the replica's
// stale ones and, with add, add the source's missing ones, with each
// difference as a Change. Stale indexes are dropped before a copy (a stale
// unique one would make REPLACE drop rows); missing ones are added after it
// (the rows a unique one needs are not there before, and a fresh copy loads
// faster without them).
func indexClauses(table, srcCreate, repCreate string, add bool) ([]string, []Change) {
	src, rep := indexDefs(srcCreate), indexDefs(repCreate)
	var clauses []string
	var changes []Change
	for _, name := range sortedKeys(rep) {
		if src[name] != rep[name] {
			m := indexDefRE.FindStringSubmatch(rep[name])
			clauses = append(clauses, "DROP INDEX `"+m[2]+"`")
			changes = append(changes, Change{Table: table, Kind: "drop_index", Column: strings.ReplaceAll(m[2], "``", "`"), From: rep[name]})
		}
	}
	for _, name := range sortedKeys(src) {
		if add && src[name] != rep[name] {
			m := indexDefRE.FindStringSubmatch(src[name])
			clauses = append(clauses, "ADD "+src[name])
			changes = append(changes, Change{Table: table, Kind: "add_index", Column: strings.ReplaceAll(m[2], "``", "`"), To: src[name]})
		}
	}
	return clauses, changes
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// columnDefs maps each column of a SHOW CREATE TABLE to its definition text.
func columnDefs(create string) map[string]string {
	out := map[string]string{}
	lines, _ := createLines(create)
	for _, line := range lines[1:] {
		if m := colLineRE.FindStringSubmatch(line); m != nil {
			out[strings.ReplaceAll(m[1], "``", "`")] = strings.TrimSuffix(strings.TrimSpace(line), ",")
		}
	}
	return out
}

// diffColumns lists the ALTER TABLE clauses that make the replica's columns
// equal the source's (names, order, types, nullability), with what changed.
func diffColumns(table string, src, rep *schema.Table, defs map[string]string) ([]string, []Change, error) {
	var clauses []string
	var changes []Change
	have := map[string]schema.Column{}
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

func typeText(c schema.Column) string {
	if c.Nullable {
		return c.Type + " NULL"
	}
	return c.Type + " NOT NULL"
}

func sameOrder(a, b *schema.Table) bool {
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
func needsDDL(src, rep *schema.Table) bool {
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

// keyChanged reports whether the source's primary key is not the replica
// table's (other columns, another order, added or dropped). Rows keyed the
// old way would collapse or never be matched, so the table is rebuilt.
func keyChanged(src, rep *schema.Table) bool { return !sameNames(src.PrimaryKey, rep.PrimaryKey) }

// sameNames compares column lists as MySQL compares column names.
func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !strings.EqualFold(a[i], b[i]) {
			return false
		}
	}
	return true
}

// keyText shows a key for humans: "(a, b)", or "(none)".
func keyText(cols []string) string {
	if len(cols) == 0 {
		return "(none)"
	}
	return "(" + strings.Join(cols, ", ") + ")"
}

// configKeyStale says, when tables.yml names a primary_key that is not the
// source's, that the source's is used and how to refresh the file; "" when
// they agree (or tables.yml names none).
func configKeyStale(cfg *tables.Table, src *schema.Table) string {
	if len(cfg.PrimaryKey) == 0 || sameNames(cfg.PrimaryKey, src.PrimaryKey) {
		return ""
	}
	return fmt.Sprintf("tables.yml primary_key %s is not the source's %s: the source's is used; run `pipeline discover` to update tables.yml",
		keyText(cfg.PrimaryKey), keyText(src.PrimaryKey))
}

// indexDrift compares the indexes other than the primary key, by name and
// definition: stale are the replica's that the source lacks or defines
// otherwise (dropped first: a stale unique index would make REPLACE drop
// rows), missing the source's the replica lacks or defines otherwise.
func indexDrift(src, rep *schema.Table) (stale, missing []string) {
	srcIx, repIx := indexMap(src), indexMap(rep)
	for name, ix := range repIx {
		if s, ok := srcIx[name]; !ok || !s.Same(ix) {
			stale = append(stale, name)
		}
	}
	for name, ix := range srcIx {
		if r, ok := repIx[name]; !ok || !r.Same(ix) {
			missing = append(missing, name)
		}
	}
	sort.Strings(stale)
	sort.Strings(missing)
	return stale, missing
}

// indexMap is a table's indexes but the primary key, by lower-case name
// (MySQL compares index names case-insensitively).
func indexMap(t *schema.Table) map[string]schema.Index {
	out := map[string]schema.Index{}
	for _, ix := range t.Indexes {
		if ix.Name != "PRIMARY" {
			out[strings.ToLower(ix.Name)] = ix
		}
	}
	return out
}
