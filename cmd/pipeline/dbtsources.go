package main

import (
	"context"
	"fmt"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/dbt"
	"github.com/opendental-pipeline/pipeline/internal/schema"
)

type dbtDeps struct {
	Deps
	Replica *connections.ReplicationDB
}

// runDBTSources writes a dbt sources file describing raw, from the
// replica's schema and the configuration: no source, no warehouse.
func runDBTSources(ctx context.Context, c *call) int {
	fs := c.flags()
	out := fs.String("out", "-", "sources file to write or merge into (e.g. models/staging/opendental/sources.yml); - writes a new one to stdout")
	name := fs.String("source-name", dbt.DefaultSourceName, "dbt source name, as in {{ source('opendental', 'patient') }}")
	snake := fs.Bool("snake-case", false, "describe the names `pipeline load --snake-case` writes")
	if code, ok := c.parse(fs); !ok {
		return code
	}
	err := withApp(ctx, c, []catalog.DatabaseType{catalog.DatabaseReplication}, func(ctx context.Context, d dbtDeps) error {
		db, err := schema.Read(ctx, d.Replica.DB)
		if err != nil {
			return fmt.Errorf("read the replica's schema: %w", err)
		}
		p := d.Settings.Pipeline
		src, notes, err := dbt.Build(db, d.Settings.Tables, dbt.Options{SourceName: *name, Schema: string(catalog.SchemaRaw),
			SnakeCase: *snake, LoadedAtColumn: p.Load.LoadedAtColumn, StaleAfter: time.Duration(p.Status.StaleAfter)})
		if err != nil {
			return err
		}
		changes, err := dbt.Write(src, *out, c.stdout)
		if err != nil {
			return err
		}
		if *out != "-" && *out != "" {
			for _, line := range append(notes, changes...) {
				fmt.Fprintln(c.stdout, line)
			}
			fmt.Fprintf(c.stdout, "wrote %s: source %s, %d tables, %d changes\n", *out, src.Name, len(src.Tables), len(changes))
		} else {
			for _, line := range notes {
				fmt.Fprintln(c.stderr, line)
			}
		}
		return nil
	})
	return c.exit(ctx, err)
}
