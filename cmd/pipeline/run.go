package main

import (
	"context"
	"fmt"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

type runDeps struct {
	Deps
	Source  *connections.SourceDB
	Replica *connections.ReplicationDB
	Raw     *connections.AnalyticsRawDB
}

// runRun replicates the source into the replica, then loads the replica
// into raw, holding the warehouse lock for the whole run so a second run
// refuses. It takes every flag of both phases. A table whose replication
// failed is still loaded when its replica copy is consistent (a failed
// incremental copy), and skipped when it is not (an unfinished full copy:
// see state.Copy.Complete). An
// interruption during either phase stops the run there: the load phase
// never starts after an interrupted replication, nor after the run window
// closed. Outside the window it refuses to start. Exit codes: see exitFor.
func runRun(ctx context.Context, c *call) int {
	f, code, ok := parsePhaseFlags(c, replicateFlags|loadFlags)
	if !ok {
		return code
	}
	rec := c.newRecord(report.CommandRun, f)
	rec.obeysWindow = true
	err := sourceToWarehouse(ctx, c, f, rec, func(ctx context.Context, p *phase) error {
		return p.both(ctx)
	})
	return rec.finish(ctx, err)
}

// sourceToWarehouse opens all three databases for a command that reads the
// source and writes the warehouse (run, verify), checks the run may read the
// source before anything is written or locked, takes the warehouse lock and
// runs fn under it.
func sourceToWarehouse(ctx context.Context, c *call, f phaseFlags, rec *record, fn func(context.Context, *phase) error) error {
	dbs := []catalog.DatabaseType{catalog.DatabaseSource, catalog.DatabaseReplication, catalog.DatabaseAnalytics}
	return withApp(ctx, c, dbs, func(ctx context.Context, d runDeps) error {
		p := &phase{Deps: d.Deps, source: d.Source, replica: d.Replica, raw: d.Raw, flags: f, c: c, rec: rec}
		if err := p.checkSourceRun(ctx); err != nil {
			return err
		}
		unlock, err := p.lockWarehouse(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		return fn(ctx, p)
	})
}

// both runs replicate then load, adding both to the result.
func (p *phase) both(ctx context.Context) error {
	sum, err := p.replicate(ctx)
	if err == nil {
		p.rec.addReplicate(&sum)
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err != nil {
		return fmt.Errorf("replicate: %w", err)
	}
	if !p.flags.json {
		sum.Write(p.c.stdout)
		fmt.Fprintln(p.c.stdout)
	}
	if p.rec.windowClosed() {
		p.rec.notLoaded(&sum)
		if !p.flags.json {
			fmt.Fprintln(p.c.stdout, "the run window closed: the load phase does not start; the next run continues")
		}
		if sum.Failed() > 0 {
			return errTablesFailed // failures need a look; the stop does not
		}
		return p.rec.stoppedByWindow()
	}
	res, err := p.load(ctx)
	if res != nil {
		p.rec.addLoad(res)
	}
	if ctx.Err() != nil {
		return errInterrupted
	}
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	v, err := p.verifyStep(ctx)
	if err != nil {
		return err
	}
	return p.report(&sum, res, v)
}

// verifyStep is the verification pipeline.yml's verify section switches on
// at the end of a run (nil when off, for a dry run, or once the run window
// has closed: verify reads the source).
func (p *phase) verifyStep(ctx context.Context) (*verified, error) {
	vc := p.Settings.Pipeline.Verify
	if !vc.Enabled || p.flags.dryRun || p.rec.windowClosed() {
		return nil, nil
	}
	v, err := p.verify(ctx, verifyFlags{budget: time.Duration(vc.Budget), repair: vc.Repair})
	switch {
	case ctx.Err() != nil:
		return nil, errInterrupted
	case err != nil:
		return nil, fmt.Errorf("verify: %w", err)
	}
	return v, nil
}

// report prints the load part of the run's result and the verification,
// if any (replicate's summary is printed before the load starts), and
// fails when any table failed or, verified, differs.
func (p *phase) report(sum *replicate.Summary, res *load.Result, v *verified) error {
	if !p.flags.json {
		printLoad(p.c.stdout, res, p.flags.dryRun)
		if v != nil {
			fmt.Fprintln(p.c.stdout)
			v.res.Write(p.c.stdout)
		}
	}
	if sum.Failed()+res.Failed > 0 || (v != nil && !v.ok()) {
		return errTablesFailed
	}
	return nil
}
