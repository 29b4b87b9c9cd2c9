package main

import (
	"context"
	"errors"
	"fmt"
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
//	func runDiscover(ctx context.Context, c *call) int {
//		// … parse c.args; usage errors return exitConfig …
//		err := withApp(ctx, c, []catalog.DatabaseType{catalog.DatabaseSource},
//			func(ctx context.Context, d discoverDeps) error {
//				src := manager.New(d.Source.DB, d.Manager) // rate limit and retries from pipeline.yml
//				defer src.Close()
//				return discover.Run(ctx, src, d.Settings.TablesPath(), d.Logger)
//			})
//		return c.exit(ctx, err)
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

// loadSettings reads the configuration the CLI was pointed at through the
// wire injector providers.Load: the one place Settings are built.
func loadSettings(g *globalFlags) (*providers.Settings, error) {
	return providers.Load(providers.ConfigDirFlag(g.ConfigDir), providers.EnvOverride(g.Env), providers.OSEnv())
}

// withApp runs fn inside a started fx application and returns fn's error
// or the app's:
//
//  1. load the configuration (--config-dir, --env, environment variables) and
//     validate the variables of dbs, the databases the command needs; any
//     problem returns a providers.ErrInvalidConfig error before a database
//     is touched (exit 2);
//  2. build the app (appGraph) with those very settings and populate D;
//  3. start it: every handle in D is pinged, failing fast with a
//     *factory.PingError naming the database;
//  4. call fn, then stop the app, which closes every pool it opened, even
//     when fn failed.
//
// D must be an fx.In struct, usually embedding Deps. A handle in D whose
// database is not in dbs still works, but a config problem in it is then
// reported alone rather than together with the others.
func withApp[D any](ctx context.Context, c *call, dbs []catalog.DatabaseType, fn func(ctx context.Context, d D) error) error {
	settings, logger, err := c.settings(ctx, dbs)
	if err != nil {
		return err
	}
	var d D
	app := fx.New(appGraph(settings, logger), fx.Populate(&d))
	if err := app.Err(); err != nil {
		return fmt.Errorf("building the application: %w", err)
	}
	startCtx, cancel := context.WithTimeout(ctx, startTimeout(settings))
	defer cancel()
	if err := app.Start(startCtx); err != nil {
		return err // fx has already stopped what started; exit() names the database
	}
	runErr := fn(ctx, d)
	stopCtx, cancelStop := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancelStop()
	if err := app.Stop(stopCtx); err != nil {
		return errors.Join(runErr, fmt.Errorf("stopping: %w", err))
	}
	return runErr
}

// settings loads and validates the configuration for dbs and makes the
// command's logger.
func (c *call) settings(ctx context.Context, dbs []catalog.DatabaseType) (*providers.Settings, *slog.Logger, error) {
	level, err := logLevel(c.g.LogLevel)
	if err != nil {
		return nil, nil, err
	}
	load := c.load
	if load == nil {
		load = loadSettings
	}
	settings, err := load(c.g)
	if err != nil {
		return nil, nil, err
	}
	logger := newLogger(ctx, c.stderr, level)
	if c.rec != nil {
		c.rec.loaded(settings, logger)
	}
	if len(dbs) > 0 {
		if err := settings.Validate(dbs...); err != nil {
			return nil, nil, err
		}
	}
	if !settings.PipelineExists && settings.ConfigDir != "" {
		logger.Debug("no pipeline.yml: the defaults apply", "config_dir", settings.ConfigDir)
	}
	if c.rec != nil {
		if err := c.rec.gate(); err != nil {
			return nil, nil, err // before any database is touched
		}
	}
	return settings, logger, nil
}

// appGraph is the application graph of the run with settings s: the
// logger (fx's own events through it at debug level), s itself, the
// factory, the managers' options and the connection handles of s's
// environment. Production and the tests build the app with this very
// function; tests only pass other settings.
func appGraph(s *providers.Settings, logger *slog.Logger) fx.Option {
	conns := connections.ProdModule
	if s.Environment == providers.Test {
		conns = connections.TestModule
	}
	return fx.Options(
		fx.Supply(logger),
		fx.WithLogger(fxLogger),
		providers.Module(s),
		factory.Module,
		manager.Module,
		conns,
	)
}

// fxLogger sends fx's events, its errors included, to the logger at debug
// level: a failed start is reported once, by exit(), as one line naming the
// database, not as fx's lines naming Go functions.
func fxLogger(l *slog.Logger) fxevent.Logger {
	fl := &fxevent.SlogLogger{Logger: l.With("component", "fx")}
	fl.UseLogLevel(slog.LevelDebug)
	fl.UseErrorLevel(slog.LevelDebug)
	return fl
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
