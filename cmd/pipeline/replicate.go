package main

import (
	"context"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

type replicateDeps struct {
	Deps
	Source  *connections.SourceDB
	Replica *connections.ReplicationDB
}

// runReplicate copies the source into the replica and prints a summary per
// table (--json: the JSON result). Outside the run window it refuses to
// start; when the window closes it stops after the current chunk. Exit
// codes: see exitFor.
func runReplicate(ctx context.Context, c *call) int {
	f, code, ok := parsePhaseFlags(c, replicateFlags)
	if !ok {
		return code
	}
	rec := c.newRecord(report.CommandReplicate, f)
	rec.obeysWindow = true
	dbs := []catalog.DatabaseType{catalog.DatabaseSource, catalog.DatabaseReplication}
	err := withApp(ctx, c, dbs, func(ctx context.Context, d replicateDeps) error {
		p := &phase{Deps: d.Deps, source: d.Source, replica: d.Replica, flags: f, c: c, rec: rec}
		if err := p.checkSourceRun(ctx); err != nil {
			return err // before anything is written or locked
		}
		sum, err := p.replicate(ctx)
		if err == nil {
			rec.addReplicate(&sum)
		}
		switch {
		case ctx.Err() != nil:
			return errInterrupted
		case err != nil:
			return err
		case !f.json:
			sum.Write(c.stdout)
		}
		switch {
		case sum.Failed() > 0:
			return errTablesFailed
		case sum.Stopped() > 0:
			return rec.stoppedByWindow()
		}
		return nil
	})
	return rec.finish(ctx, err)
}
