package opendental

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSchemasSplit(t *testing.T) {
	r := Real93()
	require.Len(t, r, 93)
	assert.Equal(t, "adjustment", r[0].Name)
	assert.Contains(t, r[0].SQL, "ENGINE=MyISAM")
	assert.NotContains(t, r[0].SQL, ";")
	f := Full408()
	require.Len(t, f, 408)
	seen := map[string]bool{}
	for _, d := range f {
		assert.False(t, seen[d.Name], "duplicate %s", d.Name)
		seen[d.Name] = true
	}
}

func TestVolumes(t *testing.T) {
	v, err := Volumes()
	require.NoError(t, err)
	assert.Len(t, v, 446)
	assert.Equal(t, int64(4737615), v["securitylog"].Rows)
	assert.Equal(t, "", v["tempimageconv2"].PrimaryKey)
}
