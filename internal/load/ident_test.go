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

	keys := map[string]bool{}
	for n := 1; n <= 63; n++ { // issue 8 item 8: the key constraint of the building table was its own name
		target := strings.Repeat("t", n)
		key := pkeyName(target)
		assert.LessOrEqual(t, len(key), maxIdent)
		assert.True(t, strings.HasSuffix(key, " "), "no source table's raw name ends with a space")
		assert.NotEqual(t, target, key)
		keys[key] = true
	}
	assert.Len(t, keys, 63, "distinct tables, distinct key names")
	assert.Equal(t, "patient_pkey ", pkeyName("patient"))
}
