package dbt

import "strings"

// keywords are PostgreSQL's keywords that are not "unreserved"
// (pg_get_keywords() catcode R, T or C, through PostgreSQL 17): as a bare
// column or table name they are a syntax error, or change meaning, in some
// statement dbt writes. TestKeywordsCoverTheServer checks the list against
// the server's own.
var keywords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`all analyse analyze and any array as asc asymmetric authorization between bigint
		binary bit boolean both case cast char character check coalesce collate collation column concurrently constraint
		create cross current_catalog current_date current_role current_schema current_time current_timestamp current_user
		dec decimal default deferrable desc distinct do else end except exists extract false fetch float for foreign freeze
		from full grant greatest group grouping having ilike in initially inner inout int integer intersect interval into
		is isnull join json json_array json_arrayagg json_exists json_object json_objectagg json_query json_scalar
		json_serialize json_table json_value lateral leading least left like limit localtime localtimestamp merge_action
		national natural nchar none normalize not notnull null nullif numeric offset on only or order out outer overlaps
		overlay placing position precision primary real references returning right row select session_user setof similar
		smallint some substring symmetric system_user table tablesample then time timestamp to trailing treat trim true
		union unique user using values varchar variadic verbose when where window with xmlattributes xmlconcat xmlelement
		xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable`) {
		m[w] = true
	}
	return m
}()

// NeedsQuotes reports whether dbt must quote name for PostgreSQL to find
// it: a name PostgreSQL would fold (any upper-case letter: "PatNum" unquoted
// is patnum), one that is not a plain identifier (spaces, punctuation,
// non-ASCII, a leading digit, "$") or a keyword.
func NeedsQuotes(name string) bool {
	if name == "" || keywords[name] || (name[0] >= '0' && name[0] <= '9') {
		return true
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return true
		}
	}
	return false
}
