package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/opendental-pipeline/pipeline/internal/demo"
)

// runDemo creates (seed) or changes (mutate) the synthetic OpenDental demo
// database. It is the one command that writes to a source-shaped database,
// so it takes its own connection flags (defaulting to the local demo server)
// instead of the read-only source settings, and refuses any database whose
// name lacks "demo" unless it is empty or --force is given.
func runDemo(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "seed" && args[0] != "mutate") {
		fmt.Fprintln(stderr, "usage: pipeline demo seed|mutate [flags]  (pipeline demo seed -h for the flags)")
		return exitConfig
	}
	mode := args[0]
	fs := flag.NewFlagSet("demo "+mode, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c demo.Conn
	fs.StringVar(&c.Host, "host", "127.0.0.1", "MySQL/MariaDB host of the demo database")
	fs.IntVar(&c.Port, "port", 3306, "MySQL/MariaDB port")
	fs.StringVar(&c.User, "user", "root", "MySQL/MariaDB user (password from $DEMO_MYSQL_PASSWORD)")
	fs.StringVar(&c.Database, "db", "opendental_demo", "demo database name (must contain \"demo\" or be empty, unless --force)")
	seed := fs.Int64("seed", 1, "random seed: the same seed gives the same data")
	force := fs.Bool("force", false, "write even to a database that is not a demo (never use on a real clinic)")
	scale := fs.Float64("scale", demo.DefaultScale, "seed: fraction of a real clinic's row counts (1 ≈ 20 M rows, 4 GB)")
	minRows := fs.Int64("min-rows", 5, "seed: rows in every table at least")
	workers := fs.Int("workers", 2, "seed: tables generated at once")
	legacy := fs.Bool("legacy-values", false, "seed: write zero dates (0000-00-00), partial dates (1987-00-00) and NUL bytes into 0.5% of the rows of a few columns (patient.Birthdate, procedurelog.DateTP, adjustment.ProcDate, commlog.CommDateTime and some notes), as old clinic databases hold them")
	fraction := fs.Float64("fraction", demo.DefaultFraction, "mutate: share of each table's rows changed (a clinic day ≈ 0.01)")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pipeline demo %s: unexpected argument %q\n", mode, fs.Arg(0))
		return exitConfig
	}
	if *scale <= 0 || *scale > 10 || *fraction <= 0 || *fraction > 1 {
		fmt.Fprintln(stderr, "pipeline demo: --scale must be in (0, 10] and --fraction in (0, 1]")
		return exitConfig
	}
	c.Password = os.Getenv("DEMO_MYSQL_PASSWORD")
	log := slog.New(slog.NewTextHandler(stderr, nil)).With("component", "demo")

	db, err := demo.Open(ctx, c, mode == "seed")
	if err != nil {
		fmt.Fprintf(stderr, "pipeline demo %s: %v\n", mode, err)
		return exitConfig
	}
	defer db.Close()
	var rep demo.Report
	if mode == "seed" {
		rep, err = demo.Seed(ctx, db, demo.Options{Scale: *scale, Seed: *seed, MinRows: *minRows, Workers: *workers, Force: *force, LegacyValues: *legacy, Log: log})
	} else {
		rep, err = demo.Mutate(ctx, db, demo.MutateOptions{Fraction: *fraction, Seed: *seed, Force: *force, Log: log})
	}
	if err != nil {
		fmt.Fprintf(stderr, "pipeline demo %s: %v\n", mode, err)
		if errors.Is(err, demo.ErrNotDemo) {
			return exitConfig
		}
		return exitFailed
	}
	if mode == "seed" {
		fmt.Fprintf(stdout, "seeded %s: %d tables, %d rows in %.1fs (%.0f rows/s)\n",
			rep.Database, rep.Tables, rep.Rows, rep.Elapsed.Seconds(), rep.RowsPerSecond())
		if *legacy {
			fmt.Fprintf(stdout, "  with %d legacy values (zero and partial dates, NUL bytes) the load must convert and count\n", rep.Legacy)
		}
	} else {
		fmt.Fprintf(stdout, "mutated %s: %d inserted, %d updated, %d deleted in %.1fs\n",
			rep.Database, rep.Rows, rep.Updated, rep.Deleted, rep.Elapsed.Seconds())
	}
	return exitOK
}
