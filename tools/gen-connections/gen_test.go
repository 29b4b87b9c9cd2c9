package main

import (
	"bytes"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the generator's output")

// repoImports are the imports of the real gen/ directory; golden files use them.
var repoImports = imports{Module: "github.com/opendental-pipeline/pipeline", Out: "github.com/opendental-pipeline/pipeline/gen"}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(data)
}

// archive joins generated files in name order, each under a "-- name --"
// line (txtar layout), so one golden file shows a whole generation.
func archive(files map[string][]byte) []byte {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	var buf bytes.Buffer
	for _, n := range names {
		buf.WriteString("-- " + n + " --\n")
		buf.Write(files[n])
	}
	return buf.Bytes()
}

func catalogues(t *testing.T) []string {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	return paths
}

// TestGolden compares each testdata/*.yaml's generation with its .golden
// file; run `go test ./tools/gen-connections -run TestGolden -args -update` after a
// deliberate template change and review the diff.
func TestGolden(t *testing.T) {
	for _, path := range catalogues(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := loadCatalogue(path)
			require.NoError(t, err)
			files, err := render(c, repoImports)
			require.NoError(t, err)
			got := archive(files)
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			assert.Equal(t, mustRead(t, golden), string(got), "generation of %s changed: review, then rerun with -update", path)
		})
	}
}

// TestCommittedGenIsCurrent fails when gen/ was not regenerated after an
// edit of schemas.yaml or of the generator, or holds stray generated files.
func TestCommittedGenIsCurrent(t *testing.T) {
	c, err := loadCatalogue("../../schemas.yaml")
	require.NoError(t, err)
	imp, err := importsFor("../../gen")
	require.NoError(t, err)
	require.Equal(t, repoImports, imp)
	files, err := render(c, imp)
	require.NoError(t, err)
	for name, want := range files {
		got := mustRead(t, filepath.Join("../../gen", filepath.FromSlash(name)))
		assert.Equal(t, string(want), got, "gen/%s is stale: run go generate ./... and commit", name)
	}
	for _, dir := range []string{"catalog", "connections"} {
		stale, err := staleFiles(filepath.Join("../../gen", dir), dir, files)
		require.NoError(t, err)
		assert.Empty(t, stale, "generated files the generator no longer produces: run go generate ./... and commit")
	}
}

func TestRenderIsDeterministicAndMarked(t *testing.T) {
	c, err := loadCatalogue("testdata/extra.yaml")
	require.NoError(t, err)
	first, err := render(c, repoImports)
	require.NoError(t, err)
	second, err := render(c, repoImports)
	require.NoError(t, err)
	assert.Equal(t, first, second)
	wd, err := os.Getwd()
	require.NoError(t, err)
	for name, src := range first {
		assert.True(t, strings.HasPrefix(string(src), header+"\n\n"), "%s must start with the generated-code header", name)
		assert.NotContains(t, string(src), wd, "%s must not contain absolute paths", name)
		assert.NotContains(t, string(src), filepath.Dir(filepath.Dir(wd)), "%s must not contain absolute paths", name)
	}
}

// TestModulesProvideEveryHandle proves the committed fx modules are complete:
// fx.ValidateApp checks the graph without calling any constructor.
func TestModulesProvideEveryHandle(t *testing.T) {
	for name, m := range map[string]fx.Option{"ProdModule": connections.ProdModule, "TestModule": connections.TestModule} {
		t.Run(name, func(t *testing.T) {
			err := fx.ValidateApp(m, fx.NopLogger, fx.Supply(&providers.Settings{}), fx.Provide(factory.New), fx.Invoke(func(connections.Handles) {}))
			assert.NoError(t, err)
		})
	}
	t.Run("both modules in one app conflict", func(t *testing.T) {
		err := fx.ValidateApp(connections.ProdModule, connections.TestModule, fx.NopLogger, fx.Supply(&providers.Settings{}), fx.Provide(factory.New))
		assert.ErrorContains(t, err, "already provided", "one app must never mix production and test pools")
	})
}

// checkTemplate is a test written next to each generated testdata package:
// every name the catalogue asks for exists with its contract signature, and
// both fx modules provide every handle.
var checkTemplate = template.Must(template.New("check").Parse(`package connections_test

import (
	"testing"

	"go.uber.org/fx"

	"{{.Catalog}}"
	"{{.Out}}"
	"{{.Factory}}"
	"{{.Providers}}"
)

var (
{{- range .Handles}}
	_ func(*providers.Settings, *factory.Factory) (*connections.{{.Type}}, error) = connections.New{{.Constructor}}Connection
	_ func(*providers.Settings, *factory.Factory) (*connections.{{.Type}}, error) = connections.New{{.Constructor}}TestConnection
	_ func(*providers.Settings, providers.Environment) (providers.DBConfig, error) = connections.{{.Config}}Config
	_ func(*providers.Settings) (providers.DBConfig, error) = connections.Prod{{.Config}}Config
	_ func(*providers.Settings) (providers.DBConfig, error) = connections.Test{{.Config}}Config
	_ *connections.{{.Type}} = connections.Handles{}.{{.Type}}
{{- end}}
)

func TestModules(t *testing.T) {
	for _, m := range []fx.Option{connections.ProdModule, connections.TestModule} {
		if err := fx.ValidateApp(m, fx.NopLogger, fx.Supply(&providers.Settings{}), fx.Provide(factory.New), fx.Invoke(func(connections.Handles) {})); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCatalog(t *testing.T) {
	dbs := catalog.Databases()
	want := []catalog.DatabaseType{ {{- range .DatabaseTypes.Values}}catalog.{{.Const}}, {{end -}} }
	if len(dbs) != len(want) {
		t.Fatalf("Databases() has %d entries, want %d", len(dbs), len(want))
	}
	for i, d := range want {
		if dbs[i].Type != d {
			t.Errorf("Databases()[%d] = %s, want %s", i, dbs[i].Type, d)
		}
		if got, err := catalog.ParseDatabaseType(d.String()); err != nil || got != d {
			t.Errorf("ParseDatabaseType(%q) = %v, %v", d, got, err)
		}
	}
{{- range .PostgresSchemas.Values}}
	if !catalog.{{.Const}}.Valid() {
		t.Errorf("{{.Const}} is not valid")
	}
{{- end}}
}
`))

// tmpPackageDir makes a directory under testdata (inside the module, so
// imports resolve; ignored by ./... patterns) removed after the test.
func tmpPackageDir(t *testing.T) (dir, pattern string) {
	t.Helper()
	dir, err := os.MkdirTemp("testdata", "tmp-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir, "./" + filepath.ToSlash(dir) + "/..."
}

func goCmd(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestAddingToTheCatalogueNeedsOnlyGenerate is the proof that adding a
// schema or a database is an edit of schemas.yaml plus go generate: it copies
// the packages gen/connections depends on into a scratch module with the same
// module path, generates testdata/extra.yaml (the repository's catalogue plus
// a schema and a database) into its gen/, and runs go vet and a check test
// there against the real providers and factory packages.
func TestAddingToTheCatalogueNeedsOnlyGenerate(t *testing.T) {
	mod := t.TempDir()
	out, err := goCmd(t, "../..", "list", "-e", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./gen/connections")
	require.NoError(t, err, out)
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	for _, dir := range append(strings.Fields(out), root) {
		rel, err := filepath.Rel(root, dir)
		require.NoError(t, err)
		if strings.HasPrefix(filepath.ToSlash(rel), "gen/") {
			continue // generated below
		}
		copyFiles(t, dir, filepath.Join(mod, rel), rel == ".")
	}
	gen := filepath.Join(mod, "gen")
	require.NoError(t, generate("testdata/extra.yaml", gen))
	writeCheck(t, "testdata/extra.yaml", gen)

	out, err = goCmd(t, mod, "vet", "./gen/...")
	require.NoError(t, err, "go vet on generated code:\n%s", out)
	out, err = goCmd(t, mod, "test", "-count=1", "./gen/...")
	require.NoError(t, err, "go test on generated code:\n%s", out)
	assert.Contains(t, out, "ok  \tgithub.com/opendental-pipeline/pipeline/gen/connections")
	src := mustRead(t, filepath.Join(gen, "connections", "constructors.go"))
	for _, name := range []string{"NewOpenDentalAnalyticsAuditConnection", "NewOpenDentalAnalyticsAuditTestConnection", "NewMySQLArchiveConnection", "NewMySQLArchiveTestConnection"} {
		assert.Contains(t, src, "func "+name+"(")
	}
}

// copyFiles copies the regular files of dir (only go.mod and go.sum for the
// module root) into to.
func copyFiles(t *testing.T, dir, to string, rootOnly bool) {
	t.Helper()
	require.NoError(t, os.MkdirAll(to, 0o755))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if !e.Type().IsRegular() || (rootOnly && e.Name() != "go.mod" && e.Name() != "go.sum") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(to, e.Name()), data, 0o644))
	}
}

// writeCheck renders checkTemplate for catalogue into gen/connections.
func writeCheck(t *testing.T, catalogue, gen string) {
	t.Helper()
	c, err := loadCatalogue(catalogue)
	require.NoError(t, err)
	imp, err := importsFor(gen)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, checkTemplate.Execute(&buf, struct {
		model
		Out string
	}{buildModel(c, imp), imp.Out + "/connections"}))
	require.NoError(t, os.WriteFile(filepath.Join(gen, "connections", "check_test.go"), buf.Bytes(), 0o644))
}

// TestSmallCataloguesCompile generates the catalogues that are not a
// superset of the repository's (providers needs catalog.SchemaRaw) into a
// scratch tree inside this module: their catalog packages must vet clean and
// every import of their connections files must be used.
func TestSmallCataloguesCompile(t *testing.T) {
	root, pattern := tmpPackageDir(t)
	for _, path := range catalogues(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		if name == "extra" {
			continue
		}
		out := filepath.Join(root, name)
		require.NoError(t, generate(path, out), path)
		conn := filepath.Join(out, "connections")
		files, err := filepath.Glob(filepath.Join(conn, "*.go"))
		require.NoError(t, err)
		for _, f := range files {
			assertImportsUsed(t, f)
		}
		require.NoError(t, os.RemoveAll(conn), "its providers would not compile against this catalog")
	}
	out, err := goCmd(t, ".", "vet", pattern)
	require.NoError(t, err, "go vet on generated catalog packages:\n%s", out)
}

// assertImportsUsed fails when file imports a package it never refers to
// (the compile error a template's import condition could cause).
func assertImportsUsed(t *testing.T, file string) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	require.NoError(t, err)
	used := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok {
				used[id.Name] = true
			}
		}
		return true
	})
	for _, imp := range f.Imports {
		p, err := strconv.Unquote(imp.Path.Value)
		require.NoError(t, err)
		assert.True(t, used[path.Base(p)], "%s imports %s but does not use it", file, p)
	}
}

// TestEnumsRejectPlainStrings compiles snippets against the committed
// gen/catalog: typed constants compile, a string variable or the wrong enum
// where an enum is expected does not.
func TestEnumsRejectPlainStrings(t *testing.T) {
	const imp = `import "github.com/opendental-pipeline/pipeline/gen/catalog"`
	cases := []struct {
		name, body, want string
	}{
		{"string variable as DatabaseType", `var s = "source"; _, _ = catalog.Lookup(s)`,
			"cannot use s (variable of type string) as catalog.DatabaseType value"},
		{"string variable as PostgresSchema", `var s = "raw"; _ = catalog.Database{}.HasSchema(s)`,
			"cannot use s (variable of type string) as catalog.PostgresSchema value"},
		{"schema as DatabaseType", `_, _ = catalog.Lookup(catalog.SchemaRaw)`,
			"as catalog.DatabaseType value"},
		{"string in descriptor", `var s = "mysql"; _ = catalog.Database{Driver: s}`,
			"cannot use s (variable of type string) as catalog.Driver value"},
	}
	root, pattern := tmpPackageDir(t)
	writePkg := func(name, body string) {
		dir := filepath.Join(root, name)
		require.NoError(t, os.MkdirAll(dir, 0o755))
		src := "package p\n\n" + imp + "\n\nfunc f() {\n\t" + body + "\n}\n"
		require.NoError(t, os.WriteFile(filepath.Join(dir, "p.go"), []byte(src), 0o644))
	}
	writePkg("good", `_, _ = catalog.Lookup(catalog.DatabaseSource); _ = catalog.Database{Driver: catalog.DriverMySQL}.HasSchema(catalog.SchemaRaw)
	d, _ := catalog.ParseDatabaseType("source"); _, _ = catalog.Lookup(d)`)
	out, err := goCmd(t, ".", "build", "./"+filepath.ToSlash(filepath.Join(root, "good")))
	require.NoError(t, err, "typed use must compile:\n%s", out)

	for i, c := range cases {
		writePkg("bad"+string(rune('a'+i)), c.body)
	}
	out, err = goCmd(t, ".", "build", pattern)
	require.Error(t, err, "plain strings must not compile")
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := filepath.ToSlash(filepath.Join(root, "bad"+string(rune('a'+i)), "p.go"))
			var hit string
			for _, l := range strings.Split(out, "\n") {
				if strings.Contains(l, file) {
					hit = l
				}
			}
			require.NotEmpty(t, hit, "no compile error for %s:\n%s", file, out)
			assert.Contains(t, hit, c.want)
		})
	}
}
