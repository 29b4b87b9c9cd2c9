package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// statusError is a response the webhook refused.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string {
	if e.body == "" {
		return fmt.Sprintf("HTTP %d", e.code)
	}
	return fmt.Sprintf("HTTP %d: %s", e.code, e.body)
}

// deliveryError is a transport failure with the URL taken out.
type deliveryError struct{ msg string }

func (e *deliveryError) Error() string { return e.msg }

// post makes one attempt.
func (n *Notifier) post(ctx context.Context, h hook, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return redact(err, h.url)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "opendental-pipeline")
	resp, err := n.client.Do(req)
	if err != nil {
		return redact(err, h.url)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &statusError{code: resp.StatusCode, body: redact(errors.New(strings.TrimSpace(string(snippet))), h.url).Error()}
}

// retryable: network trouble, 5xx and 429 may pass on a second try; any
// other refusal (a wrong URL, a revoked token) will not.
func retryable(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		return se.code >= 500 || se.code == http.StatusTooManyRequests
	}
	return true
}

// redact returns err's message with the webhook URL and its parts (host,
// path, query) replaced: net/http errors quote the URL, and a Slack URL is
// its own credential.
func redact(err error, raw string) error {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Op + ": " + ue.Err.Error()
	}
	secrets := []string{raw}
	if u, perr := url.Parse(raw); perr == nil {
		secrets = append(secrets, u.String(), u.Host, u.Hostname(), u.EscapedPath(), u.Path, u.RawQuery)
		secrets = append(secrets, strings.Split(u.Path, "/")...)
	}
	sort.Slice(secrets, func(i, j int) bool { return len(secrets[i]) > len(secrets[j]) })
	for _, s := range secrets {
		if len(s) >= 3 { // a one-letter path segment is no secret, and replacing it would garble the message
			msg = strings.ReplaceAll(msg, s, "<webhook>")
		}
	}
	timeout := errors.Is(err, context.DeadlineExceeded)
	var te interface{ Timeout() bool }
	if errors.As(err, &te) && te.Timeout() {
		timeout = true
	}
	if timeout && !strings.Contains(msg, "timeout") {
		msg += " (timeout)"
	}
	return &deliveryError{msg: msg}
}
