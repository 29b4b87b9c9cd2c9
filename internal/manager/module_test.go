package manager_test

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/testdb"
)

func TestModuleProvidesOptions(t *testing.T) {
	tests := []struct {
		name       string
		opts       []fx.Option
		wantLogger bool
	}{
		{"without logger", nil, false},
		{"with logger", []fx.Option{fx.Supply(slog.New(slog.DiscardHandler))}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got manager.Options
			app := fx.New(append(tt.opts, manager.Module, fx.NopLogger, fx.Populate(&got))...)
			require.NoError(t, app.Err())
			assert.Equal(t, 3, got.MaxRetries)
			assert.Equal(t, 100*time.Millisecond, got.RateLimit)
			assert.Equal(t, 30*time.Second, got.PoolTimeout)
			assert.Equal(t, tt.wantLogger, got.Logger != nil)
		})
	}
}

func TestOptionsForDatabase(t *testing.T) {
	var logs bytes.Buffer
	o := manager.DefaultOptions()
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg := testdb.MySQLConfig("x", catalog.DatabaseSource)
	cfg.Pool.PoolTimeout = 7 * time.Second
	cfg.Password = "s3cr3t-XYZ"
	got := o.ForDatabase(cfg)
	assert.Equal(t, 7*time.Second, got.PoolTimeout)
	assert.Equal(t, 30*time.Second, o.PoolTimeout, "the receiver is a copy")
	got.Logger.Info("x")
	assert.Contains(t, logs.String(), "db=source")
	assert.NotContains(t, logs.String(), "s3cr3t")
}
