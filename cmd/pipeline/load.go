package main

import (
	"context"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
)

// loadDeps is what `pipeline load` needs: the replica and analytics raw.
type loadDeps struct {
	Deps
	Replica *connections.ReplicationDB
	Raw     *connections.AnalyticsRawDB
}

// runLoad loads the replica into analytics raw, holding the warehouse lock.
// Exit codes: see exitFor.
func runLoad(ctx context.Context, c *call) int {
	f, code, ok := parsePhaseFlags(c, loadFlags)
	if !ok {
		return code
	}
	dbs := []catalog.DatabaseType{catalog.DatabaseReplication, catalog.DatabaseAnalytics}
	err := withApp(ctx, c, dbs, func(ctx context.Context, d loadDeps) error {
		p := &phase{Deps: d.Deps, replica: d.Replica, raw: d.Raw, flags: f, c: c}
		if err := checkTables(d.Settings, f.tableList()); err != nil {
			return err
		}
		unlock, err := p.lockWarehouse(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		res, err := p.load(ctx)
		switch {
		case ctx.Err() != nil:
			return errInterrupted
		case err != nil:
			return err
		case f.json:
			err = writeResult(c.stdout, nil, res, nil)
		default:
			printLoad(c.stdout, res, f.dryRun)
		}
		if err == nil && res.Failed > 0 {
			err = errTablesFailed
		}
		return err
	})
	return c.exit(ctx, err)
}
