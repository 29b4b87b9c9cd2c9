package providers_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/providers"
	"github.com/opendental-pipeline/pipeline/internal/tables"
)

func TestParsePipelineErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // every fragment must appear
	}{
		{name: "malformed YAML names file and line", yaml: "replication:\n  workers: 1\n    max_retries: 2\n", want: []string{"conf/pipeline.yml", "line 3"}},
		{name: "unknown top-level key", yaml: "replication:\n  workers: 1\nextract: {}\n", want: []string{"conf/pipeline.yml", "line 3", "field extract not found"}},
		{name: "unknown connection key", yaml: "connections:\n  source:\n    pool_sise: 3\n", want: []string{"line 3", "field pool_sise not found"}},
		{name: "unknown database", yaml: "connections:\n  warehouse:\n    pool_size: 3\n", want: []string{"conf/pipeline.yml:2", `unknown database type "warehouse"`, "source, replication, analytics"}},
		{name: "bad duration", yaml: "connections:\n  source:\n    read_timeout: soon\n", want: []string{"line 3", `"soon" is not a duration`}},
		{name: "negative duration", yaml: "connections:\n  source:\n    read_timeout: -5\n", want: []string{"line 3", "negative"}},
		{name: "every range problem listed", yaml: "connections:\n  replication:\n    pool_size: 0\n    max_overflow: -1\nreplication:\n  workers: 0\n  max_retries: -2\nload:\n  workers: 0\n",
			want: []string{
				"conf/pipeline.yml:3: connections.replication.pool_size must be at least 1, got 0",
				"conf/pipeline.yml:4: connections.replication.max_overflow must be 0 or more, got -1",
				"conf/pipeline.yml:6: replication.workers must be at least 1, got 0",
				"conf/pipeline.yml:7: replication.max_retries must be at least 0, got -2",
				"conf/pipeline.yml:9: load.workers must be at least 1, got 0",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := providers.ParsePipeline("conf/pipeline.yml", []byte(tt.yaml))
			require.Error(t, err)
			assert.ErrorIs(t, err, providers.ErrInvalidConfig)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParsePipelineDefaults(t *testing.T) {
	t.Parallel()
	for _, body := range []string{"", "# nothing\n", "connections:\n"} {
		cfg, err := providers.ParsePipeline("p.yml", []byte(body))
		require.NoError(t, err, body)
		assert.Equal(t, providers.DefaultPipelineConfig(), cfg)
	}
	cfg, err := providers.ParsePipeline("p.yml", []byte("replication:\n  rate_limit_ms: 0\n  max_retries: 0\n"))
	require.NoError(t, err)
	assert.Zero(t, cfg.Replication.RateLimit(), "0 disables the rate limit")
	assert.Zero(t, cfg.Replication.MaxRetries)
	assert.Equal(t, 2, cfg.Replication.Workers)
}

func TestParseTablesStrict(t *testing.T) {
	t.Parallel()
	_, err := providers.ParseTables("cfg/tables.yml", []byte("tables:\n  patient:\n    batch_size: 10\n    batchsize: 5\n"))
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.ErrorIs(t, err, tables.ErrInvalid)
	assert.Contains(t, err.Error(), "cfg/tables.yml:4:")
	assert.Contains(t, err.Error(), `unknown key "batchsize"`)

	_, err = providers.ParseTables("cfg/tables.yml", []byte("tables:\n  patient:\n"))
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "patient")

	_, err = providers.ParseTables("cfg/tables.yml", []byte("tables:\n  patient: [\n"))
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "cfg/tables.yml")
	assert.Contains(t, err.Error(), "line ")
}
