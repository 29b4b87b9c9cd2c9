package factory

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
)

func TestModuleProvidesFactory(t *testing.T) {
	var f *Factory
	app := fx.New(Module, fx.NopLogger, fx.Populate(&f))
	require.NoError(t, app.Err())
	require.NotNil(t, f)
}
