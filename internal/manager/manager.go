// Package manager runs statements against one reused connection with
// retries (exponential backoff with jitter, retryable errors only) and a
// rate limit between queries, so that the clinic's server is never rushed.
package manager

import (
	"context"
	"database/sql"
	"time"
)

// Options tunes retries and rate limiting.
type Options struct {
	MaxRetries  int           // retries after the first try; default 3
	BaseBackoff time.Duration // first backoff; doubled each retry, with jitter
	MaxBackoff  time.Duration
	RateLimit   time.Duration // minimum gap between queries; default 100ms, 0 disables
}

// DefaultOptions are the connection architecture's defaults.
func DefaultOptions() Options {
	return Options{MaxRetries: 3, BaseBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second, RateLimit: 100 * time.Millisecond}
}

// Manager holds one reused *sql.Conn of a MySQL/MariaDB pool.
type Manager struct {
	db   *sql.DB
	opts Options
}

// New returns a Manager on db. It takes a connection lazily.
func New(db *sql.DB, opts Options) *Manager { return &Manager{db: db, opts: opts} }

// Do runs fn on the reused connection after the rate-limit gap, retrying
// retryable failures; after a connection-level failure it takes a fresh
// connection. fn must be safe to run again (idempotent).
func (m *Manager) Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	panic("TODO: implemented by the manager helper")
}

// ExecuteWithRetry runs one statement through Do.
func (m *Manager) ExecuteWithRetry(ctx context.Context, query string, args ...any) (sql.Result, error) {
	panic("TODO: implemented by the manager helper")
}

// Close returns the reused connection to the pool.
func (m *Manager) Close() error { return nil }
