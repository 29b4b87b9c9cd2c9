package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// errCheckFailed is returned when a connection of the check failed; the
// table already says which.
var errCheckFailed = errors.New("some connections failed")

// runCheck validates the configuration of every catalogue database, then
// connects to each database (and each schema of a database with schemas)
// and prints database, host:port, ok/error, server version and round-trip
// time. Exit 0 when all are ok, 1 when any failed, 2 for a config error.
func runCheck(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	listVars := fs.Bool("vars", false, "list the environment variables of the chosen environment and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pipeline check: unexpected arguments %q\n", fs.Args())
		return exitConfig
	}
	if *listVars {
		env, err := providers.DetectEnvironment(g.Env, providers.OSEnv())
		if err != nil {
			return exitCode(stderr, "check", fmt.Errorf("%w: %w", providers.ErrInvalidConfig, err))
		}
		fmt.Fprintf(stdout, "environment: %s\n\n", env)
		return exitCode(stderr, "check", providers.WriteVariables(stdout, env))
	}
	var all []catalog.DatabaseType
	for _, db := range catalog.Databases() {
		all = append(all, db.Type)
	}
	err := withApp(ctx, g, stderr, all, func(ctx context.Context, d Deps) error {
		results := probeAll(ctx, d.Settings, d.Factory)
		printCheck(stdout, results)
		for _, r := range results {
			if r.Err != nil {
				return errCheckFailed
			}
		}
		return nil
	})
	return exitCode(stderr, "check", err)
}

// probeResult is one line of the check table.
type probeResult struct {
	Config  providers.DBConfig
	Version string
	RTT     time.Duration
	Err     error
}

// checkTarget is one connection the check makes.
type checkTarget struct {
	DB     catalog.DatabaseType
	Schema catalog.PostgresSchema
}

// checkTargets lists every connection of the catalogue: one per database,
// one per schema for a database with schemas.
func checkTargets() []checkTarget {
	var out []checkTarget
	for _, db := range catalog.Databases() {
		if !db.HasSchemas {
			out = append(out, checkTarget{db.Type, ""})
			continue
		}
		for _, s := range db.Schemas {
			out = append(out, checkTarget{db.Type, s})
		}
	}
	return out
}

// probeAll opens, probes and closes a pool for every target, one at a time
// so the check itself never holds more than one connection.
func probeAll(ctx context.Context, s *providers.Settings, f *factory.Factory) []probeResult {
	var out []probeResult
	for _, t := range checkTargets() {
		cfg, err := s.DatabaseConfig(s.Environment, t.DB, t.Schema)
		r := probeResult{Config: cfg, Err: err}
		if err == nil {
			r.Version, r.RTT, r.Err = probe(ctx, f, cfg)
		}
		out = append(out, r)
	}
	return out
}

func probe(ctx context.Context, f *factory.Factory, cfg providers.DBConfig) (string, time.Duration, error) {
	switch cfg.Driver {
	case catalog.DriverMySQL:
		db, err := f.MySQL(cfg)
		if err != nil {
			return "", 0, err
		}
		defer db.Close()
		return factory.ProbeMySQL(ctx, db, cfg)
	case catalog.DriverPostgres:
		pool, err := f.Postgres(cfg)
		if err != nil {
			return "", 0, err
		}
		defer pool.Close()
		version, rtt, err := factory.ProbePostgres(ctx, pool, cfg)
		if err != nil || cfg.Schema == "" {
			return version, rtt, err
		}
		var exists bool
		if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", string(cfg.Schema)).Scan(&exists); err != nil {
			return version, rtt, fmt.Errorf("checking schema %s of %s at %s: %w", cfg.Schema, cfg.Name, cfg.Addr(), err)
		}
		if !exists {
			return version, rtt, fmt.Errorf("schema %s does not exist in database %s at %s: create it (CREATE SCHEMA %s)", cfg.Schema, cfg.Name, cfg.Addr(), cfg.Schema)
		}
		return version, rtt, nil
	default:
		return "", 0, fmt.Errorf("probing %s: unknown driver %q", cfg.Label(), cfg.Driver)
	}
}

// printCheck writes the table, then one line per failure with its error.
func printCheck(w io.Writer, results []probeResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tADDRESS\tNAME\tSTATUS\tVERSION\tRTT")
	failed := 0
	for _, r := range results {
		status, rtt := "ok", r.RTT.Round(time.Microsecond).String()
		if r.Err != nil {
			status, rtt = "error", "-"
			failed++
		}
		version := r.Version
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Config.Label(), r.Config.Addr(), r.Config.Name, status, version, rtt)
	}
	tw.Flush()
	if failed == 0 {
		fmt.Fprintf(w, "\nall %d connections ok\n", len(results))
		return
	}
	fmt.Fprintf(w, "\n%d of %d connections failed:\n", failed, len(results))
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(w, "  %s: %v\n", r.Config.Label(), r.Err)
		}
	}
}
