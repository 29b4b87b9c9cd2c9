package load

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// Names PostgreSQL would cut at 63 bytes are shortened with a hash instead:
// they fit, stay valid UTF-8, and names sharing their first 63 bytes stay
// distinct — also the derived ones (building table, key constraint).
func TestFitIdent(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "patient", RawName("patient", false))
	exact := strings.Repeat("x", 63)
	assert.Equal(t, exact, RawName(exact, false), "63 bytes fit as they are")
	for _, name := range []string{strings.Repeat("L", 64), strings.Repeat("日", 64), strings.Repeat("é", 40), "a" + strings.Repeat("日", 21)} {
		got := RawName(name, false)
		assert.LessOrEqual(t, len(got), maxIdent, name)
		assert.True(t, utf8.ValidString(got), name)
		assert.Equal(t, got, RawName(name, false), "stable")
	}
	a, b := strings.Repeat("L", 63)+"a", strings.Repeat("L", 63)+"b"
	assert.NotEqual(t, RawName(a, false), RawName(b, false), "same first 63 bytes, different names")

	for n := 54; n <= 63; n++ { // issue 8 item 8: the key constraint of the building table was its own name
		p := &plan{target: strings.Repeat("t", n)}
		names := map[string]bool{p.target: true, p.tmpName(): true, p.pkeyName(p.tmpName()): true, p.pkeyName(p.target): true}
		assert.Len(t, names, 4, "%d bytes: table, building table and both keys are distinct", n)
		for name := range names {
			assert.LessOrEqual(t, len(name), maxIdent)
		}
	}
}
