package main

import (
	"context"
	"fmt"
	"io"
)

// TODO: placeholder until the run command lands; it fails loudly rather than pretending.
func runRun(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipeline run: not implemented yet")
	return exitFailed
}
