package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// exitFor is the one place errors become exit codes. The real situations
// behind each code are the tests below; this table pins the precedence.
func TestExitForMapsEachOutcome(t *testing.T) {
	t.Parallel()
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	ping := func(err error) error {
		return fmt.Errorf("starting: %w", &factory.PingError{Config: testdb.MySQLConfig("x", catalog.DatabaseSource), Err: err})
	}
	tests := []struct {
		name string
		ctx  context.Context
		err  error
		want int
	}{
		{"nothing wrong", context.Background(), nil, exitOK},
		{"tables failed", context.Background(), errTablesFailed, exitFailed},
		{"anything else", context.Background(), errors.New("boom"), exitFailed},
		{"config", context.Background(), fmt.Errorf("x: %w", providers.ErrInvalidConfig), exitConfig},
		{"replicate config", context.Background(), fmt.Errorf("x: %w", replicate.ErrConfig), exitConfig},
		{"load config", context.Background(), fmt.Errorf("x: %w", load.ErrConfig), exitConfig},
		{"login refused at start", context.Background(), ping(&mysql.MySQLError{Number: 1045}), exitConfig},
		{"replica or warehouse locked", context.Background(), fmt.Errorf("x: %w", lock.ErrLocked), exitLocked},
		{"unreachable at start", context.Background(), ping(refused), exitUnavailable},
		{"interrupted", context.Background(), errInterrupted, exitInterrupted},
		{"anything after a signal", cancelled, errors.New("read source schema: context canceled"), exitInterrupted},
		{"a signal beats a config error", cancelled, providers.ErrInvalidConfig, exitInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, exitFor(tt.ctx, tt.err))
		})
	}
}

// A database that cannot be reached at start is exit 4 (retry later), a
// refused login exit 2 (fix the configuration); either is one line naming
// the database, its address and the variables to check, without fx's
// lines or Go function names, and never the password.
func TestStartupFailureIsOneLine(t *testing.T) {
	dir := checkEnv(t)
	db := os.Getenv("TEST_OPENDENTAL_SOURCE_DB")
	wrongCA := testdb.TLSFile(t, testdb.TLSWrongCA)
	tests := []struct {
		name string
		env  map[string]string
		code int
		want string
	}{
		{"nothing listening", map[string]string{"TEST_OPENDENTAL_SOURCE_PORT": "1"}, exitUnavailable,
			"pipeline discover: cannot reach source database " + db + " at 127.0.0.1:1: connection refused — check TEST_OPENDENTAL_SOURCE_HOST/PORT and that the server is up\n"},
		{"wrong password", map[string]string{"TEST_OPENDENTAL_SOURCE_PASSWORD": "wrong-" + secret}, exitConfig,
			"pipeline discover: source database " + db + " at 127.0.0.1:3306 refused the login: Error 1045 (28000): Access denied for user"},
		{"untrusted certificate", map[string]string{"TEST_OPENDENTAL_SOURCE_SSL_MODE": "verify-full", "TEST_OPENDENTAL_SOURCE_SSL_CA": wrongCA}, exitConfig,
			"pipeline discover: source database " + db + " at 127.0.0.1:3306: TLS certificate not trusted (verify-full with TEST_OPENDENTAL_SOURCE_SSL_CA=" + wrongCA + "): "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			code := dispatch(context.Background(), []string{"--env", "test", "--config-dir", dir, "discover"}, &stdout, &stderr)
			assert.Equal(t, tt.code, code)
			assert.Empty(t, stdout.String())
			assert.Equal(t, 1, strings.Count(stderr.String(), "\n"), "one line:\n%s", stderr.String())
			assert.True(t, strings.HasPrefix(stderr.String(), tt.want), "got:\n%s\nwant it to start with:\n%s", stderr.String(), tt.want)
			assert.NotContains(t, stderr.String(), "github.com/", "no Go function names")
			assert.NotContains(t, stderr.String(), secret)
		})
	}
}

// SIGINT during replication stops the run: the load phase never starts,
// the output after the signal is one line, and the exit code is 130. The
// real binary gets a real signal. The barrier: table b is write-locked at
// the source by this test, so its copy blocks until the process is gone;
// the signal is sent once table a is logged as replicated.
func TestInterruptDuringReplicationStopsTheRun(t *testing.T) {
	t.Parallel()
	vars, _, pgName := testVars(t)
	dir := t.TempDir()
	writeTables(t, dir, "tables:\n"+
		"  a:\n    primary_key: [id]\n    extraction_strategy: full_table\n    importance: critical\n"+
		"  b:\n    primary_key: [id]\n    extraction_strategy: full_table\n    importance: reference\n")
	src := openTestMySQL(t, vars["TEST_OPENDENTAL_SOURCE_DB"])
	mustExec(t, src, "CREATE TABLE a (id INT PRIMARY KEY)", "INSERT INTO a VALUES (1), (2)",
		"CREATE TABLE b (id INT PRIMARY KEY)", "INSERT INTO b VALUES (1)")
	locker, err := src.Conn(context.Background())
	require.NoError(t, err)
	defer locker.Close()
	_, err = locker.ExecContext(context.Background(), "LOCK TABLES b WRITE")
	require.NoError(t, err)
	defer func() { _, _ = locker.ExecContext(context.Background(), "UNLOCK TABLES") }()

	cmd := exec.Command(binary(t), "--env", "test", "--config-dir", dir, "run", "--workers", "1")
	cmd.Env = append(os.Environ(), "ETL_ENVIRONMENT=", "ENVIRONMENT=", "APP_ENV=", "PIPELINE_CONFIG_DIR=")
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() { _ = cmd.Process.Kill() }() // only if a require below stops the test early
	lines := bufio.NewScanner(stderr)
	var before []string
	triggered := false
	for !triggered && lines.Scan() {
		before = append(before, lines.Text())
		triggered = strings.Contains(lines.Text(), `msg="table replicated"`) && strings.Contains(lines.Text(), "table=a ")
	}
	require.True(t, triggered, "table a was never replicated:\n%s", strings.Join(before, "\n"))
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	var after []string
	for lines.Scan() {
		after = append(after, lines.Text())
	}
	err = cmd.Wait()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, exitInterrupted, exit.ExitCode(), "before the signal:\n%s", strings.Join(before, "\n"))
	assert.Equal(t, []string{"pipeline run: interrupted: committed work is kept; the next run resumes"}, after)
	assert.Empty(t, stdout.String(), "no summary, no FAILED rows")

	pg := openTestPostgres(t, pgName)
	var n int
	require.NoError(t, pg.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'raw'").Scan(&n))
	assert.Zero(t, n, "the load phase did not run")
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// binary builds the pipeline command once per test process.
func binary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pipeline-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "pipeline")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	require.NoError(t, binaryErr)
	return binaryPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

func writeTables(t *testing.T, dir, body string) {
	t.Helper()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "tables.yml"), []byte(body), 0o600))
}
