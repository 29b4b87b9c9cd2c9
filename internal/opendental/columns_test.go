package opendental

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestColumns(t *testing.T) {
	cols := Columns()
	require.Len(t, cols, 4267)
	fk := map[string]string{}
	for _, c := range cols {
		fk[c.Table+"."+c.Name] = c.FKTable
	}
	assert.Equal(t, "patient", fk["appointment.PatNum"])
	assert.Equal(t, "procedurelog", fk["claimproc.ProcNum"])
	assert.Equal(t, "", fk["appointment.AptNum"])
}
