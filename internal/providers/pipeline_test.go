package providers_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/notify"
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

func TestParsePipelineOperations(t *testing.T) {
	cfg, err := providers.ParsePipeline("p.yml", []byte(`
schedule:
  window: "21:00-06:00"
  time_zone: America/Chicago
notify:
  timeout: 5s
  retries: 0
  webhooks:
    - name: slack
      url_env: PIPELINE_SLACK_WEBHOOK
      events: [failure, schema_change]
    - url_env: OPS_HOOK
metrics:
  file: /var/lib/node_exporter/textfile/pipeline.prom
history:
  retention_days: 30
status:
  stale_after: 30h
`))
	require.NoError(t, err)
	w, err := cfg.Schedule.RunWindow()
	require.NoError(t, err)
	assert.Equal(t, "21:00-06:00 America/Chicago", w.String())
	assert.Equal(t, notify.Config{Timeout: 5 * time.Second, Retries: 0, Webhooks: []notify.Webhook{
		{Name: "slack", URLEnv: "PIPELINE_SLACK_WEBHOOK", Events: []notify.Event{notify.EventFailure, notify.EventSchemaChange}},
		{URLEnv: "OPS_HOOK"},
	}}, cfg.Notify.Config(), "retries: 0 is kept (no retries), not replaced by the default")
	assert.Equal(t, "/var/lib/node_exporter/textfile/pipeline.prom", cfg.Metrics.File)
	assert.Equal(t, 30, cfg.History.RetentionDays)
	assert.Equal(t, providers.Duration(30*time.Hour), cfg.Status.StaleAfter)

	def := providers.DefaultPipelineConfig()
	w, err = def.Schedule.RunWindow()
	require.NoError(t, err)
	assert.Nil(t, w, "no window: runs at any time")
	assert.Equal(t, notify.Config{Timeout: 10 * time.Second, Retries: 2}, def.Notify.Config())
	assert.Empty(t, def.Metrics.File)
	assert.Equal(t, 90, def.History.RetentionDays)
	assert.Equal(t, providers.Duration(26*time.Hour), def.Status.StaleAfter)

	cfg, err = providers.ParsePipeline("p.yml", []byte("notify:\n  webhooks:\n    - url_env: HOOK\n"))
	require.NoError(t, err)
	assert.Equal(t, def.Notify.Timeout, cfg.Notify.Timeout, "defaults kept beside a partial section")
	assert.Equal(t, 2, cfg.Notify.Retries)
}

func TestParsePipelineOperationsErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"bad window", "schedule:\n  window: 9pm-6am\n  time_zone: America/Chicago\n",
			[]string{"p.yml:2: schedule.window:", `start "9pm" is not HH:MM`}},
		{"equal ends", "schedule:\n  window: \"21:00-21:00\"\n  time_zone: UTC\n",
			[]string{"p.yml:2:", "starts when it ends: remove schedule.window to allow runs at any time"}},
		{"window without zone", "schedule:\n  window: \"21:00-06:00\"\n",
			[]string{"p.yml:1: schedule.time_zone:", "needs time_zone", "America/Chicago"}},
		{"unknown zone", "schedule:\n  window: \"21:00-06:00\"\n  time_zone: Central\n",
			[]string{"p.yml:3: schedule.time_zone:", `time_zone "Central" is not an IANA time zone name`}},
		{"zone without window", "schedule:\n  time_zone: UTC\n",
			[]string{"p.yml:2: schedule.time_zone is set without schedule.window"}},
		{"unknown schedule key", "schedule:\n  windows: \"21:00-06:00\"\n", []string{"line 2", "field windows not found"}},
		{"timeout and retries", "notify:\n  timeout: 0\n  retries: -1\n",
			[]string{"p.yml:2: notify.timeout must be more than 0", "p.yml:3: notify.retries must be at least 0, got -1"}},
		{"url_env missing", "notify:\n  webhooks:\n    - name: slack\n      events: [failure]\n",
			[]string{"p.yml:3: notify.webhooks[0].url_env is required", "PIPELINE_SLACK_WEBHOOK"}},
		{"url_env not a name", "notify:\n  webhooks:\n    - url_env: ok\n    - url_env: slack-hook\n",
			[]string{"p.yml:4: notify.webhooks[1].url_env \"slack-hook\" is not an environment variable name"}},
		{"unknown event", "notify:\n  webhooks:\n    - url_env: HOOK\n      events: [failure, failed]\n",
			[]string{"p.yml:4: notify.webhooks[0].events: unknown event \"failed\": want one of failure, success, schema_change, stale"}},
		{"unknown webhook key", "notify:\n  webhooks:\n    - url: https://hooks.example/x\n", []string{"line 3", "field url not found"}},
		{"metrics file", "metrics:\n  file: /tmp/pipeline.txt\n",
			[]string{"p.yml:2: metrics.file \"/tmp/pipeline.txt\" must end in .prom"}},
		{"retention and staleness", "history:\n  retention_days: 0\nstatus:\n  stale_after: 0\n",
			[]string{"p.yml:2: history.retention_days must be at least 1, got 0", "p.yml:4: status.stale_after must be more than 0"}},
		{"bad stale_after", "status:\n  stale_after: a day\n", []string{"line 2", `"a day" is not a duration`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := providers.ParsePipeline("p.yml", []byte(tt.yaml))
			require.ErrorIs(t, err, providers.ErrInvalidConfig)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

// TestWebhookURLInConfigIsNotEchoed: a URL pasted into url_env is refused
// without repeating it (it is a secret).
func TestWebhookURLInConfigIsNotEchoed(t *testing.T) {
	_, err := providers.ParsePipeline("p.yml", []byte("notify:\n  webhooks:\n    - url_env: https://hooks.slack.com/services/T0/B0/XoXoSeCrEt\n"))
	require.ErrorIs(t, err, providers.ErrInvalidConfig)
	assert.Contains(t, err.Error(), "p.yml:3: notify.webhooks[0].url_env must name an environment variable, not hold the URL")
	assert.NotContains(t, err.Error(), "XoXoSeCrEt")
	assert.NotContains(t, err.Error(), "hooks.slack.com")
}

func TestExampleDocumentsOperationDefaults(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "pipeline.yml"))
	require.NoError(t, err)
	cfg, err := providers.ParsePipeline("config/pipeline.yml", data)
	require.NoError(t, err)
	def := providers.DefaultPipelineConfig()
	assert.Equal(t, []any{def.Schedule, def.Notify, def.Metrics, def.History, def.Status, def.Verify},
		[]any{cfg.Schedule, cfg.Notify, cfg.Metrics, cfg.History, cfg.Status, cfg.Verify}, "the example's active keys are the defaults")
}

// TestExampleCommentedSectionsParse: the commented-out examples in
// config/pipeline.yml are valid once uncommented.
func TestExampleCommentedSectionsParse(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "pipeline.yml"))
	require.NoError(t, err)
	uncomment := regexp.MustCompile(`(?m)^(\s*)# (\s*(?:- )?[a-z_]+:.*)$`)
	cfg, err := providers.ParsePipeline("config/pipeline.yml", uncomment.ReplaceAll(data, []byte("$1$2")))
	require.NoError(t, err)
	w, err := cfg.Schedule.RunWindow()
	require.NoError(t, err)
	assert.Equal(t, "21:00-06:00 America/Chicago", w.String())
	require.Len(t, cfg.Notify.Webhooks, 1)
	assert.Equal(t, "PIPELINE_SLACK_WEBHOOK", cfg.Notify.Webhooks[0].URLEnv)
	assert.Equal(t, "/var/lib/node_exporter/textfile/pipeline.prom", cfg.Metrics.File)
}

func TestParsePipelineVerify(t *testing.T) {
	t.Parallel()
	cfg, err := providers.ParsePipeline("p.yml", []byte("verify:\n  enabled: true\n  budget: 10m\n  repair: true\n"))
	require.NoError(t, err)
	assert.Equal(t, providers.VerifyOptions{Enabled: true, Budget: providers.Duration(10 * time.Minute), Repair: true}, cfg.Verify)
	cfg, err = providers.ParsePipeline("p.yml", []byte("verify:\n  budget: 600\n"))
	require.NoError(t, err)
	assert.Equal(t, providers.Duration(10*time.Minute), cfg.Verify.Budget, "seconds, like every duration")
	assert.False(t, providers.DefaultPipelineConfig().Verify.Enabled, "off unless switched on")
	assert.Equal(t, providers.Duration(providers.DefaultVerifyBudget), providers.DefaultPipelineConfig().Verify.Budget)
	cfg, err = providers.ParsePipeline("p.yml", []byte("verify:\n  enabled: true\n  budget: 0\n"))
	require.NoError(t, err)
	assert.Zero(t, cfg.Verify.Budget, "0: no limit")
	for body, want := range map[string]string{
		"verify:\n  enabled: true\n  budjet: 10m\n": "field budjet not found",
		"verify:\n  budget: -10m\n":                 "negative",
		"verify:\n  enabled: yes please\n":          "line 2",
	} {
		_, err := providers.ParsePipeline("p.yml", []byte(body))
		require.ErrorIs(t, err, providers.ErrInvalidConfig, body)
		assert.Contains(t, err.Error(), want, body)
	}
}
