package rowcopy

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/opendental-pipeline/pipeline/internal/schema"
)

type sqlRaw = sql.RawBytes

func TestFileEscapes(t *testing.T) {
	var f File
	f.Add([]sqlRaw{nil, sqlRaw(""), sqlRaw("a\tb\nc\\d\re\x00f"), sqlRaw(`\N`)})
	assert.Equal(t, "\\N\t\ta\\tb\\nc\\\\d\\re\\0f\t\\\\N\n", f.buf.String())
	assert.Equal(t, 1, f.Rows())
}

// LOAD DATA's column list: YEAR as a number, MariaDB's binary-form types
// through a character set, generated columns read and dropped.
func TestLoadColumns(t *testing.T) {
	cols := []schema.Column{{Name: "id", DataType: "int"}, {Name: "y", DataType: "year"}, {Name: "u", DataType: "uuid"},
		{Name: "a`b", DataType: "inet6"}, {Name: "v", DataType: "int", Computed: true}, {Name: "i4", DataType: "INET4"}}
	assert.Equal(t, "(`id`,@v1,@v2,@v3,@v4,@v5) SET `y` = @v1 + 0, `u` = CONVERT(@v2 USING ascii), `a``b` = CONVERT(@v3 USING ascii), `i4` = CONVERT(@v5 USING ascii)",
		loadColumns(cols))
}
