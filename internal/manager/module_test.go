package manager_test

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/fx"

	"github.com/opendental-pipeline/pipeline/internal/manager"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// The module's options come from the run's pipeline.yml and log to the
// app's logger.
func TestModuleTakesOptionsFromPipelineConfig(t *testing.T) {
	t.Parallel()
	pipe, err := providers.ParsePipeline("pipeline.yml", []byte("replication:\n  rate_limit_ms: 250\n  max_retries: 5\nconnections:\n  source:\n    pool_timeout: 7\n"))
	require.NoError(t, err)
	var logs bytes.Buffer
	var got manager.Options
	app := fx.New(fx.NopLogger,
		fx.Supply(providers.NewTestSettings(pipe, nil, nil), slog.New(slog.NewTextHandler(&logs, nil))),
		manager.Module, fx.Populate(&got))
	require.NoError(t, app.Err())
	assert.Equal(t, 250*time.Millisecond, got.RateLimit)
	assert.Equal(t, 5, got.MaxRetries)
	assert.Equal(t, 7*time.Second, got.PoolTimeout, "the source's pool_timeout bounds the wait for a source connection")
	assert.Equal(t, manager.DefaultOptions().BaseBackoff, got.BaseBackoff)
	require.NotNil(t, got.Logger)
	got.Logger.Warn("retrying")
	assert.Contains(t, logs.String(), "component=manager")
}

// The defaults are pipeline.yml's: an empty pipeline.yml and no options at
// all behave the same.
func TestDefaultOptionsAreThePipelineDefaults(t *testing.T) {
	t.Parallel()
	empty, err := providers.ParsePipeline("pipeline.yml", nil)
	require.NoError(t, err)
	assert.Equal(t, manager.ForSource(empty, nil), manager.DefaultOptions())
}
