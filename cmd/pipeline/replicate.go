package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/serverid"
)

// errReplicateFailed is returned when some tables failed; the summary says which.
var errReplicateFailed = errors.New("some tables failed to replicate")

type replicateDeps struct {
	Deps
	Source  *connections.SourceDB
	Replica *connections.ReplicationDB
}

// runReplicate copies the source into the replica and prints a summary per
// table. Exit 0 all ok, 1 some tables failed, 2 configuration error.
func runReplicate(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("replicate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	only := fs.String("tables", "", "comma-separated tables to replicate (default: every table of tables.yml not excluded)")
	full := fs.Bool("full-refresh", false, "copy the selected tables in full again (upserts; deletes still detected)")
	dry := fs.Bool("dry-run", false, "print what would be done per table; write nothing")
	workers := fs.Int("workers", 0, "tables copied in parallel (default replication.workers of pipeline.yml)")
	conns := fs.Int("source-connections", 0, "concurrent source connections (default replication.source_connections)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pipeline replicate: unexpected arguments %q\n", fs.Args())
		return exitConfig
	}
	if *workers < 0 || *conns < 0 {
		fmt.Fprintln(stderr, "pipeline replicate: --workers and --source-connections must not be negative (0 or absent: pipeline.yml's value)")
		return exitConfig
	}
	dbs := []catalog.DatabaseType{catalog.DatabaseSource, catalog.DatabaseReplication}
	err := withApp(ctx, g, stderr, dbs, func(ctx context.Context, d replicateDeps) error {
		if err := serverid.CheckReplica(ctx, d.Settings, d.Source.DB, d.Replica.DB); err != nil {
			return err // before anything is written or locked
		}
		if len(d.Settings.Tables.Tables) == 0 {
			return fmt.Errorf("%w: %s lists no tables; run `pipeline discover` first", providers.ErrInvalidConfig, d.Settings.TablesPath())
		}
		opts := replicate.Options{
			FullRefresh: *full, DryRun: *dry,
			Workers: d.Settings.Pipeline.Replication.Workers, SourceConns: d.Settings.Pipeline.Replication.SourceConnections,
			Manager: &d.Manager,
		}
		if *only != "" {
			opts.Tables = strings.Split(*only, ",")
		}
		if *workers > 0 {
			opts.Workers = *workers
		}
		if *conns > 0 {
			opts.SourceConns = *conns
		}
		sum, err := replicate.Run(ctx, replicate.Deps{Source: d.Source.DB, Replica: d.Replica.DB, Tables: d.Settings.Tables, Log: d.Logger}, opts)
		if err != nil {
			if errors.Is(err, replicate.ErrConfig) {
				return fmt.Errorf("%w: %w", providers.ErrInvalidConfig, err)
			}
			return err
		}
		sum.Write(stdout)
		if sum.Failed() > 0 {
			return errReplicateFailed
		}
		return nil
	})
	return exitCode(stderr, "replicate", err)
}
