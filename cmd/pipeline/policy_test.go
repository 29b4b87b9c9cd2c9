package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHashPolicyNeedsKey: with a hash policy in tables.yml and no key (or a
// short one), load and run exit 2 naming the variable, before any database
// is touched: raw stays as it was. With the key the column is hashed, and
// the key appears in no output.
func TestHashPolicyNeedsKey(t *testing.T) {
	dir, pg := loadEnv(t)
	ctx := context.Background()
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(ctx, append([]string{"--config-dir", dir, "--env", "test"}, args...), &stdout, &stderr)
		return code, stdout.String() + stderr.String()
	}
	code, out := run("load")
	require.Equal(t, exitOK, code, out)
	rawLName := func() string {
		var s string
		require.NoError(t, pg.QueryRow(ctx, `SELECT string_agg("LName", ',' ORDER BY "PatNum") FROM raw.patient`).Scan(&s))
		return s
	}
	require.Equal(t, "A,B", rawLName())

	require.NoError(t, os.WriteFile(filepath.Join(dir, "tables.yml"), []byte(`tables:
  patient:
    primary_key: [PatNum]
    extraction_strategy: full_table
    column_policies: {LName: hash}
  definition:
    primary_key: [DefNum]
    extraction_strategy: full_table
`), 0o600))
	t.Setenv("TEST_PIPELINE_HASH_KEY", "")
	for _, cmd := range []string{"load", "run", "verify"} {
		args := map[string][]string{"load": {"--full-refresh"}, "run": {"--full-refresh"}, "verify": nil}[cmd]
		code, out = run(append([]string{cmd}, args...)...)
		assert.Equal(t, exitConfig, code, cmd)
		assert.Contains(t, out, "TEST_PIPELINE_HASH_KEY is not set, and tables.yml hashes columns", cmd)
	}
	short := "too-short-secret"
	t.Setenv("TEST_PIPELINE_HASH_KEY", short)
	code, out = run("load", "--full-refresh")
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, out, "TEST_PIPELINE_HASH_KEY: the hash key is 16 bytes; it must be at least 32")
	assert.NotContains(t, out, short)
	assert.Equal(t, "A,B", rawLName(), "nothing was touched")

	key := "a-clinic-secret-of-more-than-32-bytes"
	t.Setenv("TEST_PIPELINE_HASH_KEY", key)
	code, out = run("load")
	require.Equal(t, exitOK, code, out)
	assert.NotContains(t, out, key)
	m := func(v string) string {
		h := hmac.New(sha256.New, []byte(key))
		h.Write([]byte(v))
		return hex.EncodeToString(h.Sum(nil))
	}
	assert.Equal(t, m("A")+","+m("B"), rawLName(), "the policy change rebuilt the column without --full-refresh")
}
