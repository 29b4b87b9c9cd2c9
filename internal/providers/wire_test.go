package providers_test

import (
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestWireGenIsCurrent fails when wire_gen.go no longer matches wire.go;
// regenerate with `go tool wire ./internal/providers`.
func TestWireGenIsCurrent(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "tool", "wire", "diff", ".").CombinedOutput()
	require.NoError(t, err, "wire_gen.go is stale; run `go tool wire ./internal/providers`:\n%s", out)
}
