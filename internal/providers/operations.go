package providers

import (
	"regexp"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/opendental-pipeline/pipeline/internal/notify"
	"github.com/opendental-pipeline/pipeline/internal/window"
)

// The operator's side of pipeline.yml: run window, notifications, metrics,
// history retention and status staleness. Example (config/pipeline.yml):
//
//	schedule:
//	  window: "21:00-06:00"       # run/replicate start only inside; replication stops when it closes
//	  time_zone: America/Chicago  # IANA zone of the window (required with window)
//	notify:
//	  timeout: 10s                # budget for one result to reach every webhook (in parallel)
//	  retries: 2                  # retries per webhook (network errors, 5xx, 429)
//	  webhooks:
//	    - name: slack
//	      url_env: PIPELINE_SLACK_WEBHOOK   # environment variable holding the URL (a secret)
//	      events: [failure, schema_change]  # failure (default), success, schema_change, stale
//	metrics:
//	  file: /var/lib/node_exporter/textfile/pipeline.prom
//	history:
//	  retention_days: 90
//	status:
//	  stale_after: 26h

// ScheduleOptions are pipeline.yml's schedule: the run window.
type ScheduleOptions struct {
	Window   string `yaml:"window"`    // "21:00-06:00"; empty: run at any time
	TimeZone string `yaml:"time_zone"` // the window's IANA zone, e.g. America/Chicago
}

// RunWindow is the parsed window, or nil when none is configured (runs
// allowed at any time). ParsePipeline has already checked it.
func (s ScheduleOptions) RunWindow() (*window.Window, error) {
	if s.Window == "" {
		return nil, nil
	}
	return window.Parse(s.Window, s.TimeZone)
}

// NotifyOptions are pipeline.yml's notify section.
type NotifyOptions struct {
	Timeout  Duration         `yaml:"timeout"`
	Retries  int              `yaml:"retries"`
	Webhooks []WebhookOptions `yaml:"webhooks"`
}

// WebhookOptions is one webhook. The URL itself never lives in the file.
type WebhookOptions struct {
	Name   string   `yaml:"name"`
	URLEnv string   `yaml:"url_env"`
	Events []string `yaml:"events"`
}

// Config is the notify package's configuration (events already checked
// by ParsePipeline).
func (n NotifyOptions) Config() notify.Config {
	cfg := notify.Config{Timeout: time.Duration(n.Timeout), Retries: n.Retries}
	for _, w := range n.Webhooks {
		hook := notify.Webhook{Name: w.Name, URLEnv: w.URLEnv}
		for _, e := range w.Events {
			hook.Events = append(hook.Events, notify.Event(e))
		}
		cfg.Webhooks = append(cfg.Webhooks, hook)
	}
	return cfg
}

// MetricsOptions are pipeline.yml's metrics section.
type MetricsOptions struct {
	// File is the Prometheus textfile written after each command, the
	// command's name inserted before .prom (pipeline-run.prom …); empty: none.
	File string `yaml:"file"`
}

// HistoryOptions are pipeline.yml's history section.
type HistoryOptions struct {
	RetentionDays int `yaml:"retention_days"`
}

// StatusOptions are pipeline.yml's status section.
type StatusOptions struct {
	StaleAfter Duration `yaml:"stale_after"` // a table not confirmed current for longer is stale
}

// Defaults of the operator's settings.
const (
	DefaultNotifyTimeout = notify.DefaultTimeout
	DefaultNotifyRetries = notify.DefaultRetries
	DefaultRetentionDays = 90
	DefaultStaleAfter    = 26 * time.Hour // a nightly run plus two hours of slack
)

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkOperations adds the operator sections' problems through bad.
func checkOperations(root *yaml.Node, cfg *PipelineConfig, bad func(line int, format string, args ...any)) {
	s := cfg.Schedule
	switch {
	case s.Window != "":
		if _, err := window.Parse(s.Window, s.TimeZone); err != nil {
			key := "window"
			if strings.Contains(err.Error(), "time_zone") {
				key = "time_zone"
			}
			bad(lineOf(root, "schedule", key), "schedule.%s: %v", key, err)
		}
	case s.TimeZone != "":
		bad(lineOf(root, "schedule", "time_zone"), `schedule.time_zone is set without schedule.window: add window: "21:00-06:00" (for example) or remove time_zone`)
	}
	if cfg.Notify.Timeout <= 0 {
		bad(lineOf(root, "notify", "timeout"), "notify.timeout must be more than 0 (e.g. 10s)")
	}
	if cfg.Notify.Retries < 0 {
		bad(lineOf(root, "notify", "retries"), "notify.retries must be at least 0, got %d", cfg.Notify.Retries)
	}
	for i, w := range cfg.Notify.Webhooks {
		checkWebhook(i, w, func(key string) int { return itemLine(root, i, key) }, bad)
	}
	if f := cfg.Metrics.File; f != "" && !strings.HasSuffix(f, ".prom") {
		bad(lineOf(root, "metrics", "file"), "metrics.file %q must end in .prom: node_exporter's textfile collector reads only *.prom files", f)
	}
	if cfg.History.RetentionDays < 1 {
		bad(lineOf(root, "history", "retention_days"), "history.retention_days must be at least 1, got %d", cfg.History.RetentionDays)
	}
	if cfg.Status.StaleAfter <= 0 {
		bad(lineOf(root, "status", "stale_after"), "status.stale_after must be more than 0 (e.g. 26h)")
	}
}

func checkWebhook(i int, w WebhookOptions, line func(key string) int, bad func(int, string, ...any)) {
	switch {
	case w.URLEnv == "":
		bad(line("url_env"), "notify.webhooks[%d].url_env is required: the name of the environment variable holding the webhook's URL, e.g. PIPELINE_SLACK_WEBHOOK", i)
	case strings.Contains(w.URLEnv, "/") || strings.Contains(w.URLEnv, ":"):
		// Someone pasted the URL itself: say so without repeating it.
		bad(line("url_env"), "notify.webhooks[%d].url_env must name an environment variable, not hold the URL (a secret: keep it out of pipeline.yml and this message): export PIPELINE_SLACK_WEBHOOK=<url> and write url_env: PIPELINE_SLACK_WEBHOOK", i)
	case !envName.MatchString(w.URLEnv):
		bad(line("url_env"), "notify.webhooks[%d].url_env %q is not an environment variable name (letters, digits, _)", i, w.URLEnv)
	}
	for _, e := range w.Events {
		if _, err := notify.ParseEvent(e); err != nil {
			bad(line("events"), "notify.webhooks[%d].events: %v", i, err)
		}
	}
}

// itemLine is the line of key in the i-th entry of notify.webhooks (or of
// the entry, or of webhooks, when the key is absent).
func itemLine(root *yaml.Node, i int, key string) int {
	line, seq := keyAt(root, "notify", "webhooks")
	if seq == nil || seq.Kind != yaml.SequenceNode || i >= len(seq.Content) {
		return line
	}
	item := seq.Content[i]
	for j := 0; j+1 < len(item.Content); j += 2 {
		if item.Content[j].Value == key {
			return item.Content[j].Line
		}
	}
	return item.Line
}
