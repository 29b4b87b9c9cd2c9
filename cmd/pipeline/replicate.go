package main

import (
	"context"
	"fmt"
	"io"
)

// TODO: placeholder until the replicate command lands; it fails loudly rather than pretending.
func runReplicate(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipeline replicate: not implemented yet")
	return exitFailed
}
