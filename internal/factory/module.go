package factory

import "go.uber.org/fx"

// Module provides the shared *Factory; the connection handles are built from it.
var Module = fx.Module("factory", fx.Provide(New))
