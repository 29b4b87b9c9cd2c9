// Package manager runs statements against one reused MySQL/MariaDB
// connection with retries (exponential backoff with jitter, retryable errors
// only) and a rate limit between queries, so that the clinic's server is
// never rushed.
//
// A Manager is one *sql.Conn of a pool used by one worker at a time:
// concurrent Do calls queue. Give each parallel worker its own manager.
package manager

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/opendental-pipeline/pipeline/gen/catalog"
	"github.com/opendental-pipeline/pipeline/internal/factory"
	"github.com/opendental-pipeline/pipeline/internal/providers"
)

// Options tunes retries and rate limiting.
type Options struct {
	MaxRetries  int           // retries after the first try (pipeline.yml replication.max_retries)
	BaseBackoff time.Duration // first backoff; doubled each retry, with jitter
	MaxBackoff  time.Duration
	RateLimit   time.Duration // minimum gap between the starts of two attempts (replication.rate_limit_ms); 0 disables

	// PoolTimeout bounds the wait for a free pool connection (the source's
	// pool_timeout); 0 waits as long as ctx allows.
	PoolTimeout time.Duration
	// Logger receives one Warn line per retry; nil discards.
	Logger *slog.Logger
	// Observe, if set, is called after every attempt (tests count them;
	// the data path may count retries for its report).
	Observe func(Attempt)
}

// Backoff bounds: not configurable, the retry count and rate limit are.
const (
	baseBackoff = 200 * time.Millisecond
	maxBackoff  = 5 * time.Second
)

// ForSource returns the options source managers run with: p's
// replication.max_retries and rate_limit_ms and the source's pool_timeout,
// logging retries to log (nil discards). The values have one home,
// pipeline.yml's defaults in providers.
func ForSource(p *providers.PipelineConfig, log *slog.Logger) Options {
	return Options{
		MaxRetries: p.Replication.MaxRetries, RateLimit: p.Replication.RateLimit(),
		BaseBackoff: baseBackoff, MaxBackoff: maxBackoff,
		PoolTimeout: p.Pool(catalog.DatabaseSource).PoolTimeout,
		Logger:      log,
	}
}

// DefaultOptions are the options of an empty pipeline.yml.
func DefaultOptions() Options { return ForSource(providers.DefaultPipelineConfig(), nil) }

// Manager holds one reused *sql.Conn of a MySQL/MariaDB pool.
type Manager struct {
	opts Options
	log  *slog.Logger
	db   *sql.DB

	sem  chan struct{} // one Do at a time: the connection is not shared
	conn *sql.Conn     // nil until the first Do, and after a lost connection
	last time.Time     // start of the previous attempt

	attempts atomic.Int64 // every run of a Do function, retries included
}

// New returns a Manager on db. It takes a connection lazily.
func New(db *sql.DB, opts Options) *Manager {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{opts: opts, log: log, db: db, sem: make(chan struct{}, 1)}
}

// Do runs fn on the reused connection after the rate-limit gap, retrying
// retryable failures; after a connection-level failure it takes a fresh
// connection. fn must be safe to run again (idempotent): a statement cut off
// by a lost connection may or may not have been applied. A transaction fn
// opens must be rolled back by fn on error (defer tx.Rollback()), since the
// connection is kept for the retry unless it was lost. The rate limit paces
// Do calls (and their retries), not the statements inside one fn.
func (m *Manager) Do(ctx context.Context, fn func(ctx context.Context, conn *sql.Conn) error) error {
	return m.do(ctx, fn)
}

// Queries is how many times a Do function has run so far, retries
// included: the queries sent to the database when each function sends one
// (the data path's source queries), or its turns under the rate limit.
// An attempt that failed before reaching the server (no connection) counts
// too. Safe to read while Do runs.
func (m *Manager) Queries() int64 { return m.attempts.Load() }

// Close returns the reused connection to the pool. It waits for a running Do.
func (m *Manager) Close() error {
	m.sem <- struct{}{}
	defer func() { <-m.sem }()
	m.drop(false)
	return nil
}

func (m *Manager) acquire(ctx context.Context) error {
	if m.conn != nil {
		return nil
	}
	conn, err := factory.AcquireMySQL(ctx, m.db, m.opts.PoolTimeout)
	if err != nil {
		return err
	}
	m.conn = conn
	return nil
}

// drop gives the connection back; a broken one is discarded, not pooled.
func (m *Manager) drop(broken bool) {
	if m.conn == nil {
		return
	}
	if broken {
		// Returning ErrBadConn from Raw makes database/sql discard the
		// driver connection instead of pooling it again.
		_ = m.conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = m.conn.Close()
	m.conn = nil
}
