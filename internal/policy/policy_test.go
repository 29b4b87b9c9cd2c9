package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

const secret = "0123456789abcdef0123456789abcdef!"

func TestKeyNeverPrints(t *testing.T) {
	k, err := NewKey(secret)
	require.NoError(t, err)
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		assert.NotContains(t, fmt.Sprintf(f, k), "0123456789", f)
		assert.NotContains(t, fmt.Sprintf(f, struct{ K *Key }{k}), "0123456789", f)
	}
	_, err = NewKey("short secret")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "short secret")

	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("Smith"))
	assert.Equal(t, hex.EncodeToString(m.Sum(nil)), string(k.AppendHash(nil, []byte("Smith"))))
	other, _ := NewKey(secret + "x")
	assert.Len(t, k.Fingerprint(), 8)
	assert.NotEqual(t, k.Fingerprint(), other.Fingerprint())
}

func TestColumns(t *testing.T) {
	src := &schema.Table{Name: "patient", PrimaryKey: []string{"PatNum"}, Columns: []schema.Column{
		{Name: "PatNum", DataType: "bigint", Type: "bigint(20)"},
		{Name: "LName", DataType: "varchar", Type: "varchar(100)"},
		{Name: "SSN", DataType: "varchar", Type: "varchar(100)"},
		{Name: "Birthdate", DataType: "date", Type: "date"},
	}}
	k, _ := NewKey(secret)
	tb := &tables.Table{Name: "patient", ColumnPolicies: map[string]tables.ColumnPolicy{"ssn": tables.Drop, "LName": tables.Hash}}
	cols, err := Columns(tb, src, k)
	require.NoError(t, err)
	var names []string
	for _, c := range cols {
		names = append(names, c.Name+":"+c.Mapping.Target)
	}
	assert.Equal(t, []string{"PatNum:bigint", "LName:text", "Birthdate:date"}, names)
	assert.Equal(t, tables.Hash, cols[1].Policy)

	var counts typemap.Counts
	out, err := typemap.AppendValue(nil, []byte("Sm\x00ith"), &cols[1].Mapping, &counts)
	require.NoError(t, err)
	assert.Equal(t, string(k.AppendHash(nil, []byte("Smith"))), string(out), "hashed after the load's text conversion")
	assert.EqualValues(t, 1, counts[typemap.NULByte])
	out, _ = typemap.AppendValue(nil, nil, &cols[1].Mapping, &counts)
	assert.Equal(t, `\N`, string(out), "NULL stays NULL")

	_, err = Columns(tb, src, nil)
	assert.ErrorIs(t, err, ErrNoKey)
	_, err = Columns(&tables.Table{ColumnPolicies: map[string]tables.ColumnPolicy{"Gone": tables.Drop}}, src, nil)
	assert.ErrorIs(t, err, ErrConfig)
}
