package notify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/notify"
	"github.com/opendental-pipeline/pipeline/internal/report"
)

var start = time.Date(2025, 6, 10, 2, 0, 0, 0, time.UTC)

func failedRun() *report.Report {
	r := report.New(report.CommandRun, "20250610T020000Z-00000001", start)
	r.Add(
		report.Table{Table: "patient", Phase: report.PhaseReplicate, Mode: "incremental", Status: report.TableOK, RowsRead: 120, RowsWritten: 120},
		report.Table{Table: "claim", Phase: report.PhaseLoad, Mode: "full", Status: report.TableFailed, RowsRead: 10,
			Error: "raw row count 9 differs from the replica's 10"},
	)
	return r.Finish(start.Add(95*time.Second), report.StatusFailed, 1)
}

func okRun(schemaChange bool) *report.Report {
	r := report.New(report.CommandRun, "20250610T020000Z-00000002", start)
	t := report.Table{Table: "patient", Phase: report.PhaseReplicate, Mode: "incremental", Status: report.TableOK, RowsRead: 5, RowsWritten: 5}
	if schemaChange {
		t.SchemaChanges = []string{"patient: added column Ward varchar(20)"}
	}
	r.Add(t)
	return r.Finish(start.Add(3*time.Second), report.StatusOK, 0)
}

// receiver is a webhook endpoint that records what it gets and answers
// with the statuses given, then 200.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	bodies   [][]byte
	ctype    string
	attempts atomic.Int32
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	rc := &receiver{}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(rc.attempts.Add(1))
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.bodies = append(rc.bodies, body)
		rc.ctype = r.Header.Get("Content-Type")
		rc.mu.Unlock()
		if n <= len(statuses) {
			w.WriteHeader(statuses[n-1])
			_, _ = w.Write([]byte("no_service"))
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

// secretURL is the receiver's URL with a token-like path, as Slack's.
func (rc *receiver) secretURL() string {
	return rc.srv.URL + "/services/T0SECRET/B0SECRET/XoXoSeCrEtToKeN"
}

// harness builds a Notifier on env and captures every log line.
type harness struct {
	logs *bytes.Buffer
	n    *notify.Notifier
}

func newHarness(t *testing.T, cfg notify.Config, env map[string]string) harness {
	t.Helper()
	logs := &bytes.Buffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	n, err := notify.New(cfg, func(k string) (string, bool) { v, ok := env[k]; return v, ok }, log)
	require.NoError(t, err)
	return harness{logs: logs, n: n}
}

// assertNoSecret checks that neither the URL nor any part of it that
// identifies the webhook appears in text.
func assertNoSecret(t *testing.T, text string, rawURL string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	require.NoError(t, err)
	for _, s := range []string{rawURL, u.Host, u.Path, "XoXoSeCrEtToKeN", "T0SECRET"} {
		assert.NotContains(t, text, s, "the webhook URL leaked")
	}
}

func TestPayload(t *testing.T) {
	rc := newReceiver(t)
	h := newHarness(t, notify.Config{Webhooks: []notify.Webhook{{Name: "slack", URLEnv: "HOOK"}}}, map[string]string{"HOOK": rc.secretURL()})
	want := failedRun()
	assert.Equal(t, 1, h.n.Notify(context.Background(), want))

	require.Len(t, rc.bodies, 1)
	assert.Equal(t, "application/json", rc.ctype)
	var got struct {
		Text   string          `json:"text"`
		Report json.RawMessage `json:"report"`
	}
	require.NoError(t, json.Unmarshal(rc.bodies[0], &got))
	assert.Equal(t, "pipeline run: FAILED (exit 1) after 1m35s, 2 tables, 1 not ok\n"+
		"• claim (load): raw row count 9 differs from the replica's 10\n"+
		"rows: 130 read, 120 written, 0 deleted\n"+
		"run 20250610T020000Z-00000001", got.Text)
	rep, err := report.Decode(got.Report)
	require.NoError(t, err)
	assert.Equal(t, want, rep, "the whole report travels in the body")
	assertNoSecret(t, h.logs.String(), rc.secretURL())
}

// TestEvents: failure only by default; other events on request.
func TestEvents(t *testing.T) {
	byDefault, onSuccess, onSchema := newReceiver(t), newReceiver(t), newReceiver(t)
	h := newHarness(t, notify.Config{Webhooks: []notify.Webhook{
		{Name: "default", URLEnv: "A"},
		{Name: "success", URLEnv: "B", Events: []notify.Event{notify.EventSuccess, notify.EventFailure}},
		{Name: "schema", URLEnv: "C", Events: []notify.Event{notify.EventSchemaChange}},
	}}, map[string]string{"A": byDefault.secretURL(), "B": onSuccess.secretURL(), "C": onSchema.secretURL()})
	ctx := context.Background()

	assert.Equal(t, 1, h.n.Notify(ctx, okRun(false)), "success goes only where asked for")
	assert.Equal(t, []int32{0, 1, 0}, []int32{byDefault.attempts.Load(), onSuccess.attempts.Load(), onSchema.attempts.Load()})

	assert.Equal(t, 2, h.n.Notify(ctx, okRun(true)))
	assert.Equal(t, []int32{0, 2, 1}, []int32{byDefault.attempts.Load(), onSuccess.attempts.Load(), onSchema.attempts.Load()})

	assert.Equal(t, 2, h.n.Notify(ctx, failedRun()))
	assert.Equal(t, []int32{1, 3, 1}, []int32{byDefault.attempts.Load(), onSuccess.attempts.Load(), onSchema.attempts.Load()})

	outside := report.New(report.CommandRun, "x", start).Finish(start, report.StatusOutsideWindow, 5)
	assert.Zero(t, h.n.Notify(ctx, outside), "refusing to start outside the window is no failure")
	stale := report.New(report.CommandStatus, "y", start).Finish(start, report.StatusStale, 1)
	assert.Zero(t, h.n.Notify(ctx, stale), "nobody asked for stale")
}

func TestRetries(t *testing.T) {
	flaky := newReceiver(t, http.StatusServiceUnavailable, http.StatusBadGateway) // then 200
	gone := newReceiver(t, http.StatusNotFound, http.StatusNotFound, http.StatusNotFound)
	down := newReceiver(t, 500, 500, 500, 500)
	h := newHarness(t, notify.Config{Retries: 2, Webhooks: []notify.Webhook{
		{Name: "flaky", URLEnv: "A"}, {Name: "gone", URLEnv: "B"}, {Name: "down", URLEnv: "C"},
	}}, map[string]string{"A": flaky.secretURL(), "B": gone.secretURL(), "C": down.secretURL()})

	assert.Equal(t, 1, h.n.Notify(context.Background(), failedRun()))
	assert.Equal(t, int32(3), flaky.attempts.Load(), "two retries, then delivered")
	assert.Equal(t, int32(1), gone.attempts.Load(), "a 404 is not retried")
	assert.Equal(t, int32(3), down.attempts.Load(), "1 + retries attempts, no more")
	logs := h.logs.String()
	assert.Contains(t, logs, `webhook=gone`)
	assert.Contains(t, logs, "HTTP 404: no_service")
	assert.Contains(t, logs, `webhook=down url_env=C attempts=3 error="HTTP 500: no_service"`)
	assert.Equal(t, 2, strings.Count(logs, "level=WARN"))
	for _, rc := range []*receiver{flaky, gone, down} {
		assertNoSecret(t, logs, rc.secretURL())
	}
}

// TestDeadAndSlowWebhooks: one webhook refuses connections, one never
// answers; a healthy one still gets the result, Notify returns once the
// budget is spent, and only warnings are logged — without the URLs.
func TestDeadAndSlowWebhooks(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/services/T0SECRET/B0SECRET/XoXoSeCrEtToKeN"
	dead.Close() // nothing listens there any more

	gaveUp := make(chan struct{})
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // (the server notices a client hanging up only after the body)
		<-r.Context().Done()      // never answers; returns when the client gives up
		once.Do(func() { close(gaveUp) })
	}))
	t.Cleanup(slow.Close)
	slowURL := slow.URL + "/services/T0SECRET/B0SECRET/XoXoSeCrEtToKeN"
	good := newReceiver(t)

	h := newHarness(t, notify.Config{Timeout: 300 * time.Millisecond, Retries: 2, Webhooks: []notify.Webhook{
		{Name: "dead", URLEnv: "A"}, {Name: "slow", URLEnv: "B"}, {Name: "good", URLEnv: "C"},
	}}, map[string]string{"A": deadURL, "B": slowURL, "C": good.secretURL()})

	assert.Equal(t, 1, h.n.Notify(context.Background(), failedRun()))
	select {
	case <-gaveUp:
	case <-time.After(time.Minute):
		t.Fatal("the slow webhook's request was never cancelled")
	}
	assert.Equal(t, int32(1), good.attempts.Load())
	logs := h.logs.String()
	assert.Contains(t, logs, "webhook=dead")
	assert.Contains(t, logs, "connection refused")
	assert.Contains(t, logs, "webhook=slow")
	assert.Contains(t, logs, "timeout")
	assert.NotContains(t, logs, "level=ERROR")
	for _, u := range []string{deadURL, slowURL, good.secretURL()} {
		assertNoSecret(t, logs, u)
	}
}

func TestNewErrorsNeverShowTheURL(t *testing.T) {
	cfg := notify.Config{Webhooks: []notify.Webhook{{URLEnv: "PIPELINE_SLACK_WEBHOOK"}}}
	_, err := notify.New(cfg, func(string) (string, bool) { return "", false }, nil)
	require.ErrorIs(t, err, notify.ErrConfig)
	assert.Contains(t, err.Error(), "environment variable PIPELINE_SLACK_WEBHOOK is not set")

	secret := "hooks.example/services/XoXoSeCrEtToKeN"
	_, err = notify.New(cfg, func(string) (string, bool) { return secret, true }, nil)
	require.ErrorIs(t, err, notify.ErrConfig)
	assert.Contains(t, err.Error(), "does not hold an http(s) URL")
	assert.NotContains(t, err.Error(), "XoXoSeCrEtToKeN")

	var none *notify.Notifier
	assert.Zero(t, none.Notify(context.Background(), failedRun()), "no notify section: nothing to do")
}

func TestParseEvent(t *testing.T) {
	for _, e := range notify.EventValues() {
		got, err := notify.ParseEvent(string(e))
		require.NoError(t, err)
		assert.Equal(t, e, got)
	}
	_, err := notify.ParseEvent("failed")
	assert.ErrorContains(t, err, `unknown event "failed": want one of failure, success, schema_change, stale`)
}

func TestSummaryListsAtMostFiveProblems(t *testing.T) {
	r := report.New(report.CommandLoad, "run-x", start)
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g"} {
		r.Add(report.Table{Table: name, Phase: report.PhaseLoad, Status: report.TableFailed, Error: "boom\n  on two lines"})
	}
	s := notify.Summary(r.Finish(start.Add(2*time.Second), report.StatusFailed, 1))
	assert.Contains(t, s, "• e (load): boom on two lines\n… and 2 more (see the report)\n")
	assert.NotContains(t, s, "• f ")
}

// TestInterruptedRunStillNotifies: a run stopped by SIGINT has a cancelled
// context, and its failure is still delivered.
func TestInterruptedRunStillNotifies(t *testing.T) {
	rc := newReceiver(t)
	h := newHarness(t, notify.Config{Webhooks: []notify.Webhook{{URLEnv: "HOOK"}}}, map[string]string{"HOOK": rc.secretURL()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := report.New(report.CommandRun, "run-int", start).Finish(start.Add(time.Second), report.StatusInterrupted, 130)
	assert.Equal(t, 1, h.n.Notify(ctx, r))
	assert.Equal(t, int32(1), rc.attempts.Load())
}
