package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/opendental"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// discover then replicate through the CLI, the source read by a user
// granted SELECT only.
func TestDiscoverAndReplicateCommands(t *testing.T) {
	dir := checkEnv(t)
	src, err := testdb.OpenMySQL(testdb.MySQLConfig(os.Getenv("TEST_OPENDENTAL_SOURCE_DB"), catalog.DatabaseReplication))
	require.NoError(t, err)
	defer src.Close()
	for _, d := range opendental.Real93() {
		if d.Name == "definition" || d.Name == "patient" {
			_, err := src.Exec(strings.ReplaceAll(d.SQL, "utf8mb3_uca1400_ai_ci", "utf8mb3_general_ci"))
			require.NoError(t, err)
		}
	}
	_, err = src.Exec("INSERT INTO definition (Category, ItemOrder, ItemName, ItemValue, ItemColor, IsHidden) VALUES (1,1,'a','',0,0),(1,2,'b','',0,0)")
	require.NoError(t, err)

	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), append([]string{"--env", "test", "--config-dir", dir}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, out, errOut := cli("replicate")
	assert.Equal(t, exitConfig, code, "no tables.yml yet")
	assert.Contains(t, errOut, "run `pipeline discover` first")
	assert.Empty(t, out, "nothing replicated, no summary")

	code, out, errOut = cli("discover")
	require.Equal(t, exitOK, code, errOut)
	assert.Contains(t, out, "new table definition")
	assert.Contains(t, out, "wrote "+filepath.Join(dir, "tables.yml")+": 2 tables")

	code, out, errOut = cli("replicate", "--dry-run")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^definition\s+full\s.*create replica table`, out)

	code, out, errOut = cli("replicate", "--workers", "2")
	require.Equal(t, exitOK, code, errOut)
	assert.Regexp(t, `(?m)^definition\s+full\s+2\s+2\s+0\s`, out)
	assert.Contains(t, out, "2 tables, 0 failed")

	code, _, errOut = cli("replicate", "--tables", "definition,nosuch")
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, errOut, "nosuch")

	code, _, errOut = cli("replicate", "--workers", "-1")
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, errOut, "--workers, --source-connections and --load-workers must not be negative")
	code, _, _ = cli("replicate", "extra")
	assert.Equal(t, exitConfig, code)
	assert.NotContains(t, out+errOut, secret)
}
