package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// MYSQL_REPLICATION_DB naming the source database, reached through another
// host name, is refused by every command that writes the replica: exit 2,
// both variables named, and nothing written or locked in the source.
func TestReplicaThatIsTheSourceIsRefusedByCommands(t *testing.T) {
	vars, _, _ := testVars(t)
	fixture, dbCfg := testdb.MySQL(t, "cmd_same_src")
	_, err := fixture.Exec("CREATE TABLE patient (PatNum BIGINT PRIMARY KEY, LName VARCHAR(100)); INSERT INTO patient VALUES (1, 'Zoë')")
	require.NoError(t, err)
	src := testdb.SourceUser(t, dbCfg)
	replUser := testdb.ReplicaUser(t, dbCfg)
	replUser.Host = "localhost"
	repl, meter := testdb.Metered(t, replUser) // see every statement the replica side runs
	for prefix, c := range map[string]struct {
		host           string
		port           int
		user, password string
	}{"TEST_OPENDENTAL_SOURCE": {src.Host, src.Port, src.User, src.Password}, "TEST_MYSQL_REPLICATION": {"localhost", repl.Port, repl.User, repl.Password}} {
		vars[prefix+"_HOST"], vars[prefix+"_PORT"], vars[prefix+"_DB"] = c.host, fmt.Sprint(c.port), dbCfg.Name
		vars[prefix+"_USER"], vars[prefix+"_PASSWORD"] = c.user, c.password
	}
	dir := useProcessEnv(t, vars)
	cli := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), append([]string{"--env", "test", "--config-dir", dir}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	code, _, errOut := cli("discover") // reads the source only: fine
	require.Equal(t, exitOK, code, errOut)

	for _, args := range [][]string{{"replicate"}, {"replicate", "--full-refresh"}, {"run"}} {
		code, out, errOut := cli(args...)
		assert.Equal(t, exitConfig, code, "%v: %s%s", args, out, errOut)
		assert.Contains(t, errOut, `TEST_MYSQL_REPLICATION_DB="`+dbCfg.Name+`"`, args)
		assert.Contains(t, errOut, `TEST_OPENDENTAL_SOURCE_DB="`+dbCfg.Name+`"`, args)
		assert.Contains(t, errOut, "Set TEST_MYSQL_REPLICATION_DB to a separate database", args)
	}

	var tables int
	require.NoError(t, fixture.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()").Scan(&tables))
	assert.Equal(t, 1, tables, "no state or replica table created in the source")
	assert.Zero(t, testdb.UserCost(t, replUser).Updates, "the replica side wrote nothing")
	seen := meter.Statements()
	require.NotEmpty(t, seen)
	for _, s := range seen {
		q := strings.ToUpper(s.Query)
		assert.NotContains(t, q, "LOCK", "no lock taken: %s", s)
		for _, w := range []string{"CREATE", "INSERT", "REPLACE", "LOAD DATA", "ALTER", "DELETE", "UPDATE"} {
			assert.NotContains(t, q, w, s.String())
		}
	}
}
