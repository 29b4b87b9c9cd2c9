package providers

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"text/template"

	"github.com/kelseyhightower/envconfig"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
)

// dbVars is the specification of one database's environment variables;
// envconfig derives each variable's name from the prefix (the environment's
// VarPrefix plus the catalogue's EnvPrefix) and the envconfig tag, e.g.
// TEST_OPENDENTAL_SOURCE_HOST.
//
// Values are read from the Settings' environment map, not with
// envconfig.Process: Process reads only the process environment (so tests
// could not inject a map) and, for a missing prefixed variable, falls back
// to the bare tag name, which would read the shell's $USER as the database
// user. Here a missing variable is a missing variable.
type dbVars struct {
	Host     string `envconfig:"HOST" required:"true" desc:"server host name or address"`
	Port     int    `envconfig:"PORT" desc:"server port; defaults to the catalogue's port"`
	DB       string `envconfig:"DB" required:"true" desc:"database name"`
	User     string `envconfig:"USER" required:"true" desc:"user name"`
	Password string `envconfig:"PASSWORD" desc:"password; may be empty"`
	SSLMode  string `envconfig:"SSL_MODE" desc:"TLS: disable, prefer (default: TLS if offered, unchecked), require (TLS, unchecked), verify-ca (certificate chains to SSL_CA) or verify-full (and names the host)"`
	SSLCA    string `envconfig:"SSL_CA" desc:"PEM file of the CA that signed the server's certificate, for verify-ca/verify-full; unset: the system's CAs"`
	SSLCert  string `envconfig:"SSL_CERT" desc:"PEM client certificate, for a server that requires one (with SSL_KEY)"`
	SSLKey   string `envconfig:"SSL_KEY" desc:"unencrypted PEM private key of SSL_CERT"`
	Schema   string `envconfig:"SCHEMA" desc:"default schema (search_path) of the plain analytics handle; defaults to raw"`

	tls TLSConfig // SSL_* checked together (checkTLS); not an envconfig field
}

// varName is one variable of dbVars: its struct field, full name and tags.
type varName struct {
	Field    string
	Key      string
	Required bool
	Desc     string
}

var (
	varNamesMu    sync.Mutex
	varNamesCache = map[string][]varName{}
	varNamesTmpl  = template.Must(template.New("vars").Parse(
		"{{range .}}{{.Name}}\t{{.Key}}\t{{.Tags.Get \"required\"}}\t{{.Tags.Get \"desc\"}}\n{{end}}"))
)

// varNames lists the variables of a database with prefix (e.g.
// TEST_OPENDENTAL_SOURCE) as envconfig names them.
func varNames(prefix string) []varName {
	varNamesMu.Lock()
	defer varNamesMu.Unlock()
	if v, ok := varNamesCache[prefix]; ok {
		return v
	}
	var buf bytes.Buffer
	if err := envconfig.Usaget(prefix, &dbVars{}, &buf, varNamesTmpl); err != nil {
		panic(fmt.Sprintf("providers: dbVars is not a valid envconfig specification: %v", err)) // a programming error
	}
	var out []varName
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		f := strings.SplitN(line, "\t", 4)
		out = append(out, varName{Field: f[0], Key: f[1], Required: f[2] == "true", Desc: f[3]})
	}
	varNamesCache[prefix] = out
	return out
}

// databaseVars are the variables db reads in env: SCHEMA only for a
// database with schemas.
func databaseVars(env Environment, db catalog.Database) []varName {
	var out []varName
	for _, v := range varNames(env.VarPrefix() + db.EnvPrefix) {
		if v.Field == "Schema" && !db.HasSchemas {
			continue
		}
		out = append(out, v)
	}
	return out
}

// readDBVars reads db's variables for env from vars and returns every
// problem found, each naming the variable and how to fix it.
func readDBVars(env Environment, db catalog.Database, vars map[string]string) (dbVars, []string) {
	var out dbVars
	var problems []string
	var tv tlsVars
	for _, v := range databaseVars(env, db) {
		val, set := vars[v.Key]
		val = strings.TrimSpace(val)
		if v.Required && val == "" {
			what := "is not set"
			if set {
				what = "is empty"
			}
			problems = append(problems, fmt.Sprintf("%s %s: set it to the %s database's %s", v.Key, what, db.Type, v.Desc))
			continue
		}
		switch v.Field {
		case "Host":
			out.Host = val
		case "Port":
			var problem string
			out.Port, problem = readPort(v.Key, val, db.DefaultPort)
			problems = appendProblem(problems, problem)
		case "DB":
			out.DB = val
			if env == Test && !strings.Contains(strings.ToLower(val), "test") {
				problems = append(problems, fmt.Sprintf("%s=%q has no \"test\" in its name: the test environment only uses databases named with a test marker; point it at a test database", v.Key, val))
			}
		case "User":
			out.User = val
		case "Password":
			out.Password = vars[v.Key] // a password may have meaningful spaces
		case "SSLMode":
			tv.mode, tv.modeVar = val, v.Key
		case "SSLCA":
			tv.ca, tv.caVar = val, v.Key
		case "SSLCert":
			tv.cert, tv.certVar = val, v.Key
		case "SSLKey":
			tv.key, tv.keyVar = val, v.Key
		case "Schema":
			var problem string
			out.Schema, problem = readSchema(v.Key, val)
			problems = appendProblem(problems, problem)
		}
	}
	var p []string
	out.tls, p = checkTLS(tv)
	return out, append(problems, p...)
}

// readPort is the PORT variable key's value val: def when unset, otherwise
// a port number or a problem naming the fix.
func readPort(key, val string, def int) (int, string) {
	if val == "" {
		return def, ""
	}
	p, err := strconv.Atoi(val)
	if err != nil || p < 1 || p > 65535 {
		return def, fmt.Sprintf("%s=%q is not a port number: set it to a number from 1 to 65535 (or unset it for %d)", key, val, def)
	}
	return p, ""
}

// readSchema is the SCHEMA variable key's value val: raw when unset,
// otherwise a known PostgreSQL schema or a problem.
func readSchema(key, val string) (string, string) {
	if val == "" {
		return string(catalog.SchemaRaw), ""
	}
	if _, err := catalog.ParsePostgresSchema(val); err != nil {
		return string(catalog.SchemaRaw), fmt.Sprintf("%s: %v", key, err)
	}
	return val, ""
}

// appendProblem appends problem to problems unless it is empty.
func appendProblem(problems []string, problem string) []string {
	if problem == "" {
		return problems
	}
	return append(problems, problem)
}

// WriteVariables writes a table of every variable the catalogue's databases
// read in env: name, whether it is required, and what it is.
func WriteVariables(w io.Writer, env Environment) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tREQUIRED\tDESCRIPTION")
	for _, db := range catalog.Databases() {
		for _, v := range databaseVars(env, db) {
			req := "no"
			if v.Required {
				req = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s: %s\n", v.Key, req, db.Type, v.Desc)
		}
	}
	return tw.Flush()
}
