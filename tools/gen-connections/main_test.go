package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// scratchModule is a directory with a go.mod, so generate can derive imports.
func scratchModule(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/scratch\n\ngo 1.26\n"), 0o644))
	return dir
}

func TestRunFlagsAndErrors(t *testing.T) {
	mod := scratchModule(t)
	bad := filepath.Join(mod, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("databases:\n  - name: x\n    drivr: mysql\n"), 0o644))
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"-nope"}, 2, "flag provided but not defined: -nope"},
		{"stray argument", []string{"-config", "x.yaml", "extra"}, 2, `unexpected arguments ["extra"]`},
		{"missing catalogue", []string{"-config", filepath.Join(mod, "missing.yaml"), "-out", mod}, 1, "reading catalogue:"},
		{"invalid catalogue", []string{"-config", bad, "-out", mod}, 1, bad + ":3: field drivr not found"},
		{"outside a module", []string{"-config", "../../schemas.yaml", "-out", t.TempDir()}, 1, "is not inside a Go module"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			assert.Equal(t, tt.code, run(tt.args, &stderr))
			assert.Contains(t, stderr.String(), tt.want)
		})
	}
}

func TestGenerateWritesImportsAndRemovesOnlyStaleGeneratedFiles(t *testing.T) {
	mod := scratchModule(t)
	out := filepath.Join(mod, "internal", "gen")
	conn := filepath.Join(out, "connections")
	require.NoError(t, os.MkdirAll(conn, 0o755))
	stale := filepath.Join(conn, "old.go")
	handWritten := filepath.Join(conn, "extra.go")
	require.NoError(t, os.WriteFile(stale, []byte(header+"\n\npackage connections\n"), 0o644))
	require.NoError(t, os.WriteFile(handWritten, []byte("package connections\n"), 0o644))

	var stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-config", "../../schemas.yaml", "-out", out}, &stderr), stderr.String())

	assert.NoFileExists(t, stale, "a generated file the generator no longer produces is removed")
	assert.FileExists(t, handWritten, "a file without the header is never touched")
	for _, o := range outputs {
		assert.FileExists(t, filepath.Join(out, filepath.FromSlash(o.file)))
	}
	cfg := mustRead(t, filepath.Join(conn, "config.go"))
	assert.Contains(t, cfg, `"example.com/scratch/internal/gen/catalog"`)
	assert.Contains(t, cfg, `"example.com/scratch/internal/providers"`)

	// A second run changes nothing.
	before := map[string]string{}
	for _, o := range outputs {
		before[o.file] = mustRead(t, filepath.Join(out, filepath.FromSlash(o.file)))
	}
	require.Equal(t, 0, run([]string{"-config", "../../schemas.yaml", "-out", out}, &stderr), stderr.String())
	for _, o := range outputs {
		assert.Equal(t, before[o.file], mustRead(t, filepath.Join(out, filepath.FromSlash(o.file))))
	}
}
