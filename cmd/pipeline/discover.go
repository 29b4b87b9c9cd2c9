package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/discover"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

type discoverDeps struct {
	Deps
	Source *connections.SourceDB
}

// runDiscover reads the source's information schema and writes tables.yml
// in the config directory, keeping the user's edits, and prints what changed.
func runDiscover(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	out := fs.String("out", "", "write tables.yml here instead of <config-dir>/tables.yml")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pipeline discover: unexpected arguments %q\n", fs.Args())
		return exitConfig
	}
	err := withApp(ctx, g, stderr, []catalog.DatabaseType{catalog.DatabaseSource}, func(ctx context.Context, d discoverDeps) error {
		path := *out
		if path == "" {
			path = d.Settings.TablesPath()
		}
		if path == "" {
			return fmt.Errorf("%w: no config directory: pass --config-dir or --out", providers.ErrInvalidConfig)
		}
		src := manager.New(d.Source.DB, d.Manager)
		defer src.Close()
		changes, n, err := discover.Run(ctx, src, path)
		if err != nil {
			return err
		}
		for _, c := range changes {
			fmt.Fprintln(stdout, c)
		}
		fmt.Fprintf(stdout, "wrote %s: %d tables, %d changes\n", path, n, len(changes))
		return nil
	})
	return exitCode(stderr, "discover", err)
}
