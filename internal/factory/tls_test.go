package factory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

// connectTLS opens cfg through the factory, pings it and asks the server
// whether the session is encrypted.
func connectTLS(t *testing.T, ctx context.Context, cfg providers.DBConfig) (SessionTLS, error) {
	t.Helper()
	if cfg.Driver == catalog.DriverMySQL {
		db, err := New().MySQL(cfg)
		if err != nil {
			return SessionTLS{}, err
		}
		defer db.Close()
		if err := PingMySQL(ctx, db, cfg); err != nil {
			return SessionTLS{}, err
		}
		return SessionTLSMySQL(ctx, db, cfg)
	}
	pool, err := New().Postgres(cfg)
	if err != nil {
		return SessionTLS{}, err
	}
	defer pool.Close()
	if err := PingPostgres(ctx, pool, cfg); err != nil {
		return SessionTLS{}, err
	}
	return SessionTLSPostgres(ctx, pool, cfg)
}

// freshTLSTarget is a fresh test database on the driver's server, as the
// admin user, with its TLS variables' names for the expected messages.
func freshTLSTarget(t *testing.T, driver catalog.Driver) (cfg providers.DBConfig, caVar, modeVar string) {
	if driver == catalog.DriverMySQL {
		_, cfg = testdb.MySQL(t, "tls")
		return cfg, "TEST_MYSQL_REPLICATION_SSL_CA", "TEST_MYSQL_REPLICATION_SSL_MODE"
	}
	_, cfg = testdb.Postgres(t, "tls")
	return cfg, "TEST_POSTGRES_ANALYTICS_SSL_CA", "TEST_POSTGRES_ANALYTICS_SSL_MODE"
}

// Every mode against the real local servers, which offer TLS with a
// certificate of the dev CA (scripts/services.sh) and have users that must
// use TLS or a client certificate.
func TestTLSModesAgainstRealServers(t *testing.T) {
	ca, wrongCA := testdb.TLSFile(t, testdb.TLSCA), testdb.TLSFile(t, testdb.TLSWrongCA)
	cert, key := testdb.TLSFile(t, testdb.TLSClientCert), testdb.TLSFile(t, testdb.TLSClientKey)
	for _, driver := range []catalog.Driver{catalog.DriverMySQL, catalog.DriverPostgres} {
		t.Run(string(driver), func(t *testing.T) {
			base, caVar, modeVar := freshTLSTarget(t, driver)
			// 127.0.0.2 reaches the same server but is not in its certificate.
			otherPort := testdb.Forward(t, "127.0.0.2", base.Addr())
			where := "ping " + base.Label() + " at 127.0.0.1:" + strconv.Itoa(base.Port) + ": "
			elsewhere := "ping " + base.Label() + " at 127.0.0.2:" + strconv.Itoa(otherPort) + ": "
			admin := func(c *providers.DBConfig) {}
			tlsUser := func(c *providers.DBConfig) { c.User, c.Password = testdb.TLSUser, testdb.TLSPassword }
			certUser := func(c *providers.DBConfig) { c.User, c.Password = testdb.TLSCertUser, "" }
			viaOtherAddress := func(c *providers.DBConfig) { tlsUser(c); c.Host, c.Port = "127.0.0.2", otherPort }
			noTLSMySQL := "Access denied for user 'pipeline_tls'"
			noTLSPG := "the server requires TLS for this user and " + modeVar + "=disable"
			noCertMySQL := "Access denied for user 'pipeline_tls_cert'"
			noCertPG := "the server requires a client certificate"
			if driver == catalog.DriverMySQL {
				noTLSPG, noCertPG = noTLSMySQL, noCertMySQL
			}
			tests := []struct {
				name    string
				user    func(*providers.DBConfig)
				tls     providers.TLSConfig
				plain   bool     // the session must be plaintext
				wantErr []string // substrings of the error; none: must connect
				tlsErr  bool     // a *TLSError: a configuration error, not retried
			}{
				{name: "prefer (the default) gets TLS", user: admin},
				{name: "require", user: tlsUser, tls: providers.TLSConfig{Mode: providers.TLSRequire}},
				{name: "verify-full with the right CA", user: tlsUser, tls: providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: ca}},
				{name: "verify-full by name localhost", user: func(c *providers.DBConfig) { tlsUser(c); c.Host = "localhost" },
					tls: providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: ca}},
				{name: "verify-ca ignores the host name", user: viaOtherAddress, tls: providers.TLSConfig{Mode: providers.TLSVerifyCA, CA: ca}},
				{name: "client certificate", user: certUser, tls: providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: ca, Cert: cert, Key: key}},
				{name: "disable is plaintext", user: admin, tls: providers.TLSConfig{Mode: providers.TLSDisable}, plain: true},

				{name: "verify-full with a wrong CA", tlsErr: true, user: tlsUser, tls: providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: wrongCA},
					wantErr: []string{where + "TLS certificate not trusted (verify-full with " + caVar + "=" + wrongCA + "): ",
						"x509: certificate signed by unknown authority", "point " + caVar + " at the PEM file of the CA"}},
				{name: "verify-ca with a wrong CA", tlsErr: true, user: viaOtherAddress, tls: providers.TLSConfig{Mode: providers.TLSVerifyCA, CA: wrongCA},
					wantErr: []string{elsewhere + "TLS certificate not trusted (verify-ca with " + caVar + "=" + wrongCA + "): "}},
				{name: "verify-full with a host name not in the certificate", tlsErr: true, user: viaOtherAddress, tls: providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: ca},
					wantErr: []string{elsewhere + "TLS certificate not valid for host 127.0.0.2 (verify-full): ",
						"x509: certificate is valid for", "not 127.0.0.2", "or set " + modeVar + "=verify-ca"}},
				{name: "disable for a user that must use TLS", user: tlsUser, tls: providers.TLSConfig{Mode: providers.TLSDisable},
					wantErr: []string{where, noTLSPG, "set " + modeVar + "=verify-full or require"}},
				{name: "no client certificate for a user that needs one", user: certUser, tls: providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: ca},
					wantErr: []string{where, noCertPG}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					cfg := base
					tt.user(&cfg)
					cfg.TLS = tt.tls
					got, err := connectTLS(t, ctxT(t), cfg)
					if len(tt.wantErr) > 0 {
						require.Error(t, err, "session %+v", got)
						t.Log(err)
						for _, w := range tt.wantErr {
							assert.Contains(t, err.Error(), w)
						}
						var ping *PingError
						require.ErrorAs(t, err, &ping)
						assert.Equal(t, cfg.Name, ping.Config.Name, "the CLI names the database from it")
						assert.Equal(t, tt.tlsErr, IsTLSFailure(err))
						assert.Equal(t, tt.tlsErr, errors.Is(err, providers.ErrInvalidConfig), "a TLS failure is fixed in the configuration")
						return
					}
					require.NoError(t, err)
					if tt.plain {
						assert.False(t, got.Encrypted(), "session %+v", got)
						assert.Equal(t, "none", got.String())
						return
					}
					assert.Regexp(t, `^TLSv1\.[23]$`, got.Version, "the server reports the session encrypted")
					assert.NotEmpty(t, got.Cipher)
				})
			}
		})
	}
}

// The TLS failure paths with a sentinel password: neither the errors nor
// the logs nor the pgx connection string may hold it.
func TestPasswordNeverInTLSErrors(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)
	wrongCA := testdb.TLSFile(t, testdb.TLSWrongCA)
	cert, key := testdb.TLSFile(t, testdb.TLSClientCert), testdb.TLSFile(t, testdb.TLSClientKey)

	var cfgs []providers.DBConfig
	for _, c := range []providers.DBConfig{testdb.MySQLConfig("", catalog.DatabaseSource), testdb.PostgresConfig("postgres", catalog.SchemaRaw)} {
		handshake := c // a failing handshake: the server's certificate is not trusted
		handshake.Password = secret
		handshake.TLS = providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: wrongCA, Cert: cert, Key: key}
		plain := c // a TLS-only user refused in plaintext
		plain.User, plain.Password = testdb.TLSUser, secret
		plain.TLS = providers.TLSConfig{Mode: providers.TLSDisable}
		wrongPass := c // a TLS session, the wrong password
		wrongPass.User, wrongPass.Password = testdb.TLSUser, secret
		wrongPass.TLS = providers.TLSConfig{Mode: providers.TLSRequire}
		cfgs = append(cfgs, handshake, plain, wrongPass)
	}
	for i, c := range cfgs {
		t.Run(fmt.Sprintf("%d_%s_%s_%s", i, c.Driver, c.User, c.TLS.Mode), func(t *testing.T) {
			ctx := ctxT(t)
			_, err := connectTLS(t, ctx, c)
			require.Error(t, err)
			assert.NotContains(t, err.Error(), secret)
			assert.NotContains(t, fmtAll(err), secret)
			if c.Driver == catalog.DriverPostgres {
				pc, err := postgresConfig(c)
				require.NoError(t, err)
				assert.NotContains(t, pc.ConnString(), secret)
				assert.Contains(t, pc.ConnString(), "sslmode="+string(c.TLS.Mode))
			}
		})
	}
	assert.NotContains(t, logs.String(), secret)
}

// The driver mapping itself (what a real server cannot show: which knobs
// are set).
func TestTLSMapping(t *testing.T) {
	ca := testdb.TLSFile(t, testdb.TLSCA)
	my := testdb.MySQLConfig("x", catalog.DatabaseSource)
	pg := testdb.PostgresConfig("x", catalog.SchemaRaw)
	for _, tt := range []struct {
		tls          providers.TLSConfig
		myTLS        bool // Config.TLS set
		skipVerify   bool
		fallback     bool
		serverName   string
		pgMode, pgCA string
	}{
		{tls: providers.TLSConfig{}, myTLS: true, skipVerify: true, fallback: true, pgMode: "prefer"},
		{tls: providers.TLSConfig{Mode: providers.TLSDisable}, pgMode: "disable"},
		{tls: providers.TLSConfig{Mode: providers.TLSRequire}, myTLS: true, skipVerify: true, pgMode: "require"},
		{tls: providers.TLSConfig{Mode: providers.TLSVerifyCA, CA: ca}, myTLS: true, skipVerify: true, pgMode: "verify-ca", pgCA: ca},
		{tls: providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: ca}, myTLS: true, serverName: "127.0.0.1", pgMode: "verify-full", pgCA: ca},
	} {
		t.Run(string(tt.tls.EffectiveMode()), func(t *testing.T) {
			my.TLS, pg.TLS = tt.tls, tt.tls
			mc := mysqlConfig(my)
			require.NoError(t, setMySQLTLS(mc, my))
			require.Equal(t, tt.myTLS, mc.TLS != nil)
			assert.Equal(t, tt.fallback, mc.AllowFallbackToPlaintext)
			if mc.TLS != nil {
				assert.Equal(t, tt.skipVerify, mc.TLS.InsecureSkipVerify)
				assert.Equal(t, tt.serverName, mc.TLS.ServerName)
				assert.Equal(t, tt.tls.Mode == providers.TLSVerifyCA, mc.TLS.VerifyConnection != nil, "verify-ca checks the chain itself")
				assert.Equal(t, tt.tls.Mode == providers.TLSVerifyFull, mc.TLS.RootCAs != nil)
			}
			q := postgresTLSParams(pg)
			assert.Equal(t, tt.pgMode, q.Get("sslmode"))
			assert.Equal(t, tt.pgCA, q.Get("sslrootcert"))
			_, err := postgresConfig(pg)
			require.NoError(t, err)
		})
	}
}

// A server that offers no TLS at all cannot be had locally (both offer
// it); the driver's error for it is explained like the others.
func TestExplainServerWithoutTLS(t *testing.T) {
	cfg := testdb.MySQLConfig("opendental_test", catalog.DatabaseSource)
	cfg.TLS.Mode = providers.TLSRequire
	err := pingError(cfg, mysql.ErrNoTLS)
	assert.EqualError(t, err, "ping source at 127.0.0.1:3306: the server does not offer TLS but TEST_OPENDENTAL_SOURCE_SSL_MODE=require requires it: "+
		"TLS requested but server does not support TLS; switch TLS on at the server, or set TEST_OPENDENTAL_SOURCE_SSL_MODE=prefer")
	assert.ErrorIs(t, err, mysql.ErrNoTLS)
	assert.ErrorIs(t, err, providers.ErrInvalidConfig)

	pg := testdb.PostgresConfig("x", catalog.SchemaRaw)
	pg.TLS.Mode = providers.TLSVerifyFull
	err = pingError(pg, fmt.Errorf("failed to connect: %w", errors.New("server refused TLS connection")))
	assert.Contains(t, err.Error(), "the server does not offer TLS but TEST_POSTGRES_ANALYTICS_SSL_MODE=verify-full requires it")

	plain := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	assert.Equal(t, "ping source at 127.0.0.1:3306: "+plain.Error(), pingError(cfg, plain).Error(), "other errors are left alone")
}
