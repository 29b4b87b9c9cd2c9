package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/opendental-pipeline/pipeline/internal/report"
)

// hook is a webhook endpoint in the test: it records every body.
type hook struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []webhookBody
}

type webhookBody struct {
	Text   string         `json:"text"`
	Report *report.Report `json:"report"`
}

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		var b webhookBody
		if json.Unmarshal(data, &b) == nil {
			h.mu.Lock()
			h.bodies = append(h.bodies, b)
			h.mu.Unlock()
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) received() []webhookBody {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhookBody{}, h.bodies...)
}

// Webhooks are told per their events (failure only by default), a dead
// webhook never fails the run, and no URL (with its token) ever appears in
// the output.
func TestNotificationsAfterRuns(t *testing.T) {
	team, all := newHook(t), newHook(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // connection refused from now on
	urls := map[string]string{
		"HOOK_TEAM": team.srv.URL + "/services/T000/B000/team-token",
		"HOOK_ALL":  all.srv.URL + "/services/T000/B000/all-token",
		"HOOK_DEAD": dead.URL + "/services/T000/B000/dead-token",
	}
	o := newOps(t, `notify:
  timeout: 5s
  retries: 0
  webhooks:
    - {name: team, url_env: HOOK_TEAM}
    - {name: all, url_env: HOOK_ALL, events: [success, failure, stale]}
    - {name: down, url_env: HOOK_DEAD, events: [success, failure]}
`)
	for k, v := range urls {
		t.Setenv(k, v)
	}
	noURL := func(outputs ...string) {
		t.Helper()
		for _, out := range outputs {
			for name, u := range urls {
				assert.NotContains(t, out, u, name)
				assert.NotContains(t, out, "token", name)
			}
		}
	}

	code, out, errOut := o.cli(nil, "run", "--json")
	require.Equal(t, exitOK, code, "a dead webhook does not fail the run: %s", errOut)
	noURL(out, errOut)
	assert.Contains(t, errOut, "webhook not reached", "the dead one is a warning")
	assert.Contains(t, errOut, "webhook=down")
	assert.Empty(t, team.received(), "failure only, by default: a good run is not news")
	got := all.received()
	require.Len(t, got, 1)
	assert.Contains(t, got[0].Text, "pipeline run: ok (exit 0)")
	require.NotNil(t, got[0].Report)
	assert.Equal(t, decodeReport(t, out).RunID, got[0].Report.RunID, "the whole result rides along")
	assert.Equal(t, report.StatusOK, got[0].Report.Status)
	assert.Len(t, got[0].Report.Tables, 4)

	restore := o.breakLoad(t, "definition")
	code, out, errOut = o.cli(nil, "run")
	restore()
	require.Equal(t, exitFailed, code)
	noURL(out, errOut)
	got = team.received()
	require.Len(t, got, 1, "the failure reaches the team")
	assert.Contains(t, got[0].Text, "pipeline run: FAILED (exit 1)")
	assert.Contains(t, got[0].Text, "definition (load)")
	assert.Equal(t, report.StatusFailed, got[0].Report.Status)
	assert.Len(t, all.received(), 2)

	// status sends the stale event, and nothing else: a failing table that
	// is not stale was the run's news already.
	code, _, errOut = o.status(t, nil)
	require.Equal(t, exitFailed, code, "definition is failing: %s", errOut)
	assert.Len(t, all.received(), 2, "status sends only stale")
	code, out, errOut = o.status(t, at(time.Now().Add(48*time.Hour)))
	require.Equal(t, exitFailed, code)
	noURL(out, errOut)
	got = all.received()
	require.Len(t, got, 3)
	assert.Equal(t, report.StatusStale, got[2].Report.Status)
	assert.Len(t, team.received(), 1, "stale is not among the team's events")

	// A webhook whose variable is missing is a configuration error before
	// anything is touched.
	t.Setenv("HOOK_ALL", "")
	code, _, errOut = o.cli(nil, "run")
	assert.Equal(t, exitConfig, code)
	assert.Contains(t, errOut, "environment variable HOOK_ALL is not set")
}
