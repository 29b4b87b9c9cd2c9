package load

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A latin1 column holding bytes that are not UTF-8 (e.g. UTF-8 text written
// byte by byte into latin1, or cp1252's unassigned 0x81) is not damaged by
// the loader: MySQL converts each byte to its character for the utf8mb4
// connection, so nothing needs replacing and nothing is counted. Quotes
// and backticks in names survive quoting on both sides.
func TestLatin1BytesAndQuotedNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.exec(t, "CREATE TABLE `we\"ird``t` (`id` int PRIMARY KEY, `co\"l``x` varchar(20) CHARACTER SET latin1, b varbinary(4))",
		"INSERT INTO `we\"ird``t` VALUES (1, UNHEX('E9FF81C3A900'), UNHEX('E9FF81'))")
	r := e.run(t, nil, Options{}).Tables[0]
	require.Equal(t, StatusOK, r.Status, r.Error)
	assert.Equal(t, "we\"ird`t", r.Target)
	assert.Equal(t, map[string]map[string]int64{"co\"l`x": {"nul_byte": 1}}, r.Conversions, "only the NUL byte is converted")
	got := e.texts(t, `SELECT "co""l`+"`"+`x", b::text FROM raw."we""ird`+"`"+`t"`)
	assert.Equal(t, []*string{ptr("éÿ\u0081Ã©"), ptr(`\xe9ff81`)}, got)
}
