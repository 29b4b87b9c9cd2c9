package main

import (
	"context"
	"fmt"

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
// in the config directory (discover creates it if missing), keeping the user's edits,
// and prints what changed. It needs only the source's environment
// variables: without a pipeline.yml the defaults apply.
func runDiscover(ctx context.Context, c *call) int {
	fs := c.flags()
	out := fs.String("out", "", "write tables.yml here instead of <config-dir>/tables.yml")
	if code, ok := c.parse(fs); !ok {
		return code
	}
	err := withApp(ctx, c, []catalog.DatabaseType{catalog.DatabaseSource}, func(ctx context.Context, d discoverDeps) error {
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
		for _, ch := range changes {
			fmt.Fprintln(c.stdout, ch)
		}
		fmt.Fprintf(c.stdout, "wrote %s: %d tables, %d changes\n", path, n, len(changes))
		if !d.Settings.PipelineExists {
			fmt.Fprintf(c.stdout, "no %s in %s: the defaults apply (the repository's config/pipeline.yml documents every key)\n", providers.PipelineFile, d.Settings.ConfigDir)
		}
		return nil
	})
	return c.exit(ctx, err)
}
