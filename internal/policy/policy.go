// Package policy applies tables.yml column_policies to a table's columns:
// which replica columns reach raw, and which are written as a keyed hash.
// It is the one place that decision is made: the load writes raw through
// Columns and verify compares raw through the same call, so a dropped or
// hashed column is handled identically by both.
//
// A hashed value is the HMAC-SHA256, keyed with PIPELINE_HASH_KEY, of the
// value's UTF-8 text as raw would otherwise hold it, written as 64 lowercase
// hex digits: equal values hash alike (joins and distinct counts still
// work) and the value cannot be read back without the key. NULL stays NULL.
package policy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/opendental-pipeline/pipeline/internal/schema"
	"github.com/opendental-pipeline/pipeline/internal/tables"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// KeyVar is the environment variable holding the hash key (TEST_KeyVar in
// the test environment, like every other variable).
const KeyVar = "PIPELINE_HASH_KEY"

// MinKeyBytes is the shortest key accepted: HMAC-SHA256's own block of
// security, 256 bits (e.g. `openssl rand -hex 32` gives 64 characters).
const MinKeyBytes = 32

// HashedType is the raw type of a hashed column.
const HashedType = "text"

// HashedReason describes a hashed column (the load's plan, dbt-sources).
const HashedReason = "column_policies hash: keyed HMAC-SHA256 of the value's text, 64 lowercase hex digits (NULL stays NULL)"

// ErrNoKey is returned when a hash policy is set but no key was given.
var ErrNoKey = errors.New("column_policies hash needs a key")

// ErrConfig marks column_policies that do not fit the table.
var ErrConfig = errors.New("column_policies")

// Key is the secret the hash policy is keyed with. It never prints itself:
// fmt shows "[redacted]", so a key cannot reach a log line or an error.
type Key struct {
	secret []byte
}

// NewKey checks and wraps a key; the error never quotes it.
func NewKey(secret string) (*Key, error) {
	if len(secret) < MinKeyBytes {
		return nil, fmt.Errorf("the hash key is %d bytes; it must be at least %d (e.g. the output of `openssl rand -hex 32`)", len(secret), MinKeyBytes)
	}
	return &Key{secret: []byte(secret)}, nil
}

func (k *Key) String() string   { return "[redacted]" }
func (k *Key) GoString() string { return "[redacted]" }

// AppendHash appends the lowercase hex HMAC-SHA256 of text (typemap.Hasher).
func (k *Key) AppendHash(dst, text []byte) []byte {
	mac := hmac.New(sha256.New, k.secret)
	mac.Write(text)
	var sum [sha256.Size]byte
	return hex.AppendEncode(dst, mac.Sum(sum[:0]))
}

// Fingerprint names the key without revealing it (the first 8 hex digits
// of its HMAC of a fixed label): the load records it with the raw table so
// a new key rebuilds the hashed columns instead of mixing two keys' hashes.
func (k *Key) Fingerprint() string {
	return string(k.AppendHash(nil, []byte("pipeline column_policies key fingerprint")))[:8]
}

// Column is one replica column that reaches raw, with its mapping (for a
// hashed column, text written through the key) and its policy.
type Column struct {
	schema.Column
	typemap.Mapping
	Policy tables.ColumnPolicy
}

// Columns is src's columns as raw holds them, in source order (Plan),
// with each hashed column written through key, which must be given when a
// column is hashed (ErrNoKey).
func Columns(t *tables.Table, src *schema.Table, key *Key) ([]Column, error) {
	cols, err := Plan(t, src)
	if err != nil {
		return nil, err
	}
	for i := range cols {
		if cols[i].Policy != tables.Hash {
			continue
		}
		if key == nil {
			return nil, fmt.Errorf("%w: %s.%s; set %s (at least %d bytes)", ErrNoKey, src.Name, cols[i].Name, KeyVar, MinKeyBytes)
		}
		cols[i].Hash = key
	}
	return cols, nil
}

// Plan is src's columns as raw holds them, in source order: dropped
// columns left out, hashed ones mapped to text (not yet bound to a key:
// what describes raw, such as dbt-sources, needs no key). Every policy must
// name a column src has, and none may name a key column (ErrConfig).
func Plan(t *tables.Table, src *schema.Table) ([]Column, error) {
	for name, p := range t.ColumnPolicies {
		c := src.Column(name)
		if c == nil {
			return nil, fmt.Errorf("%w: tables.yml %s.column_policies names column %q, which the replica table does not have; fix the name or run `pipeline discover`", ErrConfig, src.Name, name)
		}
		if p != tables.Keep && containsFold(src.PrimaryKey, c.Name) {
			return nil, fmt.Errorf("%w: tables.yml %s.column_policies: %s is a primary key column and must be kept", ErrConfig, src.Name, c.Name)
		}
	}
	var out []Column
	for _, c := range src.Columns {
		p := t.Policy(c.Name)
		if p == tables.Drop {
			continue
		}
		m, err := typemap.Map(c, t.ColumnTypeOverride[c.Name])
		if err != nil && p != tables.Hash {
			return nil, err
		}
		if p == tables.Hash {
			m = hashed(c, m)
		}
		out = append(out, Column{Column: c, Mapping: m, Policy: p})
	}
	return out, nil
}

// hashed is m (the column's own mapping, which decides how its value is
// read and converted to text) as a hash in a text column.
func hashed(c schema.Column, m typemap.Mapping) typemap.Mapping {
	if m.Source == "" { // a type the mapping does not know: read as text
		m = typemap.Mapping{Source: c.Type, Conv: typemap.ConvText, SelectExpr: typemap.QuoteMySQL(c.Name)}
	}
	m.Target, m.Override = HashedType, false
	m.Reason = HashedReason
	return m
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
