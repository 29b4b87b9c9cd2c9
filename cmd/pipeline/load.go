package main

import (
	"context"
	"fmt"
	"io"
)

// TODO: placeholder until the load command lands; it fails loudly rather than pretending.
func runLoad(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipeline load: not implemented yet")
	return exitFailed
}
