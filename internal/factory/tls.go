package factory

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// TLS modes (providers.TLSMode, the *_SSL_MODE variables) map onto the drivers:
//
//	mode         go-sql-driver Config.TLS (*tls.Config)                     pgx
//	disable      nil                                                         sslmode=disable
//	prefer       InsecureSkipVerify + AllowFallbackToPlaintext ("preferred") sslmode=prefer
//	require      InsecureSkipVerify                                          sslmode=require
//	verify-ca    InsecureSkipVerify + VerifyConnection: chain to RootCAs     sslmode=verify-ca sslrootcert=CA
//	verify-full  RootCAs = CA, ServerName = host                             sslmode=verify-full sslrootcert=CA
//
// SSL_CERT/SSL_KEY become Certificates (MySQL) and sslcert/sslkey (pgx).
// Without SSL_CA the verify modes use the system's CAs. Only paths go into
// the pgx connection string, never the password.

// setMySQLTLS sets mc's TLS configuration from cfg.TLS.
func setMySQLTLS(mc *mysql.Config, cfg providers.DBConfig) error {
	t := cfg.TLS
	mode := t.EffectiveMode()
	mc.TLSConfig, mc.TLS, mc.AllowFallbackToPlaintext = "false", nil, false
	if mode == providers.TLSDisable {
		return nil
	}
	tc := &tls.Config{}
	if t.Cert != "" {
		c, err := providers.ReadClientCert(t.Cert, t.Key)
		if err != nil {
			return fmt.Errorf("TLS client certificate for %s: %w", cfg, err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	var roots *x509.CertPool // nil: the system's CAs
	if t.CA != "" && mode.Verifies() {
		var err error
		if roots, err = providers.ReadCAFile(t.CA); err != nil {
			return fmt.Errorf("TLS CA for %s: %w", cfg, err)
		}
	}
	switch mode {
	case providers.TLSPrefer:
		tc.InsecureSkipVerify = true
		mc.AllowFallbackToPlaintext = true
	case providers.TLSRequire:
		tc.InsecureSkipVerify = true
	case providers.TLSVerifyCA:
		tc.InsecureSkipVerify = true // no host name check; the chain is checked below
		tc.VerifyConnection = verifyChain(roots)
	case providers.TLSVerifyFull:
		tc.RootCAs = roots
		tc.ServerName = cfg.Host
	default:
		return fmt.Errorf("TLS for %s: unknown mode %q", cfg, mode)
	}
	mc.TLS = tc
	return nil
}

// verifyChain checks that the server's certificate chains to roots (nil:
// the system's CAs) without checking the host name: libpq's verify-ca.
func verifyChain(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls: the server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}

// postgresTLSParams are the TLS parameters of cfg's pgx connection string.
// Every one is set, even empty, so PGSSLMODE, PGSSLROOTCERT… of the process
// environment never change what the variables say.
func postgresTLSParams(cfg providers.DBConfig) url.Values {
	t := cfg.TLS
	mode := t.EffectiveMode()
	q := url.Values{}
	q.Set("sslmode", string(mode))
	ca := ""
	if mode.Verifies() {
		ca = t.CA // pgx would turn require + sslrootcert into verify-ca
	}
	q.Set("sslrootcert", ca)
	cert, key := t.Cert, t.Key
	if mode == providers.TLSDisable {
		cert, key = "", ""
	}
	q.Set("sslcert", cert)
	q.Set("sslkey", key)
	return q
}

// TLSError is a connection that failed because of TLS: the server's
// certificate is not trusted, does not name the host or is invalid, the
// server offers no TLS under a mode that requires it, or the handshake was
// refused. Its text says what failed and which variable fixes it. Retrying
// will not help, so it counts as a configuration error
// (errors.Is(err, providers.ErrInvalidConfig)).
type TLSError struct {
	msg string
	Err error // the driver's error
}

func (e *TLSError) Error() string { return e.msg }
func (e *TLSError) Unwrap() error { return e.Err }

// Is makes a TLS failure a configuration error: someone must change a
// variable or the server.
func (e *TLSError) Is(target error) bool { return target == providers.ErrInvalidConfig }

// TLS failure kinds (tlsFailure).
const (
	tlsUntrusted  = "untrusted"
	tlsHostname   = "hostname"
	tlsInvalid    = "invalid"
	tlsNotOffered = "not offered"
	tlsHandshake  = "handshake"
)

// tlsFailure classifies a driver error caused by TLS; "" when it is not.
func tlsFailure(err error) string {
	var (
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		alert   tls.AlertError
		record  tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknown):
		return tlsUntrusted
	case errors.As(err, &host):
		return tlsHostname
	case errors.As(err, &invalid):
		return tlsInvalid
	case errors.Is(err, mysql.ErrNoTLS) || strings.Contains(err.Error(), "server refused TLS connection"):
		return tlsNotOffered
	case errors.As(err, &alert) || errors.As(err, &record):
		return tlsHandshake
	}
	return ""
}

// IsTLSFailure reports whether err is a connection that failed because of
// TLS (explained or straight from a driver): not a passing outage, so not
// worth a retry.
func IsTLSFailure(err error) bool {
	var te *TLSError
	return err != nil && (errors.As(err, &te) || tlsFailure(err) != "")
}

// explainTLS turns a connection error caused by TLS into a *TLSError that
// says what failed and the variable that fixes it, and adds a hint to a
// login refused for want of TLS or a client certificate. Other errors come
// back unchanged. The caller names the database and host.
func explainTLS(cfg providers.DBConfig, err error) error {
	modeVar, caVar, certVar, keyVar := cfg.TLSVariables()
	mode := cfg.TLS.EffectiveMode()
	var msg string
	switch tlsFailure(err) {
	case tlsUntrusted:
		trust := fmt.Sprintf("%s=%s", caVar, cfg.TLS.CA)
		if cfg.TLS.CA == "" {
			trust = fmt.Sprintf("the system's CAs, %s unset", caVar)
		}
		msg = fmt.Sprintf("TLS certificate not trusted (%s with %s): %v; point %s at the PEM file of the CA that signed the server's certificate",
			mode, trust, err, caVar)
	case tlsHostname:
		msg = fmt.Sprintf("TLS certificate not valid for host %s (%s): %v; connect by a name the certificate lists, or set %s=verify-ca to check the CA only",
			cfg.Host, mode, err, modeVar)
	case tlsInvalid:
		msg = fmt.Sprintf("TLS certificate not valid (%s): %v; renew the server's certificate", mode, err)
	case tlsNotOffered:
		msg = fmt.Sprintf("the server does not offer TLS but %s=%s requires it: %v; switch TLS on at the server, or set %s=prefer",
			modeVar, mode, err, modeVar)
	case tlsHandshake:
		msg = fmt.Sprintf("TLS handshake failed (%s=%s): %v", modeVar, mode, err)
	default:
		return loginHint(err, mode, modeVar, certVar, keyVar)
	}
	return &TLSError{msg: msg, Err: err}
}

// loginHint adds what to change to a login the server refused because the
// session had no TLS or no client certificate. The error stays a refused
// login (the driver's error is wrapped).
func loginHint(err error, mode providers.TLSMode, modeVar, certVar, keyVar string) error {
	var myErr *mysql.MySQLError
	var pgErr *pgconn.PgError
	switch {
	case mode == providers.TLSDisable && errors.As(err, &myErr) && myErr.Number == 1045:
		// MariaDB gives a user that must use TLS the same answer as a wrong password.
		return fmt.Errorf("%w (TLS is off, %s=disable: if the account requires TLS (REQUIRE SSL), set %s=verify-full or require)", err, modeVar, modeVar)
	case errors.As(err, &myErr) && myErr.Number == 3159: // ER_SECURE_TRANSPORT_REQUIRED
		return fmt.Errorf("the server requires TLS and %s=%s: %w; set %s=verify-full or require", modeVar, mode, err, modeVar)
	case errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "no encryption"):
		return fmt.Errorf("the server requires TLS for this user and %s=%s: %w; set %s=verify-full or require", modeVar, mode, err, modeVar)
	case errors.As(err, &pgErr) && strings.Contains(pgErr.Message, "client certificate"):
		return fmt.Errorf("the server requires a client certificate: %w; set %s and %s", err, certVar, keyVar)
	}
	return err
}

// SessionTLS says whether a session is encrypted: the protocol version and
// cipher, both "" for a plaintext session.
type SessionTLS struct {
	Version string
	Cipher  string
}

// Encrypted reports whether the session uses TLS.
func (s SessionTLS) Encrypted() bool { return s.Version != "" }

// String is the version, or "none" for a plaintext session.
func (s SessionTLS) String() string {
	if !s.Encrypted() {
		return "none"
	}
	return s.Version
}

// SessionTLSMySQL asks the server whether a session of db is encrypted
// (SHOW SESSION STATUS Ssl_version, Ssl_cipher).
func SessionTLSMySQL(ctx context.Context, db *sql.DB, cfg providers.DBConfig) (SessionTLS, error) {
	ctx, cancel := withTimeout(ctx, cfg.Pool.ConnectTimeout)
	defer cancel()
	rows, err := db.QueryContext(ctx, "SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
	if err != nil {
		return SessionTLS{}, pingError(cfg, err)
	}
	defer rows.Close()
	var out SessionTLS
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return SessionTLS{}, pingError(cfg, err)
		}
		switch strings.ToLower(name) {
		case "ssl_version":
			out.Version = value
		case "ssl_cipher":
			out.Cipher = value
		}
	}
	if err := rows.Err(); err != nil {
		return SessionTLS{}, pingError(cfg, err)
	}
	return out, nil
}

// SessionTLSPostgres asks the server whether a session of pool is encrypted
// (pg_stat_ssl of pg_backend_pid()).
func SessionTLSPostgres(ctx context.Context, pool *pgxpool.Pool, cfg providers.DBConfig) (SessionTLS, error) {
	ctx, cancel := withTimeout(ctx, cfg.Pool.ConnectTimeout)
	defer cancel()
	var out SessionTLS
	err := pool.QueryRow(ctx, `SELECT CASE WHEN ssl THEN version ELSE '' END, CASE WHEN ssl THEN cipher ELSE '' END
		FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&out.Version, &out.Cipher)
	if err != nil {
		return SessionTLS{}, pingError(cfg, err)
	}
	return out, nil
}
