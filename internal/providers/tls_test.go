package providers_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// pemFiles writes a self-signed certificate and its key to dir and returns
// their paths (a CA file and a client certificate pair alike, for parsing).
func pemFiles(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(k)
	require.NoError(t, err)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	require.NoError(t, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	return cert, key
}

func TestTLSDefaultsToPrefer(t *testing.T) {
	for _, env := range providers.EnvironmentValues() {
		s := settingsFor(t, env, fullVars(env.VarPrefix()))
		for _, db := range catalog.Databases() {
			c, err := s.DatabaseConfig(env, db.Type, "")
			require.NoError(t, err)
			assert.Equal(t, providers.TLSConfig{Mode: providers.TLSPrefer}, c.TLS, "%s %s", env, db.Type)
		}
	}
	assert.Equal(t, providers.TLSPrefer, providers.TLSConfig{}.EffectiveMode(), "a hand-built DBConfig prefers TLS too")
}

func TestTLSVariablesPerEnvironment(t *testing.T) {
	ca, key := pemFiles(t, t.TempDir())
	for _, env := range providers.EnvironmentValues() {
		p := env.VarPrefix()
		other := "TEST_"
		if env == providers.Test {
			other = ""
		}
		vars := fullVars(p)
		vars[p+"OPENDENTAL_SOURCE_SSL_MODE"] = " Verify-Full "
		vars[p+"OPENDENTAL_SOURCE_SSL_CA"] = ca
		vars[p+"POSTGRES_ANALYTICS_SSL_MODE"] = "require"
		vars[p+"POSTGRES_ANALYTICS_SSL_CERT"] = ca
		vars[p+"POSTGRES_ANALYTICS_SSL_KEY"] = key
		// The other environment's variables are never read, not even as a fallback.
		vars[other+"MYSQL_REPLICATION_SSL_MODE"] = "disable"
		vars[other+"MYSQL_REPLICATION_SSL_CA"] = "/nonexistent/ca.pem"
		s := settingsFor(t, env, vars)
		require.NoError(t, s.Validate())

		src, err := s.DatabaseConfig(env, catalog.DatabaseSource, "")
		require.NoError(t, err)
		assert.Equal(t, providers.TLSConfig{Mode: providers.TLSVerifyFull, CA: ca}, src.TLS)
		repl, err := s.DatabaseConfig(env, catalog.DatabaseReplication, "")
		require.NoError(t, err)
		assert.Equal(t, providers.TLSConfig{Mode: providers.TLSPrefer}, repl.TLS)
		marts, err := s.DatabaseConfig(env, catalog.DatabaseAnalytics, catalog.SchemaMarts)
		require.NoError(t, err)
		assert.Equal(t, providers.TLSConfig{Mode: providers.TLSRequire, Cert: ca, Key: key}, marts.TLS)

		mode, caVar, certVar, keyVar := src.TLSVariables()
		assert.Equal(t, []string{p + "OPENDENTAL_SOURCE_SSL_MODE", p + "OPENDENTAL_SOURCE_SSL_CA", p + "OPENDENTAL_SOURCE_SSL_CERT", p + "OPENDENTAL_SOURCE_SSL_KEY"},
			[]string{mode, caVar, certVar, keyVar})
	}
}

func TestTLSProblemsAreListedTogether(t *testing.T) {
	dir := t.TempDir()
	ca, key := pemFiles(t, dir)
	notPEM := filepath.Join(dir, "not.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("s3cr3t-KEY-MATERIAL\n"), 0o600))
	missing := filepath.Join(dir, "missing.pem")

	vars := fullVars("TEST_")
	vars["TEST_OPENDENTAL_SOURCE_SSL_MODE"] = "verify"
	vars["TEST_OPENDENTAL_SOURCE_SSL_CA"] = missing
	vars["TEST_MYSQL_REPLICATION_SSL_CA"] = notPEM // mode verify-full below
	vars["TEST_MYSQL_REPLICATION_SSL_MODE"] = "verify-full"
	vars["TEST_MYSQL_REPLICATION_SSL_CERT"] = ca // without its key
	vars["TEST_POSTGRES_ANALYTICS_SSL_CA"] = ca  // with the default mode, which does not verify
	vars["TEST_POSTGRES_ANALYTICS_SSL_CERT"] = ca
	vars["TEST_POSTGRES_ANALYTICS_SSL_KEY"] = notPEM
	s := settingsFor(t, providers.Test, vars)
	err := s.Validate()
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	var ce *providers.ConfigError
	require.ErrorAs(t, err, &ce)
	want := []string{
		`TEST_OPENDENTAL_SOURCE_SSL_MODE="verify" is not a TLS mode: use disable, prefer, require, verify-ca or verify-full`,
		"TEST_OPENDENTAL_SOURCE_SSL_CA=" + missing + " cannot be used (open " + missing + ": no such file or directory): point it at the PEM file of the CA that signed the server's certificate",
		"TEST_MYSQL_REPLICATION_SSL_CA=" + notPEM + " cannot be used (" + notPEM + " holds no PEM certificate)",
		"TEST_MYSQL_REPLICATION_SSL_CERT and TEST_MYSQL_REPLICATION_SSL_KEY go together: set both",
		"TEST_POSTGRES_ANALYTICS_SSL_CA is set but TEST_POSTGRES_ANALYTICS_SSL_MODE=prefer does not check the server's certificate: set TEST_POSTGRES_ANALYTICS_SSL_MODE=verify-full (or verify-ca), or unset TEST_POSTGRES_ANALYTICS_SSL_CA",
		"TEST_POSTGRES_ANALYTICS_SSL_CERT/TEST_POSTGRES_ANALYTICS_SSL_KEY cannot be used (",
	}
	assert.Len(t, ce.Problems, len(want), "one problem per item:\n%s", err)
	for _, w := range want {
		assert.Contains(t, err.Error(), w)
	}
	assert.NotContains(t, err.Error(), "s3cr3t-KEY-MATERIAL", "a key file's contents are never quoted")

	// A client certificate without TLS, and a good pair with a verify mode.
	vars = fullVars("TEST_")
	vars["TEST_OPENDENTAL_SOURCE_SSL_MODE"] = "disable"
	vars["TEST_OPENDENTAL_SOURCE_SSL_CERT"] = ca
	vars["TEST_OPENDENTAL_SOURCE_SSL_KEY"] = key
	vars["TEST_MYSQL_REPLICATION_SSL_MODE"] = "verify-ca"
	vars["TEST_MYSQL_REPLICATION_SSL_CA"] = ca
	vars["TEST_MYSQL_REPLICATION_SSL_CERT"] = ca
	vars["TEST_MYSQL_REPLICATION_SSL_KEY"] = key
	err = settingsFor(t, providers.Test, vars).Validate()
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{"TEST_OPENDENTAL_SOURCE_SSL_CERT is set but TEST_OPENDENTAL_SOURCE_SSL_MODE=disable: a client certificate needs TLS; set the mode to verify-full (or require)"},
		ce.Problems)
}

func TestParseTLSMode(t *testing.T) {
	for _, m := range providers.TLSModes() {
		got, err := providers.ParseTLSMode(string(m))
		require.NoError(t, err)
		assert.Equal(t, m, got)
	}
	_, err := providers.ParseTLSMode("allow")
	assert.ErrorContains(t, err, `"allow" is not a TLS mode`, "libpq's allow is not offered: it is prefer with plaintext first")
	assert.True(t, providers.TLSVerifyCA.Verifies())
	assert.False(t, providers.TLSRequire.Verifies())
}
