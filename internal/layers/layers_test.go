// Package layers holds only a test: it checks the import graph the README
// draws, so a phase that starts importing another fails the build's tests
// rather than a reviewer's eye.
package layers_test

import (
	"go/build"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/opendental-pipeline/pipeline/"

// The phases are peers: what two of them share lives in a contract package.
var phases = []string{"discover", "replicate", "load", "verify"}

// The contracts between the phases, which import no phase.
var contracts = []string{"schema", "state", "typemap", "tables", "policy", "keyset", "rowhash", "rowcopy", "pgcopy", "report"}

// imports lists the module-internal packages dir imports (tests excluded).
func imports(t *testing.T, dir string) []string {
	t.Helper()
	pkg, err := build.Default.ImportDir(dir, 0)
	require.NoError(t, err, dir)
	var out []string
	for _, p := range pkg.Imports {
		if rest, ok := strings.CutPrefix(p, module); ok {
			out = append(out, rest)
		}
	}
	return out
}

func TestNoPhaseImportsAnotherPhaseOrIsImportedByAContract(t *testing.T) {
	t.Parallel()
	isPhase := map[string]bool{}
	for _, p := range phases {
		isPhase["internal/"+p] = true
	}
	for _, pkg := range append(append([]string{}, phases...), contracts...) {
		dir := filepath.Join("..", pkg)
		if _, err := os.Stat(dir); err != nil {
			continue // not written yet
		}
		for _, imp := range imports(t, dir) {
			assert.False(t, isPhase[imp], "internal/%s imports the phase %s: move what they share into a contract package", pkg, imp)
		}
	}
}

func TestSchemaReaderStandsAlone(t *testing.T) {
	t.Parallel()
	assert.Empty(t, imports(t, filepath.Join("..", "schema")), "internal/schema is the bottom of the data path")
	assert.Equal(t, []string{"internal/schema"}, imports(t, filepath.Join("..", "state")), "internal/state builds on the schema reader only")
}
