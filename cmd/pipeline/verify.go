package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/history"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/report"
	"github.com/opendental-pipeline/pipeline/internal/serverid"
	"github.com/opendental-pipeline/pipeline/internal/verify"
)

// verifyFlags are verify's own flags beside --tables, --table and --json.
type verifyFlags struct {
	budget time.Duration // 0: no limit
	repair bool
}

// runVerify compares the source with the replica and the replica with raw,
// table by table, holding the warehouse lock, and records the result in the
// run history. Exit 0 when every table is identical, 1 when some differ (or
// could not be compared), 2 for configuration errors; see exitFor.
func runVerify(ctx context.Context, c *call) int {
	var f phaseFlags
	var v verifyFlags
	fs := c.flags()
	fs.Var(&f.tables, "tables", "comma-separated tables of tables.yml; may be repeated (default: every table not excluded)")
	fs.Var(&f.table, "table", "one table by its exact name, commas and spaces included; may be repeated")
	fs.BoolVar(&f.json, "json", false, "print the JSON result (README, JSON result) on stdout")
	fs.DurationVar(&v.budget, "budget", 0, "stop starting new key ranges after this long (e.g. 10m) and resume there next time; 0: verify everything")
	fs.BoolVar(&v.repair, "repair", false, "re-copy the rows that differ (source → replica → raw) and verify them again")
	if code, ok := c.parse(fs); !ok {
		return code
	}
	if v.budget < 0 {
		fmt.Fprintf(c.stderr, "pipeline verify: --budget must not be negative (0 or absent: no limit)\n")
		return exitConfig
	}
	dbs := []catalog.DatabaseType{catalog.DatabaseSource, catalog.DatabaseReplication, catalog.DatabaseAnalytics}
	err := withApp(ctx, c, dbs, func(ctx context.Context, d runDeps) error {
		p := &phase{Deps: d.Deps, source: d.Source, replica: d.Replica, raw: d.Raw, flags: f, c: c}
		if err := serverid.CheckReplica(ctx, d.Settings, d.Source.DB, d.Replica.DB); err != nil {
			return err
		}
		if err := errors.Join(needTables(d.Settings), checkTables(d.Settings, f.tableList())); err != nil {
			return err
		}
		unlock, err := p.lockWarehouse(ctx)
		if err != nil {
			return err
		}
		defer unlock()
		out, err := p.verify(ctx, v)
		if err != nil {
			return err
		}
		return p.printVerify(out)
	})
	return c.exit(ctx, err)
}

// verified is a verification's result and its report.
type verified struct {
	res *verify.Result
	rep *report.Report
}

// verify runs the verify phase (and, with v.repair, the repair) with
// pipeline.yml's source settings and records the result in the run
// history. The caller holds the warehouse lock.
func (p *phase) verify(ctx context.Context, v verifyFlags) (*verified, error) {
	started := time.Now()
	store := history.New(p.raw.Pool, history.Options{RetentionDays: p.Settings.Pipeline.History.RetentionDays, Log: p.Logger})
	if err := store.Ensure(ctx); err != nil {
		return nil, err
	}
	progress := verify.NewProgress(p.raw.Pool)
	if err := progress.Ensure(ctx); err != nil {
		return nil, err
	}
	opts := p.verifyOptions(progress)
	opts.Tables, opts.Budget = p.flags.tableList(), v.budget
	res, done, err := p.compare(ctx, opts, v.repair)
	if err == nil && done != nil {
		err = p.finishRepair(ctx, opts, res, done)
	}
	if ctx.Err() != nil {
		return nil, errInterrupted
	}
	if err != nil {
		return nil, err
	}
	rep := verifyReport(res, started)
	if err := store.Write(ctx, rep); err != nil {
		p.Logger.Warn("the verify result was not recorded in the run history", "error", err)
	}
	return &verified{res: res, rep: rep}, nil
}

func (p *phase) verifyOptions(progress *verify.Progress) verify.Options {
	r := p.Settings.Pipeline.Replication
	// The key was validated with the analytics variables before the app
	// started (exit 2); were it missing, each hashed table fails by name.
	key, _ := p.Settings.HashKey()
	return verify.Options{Workers: r.Workers, SourceConns: r.SourceConnections, Manager: &p.Manager, Progress: progress, HashKey: key}
}

func (p *phase) verifyDeps() verify.Deps {
	return verify.Deps{Source: *p.source, Replica: *p.replica, Raw: *p.raw, Tables: p.Settings.Tables, Log: p.Logger}
}

// compare verifies under the replica lock, so no replicate changes the
// replica meanwhile; with repair, the repair runs under the same lock and
// done says what it wrote (nil: nothing).
func (p *phase) compare(ctx context.Context, opts verify.Options, repair bool) (res *verify.Result, done *verify.Repaired, err error) {
	release, err := lock.Replica(ctx, *p.replica)
	if err != nil {
		return nil, nil, err
	}
	defer release()
	res, err = verify.Run(ctx, p.verifyDeps(), opts)
	if err != nil || !repair || res.Differ() == 0 {
		return res, nil, err
	}
	done, err = verify.Repair(ctx, p.verifyDeps(), opts, res)
	if err != nil || len(done.Tables)+len(done.Whole) == 0 {
		return res, nil, err
	}
	return res, done, nil
}

// finishRepair finishes what verify.Repair began: the keyless tables are
// copied whole again, the repaired tables loaded (the load applies the
// changed-keys log), and all of them verified again; res then holds their
// new results.
func (p *phase) finishRepair(ctx context.Context, opts verify.Options, res *verify.Result, done *verify.Repaired) error {
	again := *p
	again.flags.tables, again.flags.table = nil, append(nameList{}, done.Whole...)
	if len(done.Whole) > 0 {
		sum, err := again.replicate(ctx)
		if err != nil {
			return fmt.Errorf("repair: replicate %v: %w", done.Whole, err)
		}
		if sum.Failed() > 0 {
			return fmt.Errorf("repair: replicate %v: %w", done.Whole, errTablesFailed)
		}
	}
	again.flags.table = append(again.flags.table, done.Tables...)
	lres, err := again.load(ctx)
	if err != nil {
		return fmt.Errorf("repair: load: %w", err)
	}
	if lres.Failed > 0 {
		return fmt.Errorf("repair: load of %v: %w", again.flags.tableList(), errTablesFailed)
	}
	opts.Tables, opts.Budget = again.flags.tableList(), 0
	check, _, err := p.compare(ctx, opts, false)
	if err != nil {
		return fmt.Errorf("repair: verify again: %w", err)
	}
	res.Merge(check)
	return nil
}

// verifyReport is the JSON result of a verification.
func verifyReport(res *verify.Result, started time.Time) *report.Report {
	rep := report.New(report.CommandVerify, report.NewRunID(started), started)
	for _, t := range res.Tables {
		rep.Add(t.Report())
	}
	if len(res.Skipped) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("%d tables left for the next verification (budget spent): %v", len(res.Skipped), res.Skipped))
	}
	status, code := rep.TablesStatus(), exitOK
	if status != report.StatusOK {
		code = exitFailed
	}
	rep.Finish(time.Now(), status, code)
	rep.Totals.SourceQueries = res.SourceQueries // the schema read included
	return rep
}

// printVerify prints the result and fails when some table differs or
// could not be compared.
func (p *phase) printVerify(v *verified) error {
	if p.flags.json {
		if err := v.rep.Encode(p.c.stdout); err != nil {
			return fmt.Errorf("write JSON result: %w", err)
		}
	} else {
		v.res.Write(p.c.stdout)
	}
	if v.rep.Status != report.StatusOK {
		return errTablesFailed
	}
	return nil
}
