// Package notify posts a run's result to webhooks (Slack-compatible JSON:
// a short human `text` plus the whole report) for the events each webhook
// asks for. Notifying never fails or holds up a run: every webhook is tried
// in parallel within one timeout budget, with retries and backoff, and a
// webhook that is down is a warning in the log. A webhook's URL is a secret
// (Slack's carries the token in its path): it comes from an environment
// variable and never appears in a log line or an error.
package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// Event is a kind of run result a webhook can ask for.
type Event string

// Events.
const (
	EventFailure      Event = "failure"       // the run failed, was locked, interrupted, or a database was down
	EventSuccess      Event = "success"       // the run ended ok
	EventSchemaChange Event = "schema_change" // the run applied a schema change
	EventStale        Event = "stale"         // status found a table not confirmed current in time
)

// EventValues are the events in documentation order.
func EventValues() []Event {
	return []Event{EventFailure, EventSuccess, EventSchemaChange, EventStale}
}

// ParseEvent checks an event name, naming the allowed ones when it is wrong.
func ParseEvent(s string) (Event, error) {
	if slices.Contains(EventValues(), Event(s)) {
		return Event(s), nil
	}
	return "", fmt.Errorf("unknown event %q: want one of failure, success, schema_change, stale", s)
}

// Defaults.
const (
	DefaultTimeout = 10 * time.Second
	DefaultRetries = 2
	DefaultBackoff = time.Second
)

// Webhook is one destination.
type Webhook struct {
	Name   string  // shown in logs; default URLEnv
	URLEnv string  // the environment variable holding the URL
	Events []Event // default [failure]
}

// Config is pipeline.yml's notify section, validated.
type Config struct {
	Webhooks []Webhook
	Timeout  time.Duration // budget for delivering one result to all webhooks (in parallel); <= 0: DefaultTimeout
	Retries  int           // retries after a failed attempt (network error, 5xx, 429); < 0: none
	Backoff  time.Duration // wait before the first retry, doubled each time; <= 0: DefaultBackoff
}

// ErrConfig marks a webhook whose URL variable is missing or malformed.
var ErrConfig = errors.New("notify configuration")

// Notifier delivers results. A nil *Notifier delivers nothing.
type Notifier struct {
	cfg    Config
	hooks  []hook
	client *http.Client
	log    *slog.Logger
}

type hook struct {
	Webhook
	url string
}

// New reads each webhook's URL from lookup (os.LookupEnv in production) and
// checks it; the error names the variable, never its value.
func New(cfg Config, lookup func(string) (string, bool), log *slog.Logger) (*Notifier, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	cfg.Retries = max(cfg.Retries, 0)
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if log == nil {
		log = slog.Default()
	}
	n := &Notifier{cfg: cfg, log: log.With("component", "notify"), client: &http.Client{
		// A redirect would send the report on to an address nobody
		// configured (and put it in an error): treat it as a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	for _, w := range cfg.Webhooks {
		raw, ok := lookup(w.URLEnv)
		if !ok || raw == "" {
			return nil, fmt.Errorf("%w: webhook %q: environment variable %s is not set: export it with the webhook's URL, or remove the webhook from notify.webhooks", ErrConfig, nameOf(w), w.URLEnv)
		}
		if u, err := url.Parse(raw); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%w: webhook %q: environment variable %s does not hold an http(s) URL (its value is not shown: it is a secret)", ErrConfig, nameOf(w), w.URLEnv)
		}
		if w.Name == "" {
			w.Name = w.URLEnv
		}
		if len(w.Events) == 0 {
			w.Events = []Event{EventFailure}
		}
		n.hooks = append(n.hooks, hook{Webhook: w, url: raw})
	}
	return n, nil
}

func nameOf(w Webhook) string {
	if w.Name != "" {
		return w.Name
	}
	return w.URLEnv
}

// Events are the events r is: failure, success, schema_change, stale.
func Events(r *report.Report) []Event {
	var ev []Event
	switch {
	case r.Status == report.StatusStale:
		ev = append(ev, EventStale)
	case r.Status.Failure():
		ev = append(ev, EventFailure)
	case r.Status == report.StatusOK:
		ev = append(ev, EventSuccess)
	}
	if r.Totals.SchemaChanges > 0 {
		ev = append(ev, EventSchemaChange)
	}
	return ev
}

// Notify posts r to every webhook that wants one of its events, in
// parallel, and returns how many received it. It returns within the
// timeout budget whatever the webhooks do; failures are logged as warnings.
// ctx's values are kept but not its cancellation: the run an interrupt
// stopped is exactly one to report, and the budget still bounds the wait.
func (n *Notifier) Notify(ctx context.Context, r *report.Report) int {
	if n == nil || len(n.hooks) == 0 {
		return 0
	}
	events := Events(r)
	body, err := Body(r)
	if err != nil {
		n.log.Warn("notification not sent: encoding the result failed", "error", err)
		return 0
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), n.cfg.Timeout)
	defer cancel()
	var sent atomic.Int32
	var wg sync.WaitGroup
	for _, h := range n.hooks {
		if !slices.ContainsFunc(h.Events, func(e Event) bool { return slices.Contains(events, e) }) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if attempts, err := n.deliver(ctx, h, body); err != nil {
				n.log.Warn("webhook not reached; the run is not affected", "webhook", h.Name, "url_env", h.URLEnv, "attempts", attempts, "error", err)
			} else {
				sent.Add(1)
				n.log.Debug("webhook notified", "webhook", h.Name, "attempts", attempts)
			}
		}()
	}
	wg.Wait()
	return int(sent.Load())
}

// deliver posts body until it is accepted, a permanent error, the retries
// are spent or the budget is.
func (n *Notifier) deliver(ctx context.Context, h hook, body []byte) (attempts int, err error) {
	wait := n.cfg.Backoff
	for attempts = 1; ; attempts++ {
		err = n.post(ctx, h, body)
		if err == nil || !retryable(err) || attempts > n.cfg.Retries {
			return attempts, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return attempts, fmt.Errorf("%w; gave up: the %s notify timeout is spent", err, n.cfg.Timeout)
		case <-t.C:
		}
		wait *= 2
	}
}
