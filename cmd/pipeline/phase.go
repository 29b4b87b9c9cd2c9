package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"

	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/lock"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/replicate"
	"github.com/opendental-pipeline/pipeline/internal/serverid"
)

// phaseFlags are the flags of replicate, load and run: run accepts every
// flag of both phases.
type phaseFlags struct {
	tables      nameList // --tables: comma-separated lists
	table       nameList // --table: one exact name each
	fullRefresh bool
	dryRun      bool
	json        bool
	dropOrphans bool   // drop the replica and raw tables whose source table is gone
	metricsFile string // --metrics-file: Prometheus textfile written after the run
	force       bool   // run, replicate: start outside schedule.window, and never stop for it

	workers     int // replicate: tables copied at once
	sourceConns int // replicate: source connections at most

	snakeCase   bool // load: snake_case names in raw
	loadWorkers int  // load: tables loaded at once
}

// Which phases' flags a command takes.
const (
	replicateFlags = 1 << iota
	loadFlags
)

func (f *phaseFlags) register(fs *flag.FlagSet, phases int) {
	fs.Var(&f.tables, "tables", "comma-separated tables of tables.yml; may be repeated (default: every table not excluded)")
	fs.Var(&f.table, "table", "one table by its exact name, commas and spaces included; may be repeated")
	fs.BoolVar(&f.fullRefresh, "full-refresh", false, "copy or rebuild the selected tables in full again")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan per table and change nothing")
	fs.BoolVar(&f.json, "json", false, "print the JSON result (README, JSON result) on stdout, for schedulers")
	fs.BoolVar(&f.dropOrphans, "drop-orphans", false, "drop the replica and raw tables whose source table is gone (default: keep and report them)")
	fs.StringVar(&f.metricsFile, "metrics-file", "", "write Prometheus metrics to this .prom file after the run (default metrics.file of pipeline.yml)")
	if phases&replicateFlags != 0 {
		fs.BoolVar(&f.force, "force", false, "run even outside schedule.window of pipeline.yml, and do not stop when it closes")
		fs.IntVar(&f.workers, "workers", 0, "tables replicated at once (default replication.workers of pipeline.yml)")
		fs.IntVar(&f.sourceConns, "source-connections", 0, "source connections at most (default replication.source_connections)")
	}
	if phases&loadFlags != 0 {
		fs.BoolVar(&f.snakeCase, "snake-case", false, "name raw tables and columns in snake_case instead of the source's names")
		fs.IntVar(&f.loadWorkers, "load-workers", 0, "tables loaded into raw at once (default load.workers of pipeline.yml)")
	}
}

// parsePhaseFlags parses the command line of a phase command; ok is false
// with the exit code when the command must stop.
func parsePhaseFlags(c *call, phases int) (f phaseFlags, code int, ok bool) {
	fs := c.flags()
	f.register(fs, phases)
	if code, ok := c.parse(fs); !ok {
		return f, code, false
	}
	if f.workers < 0 || f.sourceConns < 0 || f.loadWorkers < 0 {
		fmt.Fprintf(c.stderr, "pipeline %s: --workers, --source-connections and --load-workers must not be negative (0 or absent: pipeline.yml's value)\n", c.name)
		return f, exitConfig, false
	}
	if err := checkMetricsFile(f.metricsFile); err != nil {
		fmt.Fprintf(c.stderr, "pipeline %s: %v\n", c.name, err)
		return f, exitConfig, false
	}
	return f, 0, true
}

// checkMetricsFile refuses a --metrics-file node_exporter would not read.
func checkMetricsFile(path string) error {
	if path != "" && !strings.HasSuffix(path, ".prom") {
		return fmt.Errorf("--metrics-file %q must end in .prom: node_exporter's textfile collector reads only *.prom files", path)
	}
	return nil
}

// nameList is a repeatable string flag.
type nameList []string

func (l *nameList) String() string     { return strings.Join(*l, ",") }
func (l *nameList) Set(v string) error { *l = append(*l, v); return nil }

// tableList is the tables named on the command line: every --tables list
// split at commas (spaces around a name dropped), then every --table as
// given, each once. A name with a comma or surrounding spaces (MySQL
// allows both) is given with --table.
func (f phaseFlags) tableList() []string {
	var out []string
	seen := map[string]bool{}
	add := func(t string) {
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	for _, list := range f.tables {
		for _, t := range strings.Split(list, ",") {
			add(strings.TrimSpace(t))
		}
	}
	for _, t := range f.table {
		add(t)
	}
	return out
}

// needTables refuses to replicate without a tables.yml: it says what to copy.
func needTables(s *providers.Settings) error {
	if len(s.Tables.Tables) == 0 {
		return fmt.Errorf("%w: %s lists no tables; run `pipeline discover` first", providers.ErrInvalidConfig, s.TablesPath())
	}
	return nil
}

// checkTables refuses, before anything is touched, a --tables list naming
// a table tables.yml does not list or excludes, for every phase alike: the
// phases would otherwise treat an excluded table differently, or half a run
// be done before the other phase refused. (Without a tables.yml, load takes
// the replica's tables and checks the names itself.)
func checkTables(s *providers.Settings, names []string) error {
	if len(s.Tables.Tables) == 0 {
		return nil
	}
	var unknown, excluded []string
	for _, n := range names {
		switch t, ok := s.Tables.Tables[n]; {
		case !ok:
			unknown = append(unknown, n)
		case t.Exclude:
			excluded = append(excluded, n)
		}
	}
	var problems []string
	if len(unknown) > 0 {
		problems = append(problems, fmt.Sprintf("--tables names %s, not in tables.yml: check the spelling (names are case-sensitive) or run `pipeline discover`", quoted(unknown)))
	}
	if len(excluded) > 0 {
		problems = append(problems, fmt.Sprintf("--tables names %s, excluded in tables.yml: drop it from --tables or remove its `exclude: true`", quoted(excluded)))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", providers.ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

func quoted(names []string) string {
	sort.Strings(names)
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// phase is one run of replicate, load or both: the app's dependencies, the
// handles the command asked for (nil when not) and the flags.
type phase struct {
	Deps
	source  *connections.SourceDB
	replica *connections.ReplicationDB
	raw     *connections.AnalyticsRawDB
	flags   phaseFlags
	c       *call
	rec     *record // the command's result

	warehouse   *lock.WarehouseLock // held by this run (nil: not, or a dry run): the load checks it before each commit
	replicaLock *lock.ReplicaLock   // likewise for replicate
}

// checkSourceRun refuses, for a command that reads the source, a replica
// that is the source database, a missing tables.yml and --tables it does
// not list (or excludes).
func (p *phase) checkSourceRun(ctx context.Context) error {
	if err := serverid.CheckReplica(ctx, p.Settings, p.source.DB, p.replica.DB); err != nil {
		return err
	}
	return errors.Join(needTables(p.Settings), checkTables(p.Settings, p.flags.tableList()))
}

// lockWarehouse takes the warehouse lock for a run that writes to raw;
// the returned function releases it.
func (p *phase) lockWarehouse(ctx context.Context) (func(), error) {
	if p.flags.dryRun {
		return func() {}, nil
	}
	w, err := lock.TakeWarehouse(ctx, *p.raw)
	if err != nil {
		return nil, err
	}
	p.warehouse = w
	return w.Release, nil
}

// lockReplica takes the replica lock for a run that writes to the
// replica; the returned function releases it.
func (p *phase) lockReplica(ctx context.Context) (func(), error) {
	if p.flags.dryRun {
		return func() {}, nil
	}
	l, err := lock.TakeReplica(ctx, *p.replica)
	if err != nil {
		return nil, err
	}
	p.replicaLock = l
	return l.Release, nil
}

// replicate runs the replicate phase with pipeline.yml's settings and the
// flags, holding the replica lock.
func (p *phase) replicate(ctx context.Context) (replicate.Summary, error) {
	release, err := p.lockReplica(ctx)
	if err != nil {
		return replicate.Summary{}, err
	}
	defer release()
	r := p.Settings.Pipeline.Replication
	opts := replicate.Options{
		Tables: p.flags.tableList(), FullRefresh: p.flags.fullRefresh, DryRun: p.flags.dryRun,
		Workers: flagOr(p.flags.workers, r.Workers), SourceConns: flagOr(p.flags.sourceConns, r.SourceConnections),
		Manager: &p.Manager, Stop: p.rec.stopFunc(), DropOrphans: p.flags.dropOrphans,
	}
	if p.replicaLock != nil {
		opts.Guard = p.replicaLock
	}
	deps := replicate.Deps{Source: *p.source, Replica: *p.replica, Tables: p.Settings.Tables, Log: p.Logger}
	return replicate.Run(ctx, deps, opts)
}

// load runs the load phase, with progress on stderr.
func (p *phase) load(ctx context.Context) (*load.Result, error) {
	prog := newProgress(p.c.stderr, p.Logger)
	defer prog.done()
	key, err := p.Settings.HashKey()
	if err != nil {
		return nil, err
	}
	opts := load.Options{
		Tables: p.flags.tableList(), FullRefresh: p.flags.fullRefresh, DryRun: p.flags.dryRun, SnakeCase: p.flags.snakeCase,
		Workers: flagOr(p.flags.loadWorkers, p.Settings.Pipeline.Load.Workers), Progress: prog.update,
		HashKey: key, LoadedAtColumn: p.Settings.Pipeline.Load.LoadedAtColumn, DropOrphans: p.flags.dropOrphans,
	}
	if p.warehouse != nil {
		opts.Guard = p.warehouse
	}
	return load.New(*p.replica, *p.raw, p.Settings.Tables, p.Logger).Run(ctx, opts)
}

// flagOr is flag when it is set (> 0), else the configured value.
func flagOr(flag, configured int) int {
	if flag > 0 {
		return flag
	}
	return configured
}
