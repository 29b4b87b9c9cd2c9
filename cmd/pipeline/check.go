package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
)

// checkFailed is returned when connections of the check failed; the table
// already says which. It wraps their errors, so the exit code tells a
// refused login (2) and unreachable servers (4) from other failures (1).
type checkFailed struct {
	failed, total int
	errs          []error
}

func (e *checkFailed) Error() string {
	return fmt.Sprintf("%d of %d connections failed", e.failed, e.total)
}

func (e *checkFailed) Unwrap() []error { return e.errs }

// runCheck validates the configuration of every catalogue database, then
// connects to each database (and each schema of a database with schemas)
// and prints database, host:port, ok/error, server version, TLS mode and
// whether the session is encrypted (TLS version or "none"), and round-trip
// time. A schema that does not exist yet (dbt's, before dbt first ran; raw,
// before the first load) is reported as such, not as a failure. Exit 0 when
// every connection is ok; see exitFor for the others.
func runCheck(ctx context.Context, c *call) int {
	fs := c.flags()
	listVars := fs.Bool("vars", false, "list the environment variables of the chosen environment and exit")
	if code, ok := c.parse(fs); !ok {
		return code
	}
	if *listVars {
		return c.exit(ctx, listVariables(c))
	}
	var all []catalog.DatabaseType
	for _, db := range catalog.Databases() {
		all = append(all, db.Type)
	}
	err := withApp(ctx, c, all, func(ctx context.Context, d Deps) error {
		results := probeAll(ctx, d.Settings, d.Factory)
		printCheck(c.stdout, results)
		failed := &checkFailed{total: len(results)}
		for _, r := range results {
			if r.Err != nil {
				failed.failed++
				failed.errs = append(failed.errs, r.Err)
			}
		}
		if failed.failed > 0 {
			return failed
		}
		printOrphans(ctx, c.stdout, d.Settings, d.Factory)
		return nil
	})
	return c.exit(ctx, err)
}

// listVariables prints the variables of the chosen environment.
func listVariables(c *call) error {
	env, err := providers.DetectEnvironment(c.g.Env, providers.OSEnv())
	if err != nil {
		return fmt.Errorf("%w: %w", providers.ErrInvalidConfig, err)
	}
	fmt.Fprintf(c.stdout, "environment: %s\n\n", env)
	return providers.WriteVariables(c.stdout, env)
}

// probeResult is one line of the check table.
type probeResult struct {
	Config  providers.DBConfig
	Version string
	TLS     factory.SessionTLS // whether the session is encrypted
	RTT     time.Duration
	Absent  bool // the schema does not exist yet
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
			r = probe(ctx, f, cfg)
		}
		out = append(out, r)
	}
	return out
}

func probe(ctx context.Context, f *factory.Factory, cfg providers.DBConfig) probeResult {
	r := probeResult{Config: cfg}
	switch cfg.Driver {
	case catalog.DriverMySQL:
		db, err := f.MySQL(cfg)
		if err != nil {
			r.Err = err
			return r
		}
		defer db.Close()
		r.Version, r.RTT, r.Err = factory.ProbeMySQL(ctx, db, cfg)
		if r.Err == nil {
			r.TLS, r.Err = factory.SessionTLSMySQL(ctx, db, cfg)
		}
	case catalog.DriverPostgres:
		pool, err := f.Postgres(cfg)
		if err != nil {
			r.Err = err
			return r
		}
		defer pool.Close()
		r.Version, r.RTT, r.Err = factory.ProbePostgres(ctx, pool, cfg)
		if r.Err == nil {
			r.TLS, r.Err = factory.SessionTLSPostgres(ctx, pool, cfg)
		}
		if r.Err == nil && cfg.Schema != "" {
			err := pool.QueryRow(ctx, "SELECT NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", string(cfg.Schema)).Scan(&r.Absent)
			if err != nil {
				r.Err = fmt.Errorf("checking schema %s of %s at %s: %w", cfg.Schema, cfg.Name, cfg.Addr(), err)
			}
		}
	default:
		r.Err = fmt.Errorf("probing %s: unknown driver %q", cfg.Label(), cfg.Driver)
	}
	return r
}

// printCheck writes the table, then one line per failure with its error
// and one line saying which schemas are not created yet and by what.
func printCheck(w io.Writer, results []probeResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATABASE\tADDRESS\tNAME\tSTATUS\tVERSION\tSSL_MODE\tTLS\tRTT")
	var failed []probeResult
	var absent []string
	for _, r := range results {
		status, version, tls, rtt := "ok", r.Version, r.TLS.String(), r.RTT.Round(time.Microsecond).String()
		switch {
		case r.Err != nil:
			status, tls, rtt = "error", "-", "-"
			failed = append(failed, r)
		case r.Absent:
			status = "not created yet"
			absent = append(absent, string(r.Config.Schema))
		}
		if version == "" {
			version = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Config.Label(), r.Config.Addr(), r.Config.Name, status, version,
			r.Config.TLS.EffectiveMode(), tls, rtt)
	}
	tw.Flush()
	if len(absent) > 0 {
		fmt.Fprintf(w, "\nschemas not created yet: %s (load creates %s, dbt the others; nothing to fix)\n", strings.Join(absent, ", "), catalog.SchemaRaw)
	}
	if len(failed) == 0 {
		fmt.Fprintf(w, "\nall %d connections ok\n", len(results))
		return
	}
	fmt.Fprintf(w, "\n%d of %d connections failed:\n", len(failed), len(results))
	for _, r := range failed {
		fmt.Fprintf(w, "  %s: %s\n", r.Config.Label(), describe(r.Err))
	}
}

// printOrphans lists the tables left behind by source tables that are
// gone: replica tables the pipeline copied and raw tables it loaded that
// nothing keeps current any more (a warning: `--drop-orphans` on
// replicate, load or run drops them). Best effort: a database it cannot
// read is named, not failed (the connections above are what check checks).
func printOrphans(ctx context.Context, w io.Writer, s *providers.Settings, f *factory.Factory) {
	rep, raw, err := orphanTables(ctx, s, f)
	switch {
	case err != nil:
		fmt.Fprintf(w, "\norphaned tables: not read (%v)\n", err)
	case len(rep)+len(raw) == 0:
		fmt.Fprintln(w, "\nno orphaned tables")
	default:
		if len(rep) > 0 {
			fmt.Fprintf(w, "\nwarning: %d replica tables are orphaned (their source table is gone): %s\n", len(rep), strings.Join(rep, ", "))
		}
		if len(raw) > 0 {
			fmt.Fprintf(w, "\nwarning: %d raw tables are orphaned (no longer in tables.yml, or excluded): %s\n", len(raw), strings.Join(raw, ", "))
		}
		fmt.Fprintln(w, "they are kept; `pipeline run --drop-orphans` (or replicate / load with it) drops them")
	}
}

// orphanTables opens the three databases and lists the replica's and
// raw's orphans.
func orphanTables(ctx context.Context, s *providers.Settings, f *factory.Factory) (replica, raw []string, err error) {
	open := func(db catalog.DatabaseType) (*sql.DB, error) {
		cfg, err := s.DatabaseConfig(s.Environment, db, "")
		if err != nil {
			return nil, err
		}
		return f.MySQL(cfg)
	}
	src, err := open(catalog.DatabaseSource)
	if err != nil {
		return nil, nil, err
	}
	defer src.Close()
	rep, err := open(catalog.DatabaseReplication)
	if err != nil {
		return nil, nil, err
	}
	defer rep.Close()
	pgCfg, err := s.DatabaseConfig(s.Environment, catalog.DatabaseAnalytics, catalog.SchemaRaw)
	if err != nil {
		return nil, nil, err
	}
	pg, err := f.Postgres(pgCfg)
	if err != nil {
		return nil, nil, err
	}
	defer pg.Close()
	if replica, err = replicate.Orphans(ctx, connections.SourceDB{DB: src}, connections.ReplicationDB{DB: rep}, s.Tables); err != nil {
		return nil, nil, err
	}
	orphans, err := load.New(connections.ReplicationDB{DB: rep}, connections.AnalyticsRawDB{Pool: pg}, s.Tables, nil).Orphans(ctx)
	for _, o := range orphans {
		raw = append(raw, o.Table)
	}
	return replica, raw, err
}
