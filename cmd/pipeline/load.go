package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/load"
	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/typemap"
)

// loadDeps is what `pipeline load` needs: the replica and analytics raw.
type loadDeps struct {
	Deps
	Replica *connections.ReplicationDB
	Raw     *connections.AnalyticsRawDB
}

// phaseFlags are the flags load and run share.
type phaseFlags struct {
	tables      string
	fullRefresh bool
	dryRun      bool
	json        bool
	snakeCase   bool
	workers     int
}

func (f *phaseFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tables, "tables", "", "comma-separated source table names (default: every table in tables.yml)")
	fs.BoolVar(&f.fullRefresh, "full-refresh", false, "rebuild every selected table from scratch")
	fs.BoolVar(&f.dryRun, "dry-run", false, "print the plan (mode, DDL, type decisions per table) and change nothing")
	fs.BoolVar(&f.json, "json", false, "print a machine-readable JSON result on stdout (for schedulers)")
	fs.BoolVar(&f.snakeCase, "snake-case", false, "name raw tables and columns in snake_case instead of the source's names")
	fs.IntVar(&f.workers, "load-workers", 0, "tables loaded into raw at once (default load.workers of pipeline.yml, 2)")
}

func (f *phaseFlags) tableList() []string {
	var out []string
	for _, t := range strings.Split(f.tables, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// parsePhaseFlags parses a load/run command line; ok is false with the exit
// code when the command must stop.
func parsePhaseFlags(name string, g *globalFlags, args []string, stderr io.Writer) (f phaseFlags, code int, ok bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	g.register(fs)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return f, exitOK, false
		}
		return f, exitConfig, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "pipeline %s: unexpected arguments %q\n", name, fs.Args())
		return f, exitConfig, false
	}
	if f.workers < 0 {
		fmt.Fprintf(stderr, "pipeline %s: --load-workers must be at least 1 (0 or unset: load.workers of pipeline.yml)\n", name)
		return f, exitConfig, false
	}
	return f, 0, true
}

// errTablesFailed: some tables failed; the summary says which.
var errTablesFailed = errors.New("some tables failed")

// runLoad loads the replica into analytics raw. Exit 0 when every table
// succeeded, 1 when some failed (the others are still loaded), 2 for a
// configuration error.
func runLoad(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
	f, code, ok := parsePhaseFlags("load", g, args, stderr)
	if !ok {
		return code
	}
	err := withApp(ctx, g, stderr, []catalog.DatabaseType{catalog.DatabaseReplication, catalog.DatabaseAnalytics},
		func(ctx context.Context, d loadDeps) error {
			if !f.dryRun {
				unlock, err := load.Lock(ctx, d.Raw.Pool)
				if err != nil {
					return err
				}
				defer unlock()
			}
			res, err := loadPhase(ctx, d.Settings, *d.Replica, *d.Raw, d.Logger, f, stderr)
			if err != nil {
				return err
			}
			if f.json {
				if err := writeJSON(stdout, res); err != nil {
					return err
				}
			} else {
				printLoad(stdout, res, f.dryRun)
			}
			if !res.OK() {
				return errTablesFailed
			}
			return nil
		})
	return exitCode(stderr, "load", configError(err))
}

// loadPhase runs the loader with progress on stderr.
func loadPhase(ctx context.Context, s *providers.Settings, replica connections.ReplicationDB, raw connections.AnalyticsRawDB, log *slog.Logger, f phaseFlags, stderr io.Writer) (*load.Result, error) {
	p := newProgress(stderr, log)
	defer p.done()
	workers := f.workers
	if workers == 0 {
		workers = s.Pipeline.Load.Workers
	}
	return load.New(replica, raw, s.Tables, log).Run(ctx, load.Options{
		Tables: f.tableList(), FullRefresh: f.fullRefresh, DryRun: f.dryRun, SnakeCase: f.snakeCase, Workers: workers, Progress: p.update,
	})
}

// configError marks the loader's configuration errors for exit code 2.
func configError(err error) error {
	if err != nil && errors.Is(err, load.ErrConfig) && !errors.Is(err, providers.ErrInvalidConfig) {
		return fmt.Errorf("%w: %w", providers.ErrInvalidConfig, err)
	}
	return err
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write JSON result: %w", err)
	}
	return nil
}

// printLoad writes the plan (dry run) or the summary table.
func printLoad(w io.Writer, res *load.Result, dryRun bool) {
	if dryRun {
		for _, t := range res.Tables {
			fmt.Fprintf(w, "== %s → %s.%s: %s (%s)\n", t.Table, load.Schema, typemap.QuotePG(t.Target), t.Mode, t.Reason)
			if t.Error != "" {
				fmt.Fprintf(w, "   ERROR: %s\n", t.Error)
				continue
			}
			for _, c := range t.Changes {
				fmt.Fprintf(w, "   change: %s\n", c)
			}
			for _, d := range t.DDL {
				fmt.Fprintf(w, "   %s;\n", strings.ReplaceAll(d, "\n", "\n   "))
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, c := range t.Columns {
				note := c.Reason
				fmt.Fprintf(tw, "   %s\t%s\t→ %s\t%s\n", c.Column, c.Source, c.Type, note)
			}
			tw.Flush()
		}
		fmt.Fprintf(w, "%d tables planned, %d with errors; nothing was changed\n", len(res.Tables), res.Failed)
		return
	}
	const row = "%-28s %-11s %-6s %10v %10v %8v %11v %8v %9v\n"
	fmt.Fprintf(w, row, "TABLE", "MODE", "STATUS", "READ", "WRITTEN", "DELETED", "CONVERSIONS", "SECONDS", "ROWS/S")
	var read, written, deleted, conv int64
	for _, t := range res.Tables {
		fmt.Fprintf(w, row, t.Table, t.Mode, t.Status, t.RowsRead, t.RowsWritten, t.RowsDeleted, t.ConversionTotal(),
			fmt.Sprintf("%.2f", t.Duration.Seconds()), fmt.Sprintf("%.0f", t.RowsPerSecond()))
		read, written, deleted, conv = read+t.RowsRead, written+t.RowsWritten, deleted+t.RowsDeleted, conv+t.ConversionTotal()
	}
	for _, t := range res.Tables {
		for _, c := range t.Changes {
			fmt.Fprintf(w, "schema change %s: %s\n", t.Table, c)
		}
		cols := make([]string, 0, len(t.Conversions))
		for col := range t.Conversions {
			cols = append(cols, col)
		}
		sort.Strings(cols)
		for _, col := range cols {
			kinds := t.Conversions[col]
			names := make([]string, 0, len(kinds))
			for k := range kinds {
				names = append(names, k)
			}
			sort.Strings(names)
			parts := make([]string, len(names))
			for i, k := range names {
				parts[i] = fmt.Sprintf("%s=%d", k, kinds[k])
			}
			fmt.Fprintf(w, "converted %s.%s: %s\n", t.Table, col, strings.Join(parts, " "))
		}
	}
	for _, t := range res.Tables {
		if t.Status == load.StatusFailed {
			fmt.Fprintf(w, "FAILED %s: %s\n", t.Table, t.Error)
		}
	}
	fmt.Fprintf(w, "load: %d tables, %d failed; rows read %d, written %d, deleted %d, values converted %d in %.2fs\n",
		len(res.Tables), res.Failed, read, written, deleted, conv, res.Duration.Seconds())
}

// progress shows per-table progress: a redrawn bar line on a terminal,
// a structured log line every few seconds otherwise. It needs no library:
// a terminal is a character device, and one line redrawn with \r is enough.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	log   *slog.Logger
	tty   bool
	last  time.Time
	table string
	drawn bool
	// started is when each table running now was last logged (no terminal).
	started map[string]time.Time
}

func newProgress(w io.Writer, log *slog.Logger) *progress {
	p := &progress{w: w, log: log, started: map[string]time.Time{}}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(table string, rows, total int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.tty { // per table: tables load in parallel
		started, ok := p.started[table]
		switch {
		case rows == total: // finished: the loader logs the table's result
			delete(p.started, table)
		case !ok:
			p.started[table] = now
		case now.Sub(started) >= 5*time.Second:
			p.started[table] = now
			p.log.Info("loading", "table", table, "rows", rows, "of", total)
		}
		return
	}
	if table == p.table && rows != total && now.Sub(p.last) < 200*time.Millisecond {
		return
	}
	p.table, p.last = table, now
	const width = 30
	bar := strings.Repeat("?", width)
	pct := ""
	if total > 0 {
		n := int(min(rows, total) * width / total)
		bar = strings.Repeat("#", n) + strings.Repeat(".", width-n)
		pct = fmt.Sprintf(" %3d%%", rows*100/total)
	}
	fmt.Fprintf(p.w, "\r%-28.28s [%s] %d rows%s\033[K", table, bar, rows, pct)
	p.drawn = rows != total
	if !p.drawn {
		fmt.Fprintln(p.w) // the table is done: keep its bar, start a fresh line
	}
}

func (p *progress) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
