package main

import (
	"context"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

// loadDeps is what `pipeline load` needs: the replica and analytics raw.
type loadDeps struct {
	Deps
	Replica *connections.ReplicationDB
	Raw     *connections.AnalyticsRawDB
}

// runLoad loads the replica into analytics raw, holding the warehouse lock.
// It reads no source, so the run window does not apply. Exit codes: see
// exitFor.
func runLoad(ctx context.Context, c *call) int {
	f, code, ok := parsePhaseFlags(c, loadFlags)
	if !ok {
		return code
	}
	rec := c.newRecord(report.CommandLoad, f)
	dbs := []catalog.DatabaseType{catalog.DatabaseReplication, catalog.DatabaseAnalytics}
	err := withApp(ctx, c, dbs, func(ctx context.Context, d loadDeps) error {
		p := &phase{Deps: d.Deps, replica: d.Replica, raw: d.Raw, flags: f, c: c, rec: rec}
		if err := checkTables(d.Settings, f.tableList()); err != nil {
			return err
		}
		unlock, err := p.lockWarehouse(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		res, err := p.load(ctx)
		if res != nil {
			rec.addLoad(res)
		}
		switch {
		case ctx.Err() != nil:
			return errInterrupted
		case err != nil:
			return err
		case !f.json:
			printLoad(c.stdout, res, f.dryRun)
		}
		if res.Failed > 0 {
			return errTablesFailed
		}
		return nil
	})
	return rec.finish(ctx, err)
}
