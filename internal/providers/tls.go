package providers

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
)

// TLSMode is how a connection uses TLS (the *_SSL_MODE variables), with
// libpq's names and meanings:
//
//	disable      plaintext
//	prefer       TLS when the server offers it, else plaintext; certificate not checked (default)
//	require      TLS or fail; certificate not checked
//	verify-ca    TLS, and the server's certificate must chain to SSL_CA (host name not checked)
//	verify-full  TLS, chain to SSL_CA, and the certificate must name the host connected to
//
// verify-ca and verify-full without SSL_CA check against the system's CAs.
type TLSMode string

const (
	TLSDisable    TLSMode = "disable"
	TLSPrefer     TLSMode = "prefer"
	TLSRequire    TLSMode = "require"
	TLSVerifyCA   TLSMode = "verify-ca"
	TLSVerifyFull TLSMode = "verify-full"
)

// DefaultTLSMode is the mode of a database whose SSL_MODE is unset.
const DefaultTLSMode = TLSPrefer

// TLSModes lists every mode, weakest first.
func TLSModes() []TLSMode {
	return []TLSMode{TLSDisable, TLSPrefer, TLSRequire, TLSVerifyCA, TLSVerifyFull}
}

// ParseTLSMode accepts a mode name in any case.
func ParseTLSMode(s string) (TLSMode, error) {
	m := TLSMode(strings.ToLower(strings.TrimSpace(s)))
	for _, v := range TLSModes() {
		if m == v {
			return m, nil
		}
	}
	return "", fmt.Errorf("%q is not a TLS mode: use disable, prefer, require, verify-ca or verify-full", s)
}

// Verifies reports whether the mode checks the server's certificate.
func (m TLSMode) Verifies() bool { return m == TLSVerifyCA || m == TLSVerifyFull }

// TLSConfig is a database's TLS setting: the mode and PEM file paths
// ("" = none). The zero value means DefaultTLSMode without files.
type TLSConfig struct {
	Mode TLSMode
	CA   string // CA certificate(s) the server's certificate must chain to
	Cert string // client certificate, for servers that require one
	Key  string // the client certificate's private key (unencrypted PEM)
}

// EffectiveMode is Mode, or DefaultTLSMode when unset.
func (t TLSConfig) EffectiveMode() TLSMode {
	if t.Mode == "" {
		return DefaultTLSMode
	}
	return t.Mode
}

// ReadCAFile reads the PEM certificates of path into a pool.
func ReadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// ReadClientCert reads a client certificate and its key. The error never
// quotes the key file's contents.
func ReadClientCert(cert, key string) (tls.Certificate, error) {
	for _, p := range []string{cert, key} {
		if _, err := os.Stat(p); err != nil {
			return tls.Certificate{}, err
		}
	}
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("%s and %s are not a PEM certificate and its unencrypted private key: %w", cert, key, err)
	}
	return c, nil
}

// tlsVars are a database's TLS variables as read, with their names.
type tlsVars struct {
	mode, ca, cert, key             string
	modeVar, caVar, certVar, keyVar string
}

// checkTLS validates a database's TLS variables together and returns its
// TLSConfig and every problem, each naming the variable and the fix.
func checkTLS(v tlsVars) (TLSConfig, []string) {
	var problems []string
	out := TLSConfig{Mode: DefaultTLSMode, CA: v.ca, Cert: v.cert, Key: v.key}
	if v.mode != "" {
		m, err := ParseTLSMode(v.mode)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s=%v", v.modeVar, err))
		}
		out.Mode = m
	}
	if v.ca != "" {
		if _, err := ReadCAFile(v.ca); err != nil {
			problems = append(problems, fmt.Sprintf("%s=%s cannot be used (%v): point it at the PEM file of the CA that signed the server's certificate", v.caVar, v.ca, err))
		} else if out.Mode != "" && !out.Mode.Verifies() {
			problems = append(problems, fmt.Sprintf("%s is set but %s=%s does not check the server's certificate: set %s=verify-full (or verify-ca), or unset %s",
				v.caVar, v.modeVar, out.Mode, v.modeVar, v.caVar))
		}
	}
	switch {
	case (v.cert == "") != (v.key == ""):
		problems = append(problems, fmt.Sprintf("%s and %s go together: set both (client certificate and its private key) or neither", v.certVar, v.keyVar))
	case v.cert != "" && out.Mode == TLSDisable:
		problems = append(problems, fmt.Sprintf("%s is set but %s=disable: a client certificate needs TLS; set the mode to verify-full (or require)", v.certVar, v.modeVar))
	case v.cert != "":
		if _, err := ReadClientCert(v.cert, v.key); err != nil {
			problems = append(problems, fmt.Sprintf("%s/%s cannot be used (%v): point them at the client certificate and its unencrypted private key (PEM)", v.certVar, v.keyVar, err))
		}
	}
	return out, problems
}

// TLSVariables names the SSL_MODE, SSL_CA, SSL_CERT and SSL_KEY variables of
// c's database in c's environment (e.g. TEST_OPENDENTAL_SOURCE_SSL_CA), for
// messages; "" for a database the catalogue does not know.
func (c DBConfig) TLSVariables() (mode, ca, cert, key string) {
	db, ok := catalog.Lookup(c.Database)
	if !ok {
		return "", "", "", ""
	}
	env := c.Environment
	if env == "" {
		env = Production
	}
	for _, v := range varNames(env.VarPrefix() + db.EnvPrefix) {
		switch v.Field {
		case "SSLMode":
			mode = v.Key
		case "SSLCA":
			ca = v.Key
		case "SSLCert":
			cert = v.Key
		case "SSLKey":
			key = v.Key
		}
	}
	return mode, ca, cert, key
}
