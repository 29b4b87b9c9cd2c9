package manager

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

func TestClassification(t *testing.T) {
	t.Parallel()
	wrap := func(err error) error { return fmt.Errorf("copy table patient: %w", err) }
	my := func(n uint16) error { return &mysql.MySQLError{Number: n, Message: "x"} }
	pg := func(code string) error { return &pgconn.PgError{Code: code, Message: "x"} }
	opErr := func(errno syscall.Errno) error {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}
	}
	tests := []struct {
		name      string
		err       error
		retryable bool
		lost      bool
	}{
		{"nil", nil, false, false},
		{"mysql deadlock", my(1213), true, false},
		{"mysql lock wait timeout", wrap(my(1205)), true, false},
		{"mysql server gone", my(2006), true, true},
		{"mysql lost connection", my(2013), true, true},
		{"mariadb connection killed", my(1927), true, true},
		{"mysql server shutdown", my(1053), true, true},
		{"mysql syntax", my(1064), false, false},
		{"mysql duplicate key", wrap(my(1062)), false, false},
		{"mysql read only", my(1792), false, false},
		{"mysql access denied", my(1045), false, false},
		{"bad conn", wrap(driver.ErrBadConn), true, true},
		{"invalid conn", mysql.ErrInvalidConn, true, true},
		{"conn done", sql.ErrConnDone, true, true},
		{"eof", wrap(io.EOF), true, true},
		{"unexpected eof", io.ErrUnexpectedEOF, true, true},
		{"broken pipe", opErr(syscall.EPIPE), true, true},
		{"reset", wrap(opErr(syscall.ECONNRESET)), true, true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true, true},
		{"pg serialization", pg("40001"), true, false},
		{"pg deadlock", wrap(pg("40P01")), true, false},
		{"pg admin shutdown", pg("57P01"), true, true},
		{"pg crash shutdown", pg("57P02"), true, true},
		{"pg connection failure", pg("08006"), true, true},
		{"pg connection does not exist", pg("08003"), true, true},
		{"pg syntax", pg("42601"), false, false},
		{"pg unique violation", pg("23505"), false, false},
		{"pg bad password", pg("28P01"), false, false},
		{"pg conn closed", wrap(pgconn.ErrConnClosed), true, true},
		{"canceled", context.Canceled, false, false},
		{"deadline", wrap(context.DeadlineExceeded), false, false},
		{"canceled wrapping eof", fmt.Errorf("%w: %w", context.Canceled, io.EOF), false, false},
		{"plain", errors.New("boom"), false, false},
		{"tls untrusted certificate", wrap(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false, false},
		{"tls host name", wrap(x509.HostnameError{Host: "db"}), false, false},
		{"tls not offered", wrap(mysql.ErrNoTLS), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.retryable, Retryable(tt.err), "Retryable")
			assert.Equal(t, tt.lost, ConnectionLost(tt.err), "ConnectionLost")
		})
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	t.Parallel()
	o := Options{BaseBackoff: 100 * time.Millisecond, MaxBackoff: 1 * time.Second}
	tests := []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 200 * time.Millisecond, 400 * time.Millisecond},
		{5, 500 * time.Millisecond, 1 * time.Second},
		{40, 500 * time.Millisecond, 1 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempt), func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 50 {
				d := backoff(o, tt.attempt)
				assert.GreaterOrEqual(t, d, tt.min)
				assert.LessOrEqual(t, d, tt.max)
				seen[d] = true
			}
			assert.Greater(t, len(seen), 1, "no jitter")
		})
	}
	assert.Equal(t, time.Duration(0), backoff(Options{}, 3))
}

// Startup failures are told apart for the exit code: unreachable (retry
// later) or refused login (fix the configuration). The real-server cases
// (a closed port, a wrong password) are in cmd/pipeline's tests; these are
// the error values the drivers return, including ones a local server cannot
// produce (DNS, timeouts, unreachable networks).
func TestUnreachableAndLoginRefused(t *testing.T) {
	t.Parallel()
	dial := func(err error) error { return &net.OpError{Op: "dial", Net: "tcp", Err: err} }
	tests := []struct {
		name                 string
		err                  error
		unreachable, refused bool
	}{
		{"nil", nil, false, false},
		{"refused", fmt.Errorf("ping source: %w", dial(os.NewSyscallError("connect", syscall.ECONNREFUSED))), true, false},
		{"no such host", dial(&net.DNSError{Err: "no such host", Name: "db.invalid", IsNotFound: true}), true, false},
		{"host unreachable", dial(os.NewSyscallError("connect", syscall.EHOSTUNREACH)), true, false},
		{"network unreachable", dial(os.NewSyscallError("connect", syscall.ENETUNREACH)), true, false},
		{"dial timeout", dial(timeoutErr{}), true, false},
		{"deadline", fmt.Errorf("ping: %w", context.DeadlineExceeded), true, false},
		{"mysql access denied", &mysql.MySQLError{Number: 1045}, false, true},
		{"mysql no grant on database", &mysql.MySQLError{Number: 1044}, false, true},
		{"mysql unknown database", &mysql.MySQLError{Number: 1049}, false, true},
		{"pg bad password", &pgconn.PgError{Code: "28P01"}, false, true},
		{"pg no such database", fmt.Errorf("connect: %w", &pgconn.PgError{Code: "3D000"}), false, true},
		{"mysql syntax", &mysql.MySQLError{Number: 1064}, false, false},
		{"canceled", context.Canceled, false, false},
		{"plain", errors.New("boom"), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.unreachable, Unreachable(tt.err), "Unreachable")
			assert.Equal(t, tt.refused, LoginRefused(tt.err), "LoginRefused")
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// A certificate that does not verify will not verify on the next try: the
// drivers' real errors (pgx wraps its in a ConnectError, which otherwise
// counts as a lost connection) are neither retryable nor a lost connection.
func TestTLSFailureIsNotRetried(t *testing.T) {
	wrongCA := testdb.TLSFile(t, testdb.TLSWrongCA)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pg := testdb.PostgresConfig("postgres", catalog.SchemaRaw)
	pg.TLS = providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: wrongCA}
	pool, err := factory.New().Postgres(pg)
	require.NoError(t, err)
	defer pool.Close()
	my := testdb.MySQLConfig("", catalog.DatabaseSource)
	my.TLS = pg.TLS
	db, err := factory.New().MySQL(my)
	require.NoError(t, err)
	defer db.Close()
	for name, err := range map[string]error{"postgres": pool.Ping(ctx), "mysql": db.PingContext(ctx)} {
		require.Error(t, err, name)
		assert.False(t, ConnectionLost(err), "%s: %v", name, err)
		assert.False(t, Retryable(err), "%s: %v", name, err)
		assert.False(t, Unreachable(err), "%s: %v", name, err)
	}
}
