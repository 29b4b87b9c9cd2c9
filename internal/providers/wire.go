//go:build wireinject

package providers

import "github.com/google/wire"

// Load builds the run's Settings from --config-dir, --env and the
// environment variables: resolve the directory, read pipeline.yml and
// tables.yml through the FileProvider, detect the environment. It is wire's
// one job in this program: a compile-time-checked graph of pure
// constructors that touch no database (fx owns everything with a
// lifetime). Regenerate wire_gen.go with `go tool wire ./internal/providers`.
func Load(flag ConfigDirFlag, override EnvOverride, vars EnvVars) (*Settings, error) {
	wire.Build(
		ResolveConfigDir,
		NewFileProvider,
		wire.Bind(new(ConfigProvider), new(*FileProvider)),
		NewSettings,
	)
	return nil, nil
}
