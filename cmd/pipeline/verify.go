package main

import (
	"context"
	"fmt"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/report"
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
	fs.StringVar(&f.metricsFile, "metrics-file", "", "write Prometheus metrics to this .prom file after the run (default metrics.file of pipeline.yml)")
	if code, ok := c.parse(fs); !ok {
		return code
	}
	if err := checkMetricsFile(f.metricsFile); err != nil {
		fmt.Fprintf(c.stderr, "pipeline verify: %v\n", err)
		return exitConfig
	}
	if v.budget < 0 {
		fmt.Fprintf(c.stderr, "pipeline verify: --budget must not be negative (0 or absent: no limit)\n")
		return exitConfig
	}
	rec := c.newRecord(report.CommandVerify, f)
	err := sourceToWarehouse(ctx, c, f, rec, func(ctx context.Context, p *phase) error {
		out, err := p.verify(ctx, v)
		if err != nil {
			return err
		}
		return p.printVerify(out)
	})
	return rec.finish(ctx, err)
}

// verified is a verification's result.
type verified struct {
	res *verify.Result
}

// ok reports whether every table verified is identical.
func (v *verified) ok() bool { return v.res.Differ()+v.res.Failed() == 0 }

// verify runs the verify phase (and, with v.repair, the repair) with
// pipeline.yml's source settings and adds its tables to the command's
// result (which the run history records). The caller holds the warehouse
// lock.
func (p *phase) verify(ctx context.Context, v verifyFlags) (*verified, error) {
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
	p.rec.addVerify(res)
	return &verified{res: res}, nil
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

// printVerify prints the result (--json: finish prints the report) and
// fails when some table differs or could not be compared.
func (p *phase) printVerify(v *verified) error {
	if !p.flags.json {
		v.res.Write(p.c.stdout)
	}
	if !v.ok() {
		return errTablesFailed
	}
	return nil
}
