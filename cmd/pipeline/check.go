package main

import (
	"context"
	"fmt"
	"io"
)

// TODO: placeholder until the check command lands; it fails loudly rather than pretending.
func runCheck(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fmt.Fprintln(stderr, "pipeline check: not implemented yet")
	return exitFailed
}
