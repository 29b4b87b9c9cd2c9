// Command pipeline keeps a PostgreSQL analytics warehouse in step with an
// OpenDental MySQL database: source → replication MySQL → analytics raw.
//
// This file only parses the command line and dispatches; each subcommand
// lives in its own file and the work lives under internal/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// globalFlags are accepted before or after the subcommand name.
type globalFlags struct {
	Env       string // --env overrides ETL_ENVIRONMENT/ENVIRONMENT/APP_ENV
	ConfigDir string // --config-dir overrides PIPELINE_CONFIG_DIR, default ./config
	LogLevel  string // --log-level: debug, info (default), warn, error; debug shows fx's events
}

// register adds the global flags to fs with their current values as
// defaults, so a subcommand can accept them too without undoing what was
// given before its name.
func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&g.Env, "env", g.Env, "environment: production or test (overrides ETL_ENVIRONMENT, ENVIRONMENT, APP_ENV)")
	fs.StringVar(&g.ConfigDir, "config-dir", g.ConfigDir, "config directory holding pipeline.yml and tables.yml (default $PIPELINE_CONFIG_DIR or ./config)")
	fs.StringVar(&g.LogLevel, "log-level", g.LogLevel, "log level: debug, info, warn or error (default info; debug includes fx's own events)")
}

// call is one command invocation: the command's name, the global flags,
// its arguments and where it writes.
type call struct {
	name           string
	g              *globalFlags
	args           []string
	stdout, stderr io.Writer
	// load reads the settings; nil means loadSettings (files and the
	// process environment). Tests set it to use in-memory settings.
	load settingsLoader
	// clock is the command's time (report times, the run window); nil
	// means time.Now. Tests inject one.
	clock func() time.Time
	// rec, when set, is the result the command is building: withApp
	// hands it the settings as soon as they are loaded and asks it whether
	// the command may start (the run window) before any database is touched.
	rec *record
}

// now is the command's clock.
func (c *call) now() time.Time {
	if c.clock != nil {
		return c.clock()
	}
	return time.Now()
}

// flags returns a flag set for the command with the global flags on it.
func (c *call) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	c.g.register(fs)
	return fs
}

// parse parses the command's arguments into fs; no positional argument is
// allowed. ok is false with the exit code when the command must stop (-h
// is exit 0, anything wrong exit 2).
func (c *call) parse(fs *flag.FlagSet) (code int, ok bool) {
	if err := fs.Parse(c.args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitConfig, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.stderr, "pipeline %s: unexpected arguments %q\n", c.name, fs.Args())
		return exitConfig, false
	}
	return 0, true
}

type command struct {
	summary string
	run     func(ctx context.Context, c *call) int
}

var commands = map[string]command{
	"check":       {"validate the configuration and connect to every database and schema", runCheck},
	"discover":    {"read the source's information schema and write tables.yml", runDiscover},
	"replicate":   {"copy the source into the replication MySQL", runReplicate},
	"load":        {"load the replica into PostgreSQL raw", runLoad},
	"run":         {"replicate, then load (the default)", runRun},
	"verify":      {"prove source, replica and raw hold the same rows; --repair re-copies those that differ", runVerify},
	"status":      {"show per table when it was last confirmed current, its lag and failures (reads only the pipeline's own state)", runStatus},
	"dbt-sources": {"write dbt sources (tables, columns, tests, freshness) describing raw", runDBTSources},
	"demo":        {"create and mutate a synthetic OpenDental database (demo seed | demo mutate)", runDemo},
}

var commandOrder = []string{"run", "check", "discover", "replicate", "load", "verify", "status", "dbt-sources", "demo"}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: pipeline [--env ENV] [--config-dir DIR] [--log-level LEVEL] <command> [flags]")
	fmt.Fprintln(w, "\ncommands:")
	for _, name := range commandOrder {
		fmt.Fprintf(w, "  %-11s %s\n", name, commands[name].summary)
	}
	fmt.Fprintln(w, "\nRun `pipeline <command> -h` for a command's flags. Exit codes: see the README.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second SIGINT/SIGTERM ends the process at once
	}()
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// dispatch runs the command line args and returns the exit code. ctx is
// cancelled by SIGINT/SIGTERM.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return dispatchCall(ctx, args, call{stdout: stdout, stderr: stderr})
}

// dispatchCall is dispatch with the call's writers (and, in tests, its
// clock) given in base.
func dispatchCall(ctx context.Context, args []string, base call) int {
	var g globalFlags
	stderr := base.stderr
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	g.register(fs)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return exitOK
		}
		return exitConfig
	}
	rest := fs.Args()
	name := "run"
	if len(rest) > 0 {
		name, rest = rest[0], rest[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "pipeline: unknown command %q\n\n", name)
		usage(stderr)
		return exitConfig
	}
	c := base
	c.name, c.g, c.args = name, &g, rest
	return cmd.run(ctx, &c)
}
