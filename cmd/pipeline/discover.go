package main

import (
	"context"
	"fmt"
	"io"
)

// TODO: placeholder until the discover command lands; it fails loudly rather than pretending.
func runDiscover(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipeline discover: not implemented yet")
	return exitFailed
}
