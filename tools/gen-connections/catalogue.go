package main

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"go/token"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// catalogue is schemas.yaml. Field yaml names are the file format.
type catalogue struct {
	Databases []database `yaml:"databases"`
}

type database struct {
	Name        string   `yaml:"name"`
	Doc         string   `yaml:"doc"`
	Driver      string   `yaml:"driver"`
	EnvPrefix   string   `yaml:"env_prefix"`
	ReadOnly    *bool    `yaml:"read_only"` // required: forgetting it on a source must not mean writable
	DefaultPort int      `yaml:"default_port"`
	Go          goNames  `yaml:"go"`
	Schemas     []schema `yaml:"schemas"`
}

type schema struct {
	Name string  `yaml:"name"`
	Go   goNames `yaml:"go"`
}

// goNames are the Go identifiers generated for one pool.
type goNames struct {
	Const       string `yaml:"const"`       // catalog constant
	Handle      string `yaml:"handle"`      // connections handle type
	Constructor string `yaml:"constructor"` // New<c>Connection, New<c>TestConnection
	Config      string `yaml:"config"`      // <c>Config, Prod<c>Config, Test<c>Config
}

// drivers the generator knows how to open, with what the handle embeds.
var drivers = map[string]driverInfo{
	"mysql":    {Const: "DriverMySQL", Doc: "MySQL or MariaDB through go-sql-driver/mysql", Embed: "*sql.DB", Field: "DB", Open: "MySQL", Hook: "MySQLHook"},
	"postgres": {Const: "DriverPostgres", Doc: "PostgreSQL through pgx", Embed: "*pgxpool.Pool", Field: "Pool", Open: "Postgres", Hook: "PostgresHook"},
}

type driverInfo struct {
	Const string // catalog.Driver constant
	Doc   string
	Embed string // embedded field type of the handle
	Field string // name of that embedded field
	Open  string // factory method
	Hook  string // factory lifecycle hook
}

func driverNames() []string {
	names := make([]string, 0, len(drivers))
	for n := range drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Names fixed by the templates; catalogue names must not collide with them.
var (
	catalogFixed     = []string{"DatabaseType", "DatabaseTypeValues", "ParseDatabaseType", "PostgresSchema", "PostgresSchemaValues", "ParsePostgresSchema", "Driver", "DriverValues", "ParseDriver", "DriverMySQL", "DriverPostgres", "Database", "Databases", "Lookup", "ErrUnknown"}
	connectionsFixed = []string{"ProdModule", "TestModule", "Handles"}
)

var (
	valueName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	envName   = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// loadCatalogue reads and validates the catalogue at path. Every error names
// path and line; validation reports all problems at once.
func loadCatalogue(path string) (*catalogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading catalogue: %w", err)
	}
	return parseCatalogue(path, data)
}

func parseCatalogue(path string, data []byte) (*catalogue, error) {
	var c catalogue
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s:1: catalogue is empty: add a databases list", path)
		}
		return nil, decodeError(path, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s:%d: catalogue must be a single YAML document: remove the second one", path, extra.Line)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, decodeError(path, err)
	}
	v := validator{file: path, root: &root}
	v.check(&c)
	if err := v.err(); err != nil {
		return nil, err
	}
	return &c, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// decodeError rewrites yaml.v3's "line N: msg" errors as "path:N: msg".
func decodeError(path string, err error) error {
	var lines []string
	if te, ok := errors.AsType[*yaml.TypeError](err); ok {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	for i, l := range lines {
		if m := yamlLine.FindStringSubmatch(l); m != nil {
			lines[i] = fmt.Sprintf("%s:%s: %s", path, m[1], m[2])
		} else {
			lines[i] = fmt.Sprintf("%s: %s", path, l)
		}
	}
	return fmt.Errorf("decoding catalogue: %s", strings.Join(lines, "\n"))
}

// posError is one validation problem at a line of the catalogue.
type posError struct {
	line int
	msg  string
}

type validator struct {
	file string
	root *yaml.Node
	errs []posError
}

func (v *validator) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(v.errs, func(a, b posError) int { return cmp.Compare(a.line, b.line) })
	msgs := make([]string, len(v.errs))
	for i, e := range v.errs {
		msgs[i] = fmt.Sprintf("%s:%d: %s", v.file, e.line, e.msg)
	}
	return fmt.Errorf("invalid catalogue:\n%s", strings.Join(msgs, "\n"))
}

// addf records a problem at the deepest node of path that exists.
func (v *validator) addf(path []any, format string, args ...any) {
	v.errs = append(v.errs, posError{line: v.line(path...), msg: fmt.Sprintf(format, args...)})
}

// line walks path (mapping keys and sequence indexes) from the document
// root and returns the line of the deepest node found; for a mapping key
// that is the key's line, where a reader looks for it.
func (v *validator) line(path ...any) int {
	n := v.root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := max(n.Line, 1)
	for _, p := range path {
		var next *yaml.Node
		nextLine := 0
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						next, nextLine = n.Content[i+1], n.Content[i].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
				nextLine = next.Line
			}
		}
		if next == nil {
			return line
		}
		n, line = next, nextLine
	}
	return line
}

// seen remembers where a name was first used, to report duplicates.
type seen map[string]int

func (s seen) claim(v *validator, path []any, kind, name string) {
	if first, ok := s[name]; ok {
		if first == 0 {
			v.addf(path, "%s %q is reserved: gen-connections generates it itself: choose another", kind, name)
		} else {
			v.addf(path, "%s %q is already used at line %d: choose another", kind, name, first)
		}
		return
	}
	s[name] = v.line(path...)
}

func (v *validator) check(c *catalogue) {
	if len(c.Databases) == 0 {
		v.addf([]any{"databases"}, "no databases: list at least one under databases")
		return
	}
	var (
		dbNames, prefixes = seen{}, seen{}
		catalogNames      = seen{}
		connNames         = seen{}
		schemaConst       = map[string]string{} // schema value → const, shared by every database
	)
	for _, n := range catalogFixed {
		catalogNames[n] = 0
	}
	for _, n := range connectionsFixed {
		connNames[n] = 0
	}
	for i, db := range c.Databases {
		at := func(p ...any) []any { return append([]any{"databases", i}, p...) }
		if !valueName.MatchString(db.Name) {
			v.addf(at("name"), "database name %q must be a lower-case identifier such as analytics (a-z, 0-9, _)", db.Name)
		} else {
			dbNames.claim(v, at("name"), "database name", db.Name)
		}
		label := cmp.Or(db.Name, fmt.Sprintf("#%d", i+1))
		if db.Doc == "" || strings.ContainsAny(db.Doc, "\n\r") {
			v.addf(at("doc"), "database %s: doc must be one non-empty line describing it", label)
		}
		if _, ok := drivers[db.Driver]; !ok {
			v.addf(at("driver"), "database %s: driver %q is not known: use one of %s", label, db.Driver, strings.Join(driverNames(), ", "))
		}
		switch {
		case !envName.MatchString(db.EnvPrefix):
			v.addf(at("env_prefix"), "database %s: env_prefix %q must be upper-case such as POSTGRES_ANALYTICS (A-Z, 0-9, _)", label, db.EnvPrefix)
		case strings.HasPrefix(db.EnvPrefix, "TEST_"):
			v.addf(at("env_prefix"), "database %s: env_prefix %q must not start with TEST_: the test environment adds it", label, db.EnvPrefix)
		default:
			prefixes.claim(v, at("env_prefix"), "env_prefix", db.EnvPrefix)
		}
		if db.ReadOnly == nil {
			v.addf(at(), "database %s: read_only is missing: say true or false", label)
		}
		if db.DefaultPort < 1 || db.DefaultPort > 65535 {
			v.addf(at("default_port"), "database %s: default_port %d must be between 1 and 65535", label, db.DefaultPort)
		}
		v.checkGo(db.Go, at("go"), true, catalogNames, connNames)
		if len(db.Schemas) > 0 && db.Driver != "postgres" {
			v.addf(at("schemas"), "database %s: schemas are only for postgres databases, not %q: remove them", label, db.Driver)
		}
		schemaNames := seen{}
		for j, s := range db.Schemas {
			sat := func(p ...any) []any { return at(append([]any{"schemas", j}, p...)...) }
			if !valueName.MatchString(s.Name) {
				v.addf(sat("name"), "schema name %q must be a lower-case identifier such as raw (a-z, 0-9, _)", s.Name)
			} else {
				schemaNames.claim(v, sat("name"), "schema name", s.Name)
			}
			// A schema value is one catalog constant however many databases have it.
			if prev, ok := schemaConst[s.Name]; ok {
				if prev != s.Go.Const {
					v.addf(sat("go", "const"), "schema %q: const %q differs from %q used for it elsewhere: use the same", s.Name, s.Go.Const, prev)
				}
				v.checkGo(s.Go, sat("go"), false, catalogNames, connNames)
				continue
			}
			schemaConst[s.Name] = s.Go.Const
			v.checkGo(s.Go, sat("go"), true, catalogNames, connNames)
		}
	}
}

// checkGo validates the Go names of one pool and claims every exported
// identifier they generate, so no two declarations in a package collide.
// newConst is false for a schema whose constant another database declared.
func (v *validator) checkGo(g goNames, at []any, newConst bool, catalogNames, connNames seen) {
	field := func(f string) []any { return append(slices.Clone(at), f) }
	ident := func(f, name string) bool {
		if !token.IsIdentifier(name) || !token.IsExported(name) {
			v.addf(field(f), "go.%s %q must be an exported Go identifier such as %s", f, name, map[string]string{
				"const": "SchemaRaw", "handle": "AnalyticsRawDB", "constructor": "OpenDentalAnalyticsRaw", "config": "AnalyticsRaw",
			}[f])
			return false
		}
		return true
	}
	if newConst {
		if ident("const", g.Const) {
			catalogNames.claim(v, field("const"), "Go name", g.Const)
		}
	}
	if ident("handle", g.Handle) {
		connNames.claim(v, field("handle"), "Go name", g.Handle)
	}
	if ident("constructor", g.Constructor) {
		connNames.claim(v, field("constructor"), "Go name", "New"+g.Constructor+"Connection")
		connNames.claim(v, field("constructor"), "Go name", "New"+g.Constructor+"TestConnection")
	}
	if ident("config", g.Config) {
		for _, n := range []string{g.Config + "Config", "Prod" + g.Config + "Config", "Test" + g.Config + "Config"} {
			connNames.claim(v, field("config"), "Go name", n)
		}
	}
}
