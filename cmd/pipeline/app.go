package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/gen/connections"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Deps is what every command can have. Embed it in the command's own fx.In
// struct and add exactly the connection handles the command uses: fx builds
// (and the lifecycle pings and closes) only what is asked for, so a command
// that asks for no analytics handle needs no analytics configuration.
//
//	type discoverDeps struct {
//		Deps
//		Source *connections.SourceDB
//	}
//
//	func runDiscover(ctx context.Context, g *globalFlags, args []string, stdout, stderr io.Writer) int {
//		// … parse args; usage errors return exitConfig …
//		err := withApp(ctx, g, stderr, []catalog.DatabaseType{catalog.DatabaseSource},
//			func(ctx context.Context, d discoverDeps) error {
//				src := manager.New(d.Source.DB, d.Manager) // rate limit and retries from pipeline.yml
//				defer src.Close()
//				return discover.Run(ctx, src, d.Settings.TablesPath(), d.Logger)
//			})
//		return exitCode(stderr, "discover", err)
//	}
type Deps struct {
	fx.In

	Settings *providers.Settings
	Logger   *slog.Logger
	Factory  *factory.Factory
	Manager  manager.Options // for source managers: pipeline.yml's rate_limit_ms, max_retries and the source's pool_timeout
}

// settingsLoader loads the run's settings; tests pass one that returns
// providers.NewTestSettings(…) instead of reading files and the process
// environment.
type settingsLoader func(g *globalFlags) (*providers.Settings, error)

// loadSettings reads the configuration the CLI was pointed at.
func loadSettings(g *globalFlags) (*providers.Settings, error) {
	return providers.Load(providers.ConfigDirFlag(g.ConfigDir), providers.EnvOverride(g.Env), providers.OSEnv())
}

// withApp runs fn inside a started fx application and returns fn's error
// or the app's:
//
//  1. load the configuration (--config-dir, --env, environment variables) and
//     validate the variables of dbs, the databases the command needs; any
//     problem returns a providers.ErrInvalidConfig error before a database
//     is touched (exitCode turns it into exit 2);
//  2. build the app: logger, providers, factory and the connection module of
//     the environment (connections.ProdModule or TestModule), and populate D;
//  3. start it: every handle in D is pinged, failing fast with the
//     database's name and host;
//  4. call fn, then stop the app, which closes every pool it opened, even
//     when fn failed.
//
// D must be an fx.In struct, usually embedding Deps. A handle in D whose
// database is not in dbs still works, but a config problem in it is then
// reported alone rather than together with the others.
func withApp[D any](ctx context.Context, g *globalFlags, stderr io.Writer, dbs []catalog.DatabaseType, fn func(ctx context.Context, d D) error) error {
	return withAppSettings(ctx, g, stderr, loadSettings, dbs, fn)
}

func withAppSettings[D any](ctx context.Context, g *globalFlags, stderr io.Writer, load settingsLoader, dbs []catalog.DatabaseType, fn func(ctx context.Context, d D) error) error {
	level, err := logLevel(g.LogLevel)
	if err != nil {
		return err
	}
	settings, err := load(g)
	if err != nil {
		return err
	}
	if len(dbs) > 0 {
		if err := settings.Validate(dbs...); err != nil {
			return err
		}
	}
	var d D
	app := fx.New(appOptions(g, settings, newLogger(stderr, level)), fx.Populate(&d))
	if err := app.Err(); err != nil {
		return fmt.Errorf("building the application: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout(settings))
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return fmt.Errorf("starting: %w", err) // fx has already stopped what started
	}
	runErr := fn(ctx, d)
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		return errors.Join(runErr, fmt.Errorf("stopping: %w", err))
	}
	return runErr
}

// appOptions is the application graph for settings: one logger (fx's own
// events through it at debug level), the providers, the factory and the
// connection handles of the settings' environment. Tests build the same
// graph and swap the configuration with fx.Replace.
func appOptions(g *globalFlags, settings *providers.Settings, logger *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(logger),
		fx.WithLogger(func(l *slog.Logger) fxevent.Logger {
			fl := &fxevent.SlogLogger{Logger: l.With("component", "fx")}
			fl.UseLogLevel(slog.LevelDebug)
			return fl
		}),
		graph(g, settings.Environment),
		fx.Replace(settings), // loaded and validated once, before the app

	)
}

// graph is the application graph of env: providers.Module builds *Settings
// from the command line and the process environment (appOptions and tests
// replace it with a concrete value), factory.Module opens pools, and the
// connection module of env provides every handle with its lifecycle hook.
func graph(g *globalFlags, env providers.Environment) fx.Option {
	conns := connections.ProdModule
	if env == providers.Test {
		conns = connections.TestModule
	}
	return fx.Options(
		fx.Supply(providers.ConfigDirFlag(g.ConfigDir), providers.EnvOverride(g.Env), providers.OSEnv()),
		providers.Module,
		factory.Module,
		manager.Module,
		fx.Decorate(managerOptions),
		conns,
	)
}

// managerOptions applies pipeline.yml to the managers' defaults: the
// replication section's rate_limit_ms and max_retries, and the source's
// pool_timeout, since Deps.Manager is what source managers (discover,
// replicate) are built with.
func managerOptions(o manager.Options, p *providers.PipelineConfig) manager.Options {
	o.MaxRetries = p.Replication.MaxRetries
	o.RateLimit = p.Replication.RateLimit()
	o.PoolTimeout = p.Pool(catalog.DatabaseSource).PoolTimeout
	return o
}

// newLogger is the program's one logger: text lines on stderr.
func newLogger(stderr io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// logLevel parses --log-level ("" is info).
func logLevel(s string) (slog.Level, error) {
	if s == "" {
		return slog.LevelInfo, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: --log-level %q: use debug, info, warn or error", providers.ErrInvalidConfig, s)
	}
	return l, nil
}

const stopTimeout = 30 * time.Second

// startTimeout leaves room for every ping to use its connect timeout.
func startTimeout(s *providers.Settings) time.Duration {
	longest := providers.DefaultConnectTimeout
	for _, db := range catalog.Databases() {
		if t := s.Pipeline.Pool(db.Type).ConnectTimeout; t > longest {
			longest = t
		}
	}
	return 2*longest + 5*time.Second
}

// exitCode prints err (if any) as "pipeline <cmd>: …" and maps it to the
// exit code: 0 none, 2 a configuration error, 1 anything else.
func exitCode(stderr io.Writer, cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "pipeline %s: %v\n", cmd, err)
	if errors.Is(err, providers.ErrInvalidConfig) {
		return exitConfig
	}
	return exitFailed
}
