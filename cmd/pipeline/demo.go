package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/opendental-pipeline/pipeline/internal/demo"
)

// runDemo creates (seed) or changes (mutate) the synthetic OpenDental demo
// database. It is the one command that writes to a source-shaped database,
// so it takes its own connection flags (defaulting to the local demo server)
// instead of the read-only source settings, and refuses any database whose
// name lacks "demo" unless it is empty or --force is given.
func runDemo(ctx context.Context, cl *call) int {
	if len(cl.args) == 0 || (cl.args[0] != "seed" && cl.args[0] != "mutate") {
		fmt.Fprintln(cl.stderr, "usage: pipeline demo seed|mutate [flags]  (pipeline demo seed -h for the flags)")
		return exitConfig
	}
	mode := cl.args[0]
	sub := &call{name: "demo " + mode, g: cl.g, args: cl.args[1:], stdout: cl.stdout, stderr: cl.stderr}
	fs := flag.NewFlagSet(sub.name, flag.ContinueOnError)
	fs.SetOutput(sub.stderr)
	var c demo.Conn
	fs.StringVar(&c.Host, "host", "127.0.0.1", "MySQL/MariaDB host of the demo database")
	fs.IntVar(&c.Port, "port", 3306, "MySQL/MariaDB port")
	fs.StringVar(&c.User, "user", "root", "MySQL/MariaDB user (password from $DEMO_MYSQL_PASSWORD)")
	fs.StringVar(&c.Database, "db", "opendental_demo", "demo database name (must contain \"demo\" or be empty, unless --force)")
	var o demoOptions
	fs.Int64Var(&o.seed, "seed", 1, "random seed: the same seed gives the same data")
	fs.BoolVar(&o.force, "force", false, "write even to a database that is not a demo (never use on a real clinic)")
	fs.Float64Var(&o.scale, "scale", demo.DefaultScale, "seed: fraction of a real clinic's row counts (1 ≈ 20 M rows, 4 GB)")
	fs.Int64Var(&o.minRows, "min-rows", 5, "seed: rows in every table at least")
	fs.IntVar(&o.workers, "workers", 2, "seed: tables generated at once")
	fs.BoolVar(&o.legacy, "legacy-values", false, "seed: write zero dates (0000-00-00), partial dates (1987-00-00) and NUL bytes into 0.5% of the rows of a few columns (patient.Birthdate, procedurelog.DateTP, adjustment.ProcDate, commlog.CommDateTime and some notes), as old clinic databases hold them")
	fs.Float64Var(&o.fraction, "fraction", demo.DefaultFraction, "mutate: share of each table's rows changed (a clinic day ≈ 0.01)")
	if code, ok := sub.parse(fs); !ok {
		return code
	}
	if o.scale <= 0 || o.scale > 10 || o.fraction <= 0 || o.fraction > 1 {
		fmt.Fprintln(sub.stderr, "pipeline demo: --scale must be in (0, 10] and --fraction in (0, 1]")
		return exitConfig
	}
	c.Password = os.Getenv("DEMO_MYSQL_PASSWORD")
	o.mode = mode
	return sub.exit(ctx, demoRun(ctx, sub, c, o))
}

// demoOptions are the demo command's flags.
type demoOptions struct {
	mode            string // seed or mutate
	seed, minRows   int64
	force, legacy   bool
	scale, fraction float64
	workers         int
}

// demoRun seeds or mutates the demo database and prints what it did.
func demoRun(ctx context.Context, c *call, conn demo.Conn, o demoOptions) error {
	log := slog.New(slog.NewTextHandler(c.stderr, nil)).With("component", "demo")
	db, err := demo.Open(ctx, conn, o.mode == "seed")
	if err != nil {
		return err
	}
	defer db.Close()
	if o.mode == "mutate" {
		rep, err := demo.Mutate(ctx, db, demo.MutateOptions{Fraction: o.fraction, Seed: o.seed, Force: o.force, Log: log})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "mutated %s: %d inserted, %d updated, %d deleted in %.1fs\n",
			rep.Database, rep.Rows, rep.Updated, rep.Deleted, rep.Elapsed.Seconds())
		return nil
	}
	rep, err := demo.Seed(ctx, db, demo.Options{Scale: o.scale, Seed: o.seed, MinRows: o.minRows, Workers: o.workers, Force: o.force, LegacyValues: o.legacy, Log: log})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "seeded %s: %d tables, %d rows in %.1fs (%.0f rows/s)\n",
		rep.Database, rep.Tables, rep.Rows, rep.Elapsed.Seconds(), rep.RowsPerSecond())
	if o.legacy {
		fmt.Fprintf(c.stdout, "  with %d legacy values (zero and partial dates, NUL bytes) the load must convert and count\n", rep.Legacy)
	}
	return nil
}
