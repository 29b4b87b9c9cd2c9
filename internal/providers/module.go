package providers

import (
	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/internal/tables"
)

// Module provides *Settings, built by Load from the supplied ConfigDirFlag,
// EnvOverride and EnvVars, and the parts other packages take on their own:
// the Environment, *PipelineConfig, *tables.Config and the run options.
// Tests swap the configuration with fx.Replace(providers.NewTestSettings(…)),
// which also spares them the three inputs.
var Module = fx.Module("providers",
	fx.Provide(
		Load, // wire_gen.go
		func(s *Settings) Environment { return s.Environment },
		func(s *Settings) *PipelineConfig { return s.Pipeline },
		func(s *Settings) *tables.Config { return s.Tables },
		func(s *Settings) ReplicationOptions { return s.Pipeline.Replication },
		func(s *Settings) LoadOptions { return s.Pipeline.Load },
	),
)
