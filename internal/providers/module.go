package providers

import "go.uber.org/fx"

// Module supplies s, the run's Settings, to the fx graph. s is built once,
// outside fx, by the wire injector Load (production) or NewTestSettings
// (tests), and validated before the app is built; fx receives that very
// value, so the graph tests validate is the graph production runs.
func Module(s *Settings) fx.Option {
	return fx.Module("providers", fx.Supply(s))
}
