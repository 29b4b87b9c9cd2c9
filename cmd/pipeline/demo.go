package main

import (
	"context"
	"fmt"
	"io"
)

// TODO: placeholder until the demo command lands; it fails loudly rather than pretending.
func runDemo(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipeline demo: not implemented yet")
	return exitFailed
}
