package manager

import (
	"log/slog"

	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Module provides the Options source managers are built with, from the
// run's *providers.Settings (pipeline.yml), logging retries to the app's
// logger. Managers hold one connection each, so the data path builds them
// per worker with New.
var Module = fx.Module("manager", fx.Provide(newOptions))

func newOptions(s *providers.Settings, log *slog.Logger) Options {
	return ForSource(s.Pipeline, log.With("component", "manager"))
}
