// Package manager runs statements against one reused connection with
// retries (exponential backoff with jitter, retryable errors only) and a
// rate limit between queries, so that the clinic's server is never rushed.
//
// Manager does it for a MySQL/MariaDB *sql.DB (one *sql.Conn), Postgres for
// a *pgxpool.Pool (one *pgxpool.Conn); both share one loop. A manager is one
// connection used by one worker at a time: concurrent Do calls queue. Give
// each parallel worker its own manager.
package manager

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"log/slog"
	"time"

	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Options tunes retries and rate limiting.
type Options struct {
	MaxRetries  int           // retries after the first try; default 3
	BaseBackoff time.Duration // first backoff; doubled each retry, with jitter
	MaxBackoff  time.Duration
	RateLimit   time.Duration // minimum gap between the starts of two attempts; default 100ms, 0 disables

	// PoolTimeout bounds the wait for a free pool connection (the config's
	// pool_timeout, default 30 s); 0 waits as long as ctx allows.
	PoolTimeout time.Duration
	// Logger receives one Warn line per retry; nil discards.
	Logger *slog.Logger
	// Observe, if set, is called after every attempt (tests count them;
	// the data path may count retries for its report).
	Observe func(Attempt)
}

// DefaultOptions are the connection architecture's defaults.
func DefaultOptions() Options {
	return Options{
		MaxRetries: 3, BaseBackoff: 200 * time.Millisecond, MaxBackoff: 5 * time.Second,
		RateLimit: 100 * time.Millisecond, PoolTimeout: 30 * time.Second,
	}
}

// ForDatabase returns o with cfg's pool timeout and, if o has a logger, one
// that names the database (cfg.Label(), never the password).
func (o Options) ForDatabase(cfg providers.DBConfig) Options {
	o.PoolTimeout = cfg.Pool.PoolTimeout
	if o.Logger != nil {
		o.Logger = o.Logger.With("db", cfg.Label())
	}
	return o
}

// Manager holds one reused *sql.Conn of a MySQL/MariaDB pool.
type Manager struct {
	core *core[*sql.Conn]
}

// New returns a Manager on db. It takes a connection lazily.
func New(db *sql.DB, opts Options) *Manager {
	acquire := func(ctx context.Context) (*sql.Conn, error) {
		return factory.AcquireMySQL(ctx, db, opts.PoolTimeout)
	}
	release := func(c *sql.Conn, broken bool) {
		if broken {
			// Returning ErrBadConn from Raw makes database/sql discard the
			// driver connection instead of pooling it again.
			_ = c.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = c.Close()
	}
	never := func(*sql.Conn, error) bool { return false }
	return &Manager{core: newCore(opts, acquire, release, never)}
}

// Do runs fn on the reused connection after the rate-limit gap, retrying
// retryable failures; after a connection-level failure it takes a fresh
// connection. fn must be safe to run again (idempotent): a statement cut off
// by a lost connection may or may not have been applied. A transaction fn
// opens must be rolled back by fn on error (defer tx.Rollback()), since the
// connection is kept for the retry unless it was lost. The rate limit paces
// Do calls (and their retries), not the statements inside one fn.
func (m *Manager) Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	return m.core.do(ctx, fn)
}

// ExecuteWithRetry runs one statement through Do.
func (m *Manager) ExecuteWithRetry(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := m.Do(ctx, func(ctx context.Context, conn *sql.Conn) error {
		var err error
		res, err = conn.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// Close returns the reused connection to the pool. It waits for a running Do.
func (m *Manager) Close() error {
	m.core.close()
	return nil
}
