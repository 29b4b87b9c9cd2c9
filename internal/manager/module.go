package manager

import (
	"log/slog"

	"go.uber.org/fx"
)

// Module provides Options (the defaults, logging retries to the app's
// logger when one is provided). Managers hold one connection each, so the
// data path builds them per worker with New / NewPostgres; replace the
// options in tests with fx.Replace or fx.Decorate.
var Module = fx.Module("manager", fx.Provide(NewOptions))

// OptionsParams are NewOptions' dependencies.
type OptionsParams struct {
	fx.In
	Logger *slog.Logger `optional:"true"`
}

// NewOptions returns DefaultOptions logging to p.Logger.
func NewOptions(p OptionsParams) Options {
	o := DefaultOptions()
	if p.Logger != nil {
		o.Logger = p.Logger.With("component", "manager")
	}
	return o
}
