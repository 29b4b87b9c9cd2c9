// Command gen-connections generates the connection layer from the
// catalogue schemas.yaml: gen/catalog (typed enums and database descriptors)
// and gen/connections (one handle type per pool, Prod/Test constructors and
// config getters, fx modules). It runs from gen/doc.go:
//
//	//go:generate go run ../tools/gen-connections -config ../schemas.yaml -out .
//
// Output is deterministic: catalogue order, no timestamps, no absolute
// paths. Files it generated earlier that it no longer produces are removed.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"

	"golang.org/x/mod/modfile"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("gen-connections", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "schemas.yaml", "catalogue to generate from")
	out := fs.String("out", "gen", "output directory; catalog/ and connections/ are written under it")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gen-connections: unexpected arguments %q: use -config and -out\n", fs.Args())
		return 2
	}
	if err := generate(*config, *out); err != nil {
		fmt.Fprintf(stderr, "gen-connections: %v\n", err)
		return 1
	}
	return 0
}

// generate renders the catalogue at config into the directory out, which
// must lie inside a Go module (its import path is derived from go.mod).
func generate(config, out string) error {
	c, err := loadCatalogue(config)
	if err != nil {
		return err
	}
	imp, err := importsFor(out)
	if err != nil {
		return err
	}
	files, err := render(c, imp)
	if err != nil {
		return err
	}
	return write(out, files)
}

// importsFor finds the go.mod above dir and returns the module path and
// dir's import path.
func importsFor(dir string) (imports, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return imports{}, fmt.Errorf("resolving output directory: %w", err)
	}
	for root := abs; ; {
		data, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err == nil {
			mod := modfile.ModulePath(data)
			if mod == "" {
				return imports{}, fmt.Errorf("reading %s: no module line", filepath.Join(root, "go.mod"))
			}
			rel, err := filepath.Rel(root, abs)
			if err != nil {
				return imports{}, fmt.Errorf("locating output directory in module: %w", err)
			}
			return imports{Module: mod, Out: path.Join(mod, filepath.ToSlash(rel))}, nil
		}
		if !os.IsNotExist(err) {
			return imports{}, fmt.Errorf("reading go.mod: %w", err)
		}
		parent := filepath.Dir(root)
		if parent == root {
			return imports{}, fmt.Errorf("output directory %s is not inside a Go module: generate into the module that imports it", dir)
		}
		root = parent
	}
}

// write puts files under out, rewriting only files whose content changed,
// and removes generated files (by their header) that are no longer produced.
func write(out string, files map[string][]byte) error {
	dirs := map[string]bool{}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
		dirs[path.Dir(name)] = true
	}
	slices.Sort(names)
	for _, name := range names {
		p := filepath.Join(out, filepath.FromSlash(name))
		if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, files[name]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating output directory: %w", err)
		}
		if err := os.WriteFile(p, files[name], 0o644); err != nil {
			return fmt.Errorf("writing generated file: %w", err)
		}
	}
	for dir := range dirs {
		stale, err := staleFiles(filepath.Join(out, filepath.FromSlash(dir)), dir, files)
		if err != nil {
			return err
		}
		for _, p := range stale {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing stale generated file: %w", err)
			}
		}
	}
	return nil
}

// staleFiles lists .go files in dir carrying our header that files (keyed
// by slash path, dir being slashDir) does not contain. Hand-written files
// never carry the header, so they are never touched.
func staleFiles(dir, slashDir string, files map[string][]byte) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("listing output directory: %w", err)
	}
	var stale []string
	for _, e := range entries {
		if e.IsDir() || filepath.Ext(e.Name()) != ".go" {
			continue
		}
		if _, ok := files[path.Join(slashDir, e.Name())]; ok {
			continue
		}
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading output directory: %w", err)
		}
		if bytes.HasPrefix(data, []byte(header+"\n")) {
			stale = append(stale, p)
		}
	}
	return stale, nil
}
