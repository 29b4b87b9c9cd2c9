package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// checkEnv sets the process environment the way an operator would: the
// test environment's variables pointing at fresh databases, the source
// through its own user whose password is secret. It returns the config dir
// (a copy of the repository's example pipeline.yml).
func checkEnv(t *testing.T) string {
	t.Helper()
	vars, _, _ := testVars(t)

	// A source user with a real password, so a password is in play on the
	// successful path too.
	admin, err := testdb.OpenMySQL(testdb.MySQLConfig("", catalog.DatabaseReplication))
	require.NoError(t, err)
	defer admin.Close()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	user := "pipeline_test_" + hex.EncodeToString(b)
	_, err = admin.Exec(fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, secret))
	require.NoError(t, err)
	t.Cleanup(func() {
		a, err := testdb.OpenMySQL(testdb.MySQLConfig("", catalog.DatabaseReplication))
		if err == nil {
			_, _ = a.Exec(fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user))
			a.Close()
		}
	})
	_, err = admin.Exec(fmt.Sprintf("GRANT SELECT ON `%s`.* TO '%s'@'%%'", vars["TEST_OPENDENTAL_SOURCE_DB"], user))
	require.NoError(t, err)
	vars["TEST_OPENDENTAL_SOURCE_USER"] = user
	vars["TEST_OPENDENTAL_SOURCE_PASSWORD"] = secret
	vars["TEST_POSTGRES_ANALYTICS_PASSWORD"] = secret // trust auth ignores it; it must not show either

	return useProcessEnv(t, vars)
}

// useProcessEnv makes vars the process environment (clearing the variables
// that choose the environment and config dir) and returns a config dir
// holding a copy of the repository's example pipeline.yml.
func useProcessEnv(t *testing.T, vars map[string]string) string {
	t.Helper()
	for _, name := range append([]string{providers.ConfigDirVar}, providers.EnvironmentVars...) {
		t.Setenv(name, "")
	}
	for k, v := range vars {
		t.Setenv(k, v)
	}
	dir := t.TempDir()
	example, err := os.ReadFile(filepath.Join("..", "..", "config", "pipeline.yml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "pipeline.yml"), example, 0o600))
	return dir
}

func TestCheckAgainstRealServers(t *testing.T) {
	dir := checkEnv(t)
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"--config-dir", dir, "check", "--env", "test"}, &stdout, &stderr)
	out := stdout.String()
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())

	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.GreaterOrEqual(t, len(lines), 1+2+len(catalog.PostgresSchemaValues()))
	assert.Regexp(t, `^DATABASE\s+ADDRESS\s+NAME\s+STATUS\s+VERSION\s+SSL_MODE\s+TLS\s+RTT$`, lines[0])
	for _, label := range []string{"source", "replication", "analytics/raw", "analytics/staging", "analytics/intermediate", "analytics/marts"} {
		// The local servers offer TLS, so the default (prefer) encrypts.
		assert.Regexp(t, `(?m)^`+label+`\s+127\.0\.0\.1:\d+\s+pipeline_test_\S+\s+ok\s+\S.*?\s+prefer\s+TLSv1\.[23]\s+\d[\d.]*[µnm]?s$`, out, label)
	}
	assert.Contains(t, out, "MariaDB", "server version of the MySQL rows")
	assert.Contains(t, out, "all 6 connections ok")
	assert.NotContains(t, out+stderr.String(), secret)
}

func TestCheckReportsFailuresAndConfigErrors(t *testing.T) {
	dir := checkEnv(t)
	t.Setenv("TEST_OPENDENTAL_SOURCE_PASSWORD", "wrong-"+secret)
	t.Setenv("TEST_MYSQL_REPLICATION_PORT", "1")

	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "check"}, &stdout, &stderr)
	out := stdout.String()
	assert.Equal(t, exitConfig, code, "a refused login is configuration, fixed before an outage is waited out:\n%s", out)
	assert.Regexp(t, `(?m)^source\s+\S+\s+\S+\s+error\s`, out)
	assert.Regexp(t, `(?m)^replication\s+127\.0\.0\.1:1\s+\S+\s+error\s`, out)
	assert.Regexp(t, `(?m)^analytics/raw\s+\S+\s+\S+\s+ok\s`, out)
	assert.Contains(t, out, "2 of 6 connections failed")
	assert.Contains(t, out, "refused the login: Error 1045 (28000): Access denied")
	assert.Contains(t, out, "cannot reach replication database "+os.Getenv("TEST_MYSQL_REPLICATION_DB")+" at 127.0.0.1:1: connection refused — check TEST_MYSQL_REPLICATION_HOST/PORT")
	assert.Equal(t, "pipeline check: 2 of 6 connections failed\n", stderr.String())
	assert.NotContains(t, out+stderr.String(), secret)

	// Only an unreachable server: retry later.
	t.Setenv("TEST_OPENDENTAL_SOURCE_PASSWORD", secret)
	stdout.Reset()
	stderr.Reset()
	code = dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "check"}, &stdout, &stderr)
	assert.Equal(t, exitUnavailable, code, stdout.String())
	assert.Contains(t, stdout.String(), "1 of 6 connections failed")

	// A configuration error: exit 2 and every problem, nothing connected.
	t.Setenv("TEST_POSTGRES_ANALYTICS_DB", "analytics")
	t.Setenv("TEST_OPENDENTAL_SOURCE_HOST", "")
	stdout.Reset()
	stderr.Reset()
	code = dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "check"}, &stdout, &stderr)
	assert.Equal(t, exitConfig, code)
	assert.Empty(t, stdout.String(), "no table before the configuration is valid")
	assert.Contains(t, stderr.String(), "TEST_OPENDENTAL_SOURCE_HOST is empty")
	assert.Contains(t, stderr.String(), `TEST_POSTGRES_ANALYTICS_DB="analytics" has no "test"`)
	assert.NotContains(t, stderr.String(), secret)

	// An unknown environment is a configuration error too.
	stderr.Reset()
	code = dispatch(context.Background(), []string{"--env", "staging", "--config-dir", dir, "check"}, &stdout, &stderr)
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, stderr.String(), `unknown environment "staging"`)
}

func TestExamplePipelineConfigParses(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "pipeline.yml"))
	require.NoError(t, err)
	cfg, err := providers.ParsePipeline("config/pipeline.yml", data)
	require.NoError(t, err)
	assert.Equal(t, providers.DefaultPipelineConfig().Pool(catalog.DatabaseSource), cfg.Pool(catalog.DatabaseSource),
		"the example documents the defaults")
	assert.Equal(t, providers.DefaultPipelineConfig().Replication, cfg.Replication)
	assert.Equal(t, providers.DefaultPipelineConfig().Load, cfg.Load)
}

func TestCheckListsVariables(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitOK, dispatch(context.Background(), []string{"--env", "test", "check", "--vars"}, &stdout, &stderr), stderr.String())
	out := stdout.String()
	assert.Contains(t, out, "environment: test")
	assert.Regexp(t, `(?m)^TEST_OPENDENTAL_SOURCE_HOST\s+yes\s+source: server host name`, out)
	assert.Regexp(t, `(?m)^TEST_POSTGRES_ANALYTICS_SCHEMA\s+no\s+analytics:`, out)
	assert.NotContains(t, out, "TEST_MYSQL_REPLICATION_SCHEMA", "only databases with schemas have one")
	assert.NotRegexp(t, `(?m)^OPENDENTAL`, out, "no production variable in the test list")

	stdout.Reset()
	require.Equal(t, exitOK, dispatch(context.Background(), []string{"check", "--env", "production", "--vars"}, &stdout, &stderr))
	assert.Regexp(t, `(?m)^MYSQL_REPLICATION_PASSWORD\s+no\s`, stdout.String())
}

// check shows per database the TLS mode and whether the session is
// encrypted; a certificate that does not verify is a failed row naming the
// database, host and variable (exit 2: retrying will not help); a bad TLS
// setting is a configuration error before anything connects.
func TestCheckShowsTLS(t *testing.T) {
	dir := checkEnv(t)
	ca := testdb.TLSFile(t, testdb.TLSCA)
	t.Setenv("TEST_OPENDENTAL_SOURCE_SSL_MODE", "verify-full")
	t.Setenv("TEST_OPENDENTAL_SOURCE_SSL_CA", ca)
	t.Setenv("TEST_MYSQL_REPLICATION_SSL_MODE", "disable")
	t.Setenv("TEST_POSTGRES_ANALYTICS_SSL_MODE", "verify-ca")
	t.Setenv("TEST_POSTGRES_ANALYTICS_SSL_CA", ca)
	var stdout, stderr bytes.Buffer
	code := dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "check"}, &stdout, &stderr)
	out := stdout.String()
	require.Equal(t, exitOK, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())
	assert.Regexp(t, `(?m)^source\s+\S+\s+\S+\s+ok\s+\S.*?\s+verify-full\s+TLSv1\.[23]\s`, out)
	assert.Regexp(t, `(?m)^replication\s+\S+\s+\S+\s+ok\s+\S.*?\s+disable\s+none\s`, out)
	assert.Regexp(t, `(?m)^analytics/marts\s+\S+\s+\S+\s+ok\s+\S.*?\s+verify-ca\s+TLSv1\.[23]\s`, out)

	wrong := testdb.TLSFile(t, testdb.TLSWrongCA)
	t.Setenv("TEST_OPENDENTAL_SOURCE_SSL_CA", wrong)
	stdout.Reset()
	code = dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "check"}, &stdout, &stderr)
	out = stdout.String()
	assert.Equal(t, exitConfig, code, "a certificate that does not verify is fixed in the configuration:\n%s", out)
	assert.Regexp(t, `(?m)^source\s+127\.0\.0\.1:3306\s+\S+\s+error\s+-\s+verify-full\s+-\s+-$`, out)
	assert.Regexp(t, `(?m)^  source: source database pipeline_test_\S+ at 127\.0\.0\.1:3306: TLS certificate not trusted \(verify-full with TEST_OPENDENTAL_SOURCE_SSL_CA=`+regexp.QuoteMeta(wrong)+`\): .*x509: certificate signed by unknown authority`, out)
	assert.NotContains(t, out+stderr.String(), secret)

	// A bad mode and an unreadable CA: exit 2, every problem, no table.
	t.Setenv("TEST_MYSQL_REPLICATION_SSL_MODE", "verify")
	t.Setenv("TEST_POSTGRES_ANALYTICS_SSL_CA", "/nonexistent/ca.pem")
	stdout.Reset()
	stderr.Reset()
	code = dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "check"}, &stdout, &stderr)
	assert.Equal(t, exitConfig, code)
	assert.Empty(t, stdout.String(), "nothing connected before the configuration is valid")
	assert.Contains(t, stderr.String(), `TEST_MYSQL_REPLICATION_SSL_MODE="verify" is not a TLS mode: use disable, prefer, require, verify-ca or verify-full`)
	assert.Contains(t, stderr.String(), "TEST_POSTGRES_ANALYTICS_SSL_CA=/nonexistent/ca.pem cannot be used (open /nonexistent/ca.pem: no such file or directory)")
}
