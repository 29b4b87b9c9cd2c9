// Package rowhash is the one SQL expression that hashes a MySQL row's exact
// bytes to 64 bits. Replication's key-range diff and verify's source ↔
// replica comparison both use it, so the two sides of a comparison, and the
// two phases, always hash alike.
//
// The hash is only meaningful between tables with the same column types
// (the replica is created from the source's own definition): every column
// is taken as its binary bytes (HEX(CAST(col AS BINARY))), FLOAT widened to
// DOUBLE first so all its digits count, NULL written as 'N' (distinct from
// any value, whose hex never contains N), joined with commas, MD5'd, and the
// first 16 hex digits read as an unsigned 64-bit integer. Sums of it over a
// key range are taken with BIT_XOR (a plain aggregate: MariaDB 10.11's
// BIT_XOR window function sign-extends, so it is not used).
package rowhash

import (
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

// Expr is the hash expression of a row of cols, as an unsigned BIGINT. The
// columns are referenced by their quoted names, unqualified.
func Expr(cols []schema.Column) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		v := quote(c.Name)
		if strings.EqualFold(c.DataType, "float") {
			v = "CAST(" + v + " AS DOUBLE)"
		}
		parts[i] = "IFNULL(HEX(CAST(" + v + " AS BINARY)),'N')"
	}
	return "CAST(CONV(LEFT(MD5(CONCAT_WS(','," + strings.Join(parts, ",") + ")),16),16,10) AS UNSIGNED)"
}

func quote(name string) string { return "`" + strings.ReplaceAll(name, "`", "``") + "`" }
