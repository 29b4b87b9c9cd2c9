package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/serverid"
)

type runDeps struct {
	Deps
	Source  *connections.SourceDB
	Replica *connections.ReplicationDB
	Raw     *connections.AnalyticsRawDB
}

// runResult is `pipeline run --json`: both phases.
type runResult struct {
	Replicate []replicatedTable `json:"replicate"`
	Load      *load.Result      `json:"load"`
	Failed    int               `json:"failed"`
}

type replicatedTable struct {
	Table       string   `json:"table"`
	Mode        string   `json:"mode"`
	Plan        string   `json:"plan,omitempty"`
	RowsRead    int64    `json:"rows_read"`
	RowsWritten int64    `json:"rows_written"`
	RowsDeleted int64    `json:"rows_deleted"`
	Changes     []string `json:"schema_changes,omitempty"`
	DurationNS  int64    `json:"duration_ns"`
	Error       string   `json:"error,omitempty"`
}

// runRun replicates the source into the replica, then loads the replica into
// raw, holding the warehouse lock for the whole run so a second run refuses.
// A table that failed to replicate is still loaded from the replica's last
// good state (its change_seq did not move, so that is usually a no-op).
// Exit 0 when every table of both phases succeeded, 1 when some failed, 2
// for a configuration error.
func runRun(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	f, code, ok := parsePhaseFlags("run", g, args, stderr)
	if !ok {
		return code
	}
	dbs := []catalog.DatabaseType{catalog.DatabaseSource, catalog.DatabaseReplication, catalog.DatabaseAnalytics}
	err := withApp(ctx, g, stderr, dbs, func(ctx context.Context, d runDeps) error {
		if err := serverid.CheckReplica(ctx, d.Settings, d.Source.DB, d.Replica.DB); err != nil {
			return err // before anything is written or locked
		}
		if len(d.Settings.Tables.Tables) == 0 {
			return fmt.Errorf("%w: %s lists no tables; run `pipeline discover` first", providers.ErrInvalidConfig, d.Settings.TablesPath())
		}
		if !f.dryRun {
			unlock, err := load.Lock(ctx, d.Raw.Pool)
			if err != nil {
				return err
			}
			defer unlock()
		}
		sum, err := replicate.Run(ctx, replicate.Deps{Source: d.Source.DB, Replica: d.Replica.DB, Tables: d.Settings.Tables, Log: d.Logger},
			replicate.Options{
				Tables: f.tableList(), FullRefresh: f.fullRefresh, DryRun: f.dryRun,
				Workers: d.Settings.Pipeline.Replication.Workers, SourceConns: d.Settings.Pipeline.Replication.SourceConnections,
				Manager: &d.Manager,
			})
		if err != nil {
			if errors.Is(err, replicate.ErrConfig) {
				return fmt.Errorf("%w: %w", providers.ErrInvalidConfig, err)
			}
			return fmt.Errorf("replicate: %w", err)
		}
		if !f.json {
			sum.Write(stdout)
			fmt.Fprintln(stdout)
		}
		res, err := loadPhase(ctx, d.Settings, *d.Replica, *d.Raw, d.Logger, f, stderr)
		if err != nil {
			return fmt.Errorf("load: %w", err)
		}
		failed := sum.Failed() + res.Failed
		if f.json {
			out := runResult{Load: res, Failed: failed}
			for _, t := range sum.Tables {
				rt := replicatedTable{Table: t.Table, Mode: t.Mode, Plan: t.Plan, RowsRead: t.RowsRead, RowsWritten: t.RowsWritten,
					RowsDeleted: t.RowsDeleted, DurationNS: int64(t.Duration)}
				for _, c := range t.Changes {
					rt.Changes = append(rt.Changes, c.String())
				}
				if t.Err != nil {
					rt.Error = t.Err.Error()
				}
				out.Replicate = append(out.Replicate, rt)
			}
			if err := writeJSON(stdout, out); err != nil {
				return err
			}
		} else {
			printLoad(stdout, res, f.dryRun)
		}
		if failed > 0 {
			return errTablesFailed
		}
		return nil
	})
	return exitCode(stderr, "run", configError(err))
}
